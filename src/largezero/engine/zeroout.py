"""Zeroing a byte range, in the manner of blkdev_issue_zeroout() (block/blk-lib.c).

``zero_range()`` validates in two lines, gathers the target's facts, builds the one plan
(:func:`.plan.plan_zero_range`), performs exactly its steps (:mod:`.execute`) and, where the
offload proves unsupported with nothing written, performs the plan's fallback: the fallback
written once. ``method`` mirrors the kernel's flags: ``offload`` is BLKDEV_ZERO_NOFALLBACK,
``unmap=False`` is BLKDEV_ZERO_NOUNMAP, and a ``cancel`` event is BLKDEV_ZERO_KILLABLE.
"""

from __future__ import annotations

import os
import time

from .._record import field, record
from ..errors import TargetError, Unsupported, UsageError, ZeroingError, option
from ..mm import ZeroBuffer, zero_buffer_for, zero_page
from ..targets import BLOCK, Target, open_target
from ..targets.facts import TargetFacts, facts_of
from ..units import MAX_SIZE
from .execute import Execution
from .options import ZeroOptions
from .plan import EdgeStep, ZeroPlan, plan_zero_range, writes_direct
from .writeloop import Job, Progress, fdatasync

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from ..cancel import Cancel

__all__ = ["ZeroResult", "check_range", "offload_mechanisms", "plan_job", "zero_range"]


@record
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
    plan: ZeroPlan | None = None  # the plan that ran (the fallback, when the offload was refused)
    medium_overwritten: bool | None = None
    medium_note: str = ""
    device: str | None = None  # kernel name of the block device, for /sys/block/<dev>/stat

    def to_dict(self) -> dict[str, object]:
        buf = self.zero_buffer
        out: dict[str, object] = {
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
            "iov_len": self.plan.iov_len if self.plan else 0,
            "zero_buffer": None if buf is None else {
                "name": buf.name, "size": buf.size, "backing": buf.backing, "rss_bytes": buf.rss_bytes,
            },
            "medium_overwritten": self.medium_overwritten,
            "medium": self.medium_note,
            "fallback": list(self.fallback),
            "why": list(self.plan.why) if self.plan else [],
            "seconds": round(self.seconds, 6),
            "synced": self.synced,
        }
        return out


def check_range(tgt: Target, offset: int, length: int | None, extend: bool) -> int:
    """The job's length (None: to the end), or UsageError; nothing opened is changed."""
    if offset < 0 or offset > MAX_SIZE:
        raise UsageError(f"offset {offset} is negative" if offset < 0 else f"offset {offset} is larger than 2^63-1")
    if length is None:
        if offset > tgt.size:
            raise UsageError(f"offset {offset} is past the end of {tgt.name} ({tgt.size} bytes)")
        length = tgt.size - offset
    if length < 0 or offset + length > MAX_SIZE:
        raise UsageError(f"length {length} is negative" if length < 0 else "offset + length is larger than 2^63-1")
    end = offset + length
    if end > tgt.size:
        if tgt.kind == BLOCK:
            raise UsageError(f"range ends at byte {end}, past the end of {tgt.name} ({tgt.size} bytes)")
        if not extend:
            raise UsageError(f"range ends at byte {end}, past the end of {tgt.name} ({tgt.size} bytes); "
                             f"use {option('extend')} to grow the file")
        tgt.check_range(offset, length)  # growing past what the filesystem allows: refused up front
    return length


def choose_zero_buffer(opts: ZeroOptions, direct: bool) -> ZeroBuffer:
    """ZERO_PAGE for ``page``; else the largest zero buffer, its backing chosen by I/O mode."""
    if opts.method == "page":
        return zero_page()
    return zero_buffer_for(direct, opts.backing, enabled=opts.large_page)


def plan_job(tgt: Target, offset: int, length: int, opts: ZeroOptions) -> tuple[ZeroPlan, ZeroBuffer, TargetFacts]:
    """The plan for this job on this target, the zero buffer its writes use, and the facts it came from."""
    direct_writes = writes_direct(tgt.kind, opts.method, opts.direct, opts.overwrite)
    if direct_writes and not tgt.dio_offset_align:
        raise TargetError(f"{tgt.name}: direct I/O is not supported here")
    buf = choose_zero_buffer(opts, direct_writes)
    if direct_writes and buf.address % max(tgt.dio_mem_align, 1):
        raise UsageError(f"{tgt.name}: zero buffer is not aligned to the {tgt.dio_mem_align}-byte DIO alignment")
    if direct_writes and opts.call_size is not None and opts.call_size < tgt.dio_align:
        raise UsageError(f"{tgt.name}: call size {opts.call_size} is below the {tgt.dio_align}-byte direct I/O "
                         "alignment")
    if opts.iov_len is not None and direct_writes and opts.iov_len % tgt.dio_align:
        raise UsageError(f"{tgt.name}: iovec size {opts.iov_len} is not a multiple of the {tgt.dio_align}-byte "
                         "direct I/O alignment")
    facts = facts_of(tgt)
    if opts.overwrite and facts.copy_on_write:
        raise Unsupported(f"{tgt.name}: {option('overwrite')} cannot overwrite in place here "
                          f"({facts.copy_on_write}): new blocks would be written and the old ones left on the medium")
    return plan_zero_range(facts, offset, length, opts, buffer_size=buf.size), buf, facts


def offload_mechanisms(tgt: Target, unmap: bool, extending: bool) -> tuple[tuple[str, ...], str | None]:
    """Offload calls that may apply to ``tgt``, and why none do when the tuple is empty."""
    from .plan import offload_mechanisms as plan_mechanisms

    mechanisms, why = plan_mechanisms(facts_of(tgt), unmap, extending)
    return mechanisms, None if mechanisms else why


