"""Zeros as a stream: the user-space counterpart of the kernel's zero_iter() and rxperf.

``zero_stream(fd, length)`` writes zeros to any output fd; ``stream_file(src, fd, offset,
length)`` writes a file's bytes with its holes and unwritten extents served from the zero
buffer. What moves the bytes depends on the output: vmsplice of LARGE_ZERO_PAGE into a pipe,
splice through a pipe into a socket, the zeroing engine on a file or block device, writev
elsewhere; a refused fast call is remembered per fd and writev takes over.
"""

from .files import layout, stream_file
from .result import StreamResult
from .sinks import classify
from .zeros import zero_stream

__all__ = ["StreamResult", "classify", "layout", "stream_file", "zero_stream"]
