"""Pick the sink for an output fd by what it is (pipe, socket, file, block device, the rest)."""

from __future__ import annotations

from .result import StreamResult
from .seekable import FileSink, SeekableSink
from .sinks import BLOCK, FILE, PIPE, SOCKET, TTY, PipeSink, Sink, SocketSink, classify

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from ..cancel import Cancel

_SINKS: dict[str, type[Sink]] = {PIPE: PipeSink, SOCKET: SocketSink, FILE: FileSink, BLOCK: SeekableSink}


def open_sink(fd: int, result: StreamResult, cancel: Cancel | None = None) -> Sink:
    """The sink for ``fd``; ``result.kind`` is set to what the fd is."""
    kind = classify(fd)
    result.kind = kind
    sink = _SINKS.get(kind, Sink)(fd, result, cancel)
    if kind == TTY:
        sink.kind = TTY
    return sink
