"""Progress on a terminal for long jobs: one line per target, plus a total for several.

Drawn with rich, imported only when a bar is drawn (it costs ~50 ms of start-up); without rich,
a plain one-line display does the same job. Units are binary throughout (GiB, GiB/s), the
speed and ETA are shown from the first update (bytes done over time since the start, not a
windowed average that needs several samples), and the display is erased when the job ends
or is interrupted, so only the summary and any resume command stay on the screen.

The callbacks are called from worker threads, one per target, with the bytes done so far.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from typing import Any

# Below this (all jobs together) a job finishes before a bar would be worth drawing.
LONG_JOB_BYTES = 256 << 20
Callback = Callable[[int], None]


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


class _Tracker:
    """Bytes done per job and in total, safe to update from several threads."""

    def __init__(self, jobs: Sequence[tuple[str, int]]) -> None:
        self.labels = [label for label, _ in jobs]
        self.totals = [max(0, size) for _, size in jobs]
        self.done = [0] * len(jobs)
        self.started = time.monotonic()
        self.lock = threading.Lock()

    def set(self, i: int, done: int) -> None:
        with self.lock:
            self.done[i] = max(0, min(done, self.totals[i]))

    def callbacks(self, on_change: Callable[[int], None]) -> list[Callback]:
        def make(i: int) -> Callback:
            def update(done: int) -> None:
                self.set(i, done)
                on_change(i)

            return update

        return [make(i) for i in range(len(self.totals))]


@contextlib.contextmanager
def _rich_display(tracker: _Tracker, several: bool) -> Iterator[list[Callback]]:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn
    from rich.table import Column
    from rich.text import Text

    class Status(ProgressColumn):  # type: ignore[misc]
        # rich's own columns mix units (DownloadColumn in GiB, TransferSpeedColumn in GB/s) and
        # show '?' until several samples: this one is binary and speaks from the first update.
        def render(self, task: Any) -> Any:
            elapsed = time.monotonic() - tracker.started
            return Text(status(int(task.completed), int(task.total or 0), elapsed), no_wrap=True)

    console = Console(file=sys.stderr)
    # The numbers never wrap; the bar takes what the terminal has left (a long path is cut short).
    label_column = TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis",
                                                                        max_width=40))
    status_column = Status(table_column=Column(no_wrap=True))
    bar = Progress(label_column, BarColumn(bar_width=None), status_column, console=console, transient=True)
    width = max(len(label) for label in [*tracker.labels, "total"])
    tasks = [bar.add_task(label.ljust(width), total=size) for label, size in
             zip(tracker.labels, tracker.totals, strict=True)]
    total_task = bar.add_task("total".ljust(width), total=sum(tracker.totals)) if several else None

    def changed(i: int) -> None:
        bar.update(tasks[i], completed=tracker.done[i])
        if total_task is not None:
            bar.update(total_task, completed=sum(tracker.done))

    with bar:
        yield tracker.callbacks(changed)


@contextlib.contextmanager
def _plain_display(tracker: _Tracker, several: bool) -> Iterator[list[Callback]]:
    """Without rich: one line, redrawn in place at most 10 times a second, erased at the end."""
    last = [0.0]

    def draw() -> None:
        elapsed = time.monotonic() - tracker.started
        parts = [f"{label}: {status(d, t, elapsed)}" for label, d, t in
                 zip(tracker.labels, tracker.done, tracker.totals, strict=True)]
        if several:
            parts.append(f"total: {status(sum(tracker.done), sum(tracker.totals), elapsed)}")
        _write("\r\033[K" + " | ".join(parts))

    def changed(i: int) -> None:
        now = time.monotonic()
        with tracker.lock:
            if now - last[0] < 0.1 and tracker.done[i] < tracker.totals[i]:
                return
            last[0] = now
            draw()

    try:
        yield tracker.callbacks(changed)
    finally:
        _write("\r\033[K")


def _write(text: str) -> None:
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass  # a display that cannot be drawn never costs the job


def _on_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def progress_display(jobs: Sequence[tuple[str, int]], enabled: bool) -> Iterator[list[Callback] | None]:
    """One progress line per (label, bytes) job, plus a total line when there are several.

    Yields one callback per job (call it with the bytes done so far, from any thread), or None
    when nothing is drawn: not enabled, stderr not a terminal, or too little work to show.
    """
    if not enabled or not jobs or sum(max(0, size) for _, size in jobs) < LONG_JOB_BYTES or not _on_terminal():
        yield None
        return
    tracker = _Tracker(jobs)
    several = len(jobs) > 1
    try:
        display = _rich_display(tracker, several)
        callbacks = display.__enter__()
    except ImportError:
        display = _plain_display(tracker, several)
        callbacks = display.__enter__()
    # Entered by hand so that an ImportError of rich falls back before the job starts, while an
    # exception of the job itself (Ctrl-C included) still goes through the display's exit,
    # which erases it.
    try:
        yield callbacks
    except BaseException:
        if not display.__exit__(*sys.exc_info()):
            raise
    else:
        display.__exit__(None, None, None)


@contextlib.contextmanager
def progress_bar(total: int, label: str, enabled: bool) -> Iterator[Callback | None]:
    """One job's progress (the single-target case of :func:`progress_display`)."""
    with progress_display([(label, total)], enabled) as callbacks:
        yield None if callbacks is None else callbacks[0]
