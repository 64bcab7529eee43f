"""One O_DIRECT write on an iomap filesystem, of any length: a write longer than one call moves
is modelled as the calls the kernel makes (``model_long_write``); ``compare_dio_write`` runs
one write under every zero source."""

from __future__ import annotations

from collections.abc import Sequence

from ..engine.plan import MAX_RW_COUNT
from .iomap import DioWrite, model_dio_write
from .limits import SECTOR_SIZE, QueueLimits
from .mapped import WRITTEN, Mapping, model_file_write
from .run import Counts, SourceResult
from .sources import SOURCE_NAMES, ZeroSource, iomap_618_source, make_source
from .split import sector_period


def model_write(lim: QueueLimits, w: DioWrite, source: ZeroSource, kernel: str,
                page_size: int | None = None) -> SourceResult:
    """:func:`.iomap.model_dio_write`, or the kernel's calls for a write longer than one call moves."""
    if w.length > MAX_RW_COUNT:
        return model_long_write(lim, w, source, kernel, page_size or source.page_size)
    return model_dio_write(lim, w, source, kernel, page_size)


def model_long_write(lim: QueueLimits, w: DioWrite, zero: ZeroSource, kernel: str, page: int) -> SourceResult:
    """A write longer than one call moves, as the kernel splits it: rw_verify_area() cuts each
    call to MAX_RW_COUNT and returns a short count, and the caller writes the rest in the next
    call, each a write of its own under its own plug. After a call, its blocks are written
    (the last one padded), so the next call starts in a written block, then the blocks still
    in the write's first state. The file is one run on the disk, as for one write."""
    bs = w.block_size
    first = w.offset - w.offset % bs
    period = bs * sector_period(lim) * SECTOR_SIZE  # a multiple of both: the call repeats with it
    memo: dict[tuple[int, int, bool], tuple[tuple[int, ...], int]] = {}
    counts, sectors, calls = Counts(), 0, 0
    size = w.file_size
    pos, end = w.offset, w.end
    head: SourceResult | None = None
    got: tuple[tuple[int, ...], int]
    while pos < end:
        n = min(MAX_RW_COUNT, end - pos)
        if pos == w.offset:
            r = head = model_dio_write(lim, DioWrite(pos, n, size, w.extent, bs), zero, kernel, page)
            if r.counts is None:
                return r
            got = (r.counts.vector(), int(r.extra["sectors"]))  # type: ignore[call-overload]
        else:
            key = (pos % period, n, pos >= size)
            if key not in memo:
                done = -(-pos // bs) * bs
                last = -(-end // bs) * bs
                # Written blocks after written blocks, contiguous on the disk, are one extent.
                maps = [Mapping(first, last - first, WRITTEN, first)] if w.extent == WRITTEN else \
                    [Mapping(first, done - first, WRITTEN, first), Mapping(done, last - done, w.extent, done)]
                r = model_file_write(lim, maps, pos, n, size, bs, zero, kernel, page)
                if r.counts is None:
                    return r
                memo[key] = (r.counts.vector(), int(r.extra["sectors"]))  # type: ignore[call-overload]
            got = memo[key]
        counts.add(got[0])
        sectors += got[1]
        calls += 1
        size = max(size, pos + n)
        pos += n
    assert head is not None
    extra = dict(head.extra, sectors=sectors, calls=calls)
    return SourceResult(head.source, "iomap", w.length, counts, f"{calls} calls of at most MAX_RW_COUNT, each "
                        "iomap_dio_rw", block_size=bs, kernel=kernel, extra=extra)


def compare_dio_write(lim: QueueLimits, w: DioWrite, sources: Sequence[ZeroSource] | None = None,
                      page_size: int | None = None) -> list[SourceResult]:
    """The 6.18 private 64 KiB page, then every source under 6.19 rules, for one write."""
    chosen = list(sources) if sources else [make_source(n, page_size) for n in SOURCE_NAMES]
    page = page_size or chosen[0].page_size
    out = [model_write(lim, w, iomap_618_source(page), "6.18", page)]
    out.extend(model_write(lim, w, s, "6.19", page) for s in chosen)
    return out
