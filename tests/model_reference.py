"""A naive reference of the block-layer rules: one object per bvec, the kernel's loops as written.

It shares no code with largezero.model.{bio,split,plug,run}, which are run-length and
fast-forward; the property tests check that both agree. Only fit for small lengths.
"""

from __future__ import annotations

from dataclasses import dataclass

UINT_MAX = 2**32 - 1
BIO_MAX_VECS = 256


@dataclass
class Lim:
    lbs: int
    pbs: int
    max_sectors: int
    max_segments: int
    max_segment_size: int
    seg_boundary_mask: int
    virt_boundary_mask: int
    chunk_sectors: int
    page: int
    nomerges: int = 0


@dataclass
class Bvec:
    run: int  # which physical run (folio); runs are never adjacent to each other
    off: int  # offset inside the run
    len: int


def _ceil(a: int, b: int) -> int:
    return (a + b - 1) // b


def _add(bvecs: list[Bvec], run: int, off: int, length: int, max_vecs: int) -> bool:
    """bio_add_page(): merge when physically contiguous, else a new bvec if there is room."""
    if bvecs and bvecs[-1].run == run and bvecs[-1].off + bvecs[-1].len == off:
        bvecs[-1].len += length
        return True
    if len(bvecs) >= max_vecs:
        return False
    bvecs.append(Bvec(run, off, length))
    return True


def zero_pages(length: int, folio: int, page: int) -> list[list[Bvec]]:
    """__blkdev_issue_zero_pages() with a folio of ``folio`` bytes (always run 0)."""
    bios = []
    left = length
    while left:
        nr_vecs = min(_ceil(left, page), BIO_MAX_VECS)
        bvecs: list[Bvec] = []
        size = 0
        while left:
            n = min(folio, left)
            if size + n > UINT_MAX or not _add(bvecs, 0, 0, n, nr_vecs):
                break
            size += n
            left -= n
        bios.append(bvecs)
    return bios


def dio(iovecs: list[int], run: int, same_page: bool, page: int, lbs: int) -> list[list[Bvec]]:
    """__blkdev_direct_IO() + bio_iov_iter_get_pages(), page by page."""
    bios = []
    i = p = 0
    while i < len(iovecs):
        npages = _ceil(p % page + iovecs[i] - p, page) + sum(_ceil(n, page) for n in iovecs[i + 1:])
        max_vecs = min(npages, BIO_MAX_VECS)
        bvecs: list[Bvec] = []
        size = 0
        while i < len(iovecs) and len(bvecs) < max_vecs:
            maxsize = min(iovecs[i] - p, UINT_MAX - size)
            pages = min(_ceil(p % page + maxsize, page), max_vecs - len(bvecs))
            got = min(maxsize, pages * page - p % page)
            got -= got % lbs
            if got <= 0:
                break
            a = p
            while a < p + got:
                n = min(page - a % page, p + got - a)
                r = 0 if same_page else a // run
                assert _add(bvecs, r, a % run, n, max_vecs)
                a += n
            size += got
            p += got
            if p == iovecs[i]:
                i, p = i + 1, 0
        bios.append(bvecs)
    return bios


def max_io_sectors(sector: int, lim: Lim) -> int:
    pbs, lbs = lim.pbs // 512, lim.lbs // 512
    max_sectors = lim.max_sectors
    if lim.chunk_sectors:
        max_sectors = min(max_sectors, lim.chunk_sectors - sector % lim.chunk_sectors)
    start = sector % pbs
    end = (start + max_sectors) // pbs * pbs
    return end - start if end > start else max_sectors // lbs * lbs


