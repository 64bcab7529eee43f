"""The block-layer model: bios, bvecs, segments and device requests for zeroing a range.

Three paths (see :mod:`.bio`, :mod:`.split`, :mod:`.plug` for the rules):

``kernel``
    blkdev_issue_zeroout() (block/blk-lib.c), as BLKZEROOUT and ``blkdiscard -z`` reach it:
    REQ_OP_WRITE_ZEROES bios when the device has write-zeroes, else
    __blkdev_issue_zero_pages() with the zero source as its folio, all under one plug.
``direct``
    aligned pwritev calls of whole-buffer iovecs (:func:`model_calls`), each through
    __blkdev_direct_IO() (block/fops.c) under its own plug; a call completes before the next
    is issued, so nothing merges across calls. The engine's plan for a device (edges, iovec
    and call sizes) is priced from these rules by :mod:`.predict`.
``iomap``
    iomap_dio_zero() (fs/iomap/direct-io.c): the bio that zeroes the rest of a filesystem
    block around a sub-block O_DIRECT write (alone: :mod:`.iomap` models the whole write,
    pads and data in the kernel's order; :mod:`.mapped` a real file's several mappings).

Everything is run-length: identical calls, identical bios and identical bvecs are counted,
never enumerated, and repeating states are fast-forwarded, so a petabyte models at once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Sequence

from .._record import field, record
from ..engine.plan import CallRun, plan_calls
from .accounting import bio_accounting
from .bio import Bio, IovLayout, dio_bios, iomap_zero_bio, write_zeroes_bios, zero_pages_bios
from .limits import SECTOR_SIZE, QueueLimits
from .plug import Tail, submit
from .sources import DEFAULT_RULES, SOURCE_NAMES, ZeroSource, iomap_618_source, make_source
from .split import sector_period, split_bio

PATHS = ("kernel", "direct", "iomap")
IOMAP_BLOCK_SIZES = tuple(4096 << i for i in range(10))  # 4 KiB .. 2 MiB

TYPE_CHECKING = False  # not from typing: a file's job on a disk imports the model
if TYPE_CHECKING:
    from typing import TypeVar

    S = TypeVar("S", bound=Hashable)
_N = 5  # counters: bios, bvecs, segments, requests, merges


@record
class Counts:
    bios: int = 0
    bvecs: int = 0
    segments: int = 0
    requests: int = 0
    merges: int = 0

    def add(self, v: Sequence[int], times: int = 1) -> None:
        self.bios += v[0] * times
        self.bvecs += v[1] * times
        self.segments += v[2] * times
        self.requests += v[3] * times
        self.merges += v[4] * times

    def vector(self) -> tuple[int, int, int, int, int]:
        return (self.bios, self.bvecs, self.segments, self.requests, self.merges)


def repeat(n: int, state: S, step: Callable[[S], tuple[S, Sequence[int]]]) -> tuple[S, list[int]]:
    """Apply ``step`` ``n`` times from ``state``, summing its counters; cycles are skipped.

    ``step`` must depend on nothing but the state, so a state seen twice starts a cycle.
    """
    totals = [0] * _N
    seen: dict[S, int] = {}
    history: list[list[int]] = []
    i = 0
    while i < n:
        if state in seen:
            i0 = seen[state]
            length = i - i0
            cycles = (n - i) // length
            delta = [a - b for a, b in zip(totals, history[i0], strict=True)]
            totals = [t + cycles * d for t, d in zip(totals, delta, strict=True)]
            i += cycles * length
            seen.clear()
            history.clear()
            # What remains is shorter than a cycle: finish it step by step.
            while i < n:
                state, d = step(state)
                totals = [t + x for t, x in zip(totals, d, strict=True)]
                i += 1
            break
        seen[state] = i
        history.append(list(totals))
        state, d = step(state)
        totals = [t + x for t, x in zip(totals, d, strict=True)]
        i += 1
    return state, totals


def run_bios(groups: Sequence[tuple[Bio, int]], sector: int, lim: QueueLimits) -> tuple[list[int], int]:
    """Submit bios in order under one plug: counters and the sector after the last bio."""
    totals, sector, _ = run_bios_after(groups, sector, lim, None)
    return totals, sector


def run_bios_after(groups: Sequence[tuple[Bio, int]], sector: int, lim: QueueLimits, tail: Tail | None
                   ) -> tuple[list[int], int, Tail | None]:
    """:func:`run_bios` with ``tail`` already at the tail of the plug (the request the first bio
    may back-merge into: it must end at ``sector``); also returns the new tail."""
    period = sector_period(lim)
    totals = [0] * _N
    for bio, n in groups:
        sectors = bio.size // SECTOR_SIZE

        def step(state: tuple[int, Tail | None], bio: Bio = bio, sectors: int = sectors
                 ) -> tuple[tuple[int, Tail | None], tuple[int, int, int, int, int]]:
            phase, tail = state
            split = split_bio(bio, phase, lim)
            new_tail, requests, merges = submit(tail, bio, split, phase, lim)
            return ((phase + sectors) % period, new_tail), (1, bio.bvecs, split.segments, requests, merges)

        (_, tail), add = repeat(n, (sector % period, tail), step)
        totals = [t + a for t, a in zip(totals, add, strict=True)]
        sector += n * sectors
    return totals, sector, tail


@record(frozen=True)
class SourceResult:
    """The model's figures for one zero source on one path."""

    source: ZeroSource
    path: str
    length: int
    counts: Counts | None
    mechanism: str
    calls: int = 0
    iov_len: int = 0
    call_bytes: int = 0
    block_size: int = 0
    kernel: str = DEFAULT_RULES
    error: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return self.counts.requests if self.counts else 0

    @property
    def bytes_per_request(self) -> float:
        if not self.counts or not self.counts.requests:
            return 0.0
        return self.length / self.counts.requests

    def to_dict(self) -> dict[str, object]:
        c = self.counts
        d: dict[str, object] = {
            "source": self.source.name,
            "bios": c.bios if c else None,
            "bvecs": c.bvecs if c else None,
            "segments": c.segments if c else None,
            "requests": c.requests if c else None,
            "merges": c.merges if c else None,
            "bytes_per_request": round(self.bytes_per_request, 1) if c else None,
            "memory_cost": self.source.memory_cost,
            "length": self.length,
            "mechanism": self.mechanism,
            "kernel": self.kernel,
            "contiguity": self.source.contiguity,
            "buffer_size": self.source.buffer_size,
            "page_size": self.source.page_size,
        }
        if self.path == "direct":
            d.update(calls=self.calls, iov_len=self.iov_len, call_bytes=self.call_bytes)
        if self.path == "iomap":
            d["block_size"] = self.block_size
        if self.error:
            d["error"] = self.error
        d.update(self.extra)
        return d


