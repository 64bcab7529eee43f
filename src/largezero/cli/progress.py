"""Progress on a terminal for long jobs: one line per target, plus a total for several.

Drawn with rich, imported only when a bar is drawn (it costs ~50 ms of start-up): a job that
shows no bar (not a terminal, --json, a short job) imports nothing more than this module.
Units are binary throughout (GiB, GiB/s), the speed and ETA are shown from the first update
(bytes done over time since the start, not a windowed average that needs several samples),
and the display is erased when the job ends or is interrupted, so only the summary and any
resume command stay on the screen.

Updates come from worker threads, one per target, with the bytes done so far.
"""

from __future__ import annotations

import _thread  # threading.Lock is _thread.allocate_lock; threading itself costs 1.5 ms of start-up
import sys
import time

from ..units import format_size

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    Callback = Callable[[int], None]

# Below this (all jobs together) a job finishes before a bar would be worth drawing.
LONG_JOB_BYTES = 256 << 20


def eta(seconds: float | None) -> str:
    if seconds is None:
        return "-:--"
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def status(done: int, total: int, elapsed: float) -> str:
    """'1.50 GiB / 4.00 GiB  5.12 GiB/s  ETA 0:01' (speed and ETA once anything is done)."""
    speed = done / elapsed if elapsed > 0 and done > 0 else None
    left = (total - done) / speed if speed else None
    rate = f"{format_size(speed, 'steady')}/s" if speed else "- B/s"
    return (f"{format_size(done, 'steady')} / {format_size(total, 'steady')}  {rate}  "
            f"ETA {eta(left if done < total else 0.0)}")


def _on_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (OSError, ValueError):
        return False


class ProgressDisplay:
    """One progress line per (label, bytes) job, plus a total line when there are several.

    A context manager. ``shown`` says whether anything is drawn: not when disabled, when stderr
    is not a terminal, or for too little work. Every method is safe to call either way, from
    any thread: ``update(job, done)``, ``updater(job)`` (a callback, None when not shown),
    ``phase(job, label, total)`` to start a job's next phase (verifying) from zero, and
    ``clear()`` to take the lines off the screen before a message; leaving the context clears
    them too, also on Ctrl-C or an error.
    """

    def __init__(self, jobs: Sequence[tuple[str, int]], enabled: bool = True) -> None:
        self.labels = [label for label, _ in jobs]
        self.totals = [max(0, size) for _, size in jobs]
        self.done = [0] * len(jobs)
        self.shown = enabled and bool(jobs) and sum(self.totals) >= LONG_JOB_BYTES and _on_terminal()
        self._lock = _thread.allocate_lock()
        self._started = [time.monotonic()] * len(jobs)
        self._bar: Any = None
        self._tasks: list[Any] = []
        self._total_task: Any = None

    def __enter__(self) -> ProgressDisplay:
        if self.shown:
            self._bar = self._draw()
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()

    def update(self, job: int, done: int) -> None:
        with self._lock:
            self.done[job] = max(0, min(done, self.totals[job]))
            if self._bar is not None:
                self._bar.update(self._tasks[job], completed=self.done[job])
                if self._total_task is not None:
                    self._bar.update(self._total_task, completed=sum(self.done))

    def updater(self, job: int) -> Callback | None:
        if not self.shown:
            return None
        return lambda done: self.update(job, done)

    def phase(self, job: int, label: str, total: int) -> None:
        """The job's line starts again from zero under a new label (e.g. "verifying /dev/loop0")."""
        with self._lock:
            self.labels[job], self.totals[job], self.done[job] = label, max(0, total), 0
            self._started[job] = time.monotonic()
            if self._bar is not None:
                self._bar.reset(self._tasks[job], total=self.totals[job], description=self._label(label))
                if self._total_task is not None:
                    self._bar.update(self._total_task, total=sum(self.totals), completed=sum(self.done))

    def clear(self) -> None:
        """Erase the lines now; later updates draw nothing."""
        with self._lock:
            bar, self._bar = self._bar, None
        if bar is not None:
            try:
                bar.stop()  # transient: the lines are erased
            except (OSError, ValueError):
                pass  # a display that cannot be drawn never costs the job

    def _label(self, label: str) -> str:
        return label.ljust(max(len(x) for x in [*self.labels, "total"]))

    def _draw(self) -> Any:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn
        from rich.table import Column
        from rich.text import Text

        started = self._started

        class Status(ProgressColumn):  # type: ignore[misc]
            # rich's own columns mix units (DownloadColumn in GiB, TransferSpeedColumn in GB/s)
            # and show '?' until several samples: this one is binary and speaks from the first
            # update. The total line (no job of its own) counts from the first job's start.
            def render(self, task: Any) -> Any:
                since = started[task.fields.get("job", 0)]
                return Text(status(int(task.completed), int(task.total or 0), time.monotonic() - since),
                            no_wrap=True)

        # The numbers never wrap; the bar takes what the terminal has left (a long path is cut short).
        label_column = TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis",
                                                                            max_width=40))
        bar = Progress(label_column, BarColumn(bar_width=None), Status(table_column=Column(no_wrap=True)),
                       console=Console(file=sys.stderr), transient=True)
        self._tasks = [bar.add_task(self._label(label), total=size, job=i)
                       for i, (label, size) in enumerate(zip(self.labels, self.totals, strict=True))]
        if len(self.labels) > 1:
            self._total_task = bar.add_task(self._label("total"), total=sum(self.totals))
        return bar


def progress_display(jobs: Sequence[tuple[str, int]], enabled: bool) -> ProgressDisplay:
    """The display for ``jobs`` (see ProgressDisplay), drawn only when it is worth it."""
    return ProgressDisplay(jobs, enabled)
