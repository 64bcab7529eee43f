"""The ``largezero`` command line: one module per subcommand, each with register() and run().

Start-up is part of every job people time, so this module imports nothing at its top but
``sys``: the top-level ``--help`` is built from :data:`COMMANDS` alone, and only the chosen
command's module is imported and registered. No traceback ever reaches the terminal: SIGINT,
SIGTERM or SIGHUP at any moment is one line and exit 130, 143 or 129 (see :func:`main`),
anything unexpected one line and exit 1.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not from typing, which costs milliseconds; mypy knows the name
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any

# Subcommand -> its one-line help, in the order of the top-level help. Each is the module
# largezero.cli.<name>, whose register(sub) adds its subparser and set_defaults(func=run).
COMMANDS: dict[str, str] = {
    "zero": "zero a byte range",
    "info": "show a target's sizes, alignments, limits and zero buffer",
    "demo": "zero scratch targets with ZERO_PAGE vs LARGE_ZERO_PAGE and compare",
    "verify": "check that a byte range reads back as zeros",
    "wipe": "overwrite, flush, verify and certify: the old data must be gone",
    "write": "write standard input at an offset (any alignment)",
    "model": "model bios, bvecs, segments and requests per zero source",
    "bench": "benchmark zeroing against dd, fallocate -z, blkdiscard -z and others",
    "cat": "zeros, or a file with its holes from the zero buffer, to stdout",
    "completion": "print the bash or zsh completion script",
}

DESCRIPTION = "Zero large ranges of files and block devices."
# Set LARGEZERO_TRACEBACK=1 to see the traceback of an unexpected error (for developers).
TRACEBACK_ENV = "LARGEZERO_TRACEBACK"


def _parser_class() -> type[argparse.ArgumentParser]:
    import argparse

    from ..errors import EXIT_USAGE

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            # One line and exit 2, like util-linux, instead of argparse's usage dump.
            self.exit(EXIT_USAGE, f"{self.prog}: {message} (try '{self.prog} --help')\n")

        def parse_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
            known, extras = self.parse_known_args(args, namespace)
            if extras:
                from .suggest import unrecognized

                self.exit(EXIT_USAGE, unrecognized(self, known, extras) + "\n")
            return known

        def _get_formatter(self) -> argparse.HelpFormatter:
            # argparse builds a formatter for every add_argument(), and without a width each
            # imports shutil (with bz2, lzma, fnmatch) to ask the terminal: a few ms per start.
            return self.formatter_class(prog=self.prog, width=_help_width())  # type: ignore[call-arg]

    return Parser


_width: list[int] = []


def _help_width() -> int:
    """What argparse would use: shutil.get_terminal_size()'s columns (COLUMNS, else the
    terminal of stdout, else 80), minus 2; read once."""
    if not _width:
        import os

        try:
            columns = int(os.environ.get("COLUMNS", ""))
        except ValueError:
            columns = 0
        if columns <= 0:
            try:
                columns = os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 0
            except (AttributeError, ValueError, OSError):
                columns = 0
        _width.append((columns or 80) - 2)
    return _width[0]


def build_parser(commands: Sequence[str] | None = None, listed: bool = True) -> argparse.ArgumentParser:
    """The parser with ``commands`` fully registered (all of them when None); with ``listed``
    every other command is in the help from :data:`COMMANDS`, without importing its module.
    A run whose command is known needs no other: each placeholder is one more parser."""
    from .._version import __version__

    parser_class = _parser_class()
    parser = parser_class(prog="largezero", description=DESCRIPTION)
    parser.add_argument("-V", "--version", action="version", version=f"largezero {__version__}")
    sub = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", parser_class=parser_class)
    sub.required = True
    wanted = list(COMMANDS) if commands is None else list(commands)
    for name, help_text in COMMANDS.items():
        module = None
        if name in wanted:
            try:
                __import__(f"{__name__}.{name}")  # not importlib: one module fewer at start-up
                module = sys.modules[f"{__name__}.{name}"]
            except ModuleNotFoundError as err:
                if err.name != f"{__name__}.{name}":
                    raise  # a module it needs is missing: a real error, not an absent command
        if module is not None:
            module.register(sub)
        elif listed or name in wanted:
            placeholder = sub.add_parser(name, help=help_text, add_help=False)  # listed, not imported
            placeholder.set_defaults(func=_not_installed(name))
    return parser


def available_commands() -> list[str]:
    """The commands whose module exists in this installation (for the man page and completion)."""
    import importlib.util

    return [name for name in COMMANDS if importlib.util.find_spec(f"{__name__}.{name}") is not None]


def _not_installed(name: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        from ..errors import EXIT_USAGE
        from .common import say

        say(f"largezero: {name}: not available in this installation")
        return EXIT_USAGE

    return run


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line, if it is one of ours (the top-level options,
    -h and -V, take no value, so the first word that is not an option is the command)."""
    for i, word in enumerate(argv):
        if word == "--":
            rest = argv[i + 1 : i + 2]
            return rest[0] if rest and rest[0] in COMMANDS else None
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def top_level_option(word: str) -> bool:
    """-h, -V, --help, --version, an abbreviation argparse takes (--vers), or -hV."""
    if word.startswith("--"):
        name = word.split("=", 1)[0]
        return len(name) > 2 and ("--help".startswith(name) or "--version".startswith(name))
    return len(word) > 1 and word[0] == "-" and all(c in "hV" for c in word[1:])


