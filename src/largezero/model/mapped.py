"""O_DIRECT writes over a real file's mappings: what iomap (XFS, ext4) sends to the disk.

A file's blocks are mappings (FIEMAP): written, unwritten or a hole, each at a physical start
on the device. __iomap_dio_rw() walks the write one mapping at a time (iomap_iter()), and for
each runs iomap_dio_bio_iter() (fs/iomap/direct-io.c, 6.18):

* need_zeroout for a hole (the filesystem allocates it: IOMAP_F_NEW) or an unwritten mapping;
* head pad: iomap_dio_zero() of [block start, pos) when need_zeroout and pos is inside a block;
* the data bios: bio_iov_iter_get_pages() over the user's iterator, truncated to the mapping;
* tail pad: iomap_dio_zero() of [end, block end) when need_zeroout or the write reaches EOF
  (i_size before the write), and end is inside a block.

All mappings' bios go out under the one plug of __iomap_dio_rw(): a bio back-merges into the
request before it only when it starts on the disk where that request ends (blk_try_merge()),
so physically adjacent mappings merge as one run and others start a new request. A hole has
no physical start until the write allocates it. XFS first tries the blocks next to the file's
neighbouring extents (xfs_bmap_adjacent()); :func:`place_holes` puts the hole there when the
filesystem's space map (GETFSMAP) shows them free, and otherwise takes the new blocks to be
adjacent to nothing. That is the one assumption here: the allocator's first choice is taken
whenever it is free.

The EOF rules before the bios (xfs_file_write_zero_eof() and the EOF folio's writeback) are
:func:`.iomap.plan_dio_write`'s, with the EOF block's state read from its mapping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from .._record import record
from ..engine.plan import CallRun
from .bio import BIO_MAX_VECS, Bio, IovLayout, _dio_bio, dio_bios, iomap_zero_bio
from .iomap import DioWrite, _folio_bio, data_bios, plan_dio_write
from .limits import SECTOR_SIZE, QueueLimits
from .plug import Tail
from .run import Counts, SourceResult, run_bios_after
from .sources import ZeroSource, make_source

TYPE_CHECKING = False
if TYPE_CHECKING:
    pass

HOLE, UNWRITTEN, WRITTEN = "hole", "unwritten", "written"


@record(frozen=True)
class Mapping:
    """[offset, offset+length) of the file, its state, and where it starts on the device
    (bytes; None: not allocated, or not known)."""

    offset: int
    length: int
    kind: str
    physical: int | None = None

    @property
    def end(self) -> int:
        return self.offset + self.length

    def physical_at(self, pos: int) -> int | None:
        return None if self.physical is None else self.physical + pos - self.offset


def file_mappings(fd: int, offset: int, length: int, *, sync: bool = False) -> list[Mapping]:
    """The mappings over [offset, offset+length) from FIEMAP, holes included, clipped to the range.

    ``sync`` (FIEMAP_FLAG_SYNC) writes dirty pages back first, so delayed allocations have
    their blocks; without it such a range shows as written with no known physical start.
    """
    from ..syscalls import FIEMAP_EXTENT_DELALLOC, FIEMAP_EXTENT_UNKNOWN, FIEMAP_EXTENT_UNWRITTEN, FIEMAP_FLAG_SYNC, ops

    end = offset + length
    out: list[Mapping] = []
    pos = offset
    for e in ops.fiemap(fd, offset, length, flags=FIEMAP_FLAG_SYNC if sync else 0):
        a, b = max(e.logical, offset), min(e.logical + e.length, end)
        if b <= a:
            continue
        if a > pos:
            out.append(Mapping(pos, a - pos, HOLE))
        kind = UNWRITTEN if e.flags & FIEMAP_EXTENT_UNWRITTEN else WRITTEN
        unknown = e.flags & (FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC)
        out.append(Mapping(a, b - a, kind, None if unknown else e.physical + a - e.logical))
        pos = b
    if pos < end:
        out.append(Mapping(pos, end - pos, HOLE))
    return out


def pieces(mappings: Sequence[Mapping], start: int, end: int) -> Iterator[Mapping]:
    """The parts of the mappings inside [start, end), in file order."""
    for m in mappings:
        a, b = max(m.offset, start), min(m.end, end)
        if a < b:
            yield Mapping(a, b - a, m.kind, m.physical_at(a))


class Plug:
    """One plug's worth of bios on the disk: a bio continues the tail request only when it
    starts where that request ends on the disk."""

    def __init__(self, lim: QueueLimits) -> None:
        self.lim = lim
        self.tail: Tail | None = None
        self.end: int | None = None  # disk sector after the tail request
        self.counts = Counts()
        self.sectors = 0

    def submit(self, groups: Sequence[tuple[Bio, int]], physical: int) -> int:
        """Submit ``groups`` starting at byte ``physical`` of the device; the byte after them."""
        sector = self.lim.partition_start + physical // SECTOR_SIZE
        tail = self.tail if sector == self.end else None
        totals, after, self.tail = run_bios_after(groups, sector, self.lim, tail)
        self.counts.add(totals)
        self.sectors += after - sector
        self.end = after
        return physical + (after - sector) * SECTOR_SIZE


def _locate(layout: IovLayout, x: int) -> tuple[int, int]:
    """(iovec, byte in it) of byte ``x`` of the call."""
    whole = layout.full * layout.iov_len
    return (x // layout.iov_len, x % layout.iov_len) if x < whole else (layout.full, x - whole)


def call_part(layout: IovLayout, a: int, n: int) -> tuple[IovLayout, int]:
    """The iterator of bytes [a, a+n) of a call (iomap truncates it to one mapping): a layout
    and the byte of its first iovec it starts at (for :func:`.bio.dio_bios`)."""
    i, p = _locate(layout, a)
    j, q = _locate(layout, a + n)
    if i == j:
        return IovLayout(0, q, q), p
    if j <= layout.full:  # iovecs i..j-1 are whole-size, then q bytes of iovec j
        return IovLayout(j - i, layout.iov_len, q), p
    # The part runs to the call's end, through its short last iovec.
    if i == layout.full:
        return IovLayout(0, layout.last_len, layout.last_len), p
    return IovLayout(layout.full - i, layout.iov_len, layout.last_len), p


# Where the model puts a hole's new blocks on the disk: far from every mapping, on a block
# boundary (only the phase matters to the split, and nothing is adjacent to it).
_NOWHERE = 1 << 60


def _assume(m: Mapping, block_size: int) -> int:
    """Where a piece starts on the disk: known (or placed by :func:`place_holes`), else somewhere
    no other piece is."""
    return m.physical if m.physical is not None else _NOWHERE + m.offset % block_size


# xfs_bmap_adjacent(): a gap to a neighbour up to this many times the allocation is kept.
XFS_ALLOC_GAP_UNITS = 4


def adjacent_target(mappings: Sequence[Mapping], start: int, length: int) -> int | None:
    """Where XFS first tries to put ``length`` new bytes at file offset ``start``
    (xfs_bmap_adjacent()): at EOF of the extent list, as far past the previous extent as the
    file offsets are apart; before it, the better of that and the same from the next extent."""
    prev = next((m for m in reversed(mappings) if m.physical is not None and m.end <= start), None)
    got = next((m for m in mappings if m.physical is not None and m.offset >= start + length), None)
    if got is None:
        return None if prev is None else prev.physical + start - prev.offset  # type: ignore[operator]
    candidates = []
    if prev is not None:
        gap = start - prev.end
        end = prev.physical + prev.length  # type: ignore[operator]
        candidates.append((gap, end + gap) if gap <= XFS_ALLOC_GAP_UNITS * length else (2 * gap, end))
    gap = got.offset - start
    if gap <= XFS_ALLOC_GAP_UNITS * length and got.physical >= gap:  # type: ignore[operator]
        candidates.append((gap, got.physical - gap))  # type: ignore[operator]
    elif got.physical >= length:  # type: ignore[operator]
        candidates.append((2 * gap - length, got.physical - length))  # type: ignore[operator]
    # The previous extent's target wins a tie (prevdiff <= gotdiff).
    return min(candidates, key=lambda c: c[0])[1] if candidates else None


def place_holes(mappings: list[Mapping], offset: int, length: int, block_size: int,
                is_free: Callable[[int, int], bool] | None) -> list[Mapping]:
    """The mappings with each hole under the write placed where the allocator first tries, when
    ``is_free`` says that space is free (GETFSMAP); else left without a physical start."""
    first = offset - offset % block_size
    last = -(-(offset + length) // block_size) * block_size
    out = []
    for m in mappings:
        a, b = max(m.offset, first), min(m.end, last)
        if m.kind != HOLE or a >= b or is_free is None:
            out.append(m)
            continue
        target = adjacent_target(mappings, a, b - a)
        if target is None or not is_free(target, b - a):
            out.append(m)
            continue
        # The part under the write gets the blocks; the rest of the hole stays one.
        out.extend(k for k in (Mapping(m.offset, a - m.offset, HOLE), Mapping(a, b - a, HOLE, target),
                               Mapping(b, m.end - b, HOLE)) if k.length)
    return out


def free_space(fd: int) -> Callable[[int, int], bool] | None:
    """``is_free(physical, length)`` from the filesystem's space map, or None when it cannot be
    read (GETFSMAP needs CAP_SYS_ADMIN and a filesystem that has it: XFS, ext4)."""
    from ..syscalls import FMR_OWN_FREE, getfsmap

    try:
        getfsmap(fd, 0, 1)
    except OSError:
        return None

    def is_free(physical: int, length: int) -> bool:
        low = physical
        for _ in range(16):  # the records may start before the key: walk on to the one that holds it
            records = getfsmap(fd, low, 128)
            for phys, n, owner in records:
                if phys <= physical < phys + n:
                    return owner == FMR_OWN_FREE and physical + length <= phys + n
            if not records or records[-1][0] + records[-1][1] <= low:
                return False
            low = records[-1][0] + records[-1][1]
        return False

    return is_free


def overwrite_calls(runs: Sequence[CallRun], mappings: Sequence[Mapping], lim: QueueLimits,
                    source: ZeroSource) -> tuple[Counts, int] | str:
    """O_DIRECT pwritev calls from ``source`` over written mappings (an overwrite in place: no
    allocation, no padding), each call under its own plug; (counts, sectors), or why not."""
    counts, sectors = Counts(), 0
    for run in runs:
        layout = IovLayout(run.full_iovecs, run.iov_len, run.last_iov_len)
        for c in range(run.calls):
            start = run.offset + c * run.call_bytes
            plug = Plug(lim)
            for m in pieces(mappings, start, start + run.call_bytes):
                if m.kind != WRITTEN or m.physical is None:
                    return (f"bytes {m.offset}-{m.end - 1} are {m.kind if m.kind != WRITTEN else 'not yet allocated'}: "
                            "a write there allocates or converts blocks (model --path iomap --file)")
                part, p = call_part(layout, m.offset - start, m.length)
                plug.submit(dio_bios(part, source, lim.logical_block_size, p), m.physical)
            counts.add(plug.counts.vector())
            sectors += plug.sectors
    return counts, sectors


def user_data_bios(start: int, length: int, page: int, lbs: int) -> list[tuple[Bio, int]]:
    """Data bios of bytes [start, start+length) of a page-aligned user buffer whose pages are
    never physically adjacent, in closed form (see :func:`.iomap.data_bios`)."""
    if start % page == 0:
        return data_bios(length, page, lbs)
    src = make_source("allocated", page, contiguity=page, buffer_size=-(-(start + length) // page) * page)
    if length <= 3 * BIO_MAX_VECS * page:
        return dio_bios(IovLayout(0, start + length, start + length), src, lbs, start)
    first, _, _ = _dio_bio(0, start + length, start + length, start, page, False, page, lbs)
    return [(first, 1), *data_bios(length - first.size, page, lbs)]


def pads_and_data(mappings: Sequence[Mapping], offset: int, length: int, file_size: int, block_size: int,
                  lim: QueueLimits, zero: ZeroSource, kernel: str, page: int) -> tuple[Plug, list[dict[str, object]]]:
    """The bios of one O_DIRECT write under its plug, mapping by mapping; and the steps."""
    plug = Plug(lim)
    steps: list[dict[str, object]] = []
    bs, end = block_size, offset + length
    for m in pieces(mappings, offset, end):
        need_zeroout = m.kind in (HOLE, UNWRITTEN)
        at = _assume(m, bs)
        head = m.offset % bs if need_zeroout else 0
        if head:
            plug.submit([(iomap_zero_bio(head, bs, zero.folio_size, kernel), 1)], at - head)
            steps.append({"step": "head-pad", "offset": m.offset - head, "length": head, "kind": m.kind})
        after = plug.submit(user_data_bios(m.offset - offset, m.length, page, lim.logical_block_size), at)
        steps.append({"step": "data", "offset": m.offset, "length": m.length, "kind": m.kind,
                      "physical": m.physical})
        tail = (bs - m.end % bs) % bs if need_zeroout or m.end >= file_size else 0
        if tail:
            plug.submit([(iomap_zero_bio(tail, bs, zero.folio_size, kernel), 1)], after)
            steps.append({"step": "tail-pad", "offset": m.end, "length": tail, "kind": m.kind})
    return plug, steps


def model_file_write(lim: QueueLimits, mappings: Sequence[Mapping], offset: int, length: int, file_size: int,
                     block_size: int, zero: ZeroSource, kernel: str, page: int) -> SourceResult:
    """One O_DIRECT write of ``length`` bytes at ``offset`` into a file of ``file_size`` bytes
    whose mappings over the write's blocks (and its EOF block) are ``mappings``."""
    lbs, bs = lim.logical_block_size, block_size
    for what, value in (("offset", offset), ("length", length)):
        if value % lbs:
            raise ValueError(f"{what} {value} is not a multiple of the logical block size {lbs} (EINVAL)")
    eof_block = file_size - file_size % bs
    eof_kind = next((m.kind for m in mappings if m.offset <= eof_block < m.end), HOLE)
    # The EOF rules only need the EOF block's state: plan_dio_write() takes it as the extent.
    eof = plan_dio_write(DioWrite(offset, length, file_size, eof_kind, bs), page)
    counts, sectors = Counts(), 0
    steps: list[dict[str, object]] = []
    if eof.eof_writeback and eof_kind == WRITTEN:  # holes and unwritten blocks read as zeros: no zeroing
        start, n = eof.eof_writeback
        where = next((m.physical_at(start) for m in mappings if m.offset <= start < m.end), None)
        wb = Plug(lim)  # written back and waited for before the write's own plug
        folio = max(bs, page)
        wb.submit([(_folio_bio(start % folio, n), 1)], start % bs if where is None else where)
        counts.add(wb.counts.vector())
        sectors += wb.sectors
        steps.append({"step": "eof-writeback", "offset": start, "length": n, "bios": 1})
    try:
        plug, more = pads_and_data(mappings, offset, length, file_size, bs, lim, zero, kernel, page)
    except ValueError as err:
        return SourceResult(zero, "iomap", length, None, "iomap_dio_rw over the file's mappings", block_size=bs,
                            kernel=kernel, error=str(err))
    counts.add(plug.counts.vector())
    sectors += plug.sectors
    steps += more
    plan = eof.to_dict()
    plan.update(head_pad=None, tail_pad=None, mappings=[{"offset": m.offset, "length": m.length, "kind": m.kind,
                                                          "physical": m.physical} for m in mappings])
    return SourceResult(zero, "iomap", length, counts, "iomap_dio_rw over the file's mappings", block_size=bs,
                        kernel=kernel, extra={"sectors": sectors, "dio_write": plan, "steps": steps})
