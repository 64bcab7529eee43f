"""Performing a plan: exactly its steps, in order, through the one write loop.

One small function per step, in the manner of block/blk-lib.c::

    execute()               the steps in order
      _zero_offload()       __blkdev_issue_write_zeroes(): fallocate / BLKZEROOUT only
      _zero_pages()         __blkdev_issue_zero_pages(): pwritev from a zero buffer
      _zero_edge()          an unaligned edge: a page-cache write of exactly its bytes
"""

from __future__ import annotations

import errno
import os

from .. import syscalls
from ..errors import Unsupported, ZeroingError
from ..mm import ZeroBuffer
from ..syscalls import (
    FALLOC_FL_KEEP_SIZE,
    FALLOC_FL_PUNCH_HOLE,
    FALLOC_FL_WRITE_ZEROES,
    FALLOC_FL_ZERO_RANGE,
    SYNC_FILE_RANGE_WAIT_AFTER,
    SYNC_FILE_RANGE_WAIT_BEFORE,
    is_unsupported,
    proves_unsupported,
)
from ..targets import BLOCK, Target
from ..targets.facts import cache_granule_of
from .edges import cut
from .plan import EdgeStep, OffloadStep, WriteStep, ZeroPlan
from .writeloop import Job, sync_range, write_exactly


