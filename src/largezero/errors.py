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


# An option named in a message is a marker: a library caller reads ``extend=True``, a user of
# the command line ``--extend`` (LargezeroError.cli_message).
_MARK = "\x00"
_FLAG = {"iov_len": "--iov-size", "large_page": "--no-large-page"}
_PARAM = {"large_page": "large_page=False", "checkpoint": "checkpoint", "call_size": "call_size",
          "iov_len": "iov_len", "backing": "backing"}


def option(name: str) -> str:
    """``name`` (a ZeroOptions field, or ``method X``) marked for rendering the caller's way."""
    return f"{_MARK}{name}{_MARK}"


def _render(text: str, cli: bool) -> str:
    parts = text.split(_MARK)
    for i in range(1, len(parts), 2):
        name, _, value = parts[i].partition(" ")
        if cli:
            parts[i] = _FLAG.get(name, "--" + name.replace("_", "-")) + (f" {value}" if value else "")
        else:
            parts[i] = f"{name}={value!r}" if value else _PARAM.get(name, f"{name}=True")
    return "".join(parts)


class LargezeroError(Exception):
    """Base of every error largezero raises on purpose; the CLI prints ``cli_message()`` on one line."""

    exit_code = EXIT_FAILURE

    def __str__(self) -> str:
        return _render(Exception.__str__(self), cli=False)

    def cli_message(self) -> str:
        """The message with options named as command-line flags."""
        return _render(Exception.__str__(self), cli=True)


class UsageError(LargezeroError, ValueError):
    """Bad input: a size, a range, a flag combination, a target of the wrong kind."""

    exit_code = EXIT_USAGE


class TargetError(LargezeroError, OSError):
    """The target cannot be opened or used as asked (missing, read-only, busy, mounted).

    An OSError with ``errno`` and ``filename`` where the system said why (as callers that catch
    FileNotFoundError or PermissionError expect); ``str()`` is the one-line message.
    """

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, errno: int | None = None, filename: str | None = None) -> None:
        Exception.__init__(self, message)
        self.errno = errno  # type: ignore[assignment]
        self.strerror = message  # type: ignore[assignment]
        self.filename = filename

    def __str__(self) -> str:
        return LargezeroError.__str__(self)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (Exception.__str__(self),), {"errno": self.errno, "filename": self.filename})


class TargetNotFound(TargetError, FileNotFoundError):
    """The target does not exist."""


class TargetPermissionError(TargetError, PermissionError):
    """The target cannot be opened with the access the job needs."""


class TargetIsADirectory(TargetError, IsADirectoryError):
    """The target is a directory."""


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


class KernelRefused(ZeroingError):
    """The kernel refused the first call outright (EFBIG, ETXTBSY, EBUSY, EPERM, EROFS): nothing
    was written and resuming would fail the same way, so it is a refusal (exit 2), not a stop."""

    exit_code = EXIT_USAGE


class Interrupted(ZeroingError):
    """Stopped at a write boundary on request (SIGINT/SIGTERM or a cancel event)."""

    exit_code = EXIT_INTERRUPTED


def target_error(name: str, err: OSError, message: str | None = None) -> TargetError:
    """The system's refusal as a TargetError that is also the matching OSError subclass."""
    import errno as e

    kind = {e.ENOENT: TargetNotFound, e.EACCES: TargetPermissionError, e.EPERM: TargetPermissionError,
            e.EISDIR: TargetIsADirectory}.get(err.errno or 0, TargetError)
    return kind(message or f"{name}: {err.strerror}", errno=err.errno, filename=name)
