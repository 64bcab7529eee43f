"""largezero: zero large ranges of files and block devices from a shared large zero page.

The public names are loaded on first use (PEP 562): ``import largezero`` and ``import
largezero.cli`` cost nothing, and a command that never plans a write never imports the block
layer, iomap, mm or targets.
"""

from __future__ import annotations

# Not from typing: importing typing costs more than the rest of this module (mypy reads the
# name TYPE_CHECKING itself).
TYPE_CHECKING = False

__version__ = "0.1.0"

# Public name -> the module that defines it. The only list of the package's API.
_LAZY: dict[str, str] = {
    "CallRun": "largezero.engine.plan",
    "ZeroPlan": "largezero.engine.plan",
    "default_call_bytes": "largezero.engine.plan",
    "plan_calls": "largezero.engine.plan",
    "TargetFacts": "largezero.targets.facts",
    "ZeroOptions": "largezero.engine.plan",
    "ZeroResult": "largezero.engine.zeroout",
    "plan_zero_range": "largezero.engine.plan",
    "zero_range": "largezero.engine.zeroout",
    "Interrupted": "largezero.errors",
    "LargezeroError": "largezero.errors",
    "TargetError": "largezero.errors",
    "Unsupported": "largezero.errors",
    "UsageError": "largezero.errors",
    "ZeroingError": "largezero.errors",
    "DirectWriteError": "largezero.iomap",
    "DirectWriter": "largezero.iomap",
    "WriteResult": "largezero.iomap",
    "aligned_buffer": "largezero.iomap",
    "write_direct": "largezero.iomap",
    "Backing": "largezero.mm",
    "ZeroBuffer": "largezero.mm",
    "large_zero_page": "largezero.mm",
    "largest_zero_buffer": "largezero.mm",
    "zero_buffer_for": "largezero.mm",
    "zero_page": "largezero.mm",
    "Target": "largezero.targets",
    "open_target": "largezero.targets",
    "zero_stream": "largezero.stream",
    "stream_file": "largezero.stream",
}

# Names of modules still being written (stream, the plan's facts and options) are in the table
# above and load on use; they join __all__ once they exist, so `from largezero import *` never
# breaks. A test checks that __all__ and the table agree.
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

if TYPE_CHECKING:  # what type checkers and IDEs see; nothing of it runs
    from typing import Any

    from .engine.plan import CallRun, ZeroPlan, default_call_bytes, plan_calls, plan_zero_range
    from .engine.zeroout import ZeroResult, zero_range
    from .errors import Interrupted, LargezeroError, TargetError, Unsupported, UsageError, ZeroingError
    from .iomap import DirectWriteError, DirectWriter, WriteResult, aligned_buffer, write_direct
    from .mm import Backing, ZeroBuffer, large_zero_page, largest_zero_buffer, zero_buffer_for, zero_page
    from .targets import Target, open_target


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'largezero' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
