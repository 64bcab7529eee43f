"""What a direct write did (``WriteResult``) and how each edge was handled; errors are ZeroingError."""

from __future__ import annotations

from .._record import field, record
from ..mm import ZeroBuffer

# How the partial granule at each end of a write was handled.
ALIGNED = "aligned"  # the write starts (ends) on a page-cache granule: nothing partial
CACHED = "cache"  # the caller's bytes of the partial granule went through the page cache
ZEROED = "zero"  # explicit large block over a hole / unwritten extent: padded from the zero buffer



@record
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
    span_offset: int = 0  # the range actually written: the caller's bytes and any zero padding
    span_length: int = 0
    head: str = ALIGNED
    tail: str = ALIGNED
    pad_bytes: int = 0  # zeros written outside the range (explicit large blocks over holes only)
    zero_pad_bytes: int = 0  # the part of pad_bytes taken straight from the zero buffer (all of it)
    calls: int = 0  # write calls (pwritev for O_DIRECT, pwrite for page-cache edges)
    iovecs: int = 0
    bounce_bytes: int = 0  # caller bytes copied through the aligned bounce buffer
    cache_bytes: int = 0  # caller bytes written through the page cache (the partial granules)
    syncs: int = 0  # sync_file_range calls that wrote those back
    map_calls: int = 0  # lseek(SEEK_DATA/SEEK_HOLE) and FIEMAP calls
    granule: int = 0  # the page-cache granule that decides what is partial
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
        for name in ("pad_bytes", "zero_pad_bytes", "calls", "iovecs", "bounce_bytes",
                     "cache_bytes", "syncs", "map_calls", "writes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.granule = self.granule or other.granule
        self.seconds += other.seconds

    def to_dict(self) -> dict[str, object]:
        buf = self.zero_buffer
        out: dict[str, object] = {name: getattr(self, name) for name in (
            "target", "kind", "direct", "offset", "length", "bytes_written", "block_size", "align", "granule",
            "span_offset", "span_length", "head", "tail", "pad_bytes", "zero_pad_bytes", "calls", "iovecs",
            "bounce_bytes", "cache_bytes", "syncs", "map_calls", "writes")}
        out["zero_buffer"] = None if buf is None else {"name": buf.name, "size": buf.size, "backing": buf.backing}
        out["seconds"] = round(self.seconds, 6)
        return out
