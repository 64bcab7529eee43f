"""Cutting a write into pieces: O_DIRECT over whole page-cache granules, the page cache elsewhere.

For a write [offset, end) and page-cache granule ``C`` (max(DIO alignment, page size, and a
file's filesystem block when larger)):

```
  pad_from      g0   offset   a                        b    end   g1          pad_to
     | zero pad  |    | cache |   data (O_DIRECT)      | cache |    | zero pad  |
```

* ``cache``: the caller's bytes of a partial granule, exactly those bytes, as a buffered
  write: the kernel merges them into the page under its own folio lock, so bytes written next
  to the range by anyone else stay. No user-space read-modify-write.
* ``data``: the aligned middle, O_DIRECT; it never shares a page with a byte outside the range.
* ``zero``: padding from the shared zero buffer, only for an explicit block size larger than
  the granule, over whole granules that are holes or unwritten (``iomap_dio_zero()``).
"""

from __future__ import annotations

from .._record import record
from ..engine.edges import cut
from ..mm import ZeroBuffer

ZERO, DATA, CACHE = "zero", "data", "cache"


@record(frozen=True)
class Piece:
    start: int
    end: int
    kind: str  # ZERO, DATA or CACHE

    @property
    def length(self) -> int:
        return self.end - self.start


def round_down(x: int, a: int) -> int:
    return x - x % a


def round_up(x: int, a: int) -> int:
    return -(-x // a) * a


def iomap_dio_zero(zero: ZeroBuffer, length: int) -> list[memoryview]:
    """iovecs of ``length`` zero bytes, all pointing into the shared zero buffer (never copied)."""
    return zero.iovecs(length)


def plan_pieces(offset: int, end: int, granule: int, *, pad_from: int | None = None, pad_to: int | None = None,
                direct: bool = True) -> list[Piece]:
    """The pieces of [pad_from, pad_to) in target order.

    ``pad_from`` <= ``offset`` and ``pad_to`` >= ``end`` bound the zero padding (none when
    equal or None); they must lie on ``granule`` boundaries when they pad. Buffered
    (``direct=False``) the caller's bytes are one page-cache piece.
    """
    if end <= offset:
        return []
    g = granule
    pad_from = offset if pad_from is None else pad_from
    pad_to = end if pad_to is None else pad_to
    if (pad_from < offset and pad_from % g) or (pad_to > end and pad_to % g):
        raise ValueError(f"padding [{pad_from}, {pad_to}) is not on {g}-byte granules")
    pieces: list[Piece] = []

    def add(a: int, b: int, kind: str) -> None:
        if b > a:
            pieces.append(Piece(a, b, kind))

    add(pad_from, round_down(offset, g), ZERO)
    a, b = cut(offset, end, g)  # the engine's cut: the zeroing plan's edges are the same
    if not direct or a == b:
        add(offset, end, CACHE)  # no whole granule inside: every byte goes through the page cache
    else:
        add(offset, a, CACHE)
        add(a, b, DATA)
        add(b, end, CACHE)
    add(round_up(end, g), pad_to, ZERO)
    return pieces
