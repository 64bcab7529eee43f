"""Errors and exit codes shared by the API and the command line.

Exit codes follow util-linux habits: 0 success, 1 the operation failed part way,
2 bad input or a request that cannot be met (nothing written), 130 interrupted.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_VERIFY_MISMATCH = 3
EXIT_INTERRUPTED = 130


class LargezeroError(Exception):
    """Base of every error largezero raises on purpose; the CLI prints str(e) on one line."""

    exit_code = EXIT_FAILURE


class UsageError(LargezeroError, ValueError):
    """Bad input: a size, a range, a flag combination, a target of the wrong kind."""

    exit_code = EXIT_USAGE


class TargetError(LargezeroError):
    """The target cannot be opened or used as asked (missing, read-only, busy, mounted)."""

    exit_code = EXIT_USAGE


class Unsupported(LargezeroError):
    """A method does not apply to this target: kept apart from real I/O errors."""

    exit_code = EXIT_USAGE


class ZeroingError(LargezeroError):
    """An I/O error part way through a write job; says exactly which bytes are known done.

    The job covers [offset, offset + length). ``bytes_zeroed`` bytes from ``offset`` are known
    to be written; when the failed call may have written more, ``maybe_until`` is the end of
    what it may have reached (bytes [stopped_at, maybe_until) may or may not be written).
    The same type serves zeroing and ``largezero write`` (``bytes_written`` is an alias).
    """

    exit_code = EXIT_FAILURE

    def __init__(
        self,
        message: str,
        *,
        target: str,
        method: str,
        offset: int,
        bytes_zeroed: int,
        length: int | None = None,
        maybe_until: int | None = None,
        errno: int | None = None,
        what: str = "",
    ) -> None:
        super().__init__(message)
        self.target = target
        self.method = method
        self.offset = offset
        self.bytes_zeroed = bytes_zeroed
        self.length = length
        self.maybe_until = maybe_until
        self.errno = errno
        self.what = what

    @property
    def stopped_at(self) -> int:
        """First byte not known to be written: the offset to resume from."""
        return self.offset + self.bytes_zeroed

    @property
    def bytes_written(self) -> int:
        return self.bytes_zeroed

    @property
    def remaining(self) -> int | None:
        """Bytes left of the job's range from ``stopped_at``: the resume length."""
        return None if self.length is None else self.offset + self.length - self.stopped_at


class Interrupted(ZeroingError):
    """Stopped at a write boundary on request (SIGINT/SIGTERM or a cancel event)."""

    exit_code = EXIT_INTERRUPTED