def split(bvecs: list[Bvec], sector: int, lim: Lim) -> list[tuple[int, int, Bvec]]:
    """bio_split_rw() until done: (bytes, segments, first bvec) of every piece."""
    vm, bmask, mseg = lim.virt_boundary_mask, lim.seg_boundary_mask, lim.max_segment_size
    cur = [Bvec(b.run, b.off, b.len) for b in bvecs]
    k = 0
    pieces = []
    while True:
        max_bytes = max_io_sectors(sector, lim) * 512
        nsegs = nbytes = 0
        prev: Bvec | None = None
        cut = False
        for b in cur[k:]:
            if prev is not None and vm and ((b.off & vm) or ((prev.off + prev.len) & vm)):
                cut = True
                break
            if nsegs < lim.max_segments and nbytes + b.len <= max_bytes and \
                    b.off + b.len <= min(lim.page, mseg):
                nsegs += 1
                nbytes += b.len
            else:
                max_len = max_bytes - nbytes
                left = min(b.len, max_len)
                total = 0
                while left and nsegs < lim.max_segments:
                    addr = b.off + total
                    seg = min(left, bmask - (addr & bmask) + 1, mseg)
                    nsegs += 1
                    total += seg
                    left -= seg
                    if (b.off + total) & vm:
                        break
                nbytes += total
                if left > 0 or b.len > max_len:
                    cut = True
                    break
            prev = b
        first = cur[k]
        if not cut:
            pieces.append((nbytes, nsegs, first))
            return pieces
        nbytes -= nbytes % lim.lbs
        if nbytes == 0:
            raise ValueError("a piece of less than a logical block: -EINVAL")
        pieces.append((nbytes, nsegs, first))
        sector += nbytes // 512
        left = nbytes
        while left:
            b = cur[k]
            if left >= b.len:
                left -= b.len
                k += 1
            else:
                cur[k] = Bvec(b.run, b.off + left, b.len - left)
                left = 0


@dataclass
class Request:
    mergeable: bool
    sector: int
    size: int
    segments: int
    first: Bvec
    last: Bvec


def submit_all(bios: list[list[Bvec]], sector: int, lim: Lim) -> dict[str, int]:
    """Split, then merge into the plug's tail request where ll_back_merge_fn() allows."""
    out = {"bios": 0, "bvecs": 0, "segments": 0, "requests": 0, "merges": 0}
    tail: Request | None = None
    vm = lim.virt_boundary_mask
    for bvecs in bios:
        size = sum(b.len for b in bvecs)
        pieces = split(bvecs, sector, lim)
        out["bios"] += 1
        out["bvecs"] += len(bvecs)
        out["segments"] += sum(s for _, s, _ in pieces)
        merged = False
        if lim.nomerges < 2 and len(pieces) == 1 and tail is not None and tail.mergeable:
            first, last = bvecs[0], tail.last
            gap = bool(vm) and (
                bool(tail.first.off & vm)
                or (not (last.run == first.run and last.off + last.len == first.off)
                    and bool((first.off & vm) or ((last.off + last.len) & vm))))
            if not gap:
                limit = lim.max_sectors
                if lim.chunk_sectors:
                    limit = min(limit, lim.chunk_sectors - tail.sector % lim.chunk_sectors)
                if (tail.size + size) // 512 > limit or tail.segments + pieces[0][1] > lim.max_segments:
                    tail.mergeable = False
                else:
                    tail.size += size
                    tail.segments += pieces[0][1]
                    tail.last = bvecs[-1]
                    out["merges"] += 1
                    merged = True
        if not merged:
            out["requests"] += len(pieces)
            nbytes, nsegs, first_bvec = pieces[-1]
            tail = Request(True, sector + (size - nbytes) // 512, nbytes, nsegs, first_bvec, bvecs[-1])
        sector += size // 512
    return out


def iomap_dio_write(offset: int, length: int, file_size: int, extent: str, bs: int, lim: Lim
                    ) -> tuple[list[list[Bvec]], int]:
    """The bios of one O_DIRECT write on iomap (6.18, private 64 KiB zero page), walked block by
    block: (bios in submission order, start sector). EOF zeroing is left out (the model's
    eof_* fields cover it); the user's pages are runs 100, 101, ... never adjacent."""
    end = offset + length
    zeroout = extent in ("hole", "unwritten")
    bios: list[list[Bvec]] = []
    first = offset - offset % bs
    if zeroout and offset > first:
        if offset - first > 65536:
            raise ValueError("EINVAL")
        bios.append([Bvec(7, 0, offset - first)])
    # The data: one bio per BIO_MAX_VECS pages of a page-aligned buffer.
    pages = [Bvec(100 + i, 0, min(lim.page, length - i * lim.page)) for i in range(_ceil(length, lim.page))]
    for i in range(0, len(pages), BIO_MAX_VECS):
        bios.append(pages[i:i + BIO_MAX_VECS])
    block_end = _ceil(end, bs) * bs
    if (zeroout or end >= file_size) and block_end > end:
        if block_end - end > 65536:
            raise ValueError("EINVAL")
        bios.append([Bvec(7, 0, block_end - end)])
    return bios, (first if bios[0][0].run == 7 else offset) % bs // 512
