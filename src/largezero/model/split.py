"""Splitting a bio to the queue limits: bio_split_rw() and the segment walk (block/blk-merge.c).

Rules (kernel 6.18):

* get_max_io_size(): a piece is at most ``max_sectors`` (and what is left of the current
  ``chunk_sectors`` chunk), with its end rounded down to the physical block size relative to
  the bio's start sector (falling back to the logical block size).
* bio_split_rw_at(): walk the bvecs (bio_for_each_bvec(): multi-page bvecs). A bvec that
  would open a virt-boundary gap with the previous one (bvec_gap_to_prev()) ends the piece.
  Otherwise bvec_split_segs() cuts it into segments of at most ``max_segment_size`` bytes
  that do not cross ``seg_boundary_mask`` (get_max_segment_size()), stops at
  ``max_segments`` segments or ``max_bytes``, and after a segment ending off the virt
  boundary. Segments never continue across bvecs: each bvec starts a new one.
* On a split the size is rounded down to the logical block size (bio_split_alignment()).
  The front piece is submitted with REQ_NOMERGE (bio_submit_split()); the remainder goes
  round again and the last remainder is an ordinary, mergeable bio.

The walk is run-length: whole identical bvecs are taken in one step, and a split that repeats
with the same phase inside a run of identical bvecs is fast-forwarded.
"""

from __future__ import annotations

import functools

from .._record import record
from .bio import Bio, BvecRun, Phys
from .limits import SECTOR_SIZE, QueueLimits


@record(frozen=True)
class Piece:
    """One request-sized piece of a bio."""

    size: int
    segments: int
    first_offset: int  # offset of its first bvec inside its physical run
    last_end: Phys


@record(frozen=True)
class Split:
    """What bio_split_rw() makes of one bio: ``pieces`` requests' worth, ``segments`` in all.

    All pieces but ``last`` carry REQ_NOMERGE; ``last`` is the mergeable remainder (the whole
    bio when ``pieces`` is 1).
    """

    pieces: int
    segments: int
    last: Piece


def get_max_io_size(sector: int, lim: QueueLimits) -> int:
    """get_max_io_size(): the most sectors a piece starting at ``sector`` may have."""
    pbs = lim.physical_block_size // SECTOR_SIZE
    lbs = lim.logical_block_size // SECTOR_SIZE
    max_sectors = lim.max_sectors
    if lim.chunk_sectors:
        max_sectors = min(max_sectors, lim.chunk_sectors - sector % lim.chunk_sectors)
    start = sector & (pbs - 1)
    end = (start + max_sectors) & ~(pbs - 1)
    if end > start:
        return end - start
    return max_sectors & ~(lbs - 1)


def _gap(prev_end: int, offset: int, lim: QueueLimits) -> bool:
    """bvec_gap_to_prev(): would a bvec at ``offset`` after one ending at ``prev_end`` gap?"""
    mask = lim.virt_boundary_mask
    return bool(mask and ((offset & mask) or (prev_end & mask)))


def _regular(offset: int, lim: QueueLimits) -> bool:
    """Whether no segment of a bvec at ``offset`` can end off the virt boundary mid-bvec."""
    mask = lim.virt_boundary_mask
    boundary = lim.seg_boundary_mask + 1
    return not mask or not (offset & mask or lim.max_segment_size & mask or boundary <= mask)


