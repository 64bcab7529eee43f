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
    """An I/O error part way through; says exactly which bytes were zeroed.

    ``zeroed`` is the half-open byte range known to be zero, starting at the job's offset.
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
        errno: int | None = None,
    ) -> None:
        super().__init__(message)
        self.target = target
        self.method = method
        self.offset = offset
        self.bytes_zeroed = bytes_zeroed
        self.errno = errno

    @property
    def stopped_at(self) -> int:
        """First byte not known to be zeroed: the offset to resume from."""
        return self.offset + self.bytes_zeroed


class Interrupted(ZeroingError):
    """Stopped at a write boundary on request (SIGINT/SIGTERM or a cancel event)."""

    exit_code = EXIT_INTERRUPTED
