"""The parts of ``largezero bench`` beyond the contender tables, run in order and added to the
report: start-up, the CLI as a whole process over sizes, the loop device at both
``max_sectors_kb``, the cost of split calls, several devices at once, and the stream and verify
benchmarks (their modules are written elsewhere: when absent, the part says so and is skipped).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from .process import FULL_SIZES, QUICK_SIZES, GiB, MiB, render_sweep, run_sweep
from .scenarios import call_size_cost, loop_limits, render_scenarios, several_devices
from .startup import import_costs, measure_startup, render_startup

Progress = Callable[[str], None]
VERIFY_SIZE = 1 * GiB


class Profile:
    """Rounds and sizes of the parts: the full run, or --quick (under a minute with the main
    tables on a shared 2-CPU machine: fewer rounds, sizes where the ratios still show)."""

    def __init__(self, quick: bool) -> None:
        self.startup_rounds = 5 if quick else 21
        self.rounds = 3 if quick else 5  # medians of 3 in a smoke run, of 5 in a measurement
        self.sweep = (QUICK_SIZES[0], QUICK_SIZES[-1]) if quick else FULL_SIZES  # crossovers need two
        self.device = (256 if quick else 1024) * MiB  # loop limits and the call-size cost
        self.several = (64 if quick else 512) * MiB
        self.verify = (64 * MiB) if quick else VERIFY_SIZE


def _optional(module: str, name: str) -> Any:
    """A function of a sibling module that may not exist yet; None when it does not."""
    try:
        return getattr(importlib.import_module(f"largezero.bench.{module}"), name)
    except (ImportError, AttributeError):
        return None


def run_sections(sections: Sequence[str], quick: bool, workdir: str | None, report: dict[str, Any],
                 progress: Progress | None = None) -> list[str]:
    """Run the chosen parts; store their data in ``report``; return their text, in order."""
    texts: list[str] = []
    p = Profile(quick)
    rounds = p.rounds
    if "startup" in sections:
        if progress:
            progress("start-up")
        rows = measure_startup(rounds=p.startup_rounds, workdir=workdir, instructions=not quick)
        report["startup"] = {"rows": [r.to_dict() for r in rows],
                             "import_costs_zero_ms": import_costs(["zero", "--help"], top=15)}
        texts.append(render_startup(rows))
    if "process" in sections:
        sweep = run_sweep(p.sweep, rounds=rounds, workdir=workdir, progress=progress)
        report["whole_process"] = sweep
        texts.append(render_sweep(sweep))
    limits = split = several = None
    if "loops" in sections:
        limits = report["loop_limits"] = loop_limits(p.device, rounds, progress)
    if "calls" in sections:
        split = report["call_split"] = call_size_cost(p.device, rounds, workdir, progress)
    if "several" in sections:
        several = report["several_devices"] = several_devices(2, p.several, rounds, progress)
    if limits is not None or split is not None or several is not None:
        texts.append(render_scenarios(limits, split, several))
    if "stream" in sections:
        run_stream, render_rows = _optional("streams", "run_stream_bench"), _optional("streams", "render_stream_rows")
        if run_stream is None or render_rows is None:
            texts.append("streams: skipped (largezero.bench.streams is not in this installation)")
        else:
            if progress:
                progress("streams")
            rows = run_stream(quick)
            report["streams"] = rows
            texts.append(render_rows(rows))
    if "verify" in sections:
        run_verify = _optional("verify_bench", "run_verify_bench")
        if run_verify is None:
            texts.append("verify: skipped (largezero.bench.verify_bench is not in this installation)")
        else:
            if progress:
                progress("verify")
            rows = run_verify(p.verify)
            report["verify"] = rows
            texts.append(_render_verify(rows))
    return texts


def _render_verify(rows: list[dict[str, Any]]) -> str:
    lines = ["verify (reading the range back):"]
    for r in rows:
        lines.append("  " + ", ".join(f"{k} {v}" for k, v in r.items()))
    return "\n".join(lines)