def _check_aligned(what: str, value: int, align: int) -> None:
    if value % align:
        raise ValueError(f"{what} {value} is not a multiple of {align} bytes")


def model_kernel(lim: QueueLimits, length: int, source: ZeroSource, offset: int = 0,
                 write_zeroes: bool | None = None, write_zeroes_fails: bool = False) -> SourceResult:
    """blkdev_issue_zeroout() of [offset, offset+length) with ``source`` as the zero folio.

    ``write_zeroes`` None: as the kernel decides (write-zeroes when write_zeroes_max_bytes > 0);
    False: straight to the zero pages. ``write_zeroes_fails``: the device advertises
    write-zeroes but fails every such request (a loop device over tmpfs does, once): all the
    write-zeroes bios are issued and counted, then blkdev_issue_zeroout() falls back to
    zero pages on -EOPNOTSUPP.
    """
    _check_aligned("offset", offset, lim.logical_block_size)
    _check_aligned("length", length, lim.logical_block_size)
    use_wz = bool(lim.write_zeroes_max_bytes) if write_zeroes is None else write_zeroes
    if use_wz and not lim.write_zeroes_max_bytes:
        raise ValueError("device has no write-zeroes")
    start = lim.partition_start + offset // SECTOR_SIZE
    counts = Counts()
    mechanisms = []
    if use_wz:
        totals, _ = run_bios(write_zeroes_bios(length, lim), start, lim)
        counts.add(totals)
        mechanisms.append("REQ_OP_WRITE_ZEROES")
    if not use_wz or write_zeroes_fails:
        totals, _ = run_bios(zero_pages_bios(length, source.folio_size, source.page_size), start, lim)
        counts.add(totals)
        mechanisms.append("__blkdev_issue_zero_pages")
    # Failed write-zeroes requests are accounted too (blk_update_request() counts any completion);
    # a bio-based driver may not account write-zeroes at all (zram).
    acct = bio_accounting(lim)
    counted = [m for m in mechanisms if acct is None or acct.counts_write_zeroes or m != "REQ_OP_WRITE_ZEROES"]
    sectors = len(counted) * length // SECTOR_SIZE
    return SourceResult(source, "kernel", length, counts, " then ".join(mechanisms), extra={"sectors": sectors})


@functools.lru_cache(maxsize=1024)
def _call_counts(layout: IovLayout, source: ZeroSource, phase: int, lim: QueueLimits) -> tuple[int, ...]:
    groups = dio_bios(layout, source, lim.logical_block_size)
    totals, _ = run_bios(groups, phase, lim)
    return tuple(totals)


