"""Training data: procedural scenes and blur, the source images they draw on, HFR-DVD synthesis, and
readers for blurry/sharp datasets on disk."""
