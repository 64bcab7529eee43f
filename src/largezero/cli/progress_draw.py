"""Drawing the progress lines of :mod:`largezero.cli.progress`: with rich when it is installed,
else one plain line redrawn in place. Imported only when something is drawn."""

from __future__ import annotations

import _thread  # threading.Lock is _thread.allocate_lock; threading itself costs 1.5 ms of start-up
import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence

from .progress import status

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from typing import Any

Callback = Callable[[int], None]


class _Tracker:
    """Bytes done per job and in total, safe to update from several threads."""

    def __init__(self, jobs: Sequence[tuple[str, int]]) -> None:
        self.labels = [label for label, _ in jobs]
        self.totals = [max(0, size) for _, size in jobs]
        self.done = [0] * len(jobs)
        self.started = time.monotonic()
        self.lock = _thread.allocate_lock()

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


@contextlib.contextmanager
def drawn(jobs: Sequence[tuple[str, int]]) -> Iterator[list[Callback]]:
    """The display for ``jobs``: rich's when it imports, else the plain line."""
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