def _run(argv: list[str], process: bool) -> int:
    from ..cancel import raising
    from ..errors import EXIT_FAILURE, LargezeroError
    from .common import say

    command = chosen_command(argv)
    if command is None and not (argv and top_level_option(argv[0])):
        from .suggest import without_command  # a bare `largezero`, an unknown command or option

        return without_command(argv)
    parser = build_parser([command] if command else [], listed=command is None)
    args = parser.parse_args(argv)
    if process and "threading" in sys.modules:
        # Only a command that imported threading can start a worker: then, and only then, make
        # an unexpected error in one a single line too (importing threading for --help costs).
        import threading

        threading.excepthook = _thread_excepthook
    try:
        with raising():  # from here a signal unwinds the command (loop devices detached)
            code: int = args.func(args)
        return code
    except LargezeroError as err:
        say(f"largezero: {err.cli_message()}")
        return err.exit_code
    except OSError as err:
        # Anything the commands did not turn into a LargezeroError still gets one line.
        where = f": {err.filename}" if err.filename else ""
        say(f"largezero: {err.strerror or err}{where}")
        return EXIT_FAILURE


def _thread_excepthook(hook: Any) -> None:
    from .common import say

    say(f"largezero: internal error in a worker thread: {hook.exc_type.__name__}: {hook.exc_value}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code. ``argv`` None means: this is the process
    (the ``largezero`` launcher, ``python -m largezero``), so signals stay ours until it exits.

    SIGINT, SIGTERM and SIGHUP go to the one handler of :mod:`largezero.cancel`: before and
    after the command they end the process at once (one line, 128 + the signal's number); while
    it runs they raise :class:`~largezero.cancel.Stopped`; a job polling the flag stops at its
    next call boundary. A job's "interrupted" status (130) becomes 128 + the signal's number.
    """
    from .. import cancel

    cancel.reset()
    ours = not cancel.installed() and cancel.install()
    # In a program that calls main(argv) a signal during parsing raises too (caught below) instead
    # of ending that program: only the process that is the command exits at once.
    embedded = cancel.raising() if argv is not None else None
    if embedded is not None:
        embedded.__enter__()
    try:
        from .common import guarded_streams

        with guarded_streams() as streams:
            code = _run(list(sys.argv[1:] if argv is None else argv), argv is None)
            out = streams[0]
            if out.failed and code == 0:
                from .common import say

                say(f"largezero: write error: stdout: {out.failed}")
                code = 1
        return cancel.status(code) if code == 130 else code
    except SystemExit as done:  # argparse: --help, --version, a usage error
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 2)
    except KeyboardInterrupt as stop:  # cancel.Stopped, or Ctrl-C in a program that embeds main()
        signum = getattr(stop, "signum", cancel.STOP.signum or 2)
        _last_words(cancel.message(signum))
        return 128 + signum
    except MemoryError:
        _last_words("largezero: out of memory")
        return 1
    except Exception as err:  # the promise is: never a traceback
        import os

        if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
            raise
        _last_words(f"largezero: internal error: {type(err).__name__}: {err}")
        return 1
    finally:
        if embedded is not None:
            embedded.__exit__()
        if ours and argv is not None:
            cancel.uninstall()  # a program that called main(argv) gets its handlers back


def _last_words(msg: str) -> None:
    # sys.stderr may be the guard, None (2>&-) or broken; say() copes with all three.
    try:
        from .common import say

        say(msg)
    except BaseException:  # even an import failing here must not traceback
        pass
