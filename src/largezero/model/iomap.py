"""One O_DIRECT write on an iomap filesystem (XFS): the bios the kernel issues for it, in order.

Rules (kernel 6.18; fs/iomap/direct-io.c, fs/xfs/xfs_file.c, fs/iomap/buffered-io.c):

* xfs_file_write_checks() -> xfs_file_write_zero_eof(): a write that starts past EOF first
  zeroes [EOF, pos) in the page cache (xfs_zero_range() -> iomap_zero_range()). Only the
  written part of the EOF block holds data to zero; holes and unwritten extents read as
  zeros and are skipped while the cache is clean. So with EOF inside a written block, that
  block's folio becomes dirty.
* __iomap_dio_rw() -> kiocb_invalidate_pages(): filemap_write_and_wait_range() over the
  write's own range [pos, end). The EOF folio is written back (and waited for) before any
  bio of the write only when it overlaps that range; iomap writeback of a folio straddling
  EOF writes up to round_up(EOF, block size): the one dirty block. Otherwise the folio stays
  dirty and is written back later (by the flusher or a sync), outside this write.
* iomap_dio_bio_iter(), all under the one plug of __iomap_dio_rw():
  - need_zeroout when the extent is new (IOMAP_F_NEW: XFS allocates a hole as a new,
    unwritten extent) or unwritten;
  - head pad: iomap_dio_zero() of [block start, pos), when need_zeroout and pos is not on a
    block boundary;
  - the data bios: bio_iov_iter_get_pages() over the user's pages, as for a block device;
  - tail pad: iomap_dio_zero() of [end, block end), when need_zeroout or the write ends at
    or past EOF (i_size as before the write; it grows at completion), and end is not on a
    block boundary.
  The pads carry REQ_OP_WRITE | REQ_SYNC | REQ_IDLE like the data bios, so they back-merge
  with them in the plug as any bio does (block/plug.py).
* XFS takes the exclusive IOLOCK for unaligned and extending writes and retries a shared
  attempt that would need zeroing (-EAGAIN before any bio): the bios are the same.

The model covers one write whose blocks are all in one state (``extent``), one mapping, one
run on disk; the blocks are assumed to start on the disk at a multiple of the block size.
The user's pages are modelled as page-sized, never physically adjacent runs (any layout
gives the same requests while segments do not bind, which they cannot for writes of up to
128 segments of pages).
"""

from __future__ import annotations

from .._record import record
from ..engine.plan import MAX_RW_COUNT
from .bio import BIO_MAX_VECS, Bio, BvecRun, IovLayout, dio_bios, iomap_zero_bio
from .limits import SECTOR_SIZE, QueueLimits
from .run import Counts, SourceResult, run_bios
from .sources import ZeroSource, iomap_618_source, make_source

EXTENTS = ("hole", "unwritten", "written")
DEFAULT_BLOCK_SIZE = 64 << 10


def _down(a: int, b: int) -> int:
    return a - a % b


