"""Peak memory of the exported graphs under onnxruntime on the CPU: is the aggregation really chunked?

One pair's level-1 volume at 1920x1080 is 16.8 GB in fp32; a chunked graph needs a few hundred MB.
For each case this script exports the graph in a child process, then runs it once in a fresh child
process and reads that child's peak resident set size (VmHWM) from /proc. Budgets (issue 4): the
aggregation graph alone at 1920x1080 under 1 GB, the whole tiny stage at 1280x720 under 2 GB.

    .venv/bin/python bench/export_memory.py            # both cases, table on stdout, JSON in bench/results/
    .venv/bin/python bench/export_memory.py --case stage-720p

Weights: the tiny configuration with seeded random weights (memory does not depend on the values).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {
    # name: (part, width, height, budget in bytes)
    "aggregation-1080p": ("aggregation", 1920, 1080, 1 << 30),
    "stage-720p": ("stage", 1280, 720, 2 << 30),
}


def _peak_rss() -> int:
    """This process's peak resident set size in bytes (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/self/status has no VmHWM line (Linux only)")


def _child_export(weights: str, part: str, width: int, height: int, out: str) -> dict:
    from vsarvo.export.onnx_export import export_onnx
    from vsarvo.weights import load_model

    start = time.perf_counter()
    export_onnx(load_model(weights), part, out, height=height, width=width)
    return {"seconds": time.perf_counter() - start, "peak_rss": _peak_rss()}


def _child_run(onnx_path: str, threads: int, arena: bool) -> dict:
    import numpy as np
    import onnxruntime as ort

    ort.set_default_logger_severity(2)
    before = _peak_rss()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_cpu_mem_arena = arena
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.random(i.shape, dtype=np.float32) for i in session.get_inputs()}
    start = time.perf_counter()
    (out,) = session.run(None, feeds)
    return {
        "seconds": time.perf_counter() - start, "peak_rss": _peak_rss(), "baseline_rss": before,
        "finite": bool(np.isfinite(out).all()), "output_shape": list(out.shape),
    }


def _in_child(*args: str) -> dict:
    result = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(case: str, weights: str, workdir: Path, threads: int) -> dict:
    """Export (unless already in ``workdir``) and run one case, each in its own process.

    The graph runs twice: with onnxruntime's default CPU memory arena, and without it (the arena
    grows in doubling steps, which costs peak memory when score blocks are tens of MB).
    """
    part, width, height, budget = CASES[case]
    onnx_path = workdir / f"{case}.onnx"
    export = None
    if not onnx_path.is_file():
        export = _in_child("--child-export", weights, part, str(width), str(height), str(onnx_path))
    run = _in_child("--child-run", str(onnx_path), str(threads), "1")
    run_no_arena = _in_child("--child-run", str(onnx_path), str(threads), "0")
    return {
        "case": case, "part": part, "width": width, "height": height, "budget": budget,
        "onnx_bytes": onnx_path.stat().st_size, "export": export, "run": run, "run_no_arena": run_no_arena,
        "within_budget": max(run["peak_rss"], run_no_arena["peak_rss"]) < budget,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child-export":
        print(json.dumps(_child_export(argv[1], argv[2], int(argv[3]), int(argv[4]), argv[5])))
        return 0
    if argv and argv[0] == "--child-run":
        print(json.dumps(_child_run(argv[1], int(argv[2]), argv[3] == "1")))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=sorted(CASES), action="append", help="default: all cases")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("results") / "export_memory.json")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep weights and graphs here and reuse graphs already there (default: a temp folder)")
    args = parser.parse_args(argv)

    import torch

    from vsarvo.model import ARVo, ARVoConfig
    from vsarvo.weights import save_model

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        weights = workdir / "tiny.safetensors"
        if not weights.is_file():
            torch.manual_seed(0)
            save_model(ARVo(ARVoConfig.tiny()), weights)
        for case in args.case or sorted(CASES):
            results.append(measure(case, str(weights), workdir, args.threads))
    mib = 1 << 20
    print(f"{'case':<20}{'peak RSS':>10}{'no arena':>10}{'budget':>8}{'baseline':>10}{'run s':>7}{'no arena s':>11}"
          f"{'export peak':>12}{'export s':>9}{'onnx MiB':>9}")
    for r in results:
        export = r["export"] or {"peak_rss": float("nan"), "seconds": float("nan")}
        print(f"{r['case']:<20}{r['run']['peak_rss'] / mib:>10.0f}{r['run_no_arena']['peak_rss'] / mib:>10.0f}"
              f"{r['budget'] / mib:>8.0f}{r['run']['baseline_rss'] / mib:>10.0f}{r['run']['seconds']:>7.1f}"
              f"{r['run_no_arena']['seconds']:>11.1f}{export['peak_rss'] / mib:>12.0f}{export['seconds']:>9.1f}"
              f"{r['onnx_bytes'] / mib:>9.1f}   (MiB, seconds)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(r["within_budget"] and r["run"]["finite"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
