"""The ``largezero`` command line: one module per subcommand, each with register() and run()."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..errors import EXIT_INTERRUPTED, EXIT_USAGE, LargezeroError

# Subcommand modules under largezero.cli; each defines register(subparsers) and sets func=run.
COMMANDS = ("zero", "info", "demo", "verify", "write", "model", "bench")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One line and exit 2, like util-linux, instead of argparse's usage dump.
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (try '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="largezero", description="Zero large ranges of files and block devices.")
    from .. import __version__

    parser.add_argument("-V", "--version", action="version", version=f"largezero {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except LargezeroError as err:
        print(f"largezero: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("largezero: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 1
    except OSError as err:
        # Anything the commands did not turn into a LargezeroError still gets one line.
        where = f": {err.filename}" if err.filename else ""
        print(f"largezero: {err.strerror or err}{where}", file=sys.stderr)
        return 1