def _segments_to_cover(offset: int, length: int, lim: QueueLimits) -> int:
    """Segments get_max_segment_size() cuts [offset, offset + length) into."""
    boundary, seg = lim.seg_boundary_mask + 1, lim.max_segment_size
    first = min(length, boundary - offset % boundary)
    n = -(-first // seg)
    rest = length - first
    full, tail = divmod(rest, boundary)
    return n + full * -(-boundary // seg) + -(-tail // seg)


def _bytes_in_segments(offset: int, n: int, lim: QueueLimits) -> int:
    """Bytes covered by the first ``n`` segments from ``offset`` (fewer than the bvec needs)."""
    boundary, seg = lim.seg_boundary_mask + 1, lim.max_segment_size
    first = boundary - offset % boundary
    in_first = -(-first // seg)
    if n <= in_first:
        return min(n * seg, first)
    n -= in_first
    per = -(-boundary // seg)
    full, n = divmod(n, per)
    return first + full * boundary + n * seg


def bvec_split_segs(offset: int, length: int, seg_room: int, byte_room: int,
                    lim: QueueLimits) -> tuple[int, int, bool]:
    """bvec_split_segs(): (segments, bytes) of one bvec that fit, and whether it must split."""
    take = min(length, byte_room)
    if _regular(offset, lim):
        need = _segments_to_cover(offset, take, lim)
        if need <= seg_room:
            return need, take, length > byte_room
        if seg_room <= 0:
            return 0, 0, True
        return seg_room, _bytes_in_segments(offset, seg_room, lim), True
    # Irregular virt boundary: the kernel's loop, one segment at a time (bounded by seg_room).
    boundary, mask = lim.seg_boundary_mask + 1, lim.virt_boundary_mask
    n = total = 0
    while take and n < seg_room:
        at = offset + total
        seg = min(take, boundary - at % boundary, lim.max_segment_size)
        n += 1
        total += seg
        take -= seg
        if (offset + total) & mask:
            break
    return n, total, take > 0 or length > byte_room


@record
class _Walk:
    """Position in a bio: bvec ``j`` of run ``r``, ``d`` bytes into it."""

    r: int = 0
    j: int = 0
    d: int = 0

    def advance(self, runs: tuple[BvecRun, ...], nbytes: int) -> None:
        while nbytes:
            run = runs[self.r]
            left_in_bvec = run.length - self.d
            if nbytes < left_in_bvec:
                self.d += nbytes
                return
            nbytes -= left_in_bvec
            self.d = 0
            self.j += 1
            whole = min(nbytes // run.length, run.count - self.j)
            self.j += whole
            nbytes -= whole * run.length
            if self.j == run.count:
                self.r, self.j = self.r + 1, 0


def _piece(runs: tuple[BvecRun, ...], at: _Walk, max_bytes: int,
           lim: QueueLimits) -> tuple[int, int, bool, int, int]:
    """One pass of bio_split_rw_at() from ``at``: (bytes, segments, split?, reach run, reach bvec).

    ``reach`` is the last bvec looked at, which bounds fast-forwarding.
    """
    nsegs = nbytes = 0
    prev_end: int | None = None
    r, j, d = at.r, at.j, at.d
    max_segs = lim.max_segments

    def one(offset: int, length: int) -> bool:
        nonlocal nsegs, nbytes, prev_end
        if prev_end is not None and _gap(prev_end, offset, lim):
            return True
        segs, used, split = bvec_split_segs(offset, length, max_segs - nsegs, max_bytes - nbytes, lim)
        nsegs += segs
        nbytes += used
        prev_end = offset + length
        return split

    while r < len(runs):
        run = runs[r]
        if d:
            if one(run.offset + d, run.length - d):
                return nbytes, nsegs, True, r, j
            j, d = j + 1, 0
        left = run.count - j
        if left <= 0:
            r, j = r + 1, 0
            continue
        if (prev_end is None or not _gap(prev_end, run.offset, lim)) and _regular(run.offset, lim):
            # Whole identical bvecs in one step, while they fit entirely.
            per_segs = _segments_to_cover(run.offset, run.length, lim)
            fit = min(left, (max_segs - nsegs) // per_segs, (max_bytes - nbytes) // run.length)
            if fit > 1 and _gap(run.offset + run.length, run.offset, lim):
                fit = 1
            if fit > 0:
                nsegs += fit * per_segs
                nbytes += fit * run.length
                prev_end = run.offset + run.length
                j += fit
                left -= fit
                if left == 0:
                    r, j = r + 1, 0
                    continue
        if one(run.offset, run.length):
            return nbytes, nsegs, True, r, j
        j += 1
        if j == run.count:
            r, j = r + 1, 0
    return nbytes, nsegs, False, r, j


def _period(lim: QueueLimits) -> int:
    pbs = lim.physical_block_size // SECTOR_SIZE
    if not lim.chunk_sectors:
        return pbs
    a, b = pbs, lim.chunk_sectors
    while b:
        a, b = b, a % b
    return pbs * lim.chunk_sectors // a


@functools.lru_cache(maxsize=65536)
def split_bio(bio: Bio, sector_phase: int, lim: QueueLimits) -> Split:
    """bio_split_rw() applied until nothing is left: the pieces of ``bio``.

    ``sector_phase`` is the bio's start sector modulo :func:`sector_period`, all the split
    depends on. Write-zeroes bios are already within max_write_zeroes_sectors
    (bio_split_write_zeroes()) and carry no segments.
    """
    if bio.write_zeroes:
        return Split(1, 0, Piece(bio.size, 0, 0, bio.last_end))
    runs = bio.runs
    period = _period(lim)
    lbs = lim.logical_block_size
    far = 1 << 62
    at = _Walk()
    sector = sector_phase
    pieces = segments = 0
    # Fast-forwarding: piece starts by (run, offset in bvec, sector phase), and how far each
    # piece looked, so that a repeat is only skipped while it stays inside the same run.
    starts: dict[tuple[int, int, int], tuple[int, int, int, int, int]] = {}
    reaches: list[int] = []
    while True:
        first_offset = runs[at.r].offset + at.d
        start_r = at.r
        max_bytes = get_max_io_size(sector, lim) * SECTOR_SIZE
        nbytes, nsegs, split, reach_r, reach_j = _piece(runs, at, max_bytes, lim)
        if not split:
            return Split(pieces + 1, segments + nsegs, Piece(nbytes, nsegs, first_offset, bio.last_end))
        nbytes -= nbytes % lbs
        if nbytes <= 0:
            raise ValueError("bio_split_rw_at(): a piece smaller than a logical block (-EINVAL)")
        pieces += 1
        segments += nsegs
        at.advance(runs, nbytes)
        sector += nbytes // SECTOR_SIZE
        reaches.append(reach_j if reach_r == start_r else far)
        key = (at.r, at.d, sector % period)
        if key not in starts:
            starts[key] = (at.j, pieces, segments, sector, len(reaches))
            continue
        j0, p0, s0, sec0, k = starts[key]
        step = at.j - j0
        reach = max(reaches[k:])
        if step > 0 and reach < far:
            cycles = (runs[at.r].count - 1 - reach) // step
            if cycles > 0:
                pieces += cycles * (pieces - p0)
                segments += cycles * (segments - s0)
                sector += cycles * (sector - sec0)
                at.j += cycles * step
        starts.clear()
        reaches.clear()


def sector_period(lim: QueueLimits) -> int:
    """The split of a bio depends on its start sector only modulo this many sectors."""
    return _period(lim)
