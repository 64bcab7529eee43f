"""Zeroing a byte range, in the manner of block/blk-lib.c.

One small function per method, the fallback written once::

    zero_range()            blkdev_issue_zeroout(): offload first, then zero pages
      _zero_offload()       __blkdev_issue_write_zeroes(): fallocate / BLKZEROOUT only
      _zero_pages()         __blkdev_issue_zero_pages(): pwritev from a zero buffer

``method`` mirrors the kernel's flags: ``offload`` is BLKDEV_ZERO_NOFALLBACK, ``unmap=False``
is BLKDEV_ZERO_NOUNMAP, and a ``cancel`` event is BLKDEV_ZERO_KILLABLE.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import syscalls
from ..errors import Interrupted, Unsupported, UsageError, ZeroingError
from ..iomap.direct_io import DirectWriteError, DirectWriter
from ..mm import ZeroBuffer, zero_buffer_for, zero_page
from ..syscalls import (
    FALLOC_FL_KEEP_SIZE,
    FALLOC_FL_PUNCH_HOLE,
    FALLOC_FL_WRITE_ZEROES,
    FALLOC_FL_ZERO_RANGE,
    is_unsupported,
)
from ..targets import BLOCK, Target, open_target
from ..units import MAX_SIZE
from .plan import CallRun, EdgeStep, OffloadStep, Step, WriteStep, ZeroPlan, plan_calls

METHODS = ("auto", "offload", "large", "page")
BACKINGS = ("auto", "huge-zero-folio", "zero-page", "allocated")

# fallocate modes tried for a regular file's offload, in order.
_FILE_OFFLOAD = ("ZERO_RANGE", "WRITE_ZEROES")

Progress = Callable[[int], None]


@dataclass
class ZeroResult:
    target: str
    kind: str
    method: str  # what actually zeroed the range: offload, large or page
    mechanism: str  # fallocate(ZERO_RANGE), BLKZEROOUT, pwritev, ...
    direct: bool
    offset: int
    length: int
    bytes_zeroed: int = 0
    calls: int = 0
    iovecs: int = 0
    zero_buffer: ZeroBuffer | None = None
    fallback: list[str] = field(default_factory=list)
    seconds: float = 0.0
    synced: bool = False

    def to_dict(self) -> dict[str, object]:
        buf = self.zero_buffer
        return {
            "target": self.target,
            "kind": self.kind,
            "method": self.method,
            "mechanism": self.mechanism,
            "direct": self.direct,
            "offset": self.offset,
            "length": self.length,
            "bytes_zeroed": self.bytes_zeroed,
            "calls": self.calls,
            "iovecs": self.iovecs,
            "zero_buffer": None if buf is None else {
                "name": buf.name, "size": buf.size, "backing": buf.backing, "rss_bytes": buf.rss_bytes,
            },
            "fallback": list(self.fallback),
            "seconds": round(self.seconds, 6),
            "synced": self.synced,
        }


# --- planning -----------------------------------------------------------------------------


def check_options(method: str, *, direct: bool | None, backing: str, large_page: bool | None,
                  call_size: int | None) -> None:
    """Flag combinations that contradict each other: refused before anything is opened."""
    if method == "offload" and direct:
        raise UsageError("--direct applies to the write methods (large, page); offload writes no data")
    if method == "offload" and call_size is not None:
        raise UsageError("--call-size applies to the write methods (large, page), not to offload")
    if method in ("offload", "page") and backing != "auto":
        raise UsageError(f"--backing chooses the LARGE_ZERO_PAGE backing; method {method} does not use it")
    if large_page is False and backing != "auto":
        raise UsageError(f"--backing {backing} asks for LARGE_ZERO_PAGE, which --no-large-page turns off")


def _check_range(tgt: Target, offset: int, length: int | None, extend: bool) -> int:
    if offset < 0:
        raise UsageError(f"offset {offset} is negative")
    if offset > MAX_SIZE:
        raise UsageError(f"offset {offset} is larger than 2^63-1")
    if length is None:
        if offset > tgt.size:
            raise UsageError(f"offset {offset} is past the end of {tgt.name} ({tgt.size} bytes)")
        length = tgt.size - offset
    if length < 0:
        raise UsageError(f"length {length} is negative")
    if offset + length > MAX_SIZE:
        raise UsageError("offset + length is larger than 2^63-1")
    end = offset + length
    if end > tgt.size:
        if tgt.kind == BLOCK:
            raise UsageError(f"range ends at byte {end}, past the end of {tgt.name} ({tgt.size} bytes)")
        if not extend:
            raise UsageError(
                f"range ends at byte {end}, past the end of {tgt.name} ({tgt.size} bytes); "
                "use --extend to grow the file"
            )
    return length


def offload_mechanisms(tgt: Target, unmap: bool, extending: bool) -> tuple[tuple[str, ...], str | None]:
    """Offload calls that may apply to this target, and why none do when the tuple is empty."""
    known_bad = tgt.unsupported()
    if tgt.kind == BLOCK:
        if tgt.queue_attr("write_zeroes_max_bytes") in (0, None) and not unmap:
            return (), "device has no write-zeroes offload (write_zeroes_max_bytes = 0)"
        candidates: tuple[str, ...] = ("PUNCH_HOLE", "BLKZEROOUT") if unmap else ("BLKZEROOUT",)
    else:
        candidates = _FILE_OFFLOAD
        if unmap and not extending:
            candidates = ("PUNCH_HOLE", *candidates)
    usable = tuple(m for m in candidates if m not in known_bad)
    if not usable:
        return (), "offload " + ", ".join(candidates) + " unsupported here (remembered)"
    return usable, None


def _write_steps(tgt: Target, offset: int, length: int, direct: bool, iov_len: int,
                 call_size: int | None) -> tuple[Step, ...]:
    """Aligned middle as vectored writes; under O_DIRECT, unaligned head and tail as edges."""
    if not direct:
        return (WriteStep(offset, length, False, plan_calls(offset, length, iov_len, call_size)),)
    align = tgt.dio_align
    end = offset + length
    head_end = min(end, -(-offset // align) * align)
    tail_start = max(head_end, end - end % align)
    steps: list[Step] = []
    if head_end > offset:
        steps.append(EdgeStep(offset, head_end - offset))
    if tail_start > head_end:
        mid = tail_start - head_end
        steps.append(WriteStep(head_end, mid, True, plan_calls(head_end, mid, iov_len, call_size, align)))
    if end > tail_start:
        steps.append(EdgeStep(tail_start, end - tail_start))
    return tuple(steps)


def choose_zero_buffer(method: str, direct: bool, backing: str = "auto",
                       large_page: bool | None = None) -> ZeroBuffer:
    """ZERO_PAGE for ``page``; for ``large`` the largest zero buffer, its backing chosen by mode."""
    if method == "page":
        return zero_page()
    return zero_buffer_for(direct, backing, enabled=large_page)


def plan_zero_range(tgt: Target, offset: int, length: int, *, method: str, direct: bool, unmap: bool,
                    extend: bool = False, buffer: ZeroBuffer, call_size: int | None = None) -> ZeroPlan:
    """The plan for one method; ``auto`` has been resolved to offload or a write method."""
    if method == "offload":
        mechanisms, why = offload_mechanisms(tgt, unmap, extend and offset + length > tgt.size)
        if not mechanisms:
            raise Unsupported(f"{tgt.name}: {why}")
        steps: tuple[Step, ...]
        if tgt.kind == BLOCK:
            # BLKZEROOUT takes whole logical blocks; unaligned edges are written, never widened.
            lbs = tgt.logical_block_size
            end = offset + length
            lo = min(end, -(-offset // lbs) * lbs)
            hi = max(lo, end - end % lbs)
            steps = tuple(
                step for step in (EdgeStep(offset, lo - offset), OffloadStep(lo, hi - lo, mechanisms),
                                  EdgeStep(hi, end - hi))
                if step.length > 0
            )
        else:
            steps = (OffloadStep(offset, length, mechanisms),)
        return ZeroPlan(offset, length, "offload", direct, 0, steps)
    return ZeroPlan(offset, length, method, direct, buffer.size,
                    _write_steps(tgt, offset, length, direct, buffer.size, call_size))


# --- execution ----------------------------------------------------------------------------


class _Job:
    """Progress of one job: everything in [offset, offset + done) is zero."""

    def __init__(self, tgt: Target, result: ZeroResult, progress: Progress | None,
                 cancel: threading.Event | None) -> None:
        self.tgt = tgt
        self.result = result
        self.progress = progress
        self.cancel = cancel
        self.pos = result.offset
        # Regular files zeroed without --extend: the size the file must keep while we write.
        self.keep_size_at = 0

    def advance(self, n: int) -> None:
        self.pos += n
        self.result.bytes_zeroed = self.pos - self.result.offset
        if self.progress is not None:
            self.progress(self.result.bytes_zeroed)

    def fail(self, err: OSError, what: str) -> ZeroingError:
        r = self.result
        return ZeroingError(
            f"{self.tgt.name}: {what} failed at byte {self.pos}: {err.strerror or err} "
            f"(method {r.method}; zeroed bytes {r.offset}..{self.pos} of {r.offset}..{r.offset + r.length}; "
            f"resume with --offset {self.pos})",
            target=self.tgt.name, method=r.method, offset=r.offset, bytes_zeroed=self.pos - r.offset,
            errno=err.errno,
        )

    def check_size(self) -> None:
        """A file truncated by someone else mid-job: stop rather than grow it back with our writes."""
        if self.keep_size_at:
            size = os.fstat(self.tgt.fd).st_size
            if size < self.keep_size_at:
                raise self.fail(OSError(errno.ESTALE, f"the file shrank to {size} bytes during the job "
                                        "(truncated by another process?)"), "size check")

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            r = self.result
            raise Interrupted(
                f"{self.tgt.name}: interrupted at byte {self.pos}; zeroed {r.offset}..{self.pos}; "
                f"resume with --offset {self.pos} --length {r.offset + r.length - self.pos}",
                target=self.tgt.name, method=r.method, offset=r.offset, bytes_zeroed=self.pos - r.offset,
            )


def _pwritev_exactly(job: _Job, fd: int, iov: list[memoryview], want: int, buf: ZeroBuffer,
                     align: int) -> None:
    """One planned call; EINTR is retried and a short write resumes where it stopped."""
    end = job.pos + want
    while job.pos < end:
        try:
            n = syscalls.ops.pwritev(fd, iov, job.pos)
        except InterruptedError:
            job.check_cancel()  # nothing was written: a write boundary
            continue
        except OSError as err:
            raise job.fail(err, "pwritev") from None
        if n <= 0:
            raise job.fail(OSError(errno.ENOSPC, "write made no progress"), "pwritev") from None
        job.advance(n)
        job.result.calls += 1
        job.result.iovecs += len(iov)
        if job.pos < end:
            if job.pos % align:
                # A short O_DIRECT write that left us unaligned: finish the block as an edge.
                _zero_edge(job, min(end, job.pos + align - job.pos % align) - job.pos, buf)
            full, last = divmod(end - job.pos, buf.size)
            iov = _call_iovecs(CallRun(job.pos, 1, full, buf.size, last), buf)


def _zero_edge(job: _Job, length: int, buf: ZeroBuffer) -> None:
    """Write an unaligned piece through the page cache: only its own bytes change."""
    end = job.pos + length
    while job.pos < end:
        try:
            n = syscalls.ops.pwrite(job.tgt.fd, buf.view[: min(end - job.pos, buf.size)], job.pos)
        except InterruptedError:
            job.check_cancel()
            continue
        except OSError as err:
            raise job.fail(err, "pwrite") from None
        if n <= 0:
            raise job.fail(OSError(errno.ENOSPC, "write made no progress"), "pwrite") from None
        job.advance(n)
        job.result.calls += 1
        job.result.iovecs += 1


def _zero_edge_direct(job: _Job, step: EdgeStep, buf: ZeroBuffer) -> None:
    """An unaligned O_DIRECT edge through the direct writer: its granule is padded from the zero
    buffer without a read over a hole or unwritten extent, read-modify-written otherwise."""
    writer = DirectWriter(job.tgt, zero_buffer=buf)
    try:
        res = writer.zero(step.offset, step.length)
    except DirectWriteError as err:
        if err.result is not None:
            job.result.calls += err.result.calls
            job.result.iovecs += err.result.iovecs
        if err.bytes_written:
            job.advance(err.bytes_written)
        code = err.errno or errno.EIO
        raise job.fail(OSError(code, os.strerror(code)), err.what) from None
    finally:
        writer.close()
    job.result.calls += res.calls
    job.result.iovecs += res.iovecs
    job.advance(step.length)


def _zero_pages(job: _Job, step: WriteStep, buf: ZeroBuffer) -> None:
    """__blkdev_issue_zero_pages(): pwritev calls whose iovecs all point at one zero buffer."""
    fd = job.tgt.direct_fd() if step.direct else job.tgt.fd
    align = job.tgt.dio_align if step.direct else 1
    for run in step.runs:
        iov = _call_iovecs(run, buf)
        for _ in range(run.calls):
            job.check_cancel()
            job.check_size()
            _pwritev_exactly(job, fd, iov, run.call_bytes, buf, align)


def _call_iovecs(run: CallRun, buf: ZeroBuffer) -> list[memoryview]:
    # Built once per run and reused by every call in it.
    iov = [buf.view[: run.iov_len]] * run.full_iovecs
    if run.last_iov_len:
        iov.append(buf.view[: run.last_iov_len])
    return iov


def _offload_call(tgt: Target, mechanism: str, offset: int, length: int, extend: bool) -> None:
    keep = 0 if extend else FALLOC_FL_KEEP_SIZE
    fd = tgt.fd
    if mechanism == "BLKZEROOUT":
        syscalls.ops.blkzeroout(fd, offset, length)
    elif mechanism == "ZERO_RANGE":
        syscalls.ops.fallocate(fd, FALLOC_FL_ZERO_RANGE | keep, offset, length)
    elif mechanism == "WRITE_ZEROES":
        syscalls.ops.fallocate(fd, FALLOC_FL_WRITE_ZEROES, offset, length)
    elif mechanism == "PUNCH_HOLE":
        syscalls.ops.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length)
    else:
        raise ValueError(mechanism)


def _offload_call_retrying(job: _Job, mechanism: str, step: OffloadStep, extend: bool) -> None:
    """An offload call, repeated on EINTR (zeroing a range twice is harmless) unless cancelled."""
    while True:
        try:
            _offload_call(job.tgt, mechanism, step.offset, step.length, extend)
            return
        except InterruptedError:
            job.check_cancel()


def _zero_offload(job: _Job, step: OffloadStep, extend: bool, advance: bool = True) -> str:
    """__blkdev_issue_write_zeroes(): the first offload call that works, or Unsupported."""
    tgt = job.tgt
    reasons: list[str] = []
    for mechanism in step.mechanisms:
        job.check_cancel()
        try:
            _offload_call_retrying(job, mechanism, step, extend)
        except OSError as err:
            if is_unsupported(err):
                tgt.mark_unsupported(mechanism)
                reasons.append(f"{mechanism}: {err.strerror}")
                continue
            raise job.fail(err, mechanism) from None
        if mechanism == "BLKZEROOUT" and tgt.queue_attr("write_zeroes_max_bytes") == 0:
            # The device refused write-zeroes mid-call; the kernel zeroed with its own ZERO_PAGE.
            tgt.mark_unsupported(mechanism)
            job.result.fallback.append("device dropped write-zeroes; the kernel fell back to ZERO_PAGE writes")
        job.result.calls += 1
        job.result.fallback.extend(reasons)
        if advance:
            job.advance(step.length)
        return mechanism
    job.result.fallback.extend(reasons)
    raise Unsupported(f"{tgt.name}: no offload applies ({'; '.join(reasons)})")


def _execute(job: _Job, plan: ZeroPlan, buf: ZeroBuffer | None, extend: bool) -> str:
    mechanism = "pwritev"
    steps = list(plan.steps)
    if len(steps) > 1 and isinstance(steps[0], EdgeStep) and isinstance(steps[1], OffloadStep):
        # Ask the device before writing the unaligned head: an offload that does not apply must
        # leave nothing written (exit 2). Progress stays a prefix: the middle is counted once the
        # head (one block) is written, with no cancel point in between; only an I/O error in that
        # head leaves zeros past the reported prefix (the middle), never anything else changed.
        head, middle = steps[0], steps[1]
        mechanism = _zero_offload(job, middle, extend, advance=False)
        assert buf is not None
        _zero_edge_direct(job, head, buf)
        job.advance(middle.length)
        steps = steps[2:]
    for step in steps:
        if isinstance(step, OffloadStep):
            mechanism = _zero_offload(job, step, extend)
        elif isinstance(step, WriteStep):
            assert buf is not None
            _zero_pages(job, step, buf)
        else:
            assert buf is not None
            job.check_cancel()
            job.check_size()
            if plan.direct:
                _zero_edge_direct(job, step, buf)
            else:
                _zero_edge(job, step.length, buf)
    if plan.method == "offload":
        return f"fallocate({mechanism})" if mechanism != "BLKZEROOUT" else mechanism
    return "pwritev"


def zero_range(
    target: str | os.PathLike[str] | int | Target,
    offset: int = 0,
    length: int | None = None,
    *,
    method: str = "auto",
    direct: bool | None = None,
    unmap: bool = False,
    extend: bool = False,
    sync: bool = False,
    force: bool = False,
    backing: str = "auto",
    large_page: bool | None = None,
    call_size: int | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> ZeroResult:
    """Zero [offset, offset+length) of a regular file or block device; never a byte outside it.

    ``method``: ``auto`` (offload where real, else ``large``), ``offload`` (offload only, like
    BLKDEV_ZERO_NOFALLBACK; raises Unsupported with nothing written), ``large`` (pwritev from
    the largest zero buffer) or ``page`` (pwritev from the 4 KiB ZERO_PAGE, the pre-RFC way).
    ``direct``: O_DIRECT writes; None means buffered, except ``auto`` on a block device.
    ``length`` None zeroes to the end of the target. Raises ZeroingError (with the exact
    zeroed prefix) on I/O errors and Interrupted when ``cancel`` is set.
    """
    if method not in METHODS:
        raise UsageError(f"unknown method '{method}' (expected one of {', '.join(METHODS)})")
    if backing not in BACKINGS:
        raise UsageError(f"unknown zero buffer backing '{backing}' (expected one of {', '.join(BACKINGS)})")
    if call_size is not None and call_size <= 0:
        raise UsageError("call size must be positive")
    check_options(method, direct=direct, backing=backing, large_page=large_page, call_size=call_size)
    started = time.perf_counter()
    tgt = target if isinstance(target, Target) else open_target(target, force=force)
    try:
        if not tgt.writable:
            raise UsageError(f"{tgt.name}: not open for writing")
        length = _check_range(tgt, offset, length, extend)
        if direct is None:
            direct = method == "auto" and tgt.kind == BLOCK
        result = ZeroResult(tgt.name, tgt.kind, method, "", direct, offset, length)
        job = _Job(tgt, result, progress, cancel)
        if tgt.kind != BLOCK and not extend:
            job.keep_size_at = offset + length
        if length:
            _run(job, method, unmap, extend, backing, large_page, call_size)
        if sync:
            _sync(job)
        result.seconds = time.perf_counter() - started
        return result
    finally:
        if not isinstance(target, Target):
            tgt.close()


def _run(job: _Job, method: str, unmap: bool, extend: bool, backing: str, large_page: bool | None,
         call_size: int | None) -> None:
    r, tgt = job.result, job.tgt
    if method in ("auto", "offload"):
        plan = None
        try:
            buf = choose_zero_buffer("large", True, backing, large_page) if tgt.kind == BLOCK else None
            plan = plan_zero_range(tgt, r.offset, r.length, method="offload", direct=True, unmap=unmap,
                                   extend=extend, buffer=buf or zero_page(), call_size=call_size)
            r.method = "offload"
            r.zero_buffer = buf if any(isinstance(s, EdgeStep) for s in plan.steps) else None
            r.mechanism = _execute(job, plan, buf, extend)
            return
        except Unsupported as err:
            if method == "offload":
                raise
            if plan is None:
                r.fallback.append(str(err).removeprefix(f"{tgt.name}: "))
        # The fallback, written once: large writes, O_DIRECT on block devices.
        method = "large"
        if tgt.kind == BLOCK:
            r.direct = True
    buf = choose_zero_buffer(method, r.direct, backing, large_page)
    if method == "large" and buf.name != "LARGE_ZERO_PAGE":
        r.fallback.append(f"LARGE_ZERO_PAGE unavailable: {buf.reason}; using ZERO_PAGE")
    if r.direct and buf.address % max(tgt.dio_mem_align, 1):
        raise UsageError(f"{tgt.name}: zero buffer is not aligned to the {tgt.dio_mem_align}-byte DIO alignment")
    r.method, r.zero_buffer = method, buf
    if r.direct and call_size is not None and call_size < tgt.dio_align:
        raise UsageError(f"{tgt.name}: call size {call_size} is below the {tgt.dio_align}-byte direct I/O alignment")
    plan = plan_zero_range(tgt, job.pos, r.offset + r.length - job.pos, method=method, direct=r.direct,
                           unmap=unmap, extend=extend, buffer=buf, call_size=call_size)
    r.mechanism = _execute(job, plan, buf, extend)


def _sync(job: _Job) -> None:
    """fdatasync; on a block device this also flushes the device's volatile cache."""
    while True:
        try:
            syscalls.ops.fdatasync(job.tgt.fd)
            break
        except InterruptedError:
            continue
        except OSError as err:
            # After a failed flush nothing of the range is known to be durable (the kernel may
            # have dropped the dirty pages): report no progress, so resuming redoes it all.
            r = job.result
            raise ZeroingError(
                f"{job.tgt.name}: fdatasync failed: {err.strerror or err} (method {r.method}; bytes "
                f"{r.offset}..{job.pos} were written but are not known to be durable; "
                f"resume with --offset {r.offset})",
                target=job.tgt.name, method=r.method, offset=r.offset, bytes_zeroed=0, errno=err.errno,
            ) from None
    job.result.synced = True
