"""The one write loop: every write step of a zeroing job and every ``largezero write`` go through it.

EINTR is retried, the cancel event is checked at every write boundary (BLKDEV_ZERO_KILLABLE),
short writes resume where they stopped, and every failure becomes one ``ZeroingError`` that
carries the exact prefix known written and the span the failed call may also have reached.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence

from .. import syscalls
from ..errors import Interrupted, KernelRefused, ZeroingError

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from ..cancel import Cancel

Progress = Callable[[int], None]

# Errors with which the kernel refuses a job before writing anything, and what they mean here.
REFUSALS = {
    errno.EFBIG: "past the file size limit: RLIMIT_FSIZE (ulimit -f) or the filesystem's largest file",
    errno.ETXTBSY: "an active swapfile or a running program's file",
    errno.EBUSY: "the device is mounted or held; the kernel does not zero it even with --force",
    errno.EPERM: "not permitted: an immutable, append-only or sealed file",
    errno.EROFS: "a read-only filesystem or device",
}


class Job:
    """What is known written of one job's range [offset, offset + length), and how to stop it.

    Steps may complete out of order (an offload middle before its unaligned head), so the
    written parts are kept as a few merged intervals; progress is the contiguous prefix.
    """

    def __init__(self, name: str, offset: int, length: int, *, method: str = "",
                 progress: Progress | None = None, cancel: Cancel | None = None,
                 noun: str = "zero") -> None:
        self.name = name
        self.offset = offset
        self.length = length
        self.method = method
        self.progress = progress
        self.cancel = cancel
        self.noun = noun  # "zero" for zeroing jobs, "written" for largezero write
        self.calls = 0
        self.iovecs = 0
        self._done: list[tuple[int, int]] = []

    @property
    def end(self) -> int:
        return self.offset + self.length

    @property
    def prefix_end(self) -> int:
        """First byte of the range not known written."""
        if self._done and self._done[0][0] <= self.offset:
            return min(self.end, max(self.offset, self._done[0][1]))
        return self.offset

    @property
    def bytes_done(self) -> int:
        return self.prefix_end - self.offset

    @property
    def furthest(self) -> int:
        return min(self.end, max([self.offset] + [b for _, b in self._done]))

    def record(self, a: int, b: int) -> None:
        if b <= a:
            return
        spans = sorted([*self._done, (a, b)])
        merged: list[tuple[int, int]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        self._done = merged
        if self.progress is not None:
            self.progress(self.bytes_done)

    def forget(self, a: int, b: int) -> None:
        """[a, b) is no longer known written (page-cache bytes whose write-back failed)."""
        kept: list[tuple[int, int]] = []
        for lo, hi in self._done:
            kept.extend(span for span in ((lo, min(hi, a)), (max(lo, b), hi)) if span[1] > span[0])
        self._done = kept

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            # Steps that finished out of order (an offloaded middle before its head) are zero
            # past the prefix: the message names them, maybe_until bounds them.
            reach = self.furthest
            maybe = reach if reach > self.prefix_end else None
            raise self._error(Interrupted, f"{self.name}: interrupted at byte {self.prefix_end}; {self._state()}",
                              maybe, None, "interrupted")

    def fail(self, err: OSError, what: str, maybe_until: int | None = None, why: str = "") -> ZeroingError:
        """The error for a call that failed; ``maybe_until``: how far that call may have written;
        ``why``: what the error means here, when the system's own words do not say it."""
        if err.errno in REFUSALS and not self._done:
            # A failed call writes nothing: the whole job was refused, and a resume would be too.
            return KernelRefused(f"{self.name}: the kernel refused {what}: {err.strerror} ({REFUSALS[err.errno]}); "
                                 "nothing was written", target=self.name, method=self.method, offset=self.offset,
                                 bytes_zeroed=0, errno=err.errno, what=what)
        at = self.prefix_end
        reach = min(max(maybe_until or 0, self.furthest), self.end)
        maybe = reach if reach > at else None
        method = f"method {self.method}; " if self.method else ""
        why = f" ({why})" if why else ""
        return self._error(ZeroingError, f"{self.name}: {what} failed at byte {at}: {err.strerror or err}{why} "
                           f"({method}{self._state(maybe)})", maybe, err.errno, what)

    def _beyond_prefix(self) -> list[tuple[int, int]]:
        """The parts known written that do not join the prefix, in order."""
        at = self.prefix_end
        return [(lo, min(hi, self.end)) for lo, hi in self._done if lo > at and lo < self.end]

    def _state(self, maybe: int | None = None) -> str:
        at = self.prefix_end
        text = f"bytes {self.offset}..{at} are {self.noun}"
        for lo, hi in self._beyond_prefix():
            text += f", and so are bytes {lo}..{hi}"
        if maybe is not None and maybe > at:
            text += f"; bytes {at}..{maybe} may also be {self.noun}"
        return text + f"; resume with --offset {at} --length {self.end - at}"

    def _error(self, cls: type[ZeroingError], message: str, maybe: int | None, code: int | None,
               what: str) -> ZeroingError:
        return cls(message, target=self.name, method=self.method, offset=self.offset,
                   bytes_zeroed=self.bytes_done, length=self.length, maybe_until=maybe, errno=code, what=what)


