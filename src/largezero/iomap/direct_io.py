"""The old home of the direct writer, split by concept into the modules of this package; the
names keep working from here."""

from .memory import DEFAULT_BOUNCE_SIZE, aligned_buffer
from .pieces import iomap_dio_zero, plan_pieces
from .result import ALIGNED, CACHED, ZEROED, DirectWriteError, WriteResult
from .writer import DirectWriter, write_direct

__all__ = ["ALIGNED", "CACHED", "DEFAULT_BOUNCE_SIZE", "ZEROED", "DirectWriteError", "DirectWriter", "WriteResult",
           "aligned_buffer", "iomap_dio_zero", "plan_pieces", "write_direct"]
