"""The plan of a zeroing job: a pure function of the target's facts and the options.

``plan_zero_range(facts, offset, length, options)`` returns the ordered steps; execution
(:mod:`.execute`) performs exactly those steps in that order, and the model
(:mod:`.predict`) consumes the same plan. A plan is run-length: ``CallRun`` stands for any
number of identical ``pwritev`` calls, so a petabyte plans in a handful of objects.

Steps:

``OffloadStep``  fallocate(ZERO_RANGE / WRITE_ZEROES / PUNCH_HOLE) or BLKZEROOUT
``WriteStep``    vectored writes from one zero buffer, buffered or O_DIRECT
``EdgeStep``     the part of a head or tail below the O_DIRECT alignment (sub-sector bytes): a
                 buffered write of exactly its bytes (the kernel merges them into the page
                 under its own lock), then written back; every aligned byte is O_DIRECT
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from .._record import field, record
from ..targets.facts import PAGE_SIZE, TargetFacts
from ..units import format_size
from .edges import cut
from .options import ZeroOptions

# fs/read_write.c: one read/write moves at most MAX_RW_COUNT = INT_MAX & PAGE_MASK bytes.
MAX_RW_COUNT = (2**31 - 1) & ~(PAGE_SIZE - 1)
try:
    IOV_MAX = int(os.sysconf("SC_IOV_MAX"))
except (ValueError, OSError):
    IOV_MAX = 1024  # UIO_MAXIOV

FILE = "file"
# The zero buffer writes come from unless told: LARGE_ZERO_PAGE, one PMD on x86-64.
LARGE_BUFFER_SIZE = 2 << 20
BLOCK = "block"
# A call carries at most this much unless asked otherwise, so progress and Ctrl-C are seen at
# least 4 times a second down to ~128 MiB/s, for a cost under 1% (docs/performance.md).
DEFAULT_CALL_BYTES = 32 << 20
# The iovec slice for devices whose driver copies every byte with the CPU (loop, zram, brd):
# the copy's source stays in L2 (measured on a ramfs loop: 128 KiB 5.7 GiB/s, 2 MiB 5.2).
COPYING_DEVICE_IOV = 128 << 10
# fallocate modes tried for a regular file's offload, in order.
FILE_OFFLOAD = ("ZERO_RANGE", "WRITE_ZEROES")


@record(frozen=True)
class CallRun:
    """``calls`` consecutive pwritev calls starting at ``offset``, back to back.

    Each call has ``full_iovecs`` iovecs of ``iov_len`` bytes (all pointing at the start of the
    zero buffer), then, when ``last_iov_len`` is non-zero, one shorter iovec.
    """

    offset: int
    calls: int
    full_iovecs: int
    iov_len: int
    last_iov_len: int = 0

    @property
    def iovecs_per_call(self) -> int:
        return self.full_iovecs + (1 if self.last_iov_len else 0)

    @property
    def call_bytes(self) -> int:
        return self.full_iovecs * self.iov_len + self.last_iov_len

    @property
    def length(self) -> int:
        return self.calls * self.call_bytes

    @property
    def iovecs(self) -> int:
        return self.calls * self.iovecs_per_call


@record(frozen=True)
class OffloadStep:
    """Ask the kernel to zero [offset, offset+length) without data, trying ``mechanisms`` in order."""

    offset: int
    length: int
    mechanisms: tuple[str, ...]


@record(frozen=True)
class WriteStep:
    """Vectored writes of zeros from one zero buffer, buffered or O_DIRECT."""

    offset: int
    length: int
    direct: bool
    runs: tuple[CallRun, ...]

    @property
    def calls(self) -> int:
        return sum(r.calls for r in self.runs)

    @property
    def iovecs(self) -> int:
        return sum(r.iovecs for r in self.runs)


@record(frozen=True)
class EdgeStep:
    """Sub-alignment bytes of a head or tail: written through the page cache, then written back."""

    offset: int
    length: int


Step = OffloadStep | WriteStep | EdgeStep


@record(frozen=True)
class ZeroPlan:
    offset: int
    length: int
    method: str  # offload | large | page
    direct: bool
    iov_len: int  # 0 for offload
    call_bytes: int  # 0 for offload
    steps: tuple[Step, ...]
    # auto: the plan run when every offload call proves unsupported (nothing written by then).
    fallback: ZeroPlan | None = None
    why: tuple[str, ...] = field(default_factory=tuple)  # each choice and its reason

    @property
    def calls(self) -> int:
        return sum(s.calls if isinstance(s, WriteStep) else 1 for s in self.steps)

    def syscalls(self) -> Iterator[tuple[str, int, int]]:
        """(call, offset, length) of every system call that writes, in order (offloads: the first try)."""
        for s in self.steps:
            if isinstance(s, OffloadStep):
                yield (s.mechanisms[0], s.offset, s.length)
            elif isinstance(s, EdgeStep):
                yield ("pwritev", s.offset, s.length)
                yield ("sync_file_range", s.offset, s.length)
            else:
                name = "pwritev-direct" if s.direct else "pwritev"
                for run in s.runs:
                    for i in range(run.calls):
                        yield (name, run.offset + i * run.call_bytes, run.call_bytes)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "method": self.method, "direct": self.direct, "offset": self.offset, "length": self.length,
            "iov_len": self.iov_len, "call_bytes": self.call_bytes, "calls": self.calls,
            "steps": [step_dict(s) for s in self.steps], "why": list(self.why),
        }
        if self.fallback is not None:
            out["fallback"] = self.fallback.to_dict()
        return out


def step_dict(s: Step) -> dict[str, object]:
    if isinstance(s, OffloadStep):
        return {"step": "offload", "offset": s.offset, "length": s.length, "mechanisms": list(s.mechanisms)}
    if isinstance(s, EdgeStep):
        return {"step": "edge", "offset": s.offset, "length": s.length, "via": "page cache"}
    return {"step": "write", "offset": s.offset, "length": s.length, "direct": s.direct, "calls": s.calls,
            "iovecs": s.iovecs,
            "runs": [{"offset": r.offset, "calls": r.calls, "iovecs_per_call": r.iovecs_per_call,
                      "iov_len": r.iov_len, "last_iov_len": r.last_iov_len, "call_bytes": r.call_bytes}
                     for r in s.runs]}


def _round_up(x: int, a: int) -> int:
    return -(-x // a) * a


def default_call_bytes(iov_len: int, align: int = 1) -> int:
    """The most one pwritev can carry: IOV_MAX iovecs of ``iov_len``, under MAX_RW_COUNT.

    4 KiB ZERO_PAGE: 1024 x 4 KiB = 4 MiB. 2 MiB LARGE_ZERO_PAGE: 1023 x 2 MiB = 2046 MiB,
    since 1024 x 2 MiB would pass the 2 GiB - 4 KiB cap and be cut short by the kernel.
    """
    whole = min(IOV_MAX, MAX_RW_COUNT // iov_len) * iov_len
    return max(align, whole - whole % align)


def plan_calls(offset: int, length: int, iov_len: int, call_bytes: int | None = None,
               align: int = 1) -> tuple[CallRun, ...]:
    """Split [offset, offset+length) into pwritev calls of at most ``call_bytes`` each.

    ``call_bytes`` is capped by IOV_MAX iovecs of ``iov_len`` and by MAX_RW_COUNT, and rounded
    down to ``align`` (the DIO alignment) so that every call after the first stays aligned.
    """
    if length <= 0:
        return ()
    cap = default_call_bytes(iov_len, align)
    size = cap if call_bytes is None else min(call_bytes, cap)
    size -= size % align
    if size <= 0:
        raise ValueError(f"call size must be at least the alignment ({align} bytes)")
    runs: list[CallRun] = []
    full_calls, rest = divmod(length, size)
    if full_calls:
        n, last = divmod(size, iov_len)
        runs.append(CallRun(offset, full_calls, n, iov_len, last))
    if rest:
        n, last = divmod(rest, iov_len)
        runs.append(CallRun(offset + full_calls * size, 1, n, iov_len, last))
    return tuple(runs)


def offload_mechanisms(facts: TargetFacts, unmap: bool, extending: bool) -> tuple[tuple[str, ...], str]:
    """Offload calls that may apply to this target, and why (or why none do, when empty)."""
    if facts.kind == BLOCK:
        if not facts.write_zeroes and not unmap:
            return (), "device has no write-zeroes offload (write_zeroes_max_bytes = 0)"
        candidates: tuple[str, ...] = ("PUNCH_HOLE", "BLKZEROOUT") if unmap else ("BLKZEROOUT",)
    else:
        candidates = FILE_OFFLOAD
        if unmap and not extending:
            candidates = ("PUNCH_HOLE", *candidates)
    usable = tuple(m for m in candidates if m not in facts.unsupported)
    if not usable:
        return (), "offload " + ", ".join(candidates) + " refused by this target before (remembered)"
    return usable, "offload: " + ", ".join(usable)


def choose_iov_len(facts: TargetFacts, opts: ZeroOptions, direct: bool, buf: int) -> tuple[int, str]:
    """The slice of the ``buf``-byte zero buffer each iovec points at, and why."""
    if opts.iov_len is not None:
        return min(opts.iov_len, buf), "iovec size given"
    if direct and facts.copies_data and buf > COPYING_DEVICE_IOV:
        return COPYING_DEVICE_IOV, (f"iovec {format_size(COPYING_DEVICE_IOV, 'exact')}: the device driver "
                                    "copies each byte, a small source stays in the CPU cache")
    return buf, f"iovec {format_size(buf, 'exact')}: the whole zero buffer"


def _write_plan(facts: TargetFacts, offset: int, length: int, opts: ZeroOptions, buf: int, method: str,
                direct: bool, why: list[str]) -> ZeroPlan:
    iov_len, reason = choose_iov_len(facts, opts, direct, buf)
    why.append(reason)
    align = facts.dio_align if direct else 1
    call = opts.call_size or DEFAULT_CALL_BYTES
    call_bytes = min(max(call - call % max(align, 1), align), default_call_bytes(iov_len, align))
    why.append(f"call {call_bytes} bytes" + (" (given)" if opts.call_size else
                                              " (capped so progress and Ctrl-C are seen often)"))
    end = offset + length
    if not direct:
        steps: tuple[Step, ...] = (WriteStep(offset, length, False, plan_calls(offset, length, iov_len,
                                                                                call_bytes)),)
        return ZeroPlan(offset, length, method, False, iov_len, call_bytes, steps, why=tuple(why))
    # Only the bytes below the target's own O_DIRECT alignment go through the page cache: a
    # sector-aligned range never touches it, so another process's O_DIRECT write to the same
    # page cannot collide with a dirty page of ours (docs/reliability.md).
    granule = max(facts.dio_align, 1)
    head_end, tail_start = cut(offset, end, granule)
    out: list[Step] = []
    if head_end > offset:
        out.append(EdgeStep(offset, head_end - offset))
    if tail_start > head_end:
        mid = tail_start - head_end
        out.append(WriteStep(head_end, mid, True, plan_calls(head_end, mid, iov_len, call_bytes, align)))
    if end > tail_start:
        out.append(EdgeStep(tail_start, end - tail_start))
    if head_end > offset or end > tail_start:
        why.append(f"bytes below the {granule}-byte O_DIRECT alignment through the page cache")
    return ZeroPlan(offset, length, method, True, iov_len, call_bytes, tuple(out), why=tuple(why))


def _offload_plan(facts: TargetFacts, offset: int, length: int, mechanisms: tuple[str, ...],
                  why: list[str]) -> ZeroPlan:
    if facts.kind != BLOCK:
        return ZeroPlan(offset, length, "offload", False, 0, 0, (OffloadStep(offset, length, mechanisms),),
                        why=tuple(why))
    # BLKZEROOUT takes whole logical blocks; unaligned edges are written, never widened. The
    # offload goes first, so an offload that does not apply leaves nothing written.
    lbs = facts.logical_block_size
    end = offset + length
    lo = min(end, _round_up(offset, lbs))
    hi = max(lo, end - end % lbs)
    steps = tuple(s for s in (OffloadStep(lo, hi - lo, mechanisms), EdgeStep(offset, lo - offset),
                              EdgeStep(hi, end - hi)) if s.length > 0)
    return ZeroPlan(offset, length, "offload", False, 0, 0, steps, why=tuple(why))


def writes_direct(kind: str, method: str, direct: bool | None, overwrite: bool) -> bool:
    """Whether the write steps of a job use O_DIRECT: asked, --overwrite, or auto on a device."""
    return overwrite or bool(direct) or (direct is None and method == "auto" and kind == BLOCK)


def plan_zero_range(facts: TargetFacts, offset: int, length: int, opts: ZeroOptions, *,
                    buffer_size: int = LARGE_BUFFER_SIZE) -> ZeroPlan:
    """The steps that zero [offset, offset+length) of the target described by ``facts``.

    ``buffer_size``: the zero buffer the writes come from (LARGE_ZERO_PAGE, or ZERO_PAGE).
    ``auto``: offload where it applies, with the write plan as its fallback; where no offload
    applies (a device without write-zeroes), the write plan itself, O_DIRECT on a block device.
    ``overwrite``: zeros written over every byte with O_DIRECT, never offload or unmap.
    """
    method = opts.method
    why: list[str] = []
    direct = writes_direct(facts.kind, method, opts.direct, opts.overwrite)
    if opts.overwrite:
        why.append("overwrite: every byte written with zeros, O_DIRECT")
        return _write_plan(facts, offset, length, opts, buffer_size, "page" if method == "page" else "large", True, why)
    if method in ("large", "page"):
        return _write_plan(facts, offset, length, opts, buffer_size, method, direct, why)
    extending = opts.extend and offset + length > facts.size
    mechanisms, reason = offload_mechanisms(facts, opts.unmap, extending)
    why.append(reason)
    if not mechanisms:
        if method == "offload":
            return ZeroPlan(offset, length, "offload", False, 0, 0, (), why=tuple(why))
        why.append("fallback: large writes" + (", O_DIRECT" if direct else ""))
        return _write_plan(facts, offset, length, opts, buffer_size, "large", direct, why)
    plan = _offload_plan(facts, offset, length, mechanisms, why)
    if method == "offload":
        return plan
    fallback = _write_plan(facts, offset, length, opts, buffer_size, "large", direct,
                           ["fallback when the offload is refused: large writes" + (", O_DIRECT" if direct else "")])
    return ZeroPlan(plan.offset, plan.length, plan.method, plan.direct, 0, 0, plan.steps, fallback, plan.why)
