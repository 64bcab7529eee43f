"""largezero bench: zeroing side by side with the tools people use, on the same range.

The engine behind ``largezero bench`` and ``benchmarks/run.py``::

    from largezero.bench import BenchConfig, run_bench, build_report, render_text
    report = build_report(run_bench(BenchConfig(targets=("file",), size=64 << 20)))
    render_text(report)

Nothing here needs a third-party package: rich (tables) and matplotlib (the chart) are
imported only when asked for.
"""

from __future__ import annotations

from .contenders import Contender, all_contenders, select
from .report import HEADLINE, build_report, environment, plot, render_markdown, render_text
from .runner import QUICK_SIZE, BenchConfig, BenchRun, run_bench, verify_range
from .targets import TARGETS

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