def advance(iov: Sequence[memoryview], n: int) -> list[memoryview]:
    """The iovecs left after the first ``n`` bytes went out."""
    out: list[memoryview] = []
    for v in iov:
        if n >= len(v):
            n -= len(v)
            continue
        out.append(v[n:])
        n = 0
    return out


def take(iov: Sequence[memoryview], n: int) -> list[memoryview]:
    """The first ``n`` bytes of the iovecs."""
    out: list[memoryview] = []
    for v in iov:
        if n <= 0:
            break
        out.append(v[:n])
        n -= len(out[-1])
    return out


def write_exactly(job: Job, fd: int, iov: Sequence[memoryview], pos: int, *, granule: int = 1,
                  buffered_fd: int | None = None, what: str = "pwritev") -> int:
    """Write all of ``iov`` at ``pos``; returns the end position.

    ``granule`` > 1 with ``buffered_fd``: an O_DIRECT fd. A short write that stopped inside a
    granule is finished to the granule boundary through ``buffered_fd`` (the page cache takes
    any offset; the bytes are the same), so the next O_DIRECT call starts aligned.
    """
    want = sum(len(v) for v in iov)
    end = pos + want
    pending: Sequence[memoryview] = iov
    while pos < end:
        job.check_cancel()
        try:
            n = syscalls.ops.pwritev(fd, pending, pos)
        except InterruptedError:
            continue  # nothing was written: retried after the cancel check
        except OSError as err:
            raise job.fail(err, what, maybe_until=end) from None
        job.calls += 1
        job.iovecs += len(pending)
        if n <= 0:
            raise job.fail(OSError(errno.ENOSPC, "write made no progress"), what) from None
        job.record(pos, pos + n)
        pos += n
        pending = advance(pending, n)
        if pos < end and granule > 1 and pos % granule and buffered_fd is not None:
            chunk = min(end, pos + granule - pos % granule) - pos
            pos = write_exactly(job, buffered_fd, take(pending, chunk), pos, what="pwrite")
            pending = advance(pending, chunk)
    return pos


# What EIO from writing back a page-cache edge means when the device is healthy: another
# process wrote the same page with O_DIRECT while ours was dirty, the kernel could not drop the
# page (dio_warn_stale_pagecache) and flagged the whole file with EIO (docs/reliability.md).
COLLISION = ("a page-cache collision: another process wrote the same page with O_DIRECT while these bytes "
             "were in the page cache, or a device error")


def sync_range(job: Job, fd: int, offset: int, length: int) -> None:
    """Write back [offset, offset+length) of the page cache and wait: an edge is on the device
    before the job goes on, as an O_DIRECT write would be."""
    while True:
        try:
            syscalls.ops.sync_file_range(fd, offset, length)
            return
        except InterruptedError:
            job.check_cancel()
        except OSError as err:
            # The bytes read as zero from the page cache, but are not known on the medium.
            job.forget(offset, offset + length)
            why = COLLISION if err.errno == errno.EIO else ""
            raise job.fail(err, f"sync_file_range of bytes {offset}..{offset + length}", offset + length,
                           why) from None


def fdatasync(fd: int) -> None:
    while True:
        try:
            syscalls.ops.fdatasync(fd)
            return
        except InterruptedError:
            continue


__all__ = ["COLLISION", "Job", "Progress", "advance", "fdatasync", "sync_range", "take", "write_exactly"]
