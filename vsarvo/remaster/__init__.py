"""The batch tool behind ``arvo deblur`` and ``arvo remaster``: each video file goes source →
``core.arvo.Deblur`` → ``vspipe`` → ffmpeg, with its audio, subtitles, chapters and metadata copied;
a batch job is resumable, runs files in parallel (threads here, or Ray tasks) and records every file
in a manifest in its output folder.

Importing this package (or any module in it) loads neither torch nor VapourSynth: the work happens
in vspipe processes.
"""