class Execution:
    """One plan being performed on one target."""

    def __init__(self, tgt: Target, plan: ZeroPlan, buf: ZeroBuffer | None, job: Job, *, extend: bool) -> None:
        self.tgt = tgt
        self.plan = plan
        self.buf = buf
        self.job = job
        self.extend = extend
        # A file zeroed without --extend must keep its size; one truncated by someone else
        # mid-job is not grown back by our writes.
        self.keep_size_at = 0 if extend or tgt.kind == BLOCK else plan.offset + plan.length
        self.start_size = tgt.size
        self.smallest = tgt.size  # the smallest size seen: what another process truncated it to
        self.mechanism = ""
        self.notes: list[str] = []  # fallbacks and refusals seen on the way

    def run(self) -> str:
        try:
            for step in self.plan.steps:
                if isinstance(step, OffloadStep):
                    self._zero_offload(step)
                elif isinstance(step, WriteStep):
                    self._zero_pages(step)
                else:
                    self._zero_edge(step)
        except ZeroingError as err:
            self._undo_growth(err.stopped_at)
            raise
        if self.plan.method != "offload":
            edges = any(isinstance(s, EdgeStep) for s in self.plan.steps)
            return "pwritev" + (" + page-cache edges" if edges else "")
        return self.mechanism

    # --- steps ------------------------------------------------------------------------------

    def _zero_offload(self, step: OffloadStep) -> None:
        """The first offload call that works; Unsupported (nothing written) when none does."""
        job, tgt = self.job, self.tgt
        reasons: list[str] = []
        for mechanism in step.mechanisms:
            job.check_cancel()
            try:
                self._offload_call(mechanism, step)
            except OSError as err:
                if proves_unsupported(err, mechanism):
                    tgt.mark_unsupported(mechanism)
                    reasons.append(f"{mechanism}: {err.strerror}")
                    continue
                if is_unsupported(err):
                    reasons.append(f"{mechanism}: {err.strerror} (not remembered)")
                    continue
                raise job.fail(err, mechanism, maybe_until=step.offset + step.length) from None
            if mechanism == "BLKZEROOUT" and tgt.queue_attr("write_zeroes_max_bytes") == 0:
                # The device refused write-zeroes mid-call; the kernel zeroed with its own ZERO_PAGE.
                tgt.mark_unsupported(mechanism)
                self.notes.append("device dropped write-zeroes; the kernel fell back to ZERO_PAGE writes")
            job.calls += 1
            job.record(step.offset, step.offset + step.length)
            self.notes.extend(reasons)
            self.mechanism = mechanism if mechanism == "BLKZEROOUT" else f"fallocate({mechanism})"
            return
        self.notes.extend(reasons)
        raise Unsupported(f"{tgt.name}: no offload applies ({'; '.join(reasons)})")

    def _offload_call(self, mechanism: str, step: OffloadStep) -> None:
        fd = self.tgt.fd
        while True:
            try:
                if mechanism == "BLKZEROOUT":
                    syscalls.ops.blkzeroout(fd, step.offset, step.length)
                elif mechanism == "ZERO_RANGE":
                    keep = 0 if self.extend else FALLOC_FL_KEEP_SIZE
                    syscalls.ops.fallocate(fd, FALLOC_FL_ZERO_RANGE | keep, step.offset, step.length)
                elif mechanism == "WRITE_ZEROES":
                    # No KEEP_SIZE with WRITE_ZEROES; the plan offers it only inside the file or with --extend.
                    syscalls.ops.fallocate(fd, FALLOC_FL_WRITE_ZEROES, step.offset, step.length)
                elif mechanism == "PUNCH_HOLE":
                    syscalls.ops.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, step.offset, step.length)
                else:
                    raise ValueError(mechanism)
                return
            except InterruptedError:
                self.job.check_cancel()  # zeroing a range twice is harmless: repeat the call

    def _zero_pages(self, step: WriteStep) -> None:
        """__blkdev_issue_zero_pages(): pwritev calls whose iovecs all point at one zero buffer."""
        assert self.buf is not None
        tgt = self.tgt
        fd = tgt.direct_fd() if step.direct else tgt.fd
        granule = tgt.dio_align if step.direct else 1
        for run in step.runs:
            # Built once per run and reused by every call in it.
            iov = self.buf.iovecs(run.call_bytes, run.iov_len)
            for i in range(run.calls):
                at = run.offset + i * run.call_bytes
                hole_before = self._check_size(at, at + run.call_bytes)
                write_exactly(self.job, fd, iov, at, granule=granule, buffered_fd=tgt.fd if step.direct else None)
                self._check_size_after(at, at + run.call_bytes, hole_before)
        if step.direct:
            self._check_shared_pages(step)

    def _check_shared_pages(self, step: WriteStep) -> None:
        """O_DIRECT bytes in a page that also holds bytes outside the step: if another process
        had that page dirty in the page cache while our write ran, the kernel could not drop it
        (dio_warn_stale_pagecache: EIO on the whole file) and its stale copy of our bytes would
        be written back over our zeros. A wait-only sync_file_range reports that EIO without
        writing anything; our bytes of those pages are then written through the page cache too,
        so what the kernel writes back is zeros (docs/reliability.md, "Concurrent writers")."""
        granule = cache_granule_of(self.tgt)
        end = step.offset + step.length
        head, tail = cut(step.offset, end, granule)
        shared = [(a, b) for a, b in ((step.offset, head), (tail, end)) if b > a]
        if not shared:
            return
        fd = self.tgt.fd
        try:
            syscalls.ops.sync_file_range(fd, step.offset, step.length, SYNC_FILE_RANGE_WAIT_BEFORE
                                         | SYNC_FILE_RANGE_WAIT_AFTER)
            return
        except OSError as err:
            if err.errno != errno.EIO:
                return  # not the collision signal; the bytes were written with O_DIRECT
        assert self.buf is not None
        for a, b in shared:
            write_exactly(self.job, fd, self.buf.iovecs(b - a), a, what="pwrite")
            sync_range(self.job, fd, a, b - a)
        self.notes.append("another process had an edge page dirty in the page cache during our O_DIRECT write "
                          "(the kernel flagged EIO on the file): our bytes of that page were written again "
                          "through the page cache")

    def _zero_edge(self, step: EdgeStep) -> None:
        """Sub-alignment bytes: only their own, through the page cache, then written back (a
        failed write-back takes them out of what is known zeroed again)."""
        assert self.buf is not None
        end = step.offset + step.length
        hole_before = self._check_size(step.offset, end)
        write_exactly(self.job, self.tgt.fd, self.buf.iovecs(step.length), step.offset, what="pwrite")
        self._check_size_after(step.offset, end, hole_before)
        sync_range(self.job, self.tgt.fd, step.offset, step.length)

    def _undo_growth(self, stopped_at: int) -> None:
        """--extend that failed part way (ENOSPC): a failed fallocate or write may have grown the
        file past what is known zeroed; what we grew beyond that is cut back, so the file ends
        at most at stopped_at (or at its old size, which is never cut)."""
        if not self.extend or self.tgt.kind == BLOCK:
            return
        keep = max(self.start_size, stopped_at)
        try:
            if os.fstat(self.tgt.fd).st_size > keep:
                syscalls.ops.ftruncate(self.tgt.fd, keep)
        except OSError:
            pass  # the error being raised says what happened; this was only tidying

    # --- another process truncating the file (docs/reliability.md, guarantee 8) ----------------

    def _size(self) -> int:
        size = os.fstat(self.tgt.fd).st_size
        self.smallest = min(self.smallest, size)
        return size

    def _check_size(self, start: int, end: int) -> bool:
        """Before a write call: the file still reaches the range's end, else stop (a call past
        the end would grow the file back). Returns whether byte start-1 is in a hole, for a call
        that ends at the end of the file (see _check_size_after)."""
        if not self.keep_size_at:
            return False
        size = self._size()
        if size < self.keep_size_at:
            raise self._truncated(size)
        return end >= size and _in_hole(self.tgt.fd, start - 1)

    def _check_size_after(self, start: int, end: int, hole_before: bool) -> None:
        """After a write call: a truncation that landed while the call was in flight was grown
        back by it, to the call's end. Below the file's end the size tells; for the call that
        ends at the file's end, a hole that appeared just before the call does."""
        if not self.keep_size_at:
            return
        size = self._size()
        if size < self.start_size or self.smallest < self.keep_size_at:
            raise self._truncated(size, grown=size == end and self.smallest == size)
        if end >= size and not hole_before and _in_hole(self.tgt.fd, start - 1):
            self.smallest = min(self.smallest, start - 1)
            raise self._truncated(size, below=start)

    def _truncated(self, size: int, below: int = 0, grown: bool = False) -> ZeroingError:
        if below:
            to = f"to less than {below} bytes (a write call in flight grew it back)"
        elif grown:  # only the size our call in flight grew it back to was seen
            to = f"from {self.start_size} bytes (a write call in flight grew it back)"
        else:
            to = f"to {self.smallest} bytes"
        return self.job.fail(OSError(errno.ESTALE, f"another process truncated the file during the job {to}; "
                                     f"it has {size} bytes now"), "size check")


def _in_hole(fd: int, pos: int) -> bool:
    """Whether byte ``pos`` of the file reads from a hole (our writes never make one)."""
    if pos < 0:
        return False
    try:
        return os.lseek(fd, pos, os.SEEK_HOLE) == pos
    except OSError:
        return False  # past the end, or no SEEK_HOLE: no hole that we could tell
