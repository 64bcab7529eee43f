"""zero_stream(): LENGTH zero bytes (or an endless stream) to an output fd, never copied
through user space where the output allows it: the zero_iter()/rxperf counterpart."""

from __future__ import annotations

from ..errors import UsageError
from ..syscalls import BLKGETSIZE64, ioctl_int
from .outputs import StreamOutput
from .result import StreamResult
from .seekable import SeekableSink
from .sinks import FILE

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from ..cancel import Cancel

# An endless stream goes out in slices so a set cancel event is seen between them.
ENDLESS_SLICE = 1 << 30


def _device_left(sink: SeekableSink) -> int:
    return max(0, ioctl_int(sink.fd, BLKGETSIZE64, "Q") - sink.pos)


def zero_stream(fd: int, length: int | None = None, *, cancel: Cancel | None = None,
                result: StreamResult | None = None, name: str | None = None, force: bool = False) -> StreamResult:
    """Write ``length`` zero bytes to ``fd`` (None: until the reader goes away or Ctrl-C).

    Pipes get vmsplice of LARGE_ZERO_PAGE, sockets splice through a pipe (else sendmsg), files
    and block devices the zeroing engine at their file position (a file grows by a hole), the
    rest writev. Raises BrokenPipeError when the reader goes away, Interrupted when ``cancel``
    is set; ``result`` (when given) is filled in as the stream runs. A file or block device
    in use (mounted, held, backing a loop, a signature) is refused unless ``force``.
    """
    if length is not None and length < 0:
        raise UsageError(f"length {length} is negative")
    output = StreamOutput(fd, cancel, result, name, force)
    r = output.result
    with output as sink:
        if length is None and r.kind == FILE:
            raise UsageError(f"{r.target}: an endless stream of zeros into a regular file: give a length")
        if length is None and isinstance(sink, SeekableSink):
            length = _device_left(sink)  # a block device: to its end, as blkdiscard -z would
        if length is None:
            while True:
                sink.zeros(ENDLESS_SLICE)
        elif length:
            sink.zeros(length)
        sink.finish()
        return r


__all__ = ["zero_stream"]
