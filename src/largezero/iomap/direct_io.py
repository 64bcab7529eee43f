"""Direct-I/O writes at any offset and length: ``iomap_dio_zero()`` in user space.

O_DIRECT wants offsets, lengths and buffer addresses aligned. :class:`DirectWriter` takes any
``write(data, offset)`` and turns it into aligned ``pwritev`` calls over the *span*, the
write rounded out to the writer's block size, the way ``fs/iomap/direct-io.c`` does::

    iomap_dio_rw()            DirectWriter._iomap_dio_rw(): lock, map, pad, write
      need_zeroout            _need_zeroout(): hole, unwritten extent or past EOF -> pad
      iomap_dio_zero()        iomap_dio_zero(): iovecs of the shared zero buffer
      iomap_dio_bio_iter()    _Batch: one pwritev per contiguous aligned span

The uncovered part of a partial head or tail block is padded with zeros from
``largest_zero_buffer()`` without any read when it is a hole, an unwritten extent or past
EOF; otherwise it is read (O_DIRECT) and written back unchanged (read-modify-write). A block
device has no holes we could trust, so its partial blocks are always read. Padding zeros
over a hole or an unwritten extent changes no byte a reader can see: the writer never changes
a byte outside ``[offset, offset + len(data))``, and a file ends at ``max(old size, end)``.

Buffered mode (``direct=False``) keeps the block semantics for holes (pad, as a large-block
filesystem allocates whole blocks) but leaves data blocks to the page cache: only the
caller's bytes are written there, and the kernel does its own read-modify-write.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import threading
import time
import weakref
from dataclasses import dataclass, field

from .. import syscalls
from ..block.plan import IOV_MAX, MAX_RW_COUNT
from ..errors import LargezeroError, TargetError, UsageError
from ..mm import ZeroBuffer, pmd_size, zero_buffer_for
from ..mm.zero_page import buffer_address
from ..syscalls import FIEMAP_EXTENT_UNWRITTEN, is_unsupported
from ..targets import BLOCK, Target, open_target
from ..units import MAX_SIZE, format_size

ReadableBuffer = bytes | bytearray | memoryview | mmap.mmap

# The middle of a write whose buffer is not DIO-aligned is copied through this much aligned
# memory per pwritev: bounded, so a 1 GiB write does not double its memory.
DEFAULT_BOUNCE_SIZE = 4 << 20
# Without THP the PMD size is unknown; 2 MiB is the x86-64 value and a sane ceiling.
_FALLBACK_PMD = 2 << 20
_INF = MAX_SIZE + 1

# How the uncovered part of a partial block was handled.
ALIGNED = "aligned"  # no partial block at this end
ZEROED = "zero"  # hole / unwritten / past EOF: padded from the zero buffer, nothing read
RMW = "rmw"  # data: read and written back
MERGED = "merge"  # buffered data block: only the caller's bytes written, the page cache merges


class DirectWriteError(LargezeroError):
    """An I/O error part way through a write; ``bytes_written`` caller bytes from ``offset`` are on the target."""

    def __init__(self, message: str, *, target: str, offset: int, length: int, bytes_written: int,
                 what: str, errno: int | None = None, result: WriteResult | None = None) -> None:
        super().__init__(message)
        self.result = result  # what the write did before it failed (calls, reads)
        self.target = target
        self.offset = offset
        self.length = length
        self.bytes_written = bytes_written
        self.what = what
        self.errno = errno

    @property
    def stopped_at(self) -> int:
        return self.offset + self.bytes_written


@dataclass
class WriteResult:
    """What one write (or several, after :meth:`add`) did."""

    target: str
    kind: str
    direct: bool
    offset: int
    length: int
    block_size: int
    align: int
    bytes_written: int = 0
    span_offset: int = 0  # the block-rounded range actually written
    span_length: int = 0
    head: str = ALIGNED
    tail: str = ALIGNED
    pad_bytes: int = 0  # zeros written outside the range (hole / unwritten / past EOF), never read
    zero_pad_bytes: int = 0  # the part of pad_bytes taken straight from the zero buffer
    rmw_bytes_read: int = 0  # bytes read for read-modify-write
    reads: int = 0  # read calls
    calls: int = 0  # pwritev calls
    iovecs: int = 0
    bounce_bytes: int = 0  # caller bytes copied through the aligned bounce buffer
    map_calls: int = 0  # lseek(SEEK_DATA/SEEK_HOLE) and FIEMAP calls
    writes: int = 1
    zero_buffer: ZeroBuffer | None = field(default=None, repr=False)
    seconds: float = 0.0

    def add(self, other: WriteResult) -> None:
        """Fold a later write into this one (the CLI writes standard input in chunks)."""
        self.length += other.length
        self.bytes_written += other.bytes_written
        if other.span_length:
            lo, hi = other.span_offset, other.span_offset + other.span_length
            if self.span_length:
                lo, hi = min(lo, self.span_offset), max(hi, self.span_offset + self.span_length)
            else:
                self.head = other.head
            self.span_offset, self.span_length = lo, hi - lo
            self.tail = other.tail
        for name in ("pad_bytes", "zero_pad_bytes", "rmw_bytes_read", "reads", "calls", "iovecs", "bounce_bytes",
                     "map_calls", "writes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds += other.seconds

    def to_dict(self) -> dict[str, object]:
        buf = self.zero_buffer
        return {
            "target": self.target,
            "kind": self.kind,
            "direct": self.direct,
            "offset": self.offset,
            "length": self.length,
            "bytes_written": self.bytes_written,
            "block_size": self.block_size,
            "align": self.align,
            "span_offset": self.span_offset,
            "span_length": self.span_length,
            "head": self.head,
            "tail": self.tail,
            "pad_bytes": self.pad_bytes,
            "zero_pad_bytes": self.zero_pad_bytes,
            "rmw_bytes_read": self.rmw_bytes_read,
            "reads": self.reads,
            "calls": self.calls,
            "iovecs": self.iovecs,
            "bounce_bytes": self.bounce_bytes,
            "map_calls": self.map_calls,
            "writes": self.writes,
            "zero_buffer": None if buf is None else {"name": buf.name, "size": buf.size, "backing": buf.backing},
            "seconds": round(self.seconds, 6),
        }


# --- aligned memory -----------------------------------------------------------------------


def aligned_buffer(size: int, *, offset: int = 0, align: int | None = None) -> memoryview:
    """A writable zero-filled buffer whose address is congruent to ``offset`` modulo ``align``.

    Data placed in such a buffer for a write at ``offset`` needs no bounce copy: every
    DIO-aligned file position then sits at a DIO-aligned address. ``align`` defaults to the
    page size. Private anonymous memory: pages cost nothing until touched.
    """
    if size < 0:
        raise UsageError(f"buffer size {size} is negative")
    align = align or mmap.PAGESIZE
    if align & (align - 1):
        raise UsageError(f"alignment {align} is not a power of two")
    phase = offset % align
    mapping = mmap.mmap(-1, max(1, size + phase + align), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    skip = (-buffer_address(mapping)) % align + phase
    # The memoryview keeps the mapping alive; nothing else holds it.
    return memoryview(mapping)[skip: skip + size]


def _memzero(view: memoryview) -> None:
    if len(view):
        ctypes.memset(buffer_address(view), 0, len(view))


class _Scratch:
    """Aligned memory for one write at a time: two edge windows of a block each, then the bounce area."""

    def __init__(self, block_size: int, bounce_size: int, align: int) -> None:
        self.block_size = block_size
        self.bounce_size = bounce_size
        self.memory = aligned_buffer(2 * block_size + bounce_size, align=align)

    def window(self, which: int, length: int) -> memoryview:
        start = which * self.block_size
        return self.memory[start: start + length]

    @property
    def bounce(self) -> memoryview:
        return self.memory[2 * self.block_size:]


# --- byte-range locks ---------------------------------------------------------------------


class _RangeLocks:
    """Byte-range locks over one file or device, shared by every writer in the process.

    A write locks its whole span, so two writes that share a partial block run one after the
    other (the kernel serialises unaligned direct writes on the inode lock for the same
    reason); writes on disjoint blocks run in parallel. A write that may grow a file locks to
    infinity, so no other write sees its brief over-long size.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held: list[tuple[int, int]] = []

    def acquire(self, lo: int, hi: int) -> None:
        with self._cond:
            while any(a < hi and lo < b for a, b in self._held):
                self._cond.wait()
            self._held.append((lo, hi))

    def release(self, lo: int, hi: int) -> None:
        with self._cond:
            self._held.remove((lo, hi))
            self._cond.notify_all()


