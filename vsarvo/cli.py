"""The `arvo` command. Each subcommand lives in the module that does the work; this file only routes.

A module listed in SUBCOMMANDS exposes ``add_parser(subparsers)``, which registers its subcommand(s)
and sets ``func`` (called with the parsed arguments, returning the exit code).
"""
from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "SUBCOMMANDS"]

# subcommand -> module (imported only when that subcommand or --help needs it)
SUBCOMMANDS = {
    "deblur": "vsarvo.remaster.cli",
    "remaster": "vsarvo.remaster.cli",
    "export": "vsarvo.export.cli",
    "cache": "vsarvo.artifacts",
    "train": "vsarvo.training.train",
    "eval": "vsarvo.training.eval",
    "synth": "vsarvo.training.data.synthesis",
    "bench": "vsarvo.bench",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arvo", description="ARVo video deblurring for VapourSynth")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    seen: set[str] = set()
    for name, module_name in SUBCOMMANDS.items():
        if (only is not None and name != only) or module_name in seen:
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if only is not None:
                raise SystemExit(f"arvo {name}: unavailable ({exc}); reinstall vsarvo with its extras") from exc
            subparsers.add_parser(name, help=f"(unavailable: {exc})")
            continue
        module.add_parser(subparsers)
        seen.add(module_name)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