def _up(a: int, b: int) -> int:
    return -(-a // b) * b


@record(frozen=True)
class DioWrite:
    """One O_DIRECT write of ``length`` bytes at ``offset`` into a file of ``file_size`` bytes
    whose blocks under the write are all ``extent`` (hole, unwritten or written)."""

    offset: int
    length: int
    file_size: int = 0
    extent: str = "hole"
    block_size: int = DEFAULT_BLOCK_SIZE

    def __post_init__(self) -> None:
        if self.offset < 0 or self.file_size < 0:
            raise ValueError("offset and file size must not be negative")
        if self.length <= 0:
            raise ValueError("the write length must be positive")
        if self.extent not in EXTENTS:
            raise ValueError(f"unknown extent '{self.extent}' (expected one of {', '.join(EXTENTS)})")
        bs = self.block_size
        if bs < SECTOR_SIZE or bs & (bs - 1):
            raise ValueError("block size must be a power of two of at least 512")

    @property
    def end(self) -> int:
        return self.offset + self.length


@record(frozen=True)
class DioWritePlan:
    """What the kernel does for a :class:`DioWrite`, in file offsets ``(start, length)``."""

    write: DioWrite
    eof_zero: tuple[int, int] | None  # zeroed in the page cache by xfs_file_write_zero_eof()
    eof_writeback: tuple[int, int] | None  # that block, written back before the DIO's bios
    eof_deferred: tuple[int, int] | None  # that block, left dirty for later writeback
    head: tuple[int, int] | None
    tail: tuple[int, int] | None
    new_size: int

    def to_dict(self) -> dict[str, object]:
        def pair(p: tuple[int, int] | None) -> dict[str, int] | None:
            return {"offset": p[0], "length": p[1]} if p else None

        w = self.write
        return {
            "offset": w.offset, "length": w.length, "file_size": w.file_size, "extent": w.extent,
            "block_size": w.block_size, "eof_zero": pair(self.eof_zero),
            "eof_writeback": pair(self.eof_writeback), "eof_deferred": pair(self.eof_deferred),
            "head_pad": pair(self.head), "tail_pad": pair(self.tail), "new_size": self.new_size,
        }


def plan_dio_write(w: DioWrite, page_size: int) -> DioWritePlan:
    """The kernel's steps for one O_DIRECT write (see the module's rules)."""
    bs, isize = w.block_size, w.file_size
    first, last = _down(w.offset, bs), _up(w.end, bs)
    eof_zero = eof_wb = eof_late = None
    if w.offset > isize and isize % bs:
        eof_block = _down(isize, bs)
        # The EOF block is the write's own block, or (outside the range) data written before.
        state = w.extent if first <= eof_block < last else "written"
        if state == "written":
            eof_zero = (isize, min(w.offset, eof_block + bs) - isize)
            folio = max(bs, page_size)  # the smallest folio a block of this size lives in
            if w.offset < _down(isize, folio) + folio:
                eof_wb = (eof_block, bs)
            else:
                eof_late = (eof_block, bs)
    need_zeroout = w.extent in ("hole", "unwritten")
    head = (first, w.offset - first) if need_zeroout and w.offset % bs else None
    tail = None
    if (need_zeroout or w.end >= isize) and w.end % bs:
        tail = (w.end, last - w.end)
    return DioWritePlan(w, eof_zero, eof_wb, eof_late, head, tail, max(isize, w.end))


def _data_source(length: int, page: int) -> ZeroSource:
    """The user's buffer: page-sized runs, never physically adjacent."""
    return make_source("allocated", page, contiguity=page, buffer_size=_up(length, page))


def data_bios(length: int, page: int, lbs: int) -> list[tuple[Bio, int]]:
    """The data bios of one O_DIRECT write of ``length`` bytes from a page-aligned user buffer
    whose pages are never physically adjacent, in closed form.

    Every bio but the last is the same: bio_iov_vecs_to_alloc() gives BIO_MAX_VECS vecs and one
    batch pins that many pages, one bvec each. Only the pages' run indices differ from bio to
    bio, and they only decide physical adjacency, which never holds between these pages: the
    first bio stands for all the full ones. A short write is built by :func:`.bio.dio_bios`.
    """
    chunk = BIO_MAX_VECS * page
    full, rest = divmod(length, chunk)
    if full <= 2 or chunk % lbs:
        return dio_bios(IovLayout(1, length), _data_source(length, page), lbs)
    shape = dio_bios(IovLayout(1, chunk + rest), _data_source(chunk + rest, page), lbs)
    first = shape[0][0]
    assert first.size == chunk, "a full bio is BIO_MAX_VECS pages"
    out = [(first, full if shape[0][1] == 1 else full + shape[0][1] - 1)]
    out.extend(shape[1:])
    return out


def _folio_bio(offset_in_folio: int, length: int) -> Bio:
    """A writeback bio of one physically contiguous folio range: one bvec."""
    return Bio((BvecRun(1, offset_in_folio, length),), length, (0, offset_in_folio), (0, offset_in_folio + length))


def model_dio_write(lim: QueueLimits, w: DioWrite, source: ZeroSource, kernel: str,
                    page_size: int | None = None) -> SourceResult:
    """The bios, requests and merges of one O_DIRECT write on an iomap filesystem.

    ``source`` is the zero folio of iomap_dio_zero() under 6.19 rules; ``kernel`` "6.18" uses
    the private 64 KiB page instead. The EOF writeback that runs before the write (synchronous,
    its own bio) is counted; a deferred one is reported in ``extra`` and not counted.
    """
    page = page_size or source.page_size
    lbs = lim.logical_block_size
    if w.length > MAX_RW_COUNT:
        raise ValueError(f"one call moves at most MAX_RW_COUNT ({MAX_RW_COUNT}) bytes: model_write() splits "
                         "a longer write as the kernel does")
    for what, value in (("offset", w.offset), ("length", w.length)):
        if value % lbs:
            raise ValueError(f"{what} {value} is not a multiple of the logical block size {lbs} (EINVAL)")
    if w.block_size < lbs:
        raise ValueError(f"block size {w.block_size} is smaller than the logical block size {lbs}")
    plan = plan_dio_write(w, page)
    bs = w.block_size
    kind = "iomap_dio_rw: head pad, data, tail pad"
    if kernel == "6.18":
        source = iomap_618_source(page)
    steps: list[dict[str, object]] = []
    groups: list[tuple[Bio, int]] = []
    try:
        for what, pad in (("head-pad", plan.head), ("data", None), ("tail-pad", plan.tail)):
            if what == "data":
                data = data_bios(w.length, page, lbs)
                groups.extend(data)
                steps.append({"step": "data", "offset": w.offset, "length": w.length,
                              "bios": sum(n for _, n in data)})
            elif pad is not None:
                groups.append((iomap_zero_bio(pad[1], bs, source.folio_size, kernel), 1))
                steps.append({"step": what, "offset": pad[0], "length": pad[1], "bios": 1})
    except ValueError as err:
        return SourceResult(source, "iomap", w.length, None, kind, block_size=bs, kernel=kernel,
                            error=str(err), extra={"dio_write": plan.to_dict()})
    counts = Counts()
    sectors = 0
    if plan.eof_writeback:
        start, length = plan.eof_writeback
        folio = max(bs, page)
        wb = _folio_bio(start % folio, length)
        totals, _ = run_bios([(wb, 1)], lim.partition_start + start % bs // SECTOR_SIZE, lim)
        counts.add(totals)
        sectors += length // SECTOR_SIZE
        steps.insert(0, {"step": "eof-writeback", "offset": start, "length": length, "bios": 1})
    first = plan.head[0] if plan.head else w.offset
    totals, after = run_bios(groups, lim.partition_start + first % bs // SECTOR_SIZE, lim)
    counts.add(totals)
    sectors += after - (lim.partition_start + first % bs // SECTOR_SIZE)
    extra: dict[str, object] = {"sectors": sectors, "dio_write": plan.to_dict(), "steps": steps}
    return SourceResult(source, "iomap", w.length, counts, kind, block_size=bs, kernel=kernel, extra=extra)
