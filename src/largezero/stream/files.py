"""stream_file(): a file's bytes to an output fd, its holes served from the zero buffer.

The layout comes from the filesystem, never from reading: SEEK_DATA/SEEK_HOLE find the holes
(they see the page cache, so data not yet written back counts as data), and FIEMAP, after a
sync so that extent states are current, finds unwritten extents inside the data (preallocated
with ``fallocate`` and never written: they read as zeros). Zero runs go to ``sink.zeros``, data
to ``sink.data`` (splice, sendfile or copy_file_range: no copy through user space).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator

from .. import syscalls
from ..errors import TargetError, UsageError
from ..syscalls import (
    BLKGETSIZE64,
    FIEMAP_EXTENT_DELALLOC,
    FIEMAP_EXTENT_UNKNOWN,
    FIEMAP_EXTENT_UNWRITTEN,
    FIEMAP_FLAG_SYNC,
    ioctl_int,
    is_unsupported,
)
from .outputs import StreamOutput
from .result import StreamResult

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from ..cancel import Cancel

FIEMAP_WINDOW = 1 << 30  # extents are asked for window by window: memory stays bounded
Segment = tuple[int, int, bool]  # (offset, length, zero)


class _Layout:
    """Walks [offset, end) of an open file as zero and data runs, merged, in order."""

    def __init__(self, fd: int, is_block: bool) -> None:
        self.fd = fd
        self.seek = True
        self.fiemap = not is_block  # a block device has no extents to ask about

    def _seek(self, pos: int, whence: int, end: int) -> int:
        try:
            return min(end, syscalls.ops.lseek(self.fd, pos, whence))
        except OSError as err:
            if err.errno == errno.ENXIO:
                # SEEK_DATA past the last data: the rest is a hole. SEEK_HOLE never says ENXIO below EOF.
                return end
            if is_unsupported(err):
                self.seek = False
                return pos if whence == os.SEEK_DATA else end
            raise

    def _unwritten(self, start: int, stop: int) -> Iterator[Segment]:
        """Data runs of [start, stop), with FIEMAP's unwritten extents as zero runs."""
        pos = start
        while pos < stop and self.fiemap:
            window_end = min(stop, pos + FIEMAP_WINDOW)
            try:
                extents = syscalls.ops.fiemap(self.fd, pos, window_end - pos, FIEMAP_FLAG_SYNC)
            except OSError as err:
                if not is_unsupported(err):
                    raise
                self.fiemap = False  # tmpfs, ramfs: SEEK_HOLE has said all there is
                break
            cursor = pos
            for ext in extents:
                if not ext.flags & FIEMAP_EXTENT_UNWRITTEN or ext.flags & (FIEMAP_EXTENT_DELALLOC
                                                                          | FIEMAP_EXTENT_UNKNOWN):
                    continue
                z0, z1 = max(cursor, ext.logical), min(window_end, ext.logical + ext.length)
                if z1 <= z0:
                    continue
                if z0 > cursor:
                    yield (cursor, z0 - cursor, False)
                yield (z0, z1 - z0, True)
                cursor = z1
            if window_end > cursor:
                yield (cursor, window_end - cursor, False)
            pos = window_end
        if pos < stop:
            yield (pos, stop - pos, False)

    def _raw(self, offset: int, end: int) -> Iterator[Segment]:
        pos = offset
        while pos < end:
            if not self.seek:
                yield from self._unwritten(pos, end)
                return
            data = self._seek(pos, os.SEEK_DATA, end)
            if data > pos:
                yield (pos, data - pos, True)
                pos = data
                continue
            hole = max(self._seek(pos, os.SEEK_HOLE, end), pos + 1) if self.seek else end
            yield from self._unwritten(pos, min(hole, end))
            pos = min(hole, end)

    def segments(self, offset: int, end: int) -> Iterator[Segment]:
        """Merged runs: adjacent zero runs (a hole beside an unwritten extent) become one."""
        pending: Segment | None = None
        for seg in self._raw(offset, end):
            if seg[1] <= 0:
                continue
            if pending is not None and pending[2] == seg[2] and pending[0] + pending[1] == seg[0]:
                pending = (pending[0], pending[1] + seg[1], seg[2])
                continue
            if pending is not None:
                yield pending
            pending = seg
        if pending is not None:
            yield pending


def layout(fd: int, offset: int, length: int) -> list[Segment]:
    """The zero and data runs of [offset, offset+length) of an open file (for tests and -v)."""
    is_block = stat.S_ISBLK(os.fstat(fd).st_mode)
    return list(_Layout(fd, is_block).segments(offset, offset + length))


def _open_source(src: str | os.PathLike[str] | int) -> tuple[int, bool, str]:
    if isinstance(src, int):
        return src, False, f"fd {src}"
    name = os.fspath(src)
    try:
        # O_NONBLOCK: a FIFO without a writer would block open() forever; it is refused below.
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as err:
        raise TargetError(f"{name}: {err.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
            raise TargetError(f"{name}: not a regular file or block device")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, True, name


def stream_file(src: str | os.PathLike[str] | int, fd: int, offset: int = 0, length: int | None = None, *,
                cancel: Cancel | None = None, result: StreamResult | None = None,
                name: str | None = None, force: bool = False) -> StreamResult:
    """Write bytes [offset, offset+length) of ``src`` (a path or an open fd) to ``fd``.

    ``length`` None means to the end; a range past the end stops at the end, as ``head -c``
    would. Holes and unwritten extents are served from the zero buffer (or, on a file or block
    device output, by the zeroing engine), data moves by splice, sendfile or copy_file_range.
    An output file or block device in use is refused unless ``force`` (as ``zero_stream``).
    """
    if offset < 0 or (length is not None and length < 0):
        raise UsageError("offset and length must not be negative")
    src_fd, owned, src_name = _open_source(src)
    try:
        st = os.fstat(src_fd)
        is_block = stat.S_ISBLK(st.st_mode)
        if not (stat.S_ISREG(st.st_mode) or is_block):
            raise TargetError(f"{src_name}: not a regular file or block device")
        out = os.fstat(fd)
        if stat.S_ISREG(out.st_mode) and (out.st_dev, out.st_ino) == (st.st_dev, st.st_ino):
            raise UsageError(f"{src_name}: input file is output file")
        size = ioctl_int(src_fd, BLKGETSIZE64, "Q") if is_block else st.st_size
        if offset > size:
            raise UsageError(f"{src_name}: offset {offset} is past the end ({size} bytes)")
        end = size if length is None else min(size, offset + length)
        output = StreamOutput(fd, cancel, result, name, force)
        output.result.source = src_name
        with output as sink:
            if end > offset:
                os.posix_fadvise(src_fd, offset, end - offset, os.POSIX_FADV_SEQUENTIAL)
            for start, n, zero in _Layout(src_fd, is_block).segments(offset, end):
                if zero:
                    sink.zeros(n)
                elif sink.data(src_fd, start, n) < n:
                    break  # the input shrank while we read it: stop at its new end
            sink.finish()
            return output.result
    finally:
        if owned:
            os.close(src_fd)
