"""largezero bench: zeroing side by side with the tools people use, on the same range.

The engine behind ``largezero bench`` and ``benchmarks/run.py``::

    from largezero.bench import BenchConfig, run_bench, build_report, render_text
    report = build_report(run_bench(BenchConfig(targets=("file",), size=64 << 20)))
    render_text(report)

rich (the tables, through ``largezero.table``) and matplotlib (the chart) are imported only
when asked for.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .chart import HEADLINE, plot
    from .contenders import Contender, all_contenders, select
    from .render import render_markdown, render_text
    from .report import build_report, environment
    from .runner import QUICK_SIZE, BenchConfig, BenchRun, run_bench, verify_range
    from .targets import TARGETS

# Loaded on first use (PEP 562), so that `largezero.bench.startup` and the other small
# modules here can be used without the engine, and nothing pays for what it does not use.
_LAZY: dict[str, str] = {
    "HEADLINE": "chart", "plot": "chart", "build_report": "report", "environment": "report",
    "render_markdown": "render", "render_text": "render",
    "Contender": "contenders", "all_contenders": "contenders", "select": "contenders",
    "QUICK_SIZE": "runner", "BenchConfig": "runner", "BenchRun": "runner", "run_bench": "runner",
    "verify_range": "runner",
    "TARGETS": "targets",
}

__all__ = [
    "HEADLINE",
    "QUICK_SIZE",
    "TARGETS",
    "BenchConfig",
    "BenchRun",
    "Contender",
    "all_contenders",
    "build_report",
    "environment",
    "plot",
    "render_markdown",
    "render_text",
    "run_bench",
    "select",
    "verify_range",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
