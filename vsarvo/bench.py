"""``arvo bench``: run the benchmark suite of a vsarvo source checkout.

The benchmarks live in the repository's top-level ``bench/`` folder, which is not installed (they
need the BasicVSR++ peer and write results into the checkout). From an editable install of a
checkout this runs ``python -m bench`` there; from a regular install it says how to get one.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

__all__ = ["add_parser", "checkout_root"]


def checkout_root() -> Path | None:
    """The source checkout this vsarvo was imported from, or None when it is an installed copy."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "bench" / "__main__.py").is_file() and (root / "setup.py").is_file() else None


def _run(args: argparse.Namespace) -> int:
    root = checkout_root()
    if root is None:
        print(
            "arvo bench: the benchmarks are not installed with vsarvo; they run from a source checkout:\n"
            "  git clone <vsarvo repository> && cd vsarvo && make bench\n"
            "(or, inside a checkout with vsarvo installed editable: python -m bench --quick)",
            file=sys.stderr,
        )
        return 2
    command = [sys.executable, "-m", "bench"]
    if args.quick:
        command.append("--quick")
    if args.only:
        command += ["--only", *args.only]
    if args.note:
        command += ["--note", args.note]
    return subprocess.run(command, cwd=root).returncode


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``arvo bench``."""
    parser = subparsers.add_parser(
        "bench", help="run the benchmark suite (from a source checkout)",
        description="Run bench/ of this vsarvo checkout: model cost, aggregation memory, throughput per "
                    "backend, the BasicVSR++ peer; writes bench/results/*.json and TABLE.md.",
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs: fewer sizes and repeats, per-row budgets")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="model_cost, aggregation_memory, throughput and/or peer_basicvsrpp")
    parser.add_argument("--note", default=None, help="conditions worth recording in every result file")
    parser.set_defaults(func=_run)
