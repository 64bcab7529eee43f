"""Bios and bvecs, built the way the kernel builds them, in run-length form.

A bio is a tuple of :class:`BvecRun` (``count`` identical bvecs), never one object per bvec.
Physical addresses are written ``(run, offset)``: the index of a physically contiguous run of
the zero buffer and the byte offset inside it. Runs are naturally aligned (a folio is aligned
to its size), so an offset inside a run stands for the physical address modulo any power of
two up to the run size, which is all the split needs.

Rules and where they come from (kernel 6.18):

* ``BIO_MAX_VECS`` = 256 (include/linux/bio.h).
* bio_add_page() / bio_add_folio() (block/bio.c): a page is merged into the last bvec only
  when it starts where that bvec ends physically (bvec_try_merge_page()); ZERO_PAGE added
  again starts where it started, so it never merges. A new bvec needs bi_vcnt < bi_max_vecs,
  and nothing is added past bi_size = UINT_MAX.
* __blkdev_issue_zero_pages() (block/blk-lib.c): nr_vecs = min(DIV_ROUND_UP(nr_sects,
  PAGE_SIZE >> 9), BIO_MAX_VECS), counted in pages even when the folio is larger
  (``largest_zero_folio()`` since 6.18), then min(folio_size, remaining) per bvec.
* __blkdev_issue_write_zeroes(): REQ_OP_WRITE_ZEROES bios without data of at most
  bio_write_zeroes_limit() = min(max_write_zeroes_sectors, UINT_MAX >> 9 rounded to blocks).
* User O_DIRECT, __blkdev_direct_IO() (block/fops.c) and bio_iov_iter_get_pages()
  (block/bio.c): each bio gets bi_max_vecs = min(pages left in the iterator, BIO_MAX_VECS)
  (bio_iov_vecs_to_alloc()); pages are pinned in batches of at most bi_max_vecs - bi_vcnt
  pages from the current iovec (iov_iter_extract_pages()); the pages of one batch that lie
  in one folio become one bvec (get_contig_folio_len()), merged into the last bvec when
  physically contiguous with it. So once a bio holds k bvecs, the next batch is 256 - k
  pages: the 256th bvec of a bio of 2 MiB iovecs gets a single page, and the next bio starts
  4 KiB into an iovec. This is what makes bios of 255 x 2 MiB + 4 KiB, not 256 x 2 MiB.
* iomap_dio_zero() (fs/iomap/direct-io.c): 6.18 adds one bvec of a private 64 KiB zero page
  and rejects len > 64 KiB; 6.19 uses largest_zero_folio() with
  nr_vecs = max(1, blocksize / folio_size), rejected above BIO_MAX_VECS.
"""

from __future__ import annotations

import functools

from .._record import record
from .limits import SECTOR_SIZE, UINT_MAX, QueueLimits
from .sources import ZeroSource

BIO_MAX_VECS = 256
# fs/iomap/direct-io.c (6.12-6.18): IOMAP_ZERO_PAGE_SIZE, an order-4 page allocated at boot.
IOMAP_ZERO_PAGE_SIZE = 64 << 10

Phys = tuple[int, int]


@record(frozen=True)
class BvecRun:
    """``count`` bvecs of ``length`` bytes, each starting ``offset`` bytes into its run."""

    count: int
    offset: int
    length: int


@record(frozen=True)
class Bio:
    """A bio as submitted: its bvecs, size, and the physical address of its two ends."""

    runs: tuple[BvecRun, ...]
    size: int
    first: Phys
    last_end: Phys
    write_zeroes: bool = False

    @property
    def bvecs(self) -> int:
        return sum(r.count for r in self.runs)


class _BvecList:
    """Appends bvecs to a run-length list; merging into the last bvec is explicit."""

    def __init__(self) -> None:
        self.runs: list[list[int]] = []  # [count, offset, length]
        self.vcnt = 0
        self.first: Phys | None = None
        self.last_end: Phys | None = None

    def add(self, phys: Phys, length: int, count: int = 1, stride_runs: int = 1) -> None:
        """``count`` new bvecs; the i-th starts at run ``phys[0] + i * stride_runs``."""
        if self.first is None:
            self.first = phys
        last = self.runs[-1] if self.runs else None
        if last is not None and last[1] == phys[1] and last[2] == length:
            last[0] += count
        else:
            self.runs.append([count, phys[1], length])
        self.vcnt += count
        self.last_end = (phys[0] + (count - 1) * stride_runs, phys[1] + length)

    def extend_last(self, length: int) -> None:
        last = self.runs[-1]
        if last[0] > 1:
            last[0] -= 1
            self.runs.append([1, last[1], last[2] + length])
        else:
            last[2] += length
        assert self.last_end is not None
        self.last_end = (self.last_end[0], self.last_end[1] + length)

    def bio(self, size: int) -> Bio:
        assert self.first is not None and self.last_end is not None
        return Bio(tuple(BvecRun(c, o, n) for c, o, n in self.runs), size, self.first, self.last_end)