_locks: weakref.WeakValueDictionary[tuple[str, int, int], _RangeLocks] = weakref.WeakValueDictionary()
_locks_guard = threading.Lock()


def _range_locks(tgt: Target) -> _RangeLocks:
    with _locks_guard:
        locks = _locks.get(tgt.key)
        if locks is None:
            locks = _RangeLocks()
            _locks[tgt.key] = locks
        return locks


# --- the pieces of a span -----------------------------------------------------------------

_ZERO, _DATA, _WINDOW = "zero", "data", "window"


@dataclass
class _Window:
    """Aligned scratch standing for [start, end) of the target: an edge granule or a read-back gap."""

    start: int
    end: int
    read: bool
    which: int  # 0 head area, 1 tail area
    view: memoryview | None = None


@dataclass
class _Piece:
    start: int
    end: int
    kind: str
    window: _Window | None = None


def _round_down(x: int, a: int) -> int:
    return x - x % a


def _round_up(x: int, a: int) -> int:
    return -(-x // a) * a


def iomap_dio_zero(zero: ZeroBuffer, length: int) -> list[memoryview]:
    """iovecs of ``length`` zero bytes, all pointing into the shared zero buffer (never copied)."""
    full, last = divmod(length, zero.size)
    iov = [zero.view] * full
    if last:
        iov.append(zero.view[:last])
    return iov


def plan_pieces(offset: int, end: int, start: int, stop: int, g: int, head: str, tail: str) -> list[_Piece]:
    """Cut the span [start, stop) into zero-buffer, caller-data and scratch-window pieces.

    ``g`` is the DIO granule (1 when buffered). A granule holding both caller bytes and
    padding must be assembled in aligned scratch; an RMW gap is read into scratch whole.
    """
    g0, m0 = _round_down(offset, g), _round_up(offset, g)
    m1, g1 = _round_down(end, g), _round_up(end, g)
    pieces: list[_Piece] = []

    def zero(a: int, b: int) -> None:
        if b > a:
            pieces.append(_Piece(a, b, _ZERO))

    def window(a: int, b: int, read: bool, which: int) -> None:
        if b > a:
            pieces.append(_Piece(a, b, _WINDOW, _Window(a, b, read, which)))

    if m0 > m1:
        # Start and end inside one granule: one window holds it, and any read-back gap next to it.
        ws = start if head == RMW else g0
        we = stop if tail == RMW else g1
        zero(start, ws)
        window(ws, we, head == RMW or tail == RMW, 0)
        zero(we, stop)
        return pieces
    if head == RMW:
        window(start, m0, True, 0)
    else:
        zero(start, g0)
        window(g0, m0, False, 0)
    if m1 > m0:
        pieces.append(_Piece(m0, m1, _DATA))
    if tail == RMW:
        window(m1, stop, True, 1)
    else:
        window(m1, g1, False, 1)
        zero(g1, stop)
    return pieces


# --- the writer ---------------------------------------------------------------------------


class DirectWriter:
    """Write any byte range of a file or block device with O_DIRECT, padding partial blocks.

    ``block_size`` defaults to the target's DIO alignment (statx STATX_DIOALIGN, else the
    logical block size); it may be any power of two from there up to the PMD size, for an
    application-level large block. Thread-safe: one writer may be shared by many threads.
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
        if direct:
            self.fd = tgt.direct_fd()
        else:
            self.fd = tgt.fd
        default = tgt.dio_align if direct else max(tgt.dio_align, tgt.logical_block_size)
        bs = default if block_size is None else block_size
        if not isinstance(bs, int) or bs <= 0 or bs & (bs - 1):
            raise UsageError(f"block size {bs} is not a power of two")
        if direct and bs < tgt.dio_align:
            raise UsageError(f"block size {bs} is smaller than the direct I/O alignment of {tgt.name} "
                             f"({tgt.dio_align} bytes)")
        pmd = pmd_size() or _FALLBACK_PMD
        if bs > pmd:
            raise UsageError(f"block size {format_size(bs)} is larger than the PMD size ({format_size(pmd)})")
        self.block_size = bs
        if bounce_size < 1:
            raise UsageError("bounce buffer size must be positive")
        self.bounce_size = _round_up(bounce_size, self.align)
        self.zero_buffer = zero_buffer if zero_buffer is not None else zero_buffer_for(direct)
        if direct and self.zero_buffer.address % max(tgt.dio_mem_align, 1):
            raise UsageError(f"{tgt.name}: zero buffer is not aligned to the {tgt.dio_mem_align}-byte DIO alignment")
        # Every call's size stays a multiple of the granule, so the next call starts aligned.
        self._max_call = _round_down(MAX_RW_COUNT, max(self.align, 1))
        self._locks = _range_locks(tgt)
        self._pool: list[_Scratch] = []
        self._pool_lock = threading.Lock()
        self._closed = False

    # -- public ----------------------------------------------------------------------------

    def write(self, data: ReadableBuffer, offset: int) -> WriteResult:
        """Write ``data`` at ``offset``; returns what it took. Raises UsageError / DirectWriteError."""
        try:
            view = memoryview(data)
        except TypeError:
            raise UsageError(f"data must be a bytes-like object, not {type(data).__name__}") from None
        if not view.c_contiguous:
            raise UsageError("data must be a contiguous buffer")
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        return self._iomap_dio_rw(offset, len(view), view)

    def zero(self, offset: int, length: int) -> WriteResult:
        """Zero [offset, offset+length) with the same padding: what ``zero --direct`` uses for its edges."""
        return self._iomap_dio_rw(offset, length, None)

    def close(self) -> None:
        """Close the target if this writer opened it; a Target passed in stays open."""
        if getattr(self, "_closed", False):
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

    def _lock_span(self, start: int, block_end: int) -> tuple[int, int]:
        """Lock [start, block_end), or [start, inf) when the write may grow the file.

        Returns the lock's upper end and the target size seen under the lock.
        """
        tgt = self.target
        if tgt.kind == BLOCK:
            self._locks.acquire(start, block_end)
            return block_end, tgt.size
        while True:
            size = os.fstat(self.fd).st_size
            hi = _INF if block_end > size else block_end
            self._locks.acquire(start, hi)
            size = os.fstat(self.fd).st_size
            if hi == _INF or block_end <= size:
                return hi, size
            # The file shrank while we waited: this write may now grow it.
            self._locks.release(start, hi)

    def _iomap_dio_rw(self, offset: int, length: int, data: memoryview | None) -> WriteResult:
        self._check(offset, length)
        tgt, bs, g = self.target, self.block_size, self.align
        result = WriteResult(tgt.name, tgt.kind, self.direct, offset, length, bs, g, zero_buffer=self.zero_buffer)
        if length == 0:
            return result
        started = time.perf_counter()
        end = offset + length
        start, block_end = _round_down(offset, bs), _round_up(end, bs)
        hi, size = self._lock_span(start, block_end)
        lock_lo = start
        io = _Batch(self, result, offset, end)
        stop = block_end
        scratch: _Scratch | None = None
        try:
            # Past a file's EOF only to the next granule: the rest would be truncated away anyway.
            limit = size if tgt.kind == BLOCK else _round_up(max(size, end), g)
            stop = min(block_end, limit)
            head = self._need_zeroout(start, offset, size, result)
            tail = self._need_zeroout(end, stop, size, result)
            if not self.direct:
                # The page cache merges data blocks itself: write only our bytes there.
                if head == RMW:
                    head, start = MERGED, offset
                if tail == RMW:
                    tail, stop = MERGED, end
            result.head, result.tail = head, tail
            result.span_offset, result.span_length = start, stop - start
            io.pos = io.done = start
            pieces = plan_pieces(offset, end, start, stop, g, head, tail)
            windows = any(p.window is not None and (p.window.read or data is not None) for p in pieces)
            bounce = data is not None and self._needs_bounce(data, offset, pieces)
            if windows or bounce:
                scratch = self._get_scratch()
            self._fill_windows(pieces, data, offset, end, scratch, size, result, io)
            self._issue(pieces, data, offset, end, scratch if bounce else None, io)
            io.flush()
            result.bytes_written = length
        finally:
            try:
                if tgt.kind != BLOCK and stop > size:
                    self._fix_size(size, end, io, result)
            finally:
                if scratch is not None:
                    self._put_scratch(scratch)
                self._locks.release(lock_lo, hi)
                result.seconds = time.perf_counter() - started
        return result

    def _need_zeroout(self, a: int, b: int, size: int, result: WriteResult) -> str:
        """How to handle the uncovered gap [a, b): ALIGNED (none), ZEROED (known zero) or RMW.

        Known zero means every byte is in a hole (SEEK_HOLE), in an extent FIEMAP flags
        UNWRITTEN, or past EOF. Anything else, or any doubt, is data. A block device is data.
        """
        if b <= a:
            return ALIGNED
        tgt = self.target
        if tgt.kind == BLOCK:
            return RMW
        hi = min(b, size)
        pos = a
        while pos < hi:
            result.map_calls += 1
            try:
                data_at = syscalls.ops.lseek(tgt.fd, pos, os.SEEK_DATA)
            except OSError as err:
                if err.errno == errno.ENXIO:
                    return ZEROED  # no data from pos to EOF
                return RMW
            if data_at >= hi:
                return ZEROED
            result.map_calls += 1
            try:
                hole_at = syscalls.ops.lseek(tgt.fd, data_at, os.SEEK_HOLE)
            except OSError:
                return RMW
            seg_end = min(hole_at, hi)
            if not self._unwritten(data_at, seg_end, result):
                return RMW
            pos = seg_end
        return ZEROED

    def _unwritten(self, a: int, b: int, result: WriteResult) -> bool:
        """Whether FIEMAP shows [a, b) entirely covered by UNWRITTEN extents.

        SEEK_DATA reports an unwritten extent as data once the page cache holds a folio for it
        (a buffered read is enough), so this is where such extents are found. FIEMAP_FLAG_SYNC
        writes back dirty pages first: an unwritten extent under dirty data is data.
        """
        tgt = self.target
        if "FIEMAP" in tgt.unsupported():
            return False
        result.map_calls += 1
        try:
            extents = syscalls.ops.fiemap(tgt.fd, a, b - a)
        except OSError as err:
            if is_unsupported(err):
                tgt.mark_unsupported("FIEMAP")
            return False
        pos = a
        for ext in extents:
            if ext.logical > pos or not ext.flags & FIEMAP_EXTENT_UNWRITTEN:
                return False  # a gap FIEMAP does not explain, or written data
            pos = max(pos, ext.logical + ext.length)
            if pos >= b:
                return True
        return pos >= b

    def _needs_bounce(self, data: memoryview, offset: int, pieces: list[_Piece]) -> bool:
        if not self.direct:
            return False
        mem = max(self.target.dio_mem_align, 1)
        for p in pieces:
            if p.kind == _DATA:
                return buffer_address(data[p.start - offset:]) % mem != 0
        return False

    def _fill_windows(self, pieces: list[_Piece], data: memoryview | None, offset: int, end: int,
                      scratch: _Scratch | None, size: int, result: WriteResult, io: _Batch) -> None:
        """Read every read-back gap first (so a failed read writes nothing), then lay in our bytes."""
        for p in pieces:
            w = p.window
            if w is None:
                continue
            if data is None and not w.read:
                # zero(): an edge granule with nothing to keep is just more zeros.
                p.kind = _ZERO
                continue
            assert scratch is not None
            w.view = scratch.window(w.which, w.end - w.start)
            _memzero(w.view)
            if w.read:
                want = w.end - w.start
                if self.target.kind != BLOCK:
                    # Past EOF reads nothing; the window stays zero there.
                    want = max(0, min(want, _round_up(size, self.align) - w.start))
                io.read_into(w.view[:want], w.start)
            a, b = max(w.start, offset), min(w.end, end)
            if not w.read:
                result.pad_bytes += (w.end - w.start) - max(0, b - a)
            if b > a:
                if data is None:
                    _memzero(w.view[a - w.start: b - w.start])
                else:
                    w.view[a - w.start: b - w.start] = data[a - offset: b - offset]

    def _issue(self, pieces: list[_Piece], data: memoryview | None, offset: int, end: int,
               bounce_via: _Scratch | None, io: _Batch) -> None:
        """Feed the pieces to the batch in order; caller data goes through ``bounce_via`` when given."""
        result = io.result
        for p in pieces:
            if p.kind == _ZERO or (p.kind == _DATA and data is None):
                pad = (p.end - p.start) - max(0, min(p.end, end) - max(p.start, offset))
                result.zero_pad_bytes += pad
                result.pad_bytes += pad
                for v in iomap_dio_zero(self.zero_buffer, p.end - p.start):
                    io.add(v)
            elif p.kind == _WINDOW:
                assert p.window is not None and p.window.view is not None
                io.add(p.window.view)
            else:
                assert data is not None
                chunk = data[p.start - offset: p.end - offset]
                if bounce_via is None:
                    io.add(chunk)
                    continue
                bounce = bounce_via.bounce
                for i in range(0, len(chunk), len(bounce)):
                    piece = chunk[i: i + len(bounce)]
                    if i:
                        io.flush()  # the pending call still points into the bounce area
                    bounce[: len(piece)] = piece
                    result.bounce_bytes += len(piece)
                    io.add(bounce[: len(piece)])

    def _fix_size(self, size: int, end: int, io: _Batch, result: WriteResult) -> None:
        """A padded tail past EOF grew the file to a granule boundary: cut it back to max(size, end)."""
        want = max(size, min(end, io.done))
        try:
            now = os.fstat(self.fd).st_size
            if now > want:
                syscalls.ops.ftruncate(self.target.fd, want)
        except OSError as err:
            raise io.fail(err, "ftruncate", want) from None

    def _get_scratch(self) -> _Scratch:
        with self._pool_lock:
            if self._pool:
                return self._pool.pop()
        return _Scratch(self.block_size, self.bounce_size, max(mmap.PAGESIZE, self.align))

    def _put_scratch(self, scratch: _Scratch) -> None:
        with self._pool_lock:
            self._pool.append(scratch)


class _Batch:
    """iomap_dio_bio_iter(): gathers iovecs for one contiguous span and issues them as pwritev calls.

    A call ends only at IOV_MAX iovecs, at MAX_RW_COUNT bytes, or when the bounce area must be
    reused; each call's length is a multiple of the granule, so the next one starts aligned.
    """

    def __init__(self, writer: DirectWriter, result: WriteResult, offset: int, end: int) -> None:
        self.w = writer
        self.result = result
        self.offset = offset
        self.end = end
        self.g = max(writer.align, 1)
        self.iov: list[memoryview] = []
        self.nbytes = 0
        self.pos = offset  # target position of the first pending byte
        self.done = offset  # everything from the span start to here is on the target

    def add(self, view: memoryview) -> None:
        while len(view):
            room = self.w._max_call - self.nbytes
            if len(self.iov) >= IOV_MAX or room <= 0:
                self._flush_aligned()
                continue
            take = view[:room] if len(view) > room else view
            self.iov.append(take)
            self.nbytes += len(take)
            view = view[len(take):]

    def _flush_aligned(self) -> None:
        # With a zero buffer smaller than the granule, hold back iovecs until the call is aligned.
        carry: list[memoryview] = []
        while self.nbytes % self.g and self.iov:
            v = self.iov.pop()
            self.nbytes -= len(v)
            carry.insert(0, v)
        if not self.iov:
            raise AssertionError("no aligned call fits in IOV_MAX iovecs")
        self.flush()
        for v in carry:
            self.iov.append(v)
            self.nbytes += len(v)

    def flush(self) -> None:
        if not self.iov:
            return
        iov, want, pos = self.iov, self.nbytes, self.pos
        self.iov, self.nbytes = [], 0
        fd = self.w.fd
        sent = 0
        while sent < want:
            try:
                n = syscalls.ops.pwritev(fd, iov, pos + sent)
            except InterruptedError:
                continue
            except OSError as err:
                raise self.fail(err, "pwritev", pos + sent) from None
            self.result.calls += 1
            self.result.iovecs += len(iov)
            if n <= 0:
                raise self.fail(OSError(errno.ENOSPC, "write made no progress"), "pwritev", pos + sent) from None
            sent += n
            self.done = pos + sent
            if sent < want:
                iov = _advance(iov, n)
                if fd != self.w.target.fd and (pos + sent) % self.g:
                    # A short O_DIRECT write that stopped mid-granule: finish this call through the
                    # page cache, which takes any offset; the bytes are the same.
                    fd = self.w.target.fd
        self.pos = pos + want

    def read_into(self, view: memoryview, pos: int) -> None:
        """Read target bytes [pos, pos+len(view)) for read-modify-write; a short read at EOF leaves zeros."""
        fd = self.w.fd
        got = 0
        while got < len(view):
            try:
                n = syscalls.ops.preadv(fd, [view[got:]], pos + got)
            except InterruptedError:
                continue
            except OSError as err:
                raise self.fail(err, "preadv", pos + got) from None
            self.result.reads += 1
            if n <= 0:
                break
            got += n
            self.result.rmw_bytes_read += n
            if got < len(view) and (pos + got) % self.g:
                fd = self.w.target.fd  # O_DIRECT cannot go on from an unaligned position
        if got < len(view) and self.w.target.kind == BLOCK:
            raise self.fail(OSError(errno.EIO, "short read inside the device"), "preadv", pos + got)

    def fail(self, err: OSError, what: str, at: int) -> DirectWriteError:
        r = self.result
        done = min(max(self.done - self.offset, 0), self.end - self.offset)
        return DirectWriteError(
            f"{r.target}: {what} failed at byte {at}: {err.strerror or err} (wrote {done} of {r.length} bytes "
            f"at offset {r.offset}; resume at offset {r.offset + done})",
            target=r.target, offset=r.offset, length=r.length, bytes_written=done, what=what, errno=err.errno,
            result=r,
        )


def _advance(iov: list[memoryview], n: int) -> list[memoryview]:
    """The iovecs left after the first ``n`` bytes went out."""
    out: list[memoryview] = []
    for v in iov:
        if n >= len(v):
            n -= len(v)
            continue
        out.append(v[n:])
        n = 0
    return out


def write_direct(target: str | os.PathLike[str] | int | Target, data: ReadableBuffer, offset: int, *,
                 block_size: int | None = None, direct: bool = True, force: bool = False) -> WriteResult:
    """One write with a short-lived writer: ``DirectWriter(target, ...).write(data, offset)``."""
    with DirectWriter(target, block_size=block_size, direct=direct, force=force) as writer:
        return writer.write(data, offset)

