"""What a bare or mistyped command line gets: the list of commands, or one line naming the
nearest command or option (like git's "did you mean"), always exit 2. Imported only then.
"""

from __future__ import annotations

import difflib
import sys

from ..errors import EXIT_USAGE
from . import COMMANDS, build_parser, top_level_option
from .common import say

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

TOP_OPTIONS = ("-h", "--help", "-V", "--version")


def nearest(word: str, candidates: Sequence[str]) -> str | None:
    """The closest candidate, if one is close enough to be a typo of ``word`` (a swap of two
    letters in a four-letter word is; the "--" every long option shares does not count)."""
    bare = {c.lstrip("-"): c for c in candidates}
    close = difflib.get_close_matches(word.lstrip("-"), list(bare), n=1, cutoff=0.7)
    return bare[close[0]] if close else None


def listing() -> str:
    """One short usage line and the commands, each with its one-line help."""
    usage = build_parser([], listed=False).format_usage().rstrip()
    width = max(map(len, COMMANDS)) + 2
    lines = [usage, "", "commands:"] + [f"  {name:<{width}}{text}" for name, text in COMMANDS.items()]
    lines += ["", "Run 'largezero COMMAND --help' for a command's options, 'man largezero' for the manual."]
    return "\n".join(lines)


def unknown_command(word: str) -> str:
    close = nearest(word, list(COMMANDS))
    if close:
        return f"largezero: unknown command '{word}'; did you mean '{close}'?"
    return f"largezero: unknown command '{word}' (commands: {', '.join(COMMANDS)})"


def unknown_option(word: str, options: Sequence[str], prog: str) -> str:
    name = word.split("=", 1)[0]
    # Only long options are words a typo can be measured against; -x is one letter.
    close = nearest(name, [o for o in options if o.startswith("--")]) if name.startswith("--") else None
    if close:
        return f"{prog}: unknown option '{word}'; did you mean '{close}'?"
    return f"{prog}: unknown option '{word}' (try '{prog} --help')"


def without_command(argv: Sequence[str]) -> int:
    """When no known command was named and the first word does not ask for --help or --version:
    the listing (nothing given) or one line (a word that is no command, an option that is not
    ours); exit 2."""
    for i, word in enumerate(argv):
        if word == "--":
            if i + 1 < len(argv):
                say(unknown_command(argv[i + 1]))
                return EXIT_USAGE
            break
        if not word.startswith("-") or word == "-":
            say(unknown_command(word))
            return EXIT_USAGE
        if not top_level_option(word):
            say(unknown_option(word, TOP_OPTIONS, "largezero"))
            return EXIT_USAGE
    stream = sys.stderr
    if stream is not None:
        try:
            stream.write(listing() + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass
    return EXIT_USAGE


def unrecognized(parser: argparse.ArgumentParser, known: argparse.Namespace, extras: Sequence[str]) -> str:
    """The one line for words a command's parser did not take: the first unknown option with its
    nearest neighbour, else the stray arguments."""
    import argparse

    prog, options = parser.prog, list(parser._option_string_actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(known, action.dest, None) or "")
            if chosen is not None:
                prog, options = chosen.prog, list(chosen._option_string_actions)
    for word in extras:
        if word.startswith("-") and word != "-" and not _is_number(word):
            return unknown_option(word, options, prog)
    return f"{prog}: unexpected argument{'s' if len(extras) > 1 else ''}: {' '.join(extras)} (try '{prog} --help')"


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True
