"""bench/: the FLOP convention, the aggregation-memory sweep's output, the report generator.

bench/ is not installed; these tests import it from the repository root (``python -m pytest``).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bench import aggregation_memory, report
from bench.flops import FlopCount, count_flops

torch.set_num_threads(2)


# --- FLOP convention: 1 multiply-add = 2 FLOPs ------------------------------------------------------

def test_conv_counts_two_flops_per_multiply_add_without_bias():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    # 8 outputs x 16x16 positions x (3 channels x 3x3 taps) multiply-adds, x 2
    assert count_flops(conv, (1, 3, 16, 16)).total == 2 * 8 * 16 * 16 * 3 * 9 == 110_592


def test_matmul_counts_two_flops_per_multiply_add():
    assert count_flops(lambda a, b: a @ b, (64, 32), (32, 16)).total == 2 * 64 * 32 * 16 == 65_536


def test_cpu_attention_counts_scores_and_weighted_sum():
    def attend(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, scale=1.0)

    count = count_flops(attend, (1, 1, 64, 16), (1, 1, 32, 16), (1, 1, 32, 16))
    assert count.total == 2 * 64 * 32 * 16 + 2 * 64 * 32 * 16 == 131_072


def test_deformable_conv_counts_as_the_dense_conv_of_its_shape():
    # The formula FlopCounterMode applies to torchvision::deform_conv2d, called with that op's argument
    # shapes (input, weight [Cout, Cin/groups, kh, kw], offset, mask, bias); torchvision itself is not in
    # the test install, so the op's registration is not exercised here.
    from bench.flops import _deform_conv2d_formula

    flops = _deform_conv2d_formula((1, 4, 8, 8), (8, 4, 3, 3), (1, 18, 8, 8), (0,), (8,), out_shape=(1, 8, 8, 8))
    assert flops == 2 * 8 * 8 * 8 * 4 * 9
    grouped = _deform_conv2d_formula((2, 4, 8, 8), (8, 2, 3, 3), out_shape=(2, 8, 4, 4))
    assert grouped == 2 * 2 * 8 * 4 * 4 * 2 * 9


def test_part_of_an_uncalled_container_sums_its_direct_children():
    count = FlopCount(total=10, by_module={"Net": 10, "Net.body.a": 3, "Net.body.b": 4, "Net.body.a.conv": 3,
                                           "Net.head": 3}, by_op={})
    assert count.part("Net.body") == 7
    assert count.part(["Net.body", "Net.head"]) == 10


# --- aggregation memory ------------------------------------------------------------------------------

def test_fit_exponent_recovers_linear_and_quadratic_growth():
    xs = [1024, 4096, 16384, 65536]
    assert aggregation_memory.fit_exponent(xs, [3.0 * x for x in xs]) == pytest.approx(1.0)
    assert aggregation_memory.fit_exponent(xs, [0.5 * x * x for x in xs]) == pytest.approx(2.0)
    assert aggregation_memory.fit_exponent([1024], [5.0]) is None


def test_memory_fit_ignores_points_whose_volume_is_below_allocator_noise():
    # The CI failure's shape: naive volumes of 0.1 and 0.3 MB "grew" RSS by 4.3 and 5.2 MB (allocator
    # arenas); fitting those gave a slope of 0.23 and failed the quadratic check. They must not be fitted.
    def point(side, growth):
        return {"method": "aggregate_naive", "side": side, "queries": side * side, "status": "ok", "seconds": 0.01,
                "predicted_volume_bytes": aggregation_memory.predicted_volume_bytes(side), "peak_growth_bytes": growth}

    noisy = aggregation_memory.summarise([point(16, 4.3e6), point(24, 5.2e6)])
    assert noisy["methods"]["aggregate_naive"]["fitted_points"] == 0
    assert noisy["checks"]["naive_grows_quadratically"] is None
    real = aggregation_memory.summarise([point(16, 4.3e6), point(64, 16.8e6), point(128, 268e6), point(256, 4.3e9)])
    assert real["methods"]["aggregate_naive"]["fitted_points"] == 3
    assert real["checks"]["naive_grows_quadratically"] is True


def test_naive_point_past_8_gb_is_skipped_without_running():
    (point,) = aggregation_memory.sweep([400], ["aggregate_naive"], repeats=1)
    assert point["status"] == "skipped"
    assert point["predicted_volume_bytes"] == 400 * 400 * 200 * 200 * 4
    assert "25.6 GB > 8 GB" in point["reason"]


def test_aggregation_sweep_of_two_points_writes_the_expected_json(tmp_path):
    out = tmp_path / "aggregation_memory.json"
    status = aggregation_memory.main(["--sides", "16", "24", "--repeats", "1",
                                      "--methods", "aggregate", "aggregate_naive", "--out", str(out)])
    assert status == 0
    data = json.loads(out.read_text())
    assert data["benchmark"] == "aggregation_memory"
    assert {"command", "machine", "points", "summary", "plot", "channels"} <= set(data)
    assert [(p["method"], p["side"], p["status"]) for p in data["points"]] == [
        ("aggregate", 16, "ok"), ("aggregate_naive", 16, "ok"), ("aggregate", 24, "ok"), ("aggregate_naive", 24, "ok")]
    first = data["points"][0]
    assert (first["queries"], first["keys"], first["channels"]) == (256, 64, 16)
    assert first["predicted_volume_bytes"] == 256 * 64 * 4
    assert first["peak_growth_bytes"] >= 0 and first["seconds"] > 0
    assert set(data["summary"]["methods"]) == {"aggregate", "aggregate_naive"}
    assert set(data["summary"]["checks"]) == {"aggregate_grows_linearly", "naive_grows_quadratically"}
    assert (tmp_path / data["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- report ------------------------------------------------------------------------------------------

MACHINE = {"utc": "2026-11-25T12:00:00+00:00", "cpu": "Test CPU", "cores": 2, "torch_threads": 2,
           "torch": "2.14.1", "python": "3.12.1", "gpus": [], "load_average": [3.5, 2.0, 1.0]}


def _fixture_results(folder):
    model_cost = {
        "benchmark": "model_cost", "command": "python -m bench.model_cost", "note": "training in the background",
        "machine": MACHINE, "convention": "1 multiply-add = 2 FLOPs",
        "rows": [{"config": "tiny", "params": 1371686, "size": "720p", "stage_flops": 445.8e9,
                  "output_frame_flops": 891.6e9, "stage_calls_per_output_frame": 2,
                  "stage_flops_by_part": {"flow": 72.3e9, "encoder": 75.2e9, "aggregation": 209.5e9,
                                          "reconstruction": 88.8e9}}],
    }
    throughput = {
        "benchmark": "throughput", "command": "python -m bench.throughput --quick", "note": None, "machine": MACHINE,
        "sgemm": {"reference_flops_per_s": 80e9},
        "rows": [
            {"kind": "backend", "config": "tiny", "size": "720p", "label": "torch eager", "device": "cpu",
             "precision": "fp32", "status": "ok", "output_fps": 0.125, "output_frame_s": 8.0,
             "peak_growth_bytes": 812e6, "fraction_of_reference": 0.2229, "bottleneck": "aggregation",
             "parts": {"aggregation": {"share": 0.41}}},
            {"kind": "backend", "config": "paper", "size": "1080p", "label": "torch eager", "device": "cpu",
             "precision": "fp32", "status": "skipped", "reason": "needs >= 239 s, budget 120 s"},
            {"kind": "filter", "config": "tiny", "size": "640x360", "frames": 4, "device": "cpu", "precision": "fp32",
             "status": "ok", "filter_s_per_output_frame": 2.1, "bare_s_per_output_frame": 2.0, "overhead_pct": 5.0,
             "model_calls_per_output_frame": 2.0},
        ],
    }
    for data in (model_cost, throughput):
        (folder / f"{data['benchmark']}.json").write_text(json.dumps(data))


def test_report_renders_tables_from_result_files(tmp_path):
    _fixture_results(tmp_path)
    assert report.main(["--results", str(tmp_path)]) == 0
    table = (tmp_path / "TABLE.md").read_text()
    lines = table.splitlines()
    assert lines[0].startswith("<!-- generated by `python -m bench.report`")
    assert "| tiny | 1,371,686 | 720p | 445.8 | 891.6 | 72.3 (16%) | 75.2 (17%) | 209.5 (47%) | 88.8 (20%) |" in lines
    assert "| tiny | 720p | torch eager | cpu | fp32 | 0.125 | 8 | 812 | 22.3 | aggregation (41%) |" in lines
    assert "- paper 1080p torch eager cpu fp32: skipped (needs >= 239 s, budget 120 s)" in lines
    assert "| tiny | 640x360 | 4 | cpu | 2.1 | 2 | +5.0% | 2.00 |" in lines
    assert "_Note: training in the background_" in lines
    assert "Reproduce: `python -m bench.throughput --quick`" in table
    assert "load average 3.5 at the start" in table


def test_report_replaces_only_the_text_between_markers():
    readme = f"# vsarvo\n{report.START_MARKER}\nold table\n{report.END_MARKER}\nafter\n"
    updated = report.replace_between_markers(readme, "| new |\n")
    assert updated == f"# vsarvo\n{report.START_MARKER}\n| new |\n{report.END_MARKER}\nafter\n"
    with pytest.raises(ValueError, match="bench:start"):
        report.replace_between_markers("# no markers\n", "| new |")


# --- arvo bench ----------------------------------------------------------------------------------------

def test_arvo_bench_is_routed_to_the_suite_of_this_checkout():
    from vsarvo import bench as arvo_bench
    from vsarvo.cli import build_parser

    args = build_parser("bench").parse_args(["bench", "--quick", "--only", "model_cost"])
    assert (args.quick, args.only) == (True, ["model_cost"])
    assert args.func.__module__ == "vsarvo.bench"
    assert (arvo_bench.checkout_root() / "bench" / "__main__.py").is_file()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where CUDA is missing")
def test_throughput_refuses_cuda_devices_without_cuda(tmp_path):
    from bench import throughput

    with pytest.raises(SystemExit, match="CUDA is not available"):
        throughput.main(["--devices", "cuda:0", "--out", str(tmp_path / "t.json")])
    assert not (tmp_path / "t.json").exists()


def test_readme_tables_equal_a_fresh_render_of_the_committed_results():
    # README's generated block must be what `python -m bench.report --readme README.md` writes today:
    # a hand edit, or a result file changed without re-rendering, fails here.
    from bench.record import RESULTS_DIR
    from bench.report import readme_with_tables

    readme = Path(__file__).resolve().parents[1] / "README.md"
    assert readme.read_text() == readme_with_tables(readme, RESULTS_DIR), (
        "README.md's tables are stale: run `python -m bench.report --readme README.md`"
    )