def zero_range(
    target: str | os.PathLike[str] | int | Target,
    offset: int = 0,
    length: int | None = None,
    options: ZeroOptions | None = None,
    *,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> ZeroResult:
    """Zero [offset, offset+length) of a regular file or block device; never a byte outside it.

    ``options`` (:class:`ZeroOptions`, default ``largezero zero``'s defaults): ``method``
    ``auto`` (offload where real, else ``large``), ``offload`` (offload only, like
    BLKDEV_ZERO_NOFALLBACK; raises Unsupported with nothing written), ``large`` (pwritev from
    the largest zero buffer) or ``page`` (pwritev from the 4 KiB ZERO_PAGE, the pre-RFC way);
    ``direct``: O_DIRECT writes (with ``auto``: for the write fallback); ``overwrite``: zeros
    written over every byte with O_DIRECT, no offload, no unmap. ``length`` None zeroes to the
    end of the target. Raises ZeroingError (with the exact zeroed prefix) on I/O errors and
    Interrupted when ``cancel`` is set. ``progress`` is called with the bytes done so far.
    """
    opts = options or ZeroOptions()
    opts.check()
    started = time.perf_counter()
    created = opts.create and not isinstance(target, (Target, int)) and not os.path.lexists(target)
    tgt = target if isinstance(target, Target) else open_target(target, force=opts.force, create=opts.create)
    try:
        if not tgt.writable:
            raise UsageError(f"{tgt.name}: not open for writing")
        extend = opts.extend or created  # a file created here has nothing to keep the size of
        length = check_range(tgt, offset, length, extend)
        plan, buf, facts = plan_job(tgt, offset, length, opts)
        result = ZeroResult(tgt.name, tgt.kind, plan.method, "", plan.direct, offset, length, plan=plan,
                            device=tgt.block_name)
        if opts.method == "auto" and plan.method != "offload":
            result.fallback.append(plan.why[0])  # why no offload applied
        job = Job(tgt.name, offset, length, method=plan.method, progress=progress, cancel=cancel)
        try:
            if length:
                _run(tgt, plan, buf, job, result, extend)
            if opts.sync:
                _sync(tgt, job, result)
        finally:
            result.bytes_zeroed, result.calls, result.iovecs = job.bytes_done, job.calls, job.iovecs
        if opts.direct and not result.direct:
            result.fallback.append("direct I/O applies to the write fallback; the offload did the job")
        result.medium_overwritten, result.medium_note = _medium(result, facts, opts.sync)
        result.seconds = time.perf_counter() - started
        return result
    finally:
        if not isinstance(target, Target):
            tgt.close()


def _run(tgt: Target, plan: ZeroPlan, buf: ZeroBuffer, job: Job, result: ZeroResult, extend: bool) -> None:
    uses_buffer = plan.method != "offload" or any(isinstance(s, EdgeStep) for s in plan.steps)
    if not plan.steps:
        raise Unsupported(f"{tgt.name}: {'; '.join(plan.why)}")
    run = Execution(tgt, plan, buf if uses_buffer else None, job, extend=extend)
    result.zero_buffer = run.buf
    try:
        result.mechanism = run.run()
    except Unsupported:
        result.fallback.extend(run.notes)
        if plan.fallback is None or job.furthest > job.offset:
            raise
        # The fallback, written once: the plan's write steps, from the same start.
        plan = plan.fallback
        result.plan, result.method, result.direct, job.method = plan, plan.method, plan.direct, plan.method
        run = Execution(tgt, plan, buf, job, extend=extend)
        result.zero_buffer = buf
        result.mechanism = run.run()
    result.fallback.extend(run.notes)
    if plan.method == "large" and buf.name != "LARGE_ZERO_PAGE":
        result.fallback.append(f"LARGE_ZERO_PAGE unavailable: {buf.reason}; using ZERO_PAGE")
    elif plan.method == "large" and buf.reason:
        result.fallback.append(buf.reason)  # mapped, but not backed as asked


def _medium(r: ZeroResult, facts: TargetFacts, synced: bool) -> tuple[bool | None, str]:
    """Whether the old bytes were overwritten on the medium, or only made to read as zero."""
    if r.method == "offload":
        if r.mechanism == "fallocate(WRITE_ZEROES)" or (r.mechanism == "BLKZEROOUT" and not facts.copies_data):
            return None, "offloaded to the device: whether it overwrote the old bytes is the device's choice"
        return False, "reads return zeros, but the old bytes may remain on the medium (unwritten extents or unmap)"
    if facts.copy_on_write:
        return False, f"zeros written to new blocks ({facts.copy_on_write}); the old ones may remain on the medium"
    if r.direct or synced:
        return True, "zeros written over every byte of the range"
    return None, "zeros written to the page cache; on the medium once written back (use --sync)"


def _sync(tgt: Target, job: Job, result: ZeroResult) -> None:
    """fdatasync; on a block device this also flushes the device's volatile cache."""
    try:
        fdatasync(tgt.fd)
    except OSError as err:
        # After a failed flush nothing of the range is known to be durable (the kernel may
        # have dropped the dirty pages): report no progress, so resuming redoes it all.
        raise ZeroingError(
            f"{tgt.name}: fdatasync failed: {err.strerror or err} (method {result.method}; bytes "
            f"{job.offset}..{job.prefix_end} were written but are not known to be durable; "
            f"resume with --offset {job.offset} --length {job.length})",
            target=tgt.name, method=result.method, offset=job.offset, bytes_zeroed=0, length=job.length,
            errno=err.errno, what="fdatasync",
        ) from None
    result.synced = True
