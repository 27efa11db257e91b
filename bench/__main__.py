"""The benchmark suite: every benchmark in turn, then the markdown table.

    python -m bench [--quick] [--only NAME ...] [--note TEXT] [--results DIR]

``--quick`` shortens each benchmark (fewer sizes and repeats, per-row time budgets; see each
module's --help). A benchmark that fails is reported and the others still run; the exit status is
1 when any failed (including the aggregation-memory growth checks).
"""
from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path
from typing import Callable

from bench import aggregation_memory, gpu, model_cost, peer_basicvsrpp, report, throughput
from bench.record import RESULTS_DIR

BENCHMARKS: dict[str, tuple[Callable[[list[str] | None], int], bool]] = {
    # name -> (main, takes --quick and --threads)
    "model_cost": (model_cost.main, False),
    "aggregation_memory": (aggregation_memory.main, True),
    "throughput": (throughput.main, True),
    "peer_basicvsrpp": (peer_basicvsrpp.main, True),
    # Runs where CUDA is available; elsewhere it says so and writes nothing (--cpu-tiny is its CPU mode).
    "gpu": (gpu.suite_main, False),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs: fewer sizes and repeats, per-row budgets")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--threads", type=int, default=None, help="torch threads for the timed benchmarks (default: torch's own)")
    parser.add_argument("--note", default=None, help="conditions worth recording in every result file")
    parser.add_argument("--results", default=str(RESULTS_DIR), help="folder for the JSON/PNG results and TABLE.md")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    results = Path(args.results).resolve()
    failed = []
    for name in args.only:
        run, timed = BENCHMARKS[name]
        bench_argv = [] if results == RESULTS_DIR else ["--out", str(results / f"{name}.json")]
        if args.quick and timed:
            bench_argv.append("--quick")
        if args.threads and timed:
            bench_argv += ["--threads", str(args.threads)]
        if args.note:
            bench_argv += ["--note", args.note]
        print(f"== {name}", flush=True)
        try:
            status = run(bench_argv)
        except Exception:  # one broken benchmark must not cost the others' numbers
            traceback.print_exc()
            status = 1
        if status:
            failed.append(name)
    print("== report", flush=True)
    report.main(["--results", str(results)])
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
