"""The `arvo` command. Each subcommand lives in the module that does the work; this file only routes.

A module listed in SUBCOMMANDS exposes ``add_parser(subparsers)``, which registers its subcommand(s)
and sets ``func`` (called with the parsed arguments, returning the exit code).

A user's mistake or a fault of the machine (a bad argument, weights that do not load, a backend that
is not installed, a folder that is read-only or full) ends any subcommand with one line,
``arvo <command>: <message>``, and exit code 2; ``--debug`` shows the traceback instead. Ctrl-C
ends it with 130. Other exceptions are bugs and keep their traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import traceback

__all__ = ["main", "SUBCOMMANDS", "EXIT_USAGE", "is_user_error", "describe"]

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


# Exit code of a command that could not do its work for a reason the message gives.
EXIT_USAGE = 2

# Exceptions that report a user's mistake or a fault outside the program, as (module, class name):
# matched by name so that none of these modules (some load torch) is imported to check.
_USER_ERRORS = (
    ("vsarvo.remaster.job", "UsageError"),
    ("vsarvo.weights", "WeightsError"),
    ("vsarvo.backends.base", "BackendError"),
)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arvo", description="ARVo video deblurring for VapourSynth")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error (also accepted after the command)")
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


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` reports a user's mistake or a fault of the machine rather than a bug."""
    if isinstance(exc, (ValueError, OSError)):
        return True
    for cls in type(exc).__mro__:
        if (cls.__module__, cls.__name__) in _USER_ERRORS:
            return True
    return False


def describe(exc: BaseException) -> str:
    """One line for a user error; an OSError names its path and errno (ENOSPC, EROFS, ...)."""
    if isinstance(exc, OSError) and exc.strerror:
        import errno

        code = errno.errorcode.get(exc.errno or 0)
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}{f' ({code})' if code else ''}"
    return str(exc) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"arvo {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug or not is_user_error(exc):
            raise
        print(f"arvo {args.command}: {describe(exc)} (--debug shows the traceback)", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
