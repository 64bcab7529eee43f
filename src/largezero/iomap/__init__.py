"""The iomap part: direct-I/O writes of any offset and length, after fs/iomap/direct-io.c."""

from .direct_io import (
    DEFAULT_BOUNCE_SIZE,
    DirectWriteError,
    DirectWriter,
    WriteResult,
    aligned_buffer,
    iomap_dio_zero,
    plan_pieces,
    write_direct,
)

__all__ = [
    "DEFAULT_BOUNCE_SIZE",
    "DirectWriteError",
    "DirectWriter",
    "WriteResult",
    "aligned_buffer",
    "iomap_dio_zero",
    "plan_pieces",
    "write_direct",
]
