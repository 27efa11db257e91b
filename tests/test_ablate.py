"""The ablation command: one table, every variant trained at the same budget, flow variants sharing one
pretrained flow net."""
from __future__ import annotations

import json

from vsarvo.training.ablate import main

SMALL = ["--channels", "8", "--encoder-width", "4", "--recon-width", "8", "--recon-blocks", "1", "--flow-width", "0.1"]


def test_ablation_table_lists_each_variant_and_the_shared_flow_pretraining(tmp_path):
    out = tmp_path / "ablation"
    status = main([*SMALL, "--out", str(out), "--variants", "full", "no-flow", "--steps", "1", "--batch-size", "1",
                   "--crop", "64", "--clips", "1", "--frames", "5", "--size", "64", "--test-clips", "1",
                   "--test-frames", "5", "--test-size", "64", "--flow-pretrain-steps", "1", "--threads", "1"])
    assert status == 0
    results = json.loads((out / "ablation.json").read_text())
    assert list(results["variants"]) == ["full", "no-flow"]
    assert results["variants"]["no-flow"]["config"]["use_flow"] is False
    budget = results["budget"]
    assert budget["flow_pretrain_steps"] == 1 and budget["flow_epe"] > 0 and budget["zero_flow_epe"] > 0
    table = (out / "ablation.md").read_text()
    assert "| full |" in table and "| no-flow |" in table
    assert "pretrained for 1 steps" in table