def direct_calls(runs: Sequence[CallRun], lim: QueueLimits, source: ZeroSource) -> Counts:
    """The counters of runs of O_DIRECT pwritev calls, each through __blkdev_direct_IO() under its
    own plug (a call completes before the next is issued, so nothing merges across calls)."""
    period = sector_period(lim)
    counts = Counts()
    for run in runs:
        layout = IovLayout(run.full_iovecs, run.iov_len, run.last_iov_len)
        sectors = run.call_bytes // SECTOR_SIZE

        def step(phase: int, layout: IovLayout = layout, sectors: int = sectors
                 ) -> tuple[int, tuple[int, ...]]:
            return (phase + sectors) % period, _call_counts(layout, source, phase, lim)

        _, totals = repeat(run.calls, (lim.partition_start + run.offset // SECTOR_SIZE) % period, step)
        counts.add(totals)
    return counts


def model_calls(lim: QueueLimits, length: int, source: ZeroSource, offset: int = 0,
                 call_size: int | None = None) -> SourceResult:
    """Aligned O_DIRECT pwritev calls of whole-``source`` iovecs through __blkdev_direct_IO(): the
    rule itself, for hypothetical calls. What ``largezero zero --direct`` does on a device (its
    edges, the iovec and call sizes it picks) is the engine's plan, priced by
    :func:`.predict.model_plan`."""
    align = lim.dio_align
    _check_aligned("offset", offset, align)
    _check_aligned("length", length, align)
    runs = plan_calls(offset, length, source.buffer_size, call_size, align)
    counts = direct_calls(runs, lim, source)
    calls = sum(run.calls for run in runs)
    first = runs[0] if runs else None
    return SourceResult(source, "direct", length, counts, "pwritev O_DIRECT", calls=calls,
                        iov_len=first.iov_len if first else source.buffer_size,
                        call_bytes=first.call_bytes if first else 0, extra={"sectors": length // SECTOR_SIZE})


def model_iomap(lim: QueueLimits, source: ZeroSource, block_size: int, length: int | None = None,
                kernel: str = DEFAULT_RULES) -> SourceResult:
    """iomap_dio_zero() for a ``block_size`` filesystem block: the zeroing bio of ``length`` bytes.

    Default ``length``: block_size - logical_block_size, the padding of a one-sector O_DIRECT
    write into a new block. ``kernel`` "6.18" uses the private 64 KiB zero page, "6.19"
    largest_zero_folio(), here ``source``.
    """
    pad = block_size - lim.logical_block_size if length is None else length
    if pad <= 0 or pad >= block_size:
        raise ValueError(f"padding must be between 1 and {block_size - 1} bytes for a {block_size}-byte block")
    _check_aligned("padding", pad, lim.logical_block_size)
    try:
        bio = iomap_zero_bio(pad, block_size, source.folio_size, kernel)
    except ValueError as err:
        return SourceResult(source, "iomap", pad, None, "iomap_dio_zero", block_size=block_size,
                            kernel=kernel, error=str(err))
    counts = Counts()
    totals, _ = run_bios([(bio, 1)], lim.partition_start, lim)
    counts.add(totals)
    return SourceResult(source, "iomap", pad, counts, "iomap_dio_zero", block_size=block_size, kernel=kernel,
                        extra={"sectors": pad // SECTOR_SIZE})


def model(path: str, lim: QueueLimits, source: ZeroSource, length: int, *, offset: int = 0,
          call_size: int | None = None, block_size: int | None = None,
          write_zeroes: bool | None = None, write_zeroes_fails: bool = False,
          kernel: str = DEFAULT_RULES) -> SourceResult:
    """One source on one path."""
    if path == "kernel":
        return model_kernel(lim, length, source, offset, write_zeroes, write_zeroes_fails)
    if path == "direct":
        return model_calls(lim, length, source, offset, call_size)
    if path == "iomap":
        return model_iomap(lim, source, block_size or 65536, length or None, kernel)
    raise ValueError(f"unknown path '{path}' (expected one of {', '.join(PATHS)})")


def compare(path: str, lim: QueueLimits, length: int, sources: Sequence[ZeroSource] | None = None, *,
            offset: int = 0, call_size: int | None = None, block_sizes: Sequence[int] | None = None,
            write_zeroes: bool | None = None, write_zeroes_fails: bool = False,
            page_size: int | None = None) -> list[SourceResult]:
    """Every source (default: all four) side by side on one path.

    For ``iomap`` each block size gets every source under 6.19 rules plus the 6.18 private
    64 KiB page; ``length`` is then the padding (0: block size minus one logical block).
    """
    chosen = list(sources) if sources else [make_source(n, page_size) for n in SOURCE_NAMES]
    if path != "iomap":
        return [model(path, lim, s, length, offset=offset, call_size=call_size, write_zeroes=write_zeroes,
                      write_zeroes_fails=write_zeroes_fails) for s in chosen]
    out: list[SourceResult] = []
    for bs in block_sizes or IOMAP_BLOCK_SIZES:
        if bs <= lim.logical_block_size:
            continue  # no write is smaller than a block: nothing to pad
        pad = min(length, bs - lim.logical_block_size) if length else None
        page = chosen[0].page_size
        out.append(model_iomap(lim, iomap_618_source(page), bs, pad, kernel="6.18"))
        out.extend(model_iomap(lim, s, bs, pad, kernel="6.19") for s in chosen)
    return out
