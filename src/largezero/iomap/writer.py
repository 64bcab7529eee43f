"""DirectWriter: write any byte range of a file or block device, O_DIRECT where that is safe.

``fs/iomap/direct-io.c`` in user space, with one rule the kernel gets from its inode lock and
we cannot: **no byte outside the range is ever read and written back**. So::

    iomap_dio_rw()            DirectWriter._iomap_dio_rw(): lock, cut into pieces, write
      (partial granule)       the caller's bytes only, through the page cache, then written back
      iomap_dio_bio_iter()    the aligned middle: O_DIRECT pwritev, the caller's pages or bounced
      need_zeroout            mapping.known_zero(): only for an explicit block size > the granule
      iomap_dio_zero()        zero padding from the shared zero buffer over holes, O_DIRECT

Every write goes through ``block.writeloop.write_exactly`` (EINTR, cancel, short writes) and
fails with the job's ``ZeroingError``. The size changes only to ``max(old size, end)``: a
partial last granule past EOF is a page-cache write, so no call ever goes past ``end``.
"""

from __future__ import annotations

import mmap
import os
import time
from collections.abc import Iterator

from ..engine.plan import MAX_RW_COUNT, plan_calls
from ..engine.writeloop import Job, sync_range, write_exactly
from ..errors import Interrupted, TargetError, UsageError, ZeroingError
from ..mm import ZeroBuffer, pmd_size, zero_buffer_for
from ..syscalls import buffer_address
from ..targets import BLOCK, Target, open_target
from ..targets.facts import cache_granule_of
from ..units import MAX_SIZE, format_size
from .locks import range_locks
from .mapping import known_zero
from .memory import DEFAULT_BOUNCE_SIZE, BouncePool
from .pieces import CACHE, DATA, ZERO, Piece, iomap_dio_zero, plan_pieces, round_down, round_up
from .result import ALIGNED, CACHED, ZEROED, WriteResult

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from ..cancel import Cancel

ReadableBuffer = bytes | bytearray | memoryview | mmap.mmap

# Without THP the PMD size is unknown; 2 MiB is the x86-64 value and a sane ceiling.
_FALLBACK_PMD = 2 << 20


