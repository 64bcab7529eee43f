"""largezero: zero large ranges of files and block devices from a shared large zero page."""

from __future__ import annotations

__version__ = "0.1.0"

from .block.plan import CallRun, ZeroPlan, default_call_bytes, plan_calls
from .block.zeroout import ZeroResult, plan_zero_range, zero_range
from .errors import Interrupted, LargezeroError, TargetError, Unsupported, UsageError, ZeroingError
from .iomap import DirectWriteError, DirectWriter, WriteResult, aligned_buffer, write_direct
from .mm import Backing, ZeroBuffer, large_zero_page, largest_zero_buffer, zero_buffer_for, zero_page
from .targets import Target, open_target

__all__ = [
    "Backing",
    "CallRun",
    "DirectWriteError",
    "DirectWriter",
    "Interrupted",
    "LargezeroError",
    "Target",
    "TargetError",
    "Unsupported",
    "UsageError",
    "WriteResult",
    "ZeroBuffer",
    "ZeroPlan",
    "ZeroResult",
    "ZeroingError",
    "aligned_buffer",
    "default_call_bytes",
    "large_zero_page",
    "largest_zero_buffer",
    "open_target",
    "plan_calls",
    "plan_zero_range",
    "write_direct",
    "zero_buffer_for",
    "zero_page",
    "zero_range",
]
