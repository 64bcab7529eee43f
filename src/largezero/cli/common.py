"""Helpers shared by the subcommands: size arguments, messages, JSON output, terminals.

Messages never cost the job (issue 12): stderr may be closed (``2>&-`` makes ``sys.stderr``
None), full (``2>/dev/full``) or a pipe nobody reads; :func:`say` and the stream guards of
:func:`guarded_streams` swallow those failures instead of raising in the middle of a job.
"""

from __future__ import annotations

import errno
import os
import sys

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from typing import IO, Any


def size_arg(what: str) -> Any:
    """An argparse type that parses sizes with K/M/G suffixes and names the option on error."""

    def parse(text: str) -> int:
        import argparse

        from ..units import parse_size  # here, so importing this module stays free

        try:
            return parse_size(text, what=what)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err).removeprefix(f"invalid {what} ")) from None

    parse.__name__ = what
    return parse


def say(msg: str) -> None:
    """One line to stderr; never raises (closed, full or broken stderr loses the message only)."""
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(msg.rstrip("\n") + "\n")
        stream.flush()
    except (OSError, ValueError, AttributeError):
        pass


def print_json(obj: Any) -> None:
    """One JSON document on stdout. A reader that went away (EPIPE) is not an error of the job."""
    import json

    text = json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"
    stream = sys.stdout
    if stream is None:
        return
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError:
        _silence_stdout()
    except (OSError, ValueError) as err:
        say(f"largezero: cannot write the result to stdout: {getattr(err, 'strerror', None) or err}")


def stdout_is_terminal() -> bool:
    try:
        return bool(sys.stdout.isatty() and sys.stderr.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null: the interpreter's final flush then finds nothing to complain about."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass


class GuardedStream:
    """A text stream whose writes never raise.

    stdout: EPIPE marks it ``broken`` and later output is dropped (like coreutils, a reader
    that stopped reading is not our failure); any other error (ENOSPC) marks it ``failed``,
    which main() reports once at the end. stderr: every failure only loses the message.
    """

    def __init__(self, stream: IO[str] | None, name: str) -> None:
        self._stream = stream
        self.name = name
        self.broken = False
        self.failed: str | None = None

    def _lost(self, err: BaseException) -> None:
        if isinstance(err, OSError) and err.errno == errno.EPIPE:
            self.broken = True
            if self.name == "stdout":
                _silence_stdout()
        elif self.failed is None:
            self.failed = getattr(err, "strerror", None) or str(err)

    def write(self, text: str) -> int:
        if self._stream is not None and not self.broken:
            try:
                return self._stream.write(text)
            except (OSError, ValueError) as err:
                self._lost(err)
        return len(text)

    def flush(self) -> None:
        if self._stream is not None and not self.broken:
            try:
                self._stream.flush()
            except (OSError, ValueError) as err:
                self._lost(err)

    def isatty(self) -> bool:
        try:
            return self._stream is not None and not self.broken and self._stream.isatty()
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        if self._stream is None:
            raise OSError(errno.EBADF, f"{self.name} is closed")
        return self._stream.fileno()

    def __getattr__(self, name: str) -> Any:
        # encoding, errors, buffer, ...: whatever rich or json ask the real stream for.
        if self._stream is None:
            raise AttributeError(name)
        return getattr(self._stream, name)


# The standard fds that were closed when the command started (``>&-``): _open_standard_fds()
# points them at /dev/null, and a command whose output is fd 1 itself (cat) must still refuse.
closed_at_start: set[int] = set()


def _open_standard_fds() -> None:
    """Open /dev/null on any of fds 0-2 that is closed (``2>&-``), so that no file we open later
    lands on fd 2 and receives somebody's error message (a target must never get stray bytes)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed_at_start.add(fd)
            try:
                got = os.open(os.devnull, os.O_RDWR)
                if got != fd:  # cannot happen (lower fds are done first), but never leave it wrong
                    os.dup2(got, fd)
                    os.close(got)
            except OSError:
                pass


class guarded_streams:  # noqa: N801 - used like the context-manager function it replaces
    """Install :class:`GuardedStream` over sys.stdout and sys.stderr; restore them on exit.

    A class, not @contextlib.contextmanager: contextlib is one more import on every start.
    """

    def __enter__(self) -> tuple[GuardedStream, GuardedStream]:
        _open_standard_fds()
        self._saved = sys.stdout, sys.stderr
        self.out = GuardedStream(sys.stdout, "stdout")
        self.err = GuardedStream(sys.stderr, "stderr")
        sys.stdout, sys.stderr = self.out, self.err  # type: ignore[assignment]
        return self.out, self.err

    def __exit__(self, *exc: object) -> None:
        self.out.flush()
        self.err.flush()
        sys.stdout, sys.stderr = self._saved
