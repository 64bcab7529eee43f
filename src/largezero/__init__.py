"""largezero: zero large ranges of files and block devices from a shared large zero page.

The public names are loaded on first use (PEP 562): ``import largezero`` and ``import
largezero.cli`` cost nothing, and a command that never plans a write never imports the block
layer, iomap, mm or targets.
"""

from __future__ import annotations

from ._version import __version__ as __version__

# Not from typing: importing typing costs more than the rest of this module (mypy reads the
# name TYPE_CHECKING itself).
TYPE_CHECKING = False

# Public name -> the module that defines it: the one list of the package's API.
_LAZY: dict[str, str] = {
    "ZeroOptions": "largezero.engine.options",
    "CallRun": "largezero.engine.plan",
    "ZeroPlan": "largezero.engine.plan",
    "default_call_bytes": "largezero.engine.plan",
    "plan_calls": "largezero.engine.plan",
    "plan_zero_range": "largezero.engine.plan",
    "ZeroResult": "largezero.engine.zeroout",
    "zero_range": "largezero.engine.zeroout",
    "JobResult": "largezero.job",
    "ZeroJob": "largezero.job",
    "zero_job": "largezero.job",
    "TargetFacts": "largezero.targets.facts",
    "facts_of": "largezero.targets.facts",
    "Target": "largezero.targets",
    "open_target": "largezero.targets",
    "Interrupted": "largezero.errors",
    "LargezeroError": "largezero.errors",
    "TargetError": "largezero.errors",
    "TargetIsADirectory": "largezero.errors",
    "TargetNotFound": "largezero.errors",
    "TargetPermissionError": "largezero.errors",
    "Unsupported": "largezero.errors",
    "UsageError": "largezero.errors",
    "ZeroingError": "largezero.errors",
    "VerifyResult": "largezero.verify",
    "check_zero": "largezero.verify",
    "verify_target": "largezero.verify",
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
    "StreamResult": "largezero.stream",
    "stream_file": "largezero.stream",
    "zero_stream": "largezero.stream",
}

# The same names, literally, for type checkers and `from largezero import *` (a test checks they agree).
__all__ = [
    "Backing",
    "CallRun",
    "DirectWriter",
    "Interrupted",
    "JobResult",
    "LargezeroError",
    "StreamResult",
    "Target",
    "TargetError",
    "TargetFacts",
    "TargetIsADirectory",
    "TargetNotFound",
    "TargetPermissionError",
    "Unsupported",
    "UsageError",
    "VerifyResult",
    "WriteResult",
    "ZeroBuffer",
    "ZeroJob",
    "ZeroOptions",
    "ZeroPlan",
    "ZeroResult",
    "ZeroingError",
    "aligned_buffer",
    "check_zero",
    "default_call_bytes",
    "facts_of",
    "large_zero_page",
    "largest_zero_buffer",
    "open_target",
    "plan_calls",
    "plan_zero_range",
    "stream_file",
    "verify_target",
    "write_direct",
    "zero_buffer_for",
    "zero_job",
    "zero_page",
    "zero_range",
    "zero_stream",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; nothing of it runs
    from typing import Any

    from .engine.options import ZeroOptions
    from .engine.plan import CallRun, ZeroPlan, default_call_bytes, plan_calls, plan_zero_range
    from .engine.zeroout import ZeroResult, zero_range
    from .errors import (
        Interrupted,
        LargezeroError,
        TargetError,
        TargetIsADirectory,
        TargetNotFound,
        TargetPermissionError,
        Unsupported,
        UsageError,
        ZeroingError,
    )
    from .iomap import DirectWriter, WriteResult, aligned_buffer, write_direct
    from .job import JobResult, ZeroJob, zero_job
    from .mm import Backing, ZeroBuffer, large_zero_page, largest_zero_buffer, zero_buffer_for, zero_page
    from .stream import StreamResult, stream_file, zero_stream
    from .targets import Target, open_target
    from .targets.facts import TargetFacts, facts_of
    from .verify import VerifyResult, check_zero, verify_target


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