class DirectWriter:
    """Write any byte range of a file or block device; O_DIRECT for whole page-cache granules.

    ``block_size`` defaults to the page-cache granule (max(DIO alignment, page size, a file's
    filesystem block)); any power of two from the DIO alignment up to the PMD size is taken.
    Only a block size larger than the granule pads: zeros over holes and unwritten extents
    around the range, like a large-block filesystem. Thread-safe.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | int | Target,
        *,
        block_size: int | None = None,
        direct: bool = True,
        force: bool = False,
        zero_buffer: ZeroBuffer | None = None,
        bounce_size: int = DEFAULT_BOUNCE_SIZE,
    ) -> None:
        self._owns = not isinstance(target, Target)
        self._closed = False
        self.target: Target = target if isinstance(target, Target) else open_target(target, force=force)
        try:
            self._setup(block_size, direct, zero_buffer, bounce_size)
        except BaseException:
            self.close()
            raise

    def _setup(self, block_size: int | None, direct: bool, zero_buffer: ZeroBuffer | None,
               bounce_size: int) -> None:
        tgt = self.target
        if not tgt.writable:
            raise TargetError(f"{tgt.name}: not open for writing")
        self.direct = direct
        self.align = tgt.dio_align if direct else 1
        self.fd = tgt.direct_fd() if direct else tgt.fd
        # The unit of "partial": an O_DIRECT call never shares one with a byte outside the range.
        self.granule = max(tgt.dio_align if direct else 1, cache_granule_of(tgt))
        bs = self.granule if block_size is None else block_size
        if not isinstance(bs, int) or bs <= 0 or bs & (bs - 1):
            raise UsageError(f"block size {bs} is not a power of two")
        if direct and bs < tgt.dio_align:
            raise UsageError(f"block size {bs} is smaller than the direct I/O alignment of {tgt.name} "
                             f"({tgt.dio_align} bytes)")
        pmd = pmd_size() or _FALLBACK_PMD
        if bs > pmd:
            raise UsageError(f"block size {format_size(bs)} is larger than the PMD size ({format_size(pmd)})")
        self.block_size = bs
        # A device has no holes we could trust: never padded.
        self.pads = bs > self.granule and tgt.kind != BLOCK
        if bounce_size < 1:
            raise UsageError("bounce buffer size must be positive")
        self.bounce_size = round_up(bounce_size, max(self.align, 1))
        self.zero_buffer = zero_buffer if zero_buffer is not None else zero_buffer_for(direct)
        if direct and self.zero_buffer.address % max(tgt.dio_mem_align, 1):
            raise UsageError(f"{tgt.name}: zero buffer is not aligned to the {tgt.dio_mem_align}-byte DIO alignment")
        # Every call's size stays a multiple of the DIO granule, so the next call starts aligned.
        self._max_call = round_down(MAX_RW_COUNT, max(self.align, 1))
        self._locks = range_locks(tgt)
        self._bounce = BouncePool(self.bounce_size, max(self.align, tgt.dio_mem_align, 1))

    # -- public ----------------------------------------------------------------------------

    def write(self, data: ReadableBuffer, offset: int, *, cancel: Cancel | None = None) -> WriteResult:
        """Write ``data`` at ``offset``; returns what it took. Raises UsageError / ZeroingError
        (``Interrupted`` when ``cancel`` is set: checked before every write call)."""
        try:
            view = memoryview(data)
        except TypeError:
            raise UsageError(f"data must be a bytes-like object, not {type(data).__name__}") from None
        if not view.c_contiguous:
            raise UsageError("data must be a contiguous buffer")
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        return self._iomap_dio_rw(offset, len(view), view, cancel)

    def zero(self, offset: int, length: int, *, cancel: Cancel | None = None) -> WriteResult:
        """Zero [offset, offset+length) by the same rules, from the shared zero buffer."""
        return self._iomap_dio_rw(offset, length, None, cancel)

    def close(self) -> None:
        """Close the target if this writer opened it; a Target passed in stays open."""
        if self._closed:
            return
        self._closed = True
        if self._owns:
            self.target.close()

    def __enter__(self) -> DirectWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> dict[str, object]:
        return {
            "target": self.target.name,
            "kind": self.target.kind,
            "direct": self.direct,
            "block_size": self.block_size,
            "granule": self.granule,
            "align": self.align,
            "bounce_size": self.bounce_size,
            "zero_buffer": self.zero_buffer.describe(),
        }

    # -- the write -------------------------------------------------------------------------

    def _check(self, offset: int, length: int) -> None:
        if self._closed:
            raise UsageError(f"{self.target.name}: writer is closed")
        if offset < 0:
            raise UsageError(f"offset {offset} is negative")
        if offset + length > MAX_SIZE:
            raise UsageError("offset + length is larger than 2^63-1")
        tgt = self.target
        if tgt.kind == BLOCK and offset + length > tgt.size:
            raise UsageError(f"{tgt.name}: data of {length} bytes at offset {offset} is larger than the target "
                             f"(ends at byte {offset + length}, device has {tgt.size} bytes)")

    def _iomap_dio_rw(self, offset: int, length: int, data: memoryview | None,
                      cancel: Cancel | None) -> WriteResult:
        self._check(offset, length)
        tgt, c = self.target, self.granule
        result = WriteResult(tgt.name, tgt.kind, self.direct, offset, length, self.block_size, self.align,
                             granule=c, span_offset=offset, zero_buffer=self.zero_buffer)
        if length == 0:
            return result
        started = time.perf_counter()
        end = offset + length
        # Padding decides from what it sees under the lock, so it locks its whole block.
        unit = self.block_size if self.pads else c
        lo, hi = round_down(offset, unit), round_up(end, unit)
        self._locks.acquire(lo, hi)
        job = Job(tgt.name, offset, length, noun="written" if data is not None else "zero", cancel=cancel)
        try:
            pad_from, pad_to = self._padding(offset, end, result)
            pieces = plan_pieces(offset, end, c, pad_from=pad_from, pad_to=pad_to, direct=self.direct)
            result.head = ZEROED if pad_from < offset else CACHED if offset % c else ALIGNED
            result.tail = ZEROED if pad_to > end else CACHED if end % c else ALIGNED
            result.span_offset, result.span_length = pad_from, pad_to - pad_from
            for p in pieces:
                if p.kind == ZERO:
                    self._pad(job, p, result)
                elif p.kind == CACHE:
                    self._cache_piece(job, p, data, offset, result)
                else:
                    self._direct_piece(job, p, data, offset, result)
            result.bytes_written = length
        finally:
            self._locks.release(lo, hi)
            result.calls += job.calls
            result.iovecs += job.iovecs
            result.seconds = time.perf_counter() - started
        return result

    def _padding(self, offset: int, end: int, result: WriteResult) -> tuple[int, int]:
        """[pad_from, pad_to): the whole granules of the block around the range that are known
        zero (hole, unwritten, before nothing); never past EOF, so the size is not changed."""
        if not self.pads:
            return offset, end
        bs, c = self.block_size, self.granule
        size = os.fstat(self.target.fd).st_size
        pad_from, pad_to = offset, end
        start, head_end = round_down(offset, bs), round_down(offset, c)
        if start < head_end and known_zero(self.target, start, head_end, size, result):
            pad_from = start
        tail_start, stop = round_up(end, c), min(round_up(end, bs), round_down(size, c))
        if tail_start < stop and known_zero(self.target, tail_start, stop, size, result):
            pad_to = stop
        return pad_from, pad_to

    def _pad(self, job: Job, p: Piece, result: WriteResult) -> None:
        """Zero padding outside the caller's range: its own job, so the caller's prefix stays
        exact; a failure is reported on the caller's job (nothing of the range is in doubt)."""
        pad = Job(job.name, p.start, p.length, noun="zero", cancel=job.cancel)
        fd = self.fd if self.direct else self.target.fd
        try:
            for pos, iov in self._zero_calls(p.start, p.end, self.align):
                write_exactly(pad, fd, iov, pos, granule=self.align, buffered_fd=self.target.fd,
                              what="pwritev (zero padding)")
        except Interrupted:
            job.check_cancel()
            raise
        except ZeroingError as err:
            raise job.fail(OSError(err.errno or 0, os.strerror(err.errno or 0)), err.what) from None
        finally:
            job.calls += pad.calls
            job.iovecs += pad.iovecs
        result.pad_bytes += p.length
        result.zero_pad_bytes += p.length

    def _cache_piece(self, job: Job, p: Piece, data: memoryview | None, offset: int, result: WriteResult) -> None:
        """Exactly the caller's bytes through the page cache; with O_DIRECT elsewhere in the
        write, written back at once, as the O_DIRECT parts are."""
        fd = self.target.fd
        if data is None:
            for pos, iov in self._zero_calls(p.start, p.end, 1):
                write_exactly(job, fd, iov, pos, what="pwrite")
        else:
            write_exactly(job, fd, [data[p.start - offset: p.end - offset]], p.start, what="pwrite")
        result.cache_bytes += p.length
        if self.direct:
            sync_range(job, fd, p.start, p.length)
            result.syncs += 1

    def _direct_piece(self, job: Job, p: Piece, data: memoryview | None, offset: int, result: WriteResult) -> None:
        """The aligned middle, O_DIRECT: the caller's buffer as is, or bounced when its address
        is not aligned; zeros straight from the zero buffer."""
        assert p.kind == DATA
        g, buffered = self.align, self.target.fd
        if data is None:
            for pos, iov in self._zero_calls(p.start, p.end, g):
                write_exactly(job, self.fd, iov, pos, granule=g, buffered_fd=buffered)
            return
        view = data[p.start - offset: p.end - offset]
        if buffer_address(view) % max(self.target.dio_mem_align, 1) == 0:
            for i in range(0, len(view), self._max_call):
                write_exactly(job, self.fd, [view[i: i + self._max_call]], p.start + i, granule=g,
                              buffered_fd=buffered)
            return
        area = self._bounce.get()
        try:
            for i in range(0, len(view), len(area)):
                chunk = view[i: i + len(area)]
                area[: len(chunk)] = chunk
                result.bounce_bytes += len(chunk)
                write_exactly(job, self.fd, [area[: len(chunk)]], p.start + i, granule=g, buffered_fd=buffered)
        finally:
            self._bounce.put(area)

    def _zero_calls(self, start: int, end: int, granule: int) -> Iterator[tuple[int, list[memoryview]]]:
        """(position, iovecs) of the calls that zero [start, end): at most IOV_MAX iovecs and
        MAX_RW_COUNT bytes each, every call but the last a multiple of ``granule``."""
        buf = self.zero_buffer
        for run in plan_calls(start, end - start, buf.size, self._max_call, max(granule, 1)):
            iov = iomap_dio_zero(buf, run.call_bytes)  # built once per run of identical calls
            for i in range(run.calls):
                yield run.offset + i * run.call_bytes, iov


def write_direct(target: str | os.PathLike[str] | int | Target, data: ReadableBuffer, offset: int, *,
                 block_size: int | None = None, direct: bool = True, force: bool = False,
                 cancel: Cancel | None = None) -> WriteResult:
    """One write with a short-lived writer: ``DirectWriter(target, ...).write(data, offset)``."""
    with DirectWriter(target, block_size=block_size, direct=direct, force=force) as writer:
        return writer.write(data, offset, cancel=cancel)