def _div_up(a: int, b: int) -> int:
    return -(-a // b)


# --- in-kernel zeroing --------------------------------------------------------------------


def zero_pages_bios(length: int, folio_size: int, page_size: int) -> list[tuple[Bio, int]]:
    """__blkdev_issue_zero_pages(): the bios for ``length`` bytes, as (bio, how many) in order.

    Every bio but the last is the same, so there are at most two entries.
    """
    if length <= 0:
        return []
    out: list[tuple[Bio, int]] = []

    def one(n: int) -> Bio:
        nr_vecs = min(_div_up(n, page_size), BIO_MAX_VECS)
        # bio_add_folio(): nothing past bi_size = UINT_MAX, and never len > UINT_MAX.
        full = min(nr_vecs, n // folio_size, UINT_MAX // folio_size)
        vecs = _BvecList()
        size = 0
        if full:
            vecs.add((0, 0), folio_size, full, stride_runs=0)
            size = full * folio_size
        rest = n - size
        if rest and full < nr_vecs and rest < folio_size and size + rest <= UINT_MAX:
            vecs.add((0, 0), rest)
            size += rest
        return vecs.bio(size)

    big = one(length)
    # Any range at least as long as the first bio yields that same bio again.
    count = length // big.size
    out.append((big, count))
    rest = length - count * big.size
    while rest > 0:
        tail = one(rest)
        out.append((tail, 1))
        rest -= tail.size
    return out


def write_zeroes_bios(length: int, limits: QueueLimits) -> list[tuple[Bio, int]]:
    """__blkdev_issue_write_zeroes(): bios of bio_write_zeroes_limit() sectors, no data."""
    bs_mask = limits.logical_block_size // SECTOR_SIZE - 1
    limit = min(limits.write_zeroes_max_sectors, (UINT_MAX >> 9) & ~bs_mask) * SECTOR_SIZE
    if limit <= 0:
        raise ValueError("device has no write-zeroes")
    full, rest = divmod(length, limit)
    out = []
    if full:
        out.append((Bio((), limit, (0, 0), (0, 0), write_zeroes=True), full))
    if rest:
        out.append((Bio((), rest, (0, 0), (0, 0), write_zeroes=True), 1))
    return out


# --- user O_DIRECT ------------------------------------------------------------------------


@record(frozen=True)
class IovLayout:
    """The iovecs of one pwritev call: ``full`` iovecs of ``iov_len`` then one of ``last_len``.

    Every iovec starts at the start of the zero buffer (``zero_range``'s layout).
    """

    full: int
    iov_len: int
    last_len: int = 0

    @property
    def count(self) -> int:
        return self.full + (1 if self.last_len else 0)

    def length(self, i: int) -> int:
        return self.iov_len if i < self.full else self.last_len

    @property
    def total(self) -> int:
        return self.full * self.iov_len + self.last_len


# Enough iovecs ahead that a bio cannot reach the end: each iovec adds at least one bvec,
# since an iovec never starts where the previous one ended physically.
_FAR = BIO_MAX_VECS + 2


def _npages(layout: IovLayout, i: int, p: int, page: int, cap: int) -> int:
    """iov_iter_npages(): pages spanned by what is left of the iterator, at most ``cap``."""
    n = _div_up(p % page + layout.length(i) - p, page)
    if n >= cap:
        return cap
    rest_full = max(0, layout.full - i - 1)
    n += rest_full * _div_up(layout.iov_len, page)
    if layout.last_len and i < layout.full:
        n += _div_up(layout.last_len, page)
    return min(n, cap)


@functools.lru_cache(maxsize=4096)
def _dio_bio(rest_full: int, last_len: int, iov_len: int, p: int, run: int, same_page: bool,
             page: int, lbs: int) -> tuple[Bio, int, int]:
    """One bio of __blkdev_direct_IO(), from ``p`` bytes into the current iovec.

    ``rest_full`` counts the full iovecs from the current one on (capped at _FAR), then the
    iterator holds one iovec of ``last_len`` (0: none). Returns the bio, how many iovecs it
    finished, and the position in the iovec where the next bio starts.
    """
    layout = IovLayout(rest_full, iov_len, last_len)
    i = 0
    max_vecs = _npages(layout, 0, p, page, BIO_MAX_VECS)  # bio_iov_vecs_to_alloc()
    vecs = _BvecList()
    size = 0

    def phys(pos: int) -> Phys:
        return (0 if same_page else pos // run, pos % run)

    while i < layout.count and vecs.vcnt < max_vecs:
        length_i = layout.length(i)
        batch = (max_vecs - vecs.vcnt) * page
        if p % run and p % page == 0 and vecs.last_end == phys(p):
            # Batches that stay inside the folio the last bvec ends in only grow that bvec.
            stop = min((p // run + 1) * run, length_i)
            m = min((stop - p) // batch, (UINT_MAX - size) // batch)
            if m:
                vecs.extend_last(m * batch)
                p += m * batch
                size += m * batch
                if p == length_i:
                    i, p = i + 1, 0
                continue
        # One batch: iov_iter_extract_pages() of at most `batch` bytes of whole pages.
        maxsize = min(length_i - p, UINT_MAX - size)
        pages = min(_div_up(p % page + maxsize, page), max_vecs - vecs.vcnt)
        got = min(maxsize, pages * page - p % page)
        got -= got % lbs  # the block-size trim of a batch
        if got <= 0:
            break  # -EFAULT from an empty batch: the bio ends with what it has
        end = p + got
        a = p
        # First piece: up to the end of the folio it starts in; merged if contiguous.
        first_end = min((a // run + 1) * run, end)
        if vecs.last_end == phys(a):
            vecs.extend_last(first_end - a)
        else:
            vecs.add(phys(a), first_end - a)
        a = first_end
        whole = (end - a) // run
        if whole:
            vecs.add(phys(a), run, whole, stride_runs=0 if same_page else 1)
            a += whole * run
        if a < end:
            vecs.add(phys(a), end - a)
        size += got
        p = end
        if p == length_i:
            i, p = i + 1, 0
    return vecs.bio(size), i, p


def dio_bios(layout: IovLayout, source: ZeroSource, lbs: int, start: int = 0) -> list[tuple[Bio, int]]:
    """The bios of one O_DIRECT pwritev call on a block device, as (bio, how many) in order;
    ``start``: the iterator begins that many bytes into the first iovec."""
    out: list[tuple[Bio, int]] = []
    i, p = 0, start
    while i < layout.count:
        rest_full = min(max(layout.full - i, 0), _FAR)
        last = layout.last_len if rest_full < _FAR else 0
        if i >= layout.full:
            rest_full, length = 0, layout.last_len
            bio, done, p2 = _dio_bio(0, length, length, p, source.contiguity, source.same_page,
                                     source.page_size, lbs)
        else:
            bio, done, p2 = _dio_bio(rest_full, last, layout.iov_len, p, source.contiguity,
                                     source.same_page, source.page_size, lbs)
        if bio.size == 0:
            raise ValueError("iovec shorter than a logical block: the kernel would fail the write")
        if out and out[-1][0] == bio:
            out[-1] = (bio, out[-1][1] + 1)
        else:
            out.append((bio, 1))
        i, p = i + done, p2
    return out


# --- iomap --------------------------------------------------------------------------------


def iomap_zero_bio(length: int, block_size: int, folio_size: int, kernel: str) -> Bio:
    """iomap_dio_zero(): the one bio that zeroes ``length`` bytes of a ``block_size`` block.

    ``kernel`` "6.18": one bvec of the private 64 KiB zero page; ``folio_size`` is ignored.
    ``kernel`` "6.19": bvecs of min(len, folio_size) from largest_zero_folio().
    Raises ValueError where the kernel returns -EINVAL.
    """
    if length <= 0:
        raise ValueError("nothing to zero")
    if kernel == "6.18":
        if length > IOMAP_ZERO_PAGE_SIZE:
            raise ValueError(f"EINVAL: len {length} > IOMAP_ZERO_PAGE_SIZE (64 KiB)")
        return Bio((BvecRun(1, 0, length),), length, (0, 0), (0, length))
    if kernel != "6.19":
        raise ValueError("kernel must be 6.18 or 6.19")
    nr_vecs = max(1, block_size // folio_size)
    if nr_vecs > BIO_MAX_VECS:
        raise ValueError(f"EINVAL: nr_vecs {nr_vecs} > BIO_MAX_VECS")
    full, rest = divmod(length, folio_size)
    vecs = _BvecList()
    if full:
        vecs.add((0, 0), folio_size, full, stride_runs=0)
    if rest:
        vecs.add((0, 0), rest)
    if vecs.vcnt > nr_vecs:
        raise ValueError("bio_add_folio_nofail() past nr_vecs")
    return vecs.bio(length)
