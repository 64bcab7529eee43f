"""Helpers shared by the subcommands: size arguments, JSON output, terminals."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..units import parse_size


def size_arg(what: str) -> Any:
    """An argparse type that parses sizes with K/M/G suffixes and names the option on error."""

    def parse(text: str) -> int:
        try:
            return parse_size(text, what=what)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err).removeprefix(f"invalid {what} ")) from None

    parse.__name__ = what
    return parse


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty() and sys.stderr.isatty()
