"""Requests inside a plug: which bios become requests and which merge into one.

Rules (kernel 6.18, block/blk-mq.c and block/blk-merge.c):

* blk_mq_submit_bio(): a bio is split first (__bio_split_to_limits()); then a mergeable bio
  is offered to the plug: blk_attempt_plug_merge() tries only the request at the tail of
  the plug list (one queue); otherwise it becomes a new request added at the tail.
* Split front pieces carry REQ_NOMERGE: they neither merge nor accept merges
  (bio_mergeable(), rq_mergeable()). REQ_OP_WRITE_ZEROES requests never merge.
* ll_back_merge_fn(): no merge across a virt-boundary gap (req_gap_back_merge() /
  bio_will_gap()); none past blk_rq_get_max_sectors() (max_sectors, and the chunk); none
  past max_segments (ll_new_hw_segment()), the bio's segments added as they are. The last two
  also mark the request REQ_NOMERGE (req_set_nomerge()).
* queue/nomerges 2 (QUEUE_FLAG_NOMERGES): blk_mq_attempt_bio_merge() offers nothing to the
  plug. nomerges 1 (QUEUE_FLAG_NOXMERGES) only stops the elevator's merge lookups beyond its
  one-hit cache; the plug's tail back-merge is unchanged, so 0 and 1 count the same here.
* blk_add_rq_to_plug() flushes the plug at 32 requests or when its first request is 128 KiB
  or more, before adding the new one. The new request always stays, so the tail a bio is
  offered to is always the request made just before it: flushes do not change the counts.
  A task that sleeps between two bios would flush the plug from schedule(); neither path
  modelled here sleeps there (zero pages are pre-faulted; cond_resched() does not flush).
"""

from __future__ import annotations

from .._record import record, replace
from .accounting import bio_accounting
from .bio import Bio, Phys
from .limits import SECTOR_SIZE, QueueLimits
from .split import Split


@record(frozen=True)
class Tail:
    """The request at the tail of the plug, as far as merging cares."""

    mergeable: bool
    size: int
    segments: int
    first_offset: int
    last_end: Phys
    chunk_phase: int  # its start sector modulo chunk_sectors (0 without chunks)


def _will_gap(tail: Tail, bio: Bio, lim: QueueLimits) -> bool:
    """bio_will_gap(): would appending ``bio`` to the tail request leave a virt-boundary gap?"""
    mask = lim.virt_boundary_mask
    if not mask or bio.write_zeroes:
        return False
    if tail.first_offset & mask:
        return True
    if tail.last_end == bio.first:  # biovec_phys_mergeable()
        return False
    return bool((bio.first[1] & mask) or (tail.last_end[1] & mask))


def submit(tail: Tail | None, bio: Bio, split: Split, sector: int,
           lim: QueueLimits) -> tuple[Tail | None, int, int]:
    """Submit ``bio`` (already split as ``split``) at ``sector``: (new tail, requests, merges).

    On a bio-based device there is no plug of requests: the driver's accounting decides what
    one bio counts (:mod:`.accounting`), and nothing merges.
    """
    if lim.bio_based:
        acct = bio_accounting(lim)
        if acct is None:
            return None, split.pieces, 0  # not known: the callers report that, not this number
        if bio.write_zeroes and not acct.counts_write_zeroes:
            return None, 0, 0
        return None, split.pieces if acct.splits else 1, 0
    offered = (split.pieces == 1 and tail is not None and tail.mergeable and not bio.write_zeroes
               and lim.nomerges < 2)
    if offered and tail is not None and not _will_gap(tail, bio, lim):
        max_sectors = lim.max_sectors
        if lim.chunk_sectors:
            max_sectors = min(max_sectors, lim.chunk_sectors - tail.chunk_phase)
        if (tail.size + bio.size) // SECTOR_SIZE > max_sectors or \
                tail.segments + split.segments > lim.max_segments:
            tail = replace(tail, mergeable=False)
        else:
            return replace(tail, size=tail.size + bio.size, segments=tail.segments + split.segments,
                           last_end=bio.last_end), 0, 1
    last = split.last
    start = sector + (bio.size - last.size) // SECTOR_SIZE
    phase = start % lim.chunk_sectors if lim.chunk_sectors else 0
    new_tail = Tail(not bio.write_zeroes, last.size, last.segments, last.first_offset, last.last_end, phase)
    return new_tail, split.pieces, 0
