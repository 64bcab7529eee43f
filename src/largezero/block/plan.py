"""The plan of a zeroing job, built once and either executed on an fd or fed to the model.

A plan is run-length: ``CallRun`` stands for any number of identical ``pwritev`` calls, so a
petabyte plans in a handful of objects.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field

PAGE_SIZE = mmap.PAGESIZE
# fs/read_write.c: one read/write moves at most MAX_RW_COUNT = INT_MAX & PAGE_MASK bytes.
MAX_RW_COUNT = (2**31 - 1) & ~(PAGE_SIZE - 1)
try:
    IOV_MAX = int(os.sysconf("SC_IOV_MAX"))
except (ValueError, OSError):
    IOV_MAX = 1024  # UIO_MAXIOV


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class OffloadStep:
    """Ask the kernel to zero [offset, offset+length) without data: fallocate or BLKZEROOUT."""

    offset: int
    length: int
    mechanisms: tuple[str, ...]  # tried in order, e.g. ("ZERO_RANGE", "WRITE_ZEROES")


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class EdgeStep:
    """An unaligned head or tail of an O_DIRECT job, written so no byte outside it changes."""

    offset: int
    length: int


Step = OffloadStep | WriteStep | EdgeStep


@dataclass(frozen=True)
class ZeroPlan:
    offset: int
    length: int
    method: str  # offload | large | page
    direct: bool
    source_size: int  # bytes of the zero buffer each iovec points into
    steps: tuple[Step, ...] = field(default_factory=tuple)

    @property
    def write_steps(self) -> tuple[WriteStep, ...]:
        return tuple(s for s in self.steps if isinstance(s, WriteStep))


def default_call_bytes(iov_len: int, align: int = 1) -> int:
    """What one pwritev carries by default: IOV_MAX iovecs of the buffer, under MAX_RW_COUNT.

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
