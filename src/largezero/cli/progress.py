"""Progress on a terminal for long jobs: one line per target, plus a total for several.

Drawn with rich, imported only when a bar is drawn (it costs ~50 ms of start-up); without rich,
a plain one-line display does the same job. Units are binary throughout (GiB, GiB/s), the
speed and ETA are shown from the first update (bytes done over time since the start, not a
windowed average that needs several samples), and the display is erased when the job ends
or is interrupted, so only the summary and any resume command stay on the screen.

The callbacks are called from worker threads, one per target, with the bytes done so far.
The drawing is in progress_draw.py, imported only when something is drawn: a job that shows
no bar (not a terminal, --json, a short job) imports nothing more than this module.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from contextlib import AbstractContextManager

    Callback = Callable[[int], None]

# Below this (all jobs together) a job finishes before a bar would be worth drawing.
LONG_JOB_BYTES = 256 << 20


def binary(n: float) -> str:
    """Bytes in binary units, three significant digits (steady widths): 512 B, 1.50 GiB, 12.3 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            if unit == "B":
                return f"{int(n)} B"
            return f"{n:.2f} {unit}" if n < 10 else f"{n:.1f} {unit}" if n < 100 else f"{n:.0f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def eta(seconds: float | None) -> str:
    if seconds is None:
        return "-:--"
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def status(done: int, total: int, elapsed: float) -> str:
    """'1.50 GiB / 4.00 GiB  5.12 GiB/s  ETA 0:01' (speed and ETA once anything is done)."""
    speed = done / elapsed if elapsed > 0 and done > 0 else None
    left = (total - done) / speed if speed else None
    rate = f"{binary(speed)}/s" if speed else "- B/s"
    return f"{binary(done)} / {binary(total)}  {rate}  ETA {eta(left if done < total else 0.0)}"


def _on_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (OSError, ValueError):
        return False


class _NoDisplay:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def progress_display(jobs: Sequence[tuple[str, int]], enabled: bool) -> AbstractContextManager[list[Callback] | None]:
    """One progress line per (label, bytes) job, plus a total line when there are several.

    A context whose value is one callback per job (call it with the bytes done so far, from
    any thread), or None when nothing is drawn: not enabled, stderr not a terminal, or too
    little work to show.
    """
    if not enabled or not jobs or sum(max(0, size) for _, size in jobs) < LONG_JOB_BYTES or not _on_terminal():
        return _NoDisplay()
    from .progress_draw import drawn

    return drawn(jobs)
