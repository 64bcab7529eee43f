"""The iomap part: direct-I/O writes of any offset and length, after fs/iomap/direct-io.c.

``memory`` (aligned buffers), ``locks`` (range locks), ``mapping`` (holes, unwritten
extents), ``pieces`` (what goes O_DIRECT, what through the page cache), ``writer``
(DirectWriter), ``result`` (WriteResult; errors are ZeroingError).
"""

from .memory import DEFAULT_BOUNCE_SIZE, aligned_buffer
from .pieces import iomap_dio_zero, plan_pieces
from .result import WriteResult
from .writer import DirectWriter, write_direct

__all__ = [
    "DEFAULT_BOUNCE_SIZE",
    "DirectWriter",
    "WriteResult",
    "aligned_buffer",
    "iomap_dio_zero",
    "plan_pieces",
    "write_direct",
]
