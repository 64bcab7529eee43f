"""A fault-injecting Syscalls for the reliability tests (installed with syscalls.installed()).

Every call that zeroing makes goes through one of the methods below; each is counted and
recorded, and can be made to fail the way the kernel fails:

* ``eintr_at``: the 0-based indices (over all calls) that return EINTR without doing anything;
  ``cancel_at_eintr`` also sets a cancel event first, as a signal handler would;
* ``cap``: every write moves at most ``cap`` bytes (a short write); ``cap_first`` only the first;
* ``fail_after``: once that many bytes have been written, writes fail with ``fail_errno``;
  with ``partial`` the crossing call first writes up to the limit and returns the short
  count (the kernel's way), else it fails without writing anything;
* ``offload_errors``: mechanism name (ZERO_RANGE, WRITE_ZEROES, PUNCH_HOLE, BLKZEROOUT) to the
  errno its call raises; ``sync_errno``: what fdatasync raises.

A short write to an O_DIRECT descriptor that is not a multiple of 512 bytes cannot be made
with O_DIRECT itself; it is written through a buffered twin of the descriptor, which is what
the kernel would have left behind had it stopped there.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from collections.abc import Sequence
from typing import Any

from largezero import syscalls
from largezero.syscalls import FALLOC_FL_PUNCH_HOLE, FALLOC_FL_WRITE_ZEROES, FALLOC_FL_ZERO_RANGE

WRITES = ("pwritev", "pwrite")


def fallocate_name(mode: int) -> str:
    if mode & FALLOC_FL_PUNCH_HOLE:
        return "PUNCH_HOLE"
    if mode & FALLOC_FL_ZERO_RANGE:
        return "ZERO_RANGE"
    if mode & FALLOC_FL_WRITE_ZEROES:
        return "WRITE_ZEROES"
    return f"fallocate({mode:#x})"


def _oserror(code: int) -> OSError:
    if code == errno.EINTR:
        return InterruptedError(code, os.strerror(code))
    return OSError(code, os.strerror(code))


class Injector(syscalls.Syscalls):
    def __init__(
        self,
        *,
        eintr_at: Sequence[int] = (),
        cancel: threading.Event | None = None,
        cap: int | None = None,
        cap_first: bool = False,
        fail_after: int | None = None,
        fail_errno: int = errno.EIO,
        partial: bool = True,
        offload_errors: dict[str, int] | None = None,
        sync_errno: int | None = None,
    ) -> None:
        self.eintr_at = set(eintr_at)
        self.cancel = cancel
        self.cap = cap
        self.cap_first = cap_first
        self.fail_after = fail_after
        self.fail_errno = fail_errno
        self.partial = partial
        self.offload_errors = dict(offload_errors or {})
        self.sync_errno = sync_errno
        self.calls: list[tuple[str, int, int]] = []  # (name, offset, bytes asked)
        self.written = 0
        self.writes = 0
        self.lock = threading.Lock()

    # -- bookkeeping ----------------------------------------------------------------------

    def _enter(self, name: str, offset: int, size: int) -> None:
        with self.lock:
            index = len(self.calls)
            self.calls.append((name, offset, size))
        if index in self.eintr_at:
            if self.cancel is not None:
                self.cancel.set()
            raise InterruptedError(errno.EINTR, os.strerror(errno.EINTR))

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def _allowed(self, want: int) -> int:
        """How many of ``want`` bytes this write may move; raises the injected error."""
        n = want
        if self.cap is not None and (not self.cap_first or self.writes == 0):
            n = min(n, self.cap)
        if self.fail_after is not None:
            left = self.fail_after - self.written
            if left <= 0 or (left < n and not self.partial):
                raise _oserror(self.fail_errno)
            n = min(n, left)
        return n

    def _write_prefix(self, fd: int, buffers: Sequence[Any], n: int, offset: int) -> int:
        out, left = [], n
        for b in buffers:
            if left <= 0:
                break
            view = memoryview(b)[:left]
            out.append(view)
            left -= len(view)
        if not out:
            return 0
        direct = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT
        if direct and n % 512:
            twin = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_CLOEXEC)
            try:
                return os.pwritev(twin, out, offset)
            finally:
                os.close(twin)
        return os.pwritev(fd, out, offset)

    def _write(self, name: str, fd: int, buffers: Sequence[Any], offset: int) -> int:
        want = sum(len(memoryview(b)) for b in buffers)
        self._enter(name, offset, want)
        n = self._allowed(want)
        done = self._write_prefix(fd, buffers, n, offset)
        self.written += done
        self.writes += 1
        return done

    # -- the seam -------------------------------------------------------------------------

    def pwritev(self, fd: int, buffers: Sequence[Any], offset: int) -> int:
        return self._write("pwritev", fd, buffers, offset)

    def pwrite(self, fd: int, data: Any, offset: int) -> int:
        return self._write("pwrite", fd, [data], offset)

    def fallocate(self, fd: int, mode: int, offset: int, length: int) -> None:
        name = fallocate_name(mode)
        self._enter(name, offset, length)
        if name in self.offload_errors:
            raise _oserror(self.offload_errors[name])
        super().fallocate(fd, mode, offset, length)

    def blkzeroout(self, fd: int, offset: int, length: int) -> None:
        self._enter("BLKZEROOUT", offset, length)
        if "BLKZEROOUT" in self.offload_errors:
            raise _oserror(self.offload_errors["BLKZEROOUT"])
        super().blkzeroout(fd, offset, length)

    def fdatasync(self, fd: int) -> None:
        self._enter("fdatasync", 0, 0)
        if self.sync_errno is not None:
            raise _oserror(self.sync_errno)
        super().fdatasync(fd)


def zero_prefix(data: bytes, start: int, end: int) -> int:
    """Length of the run of zero bytes at data[start:end]."""
    piece = data[start:end]
    return len(piece) - len(piece.lstrip(b"\0"))
