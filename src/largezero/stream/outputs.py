"""Pick the sink for an output fd by what it is (pipe, socket, file, block device, the rest)."""

from __future__ import annotations

import time

from .result import StreamResult, rss_growth, rss_mark
from .seekable import FileSink, SeekableSink
from .sinks import BLOCK, FILE, PIPE, SOCKET, TTY, PipeSink, Sink, SocketSink, classify

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from ..cancel import Cancel

_SINKS: dict[str, type[Sink]] = {PIPE: PipeSink, SOCKET: SocketSink}


def open_sink(fd: int, result: StreamResult, cancel: Cancel | None = None, force: bool = False) -> Sink:
    """The sink for ``fd``; ``result.kind`` is set to what the fd is. A file or block device
    goes through the refusals of ``zero`` unless ``force`` (see seekable.output_target)."""
    kind = classify(fd)
    result.kind = kind
    if kind == FILE:
        return FileSink(fd, result, cancel, force)
    if kind == BLOCK:
        return SeekableSink(fd, result, cancel, force)
    sink = _SINKS.get(kind, Sink)(fd, result, cancel)
    if kind == TTY:
        sink.kind = TTY
    return sink


class StreamOutput:
    """One stream's output for a ``with`` block, whose value is the sink for ``fd``. On the way
    out, whatever happened, the sink is closed and the result gets its seconds and RSS growth."""

    def __init__(self, fd: int, cancel: Cancel | None, result: StreamResult | None, name: str | None,
                 force: bool = False) -> None:
        self.fd = fd
        self.cancel = cancel
        self.force = force
        self.result = result if result is not None else StreamResult(name or f"fd {fd}", "")

    def __enter__(self) -> Sink:
        self._mark = rss_mark()
        self._started = time.perf_counter()
        self._sink = open_sink(self.fd, self.result, self.cancel, self.force)
        return self._sink

    def __exit__(self, *exc: object) -> None:
        self._sink.close()
        self.result.seconds = time.perf_counter() - self._started
        self.result.rss_growth_bytes = rss_growth(self._mark)
