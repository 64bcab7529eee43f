"""Where a target's stored data is: the ranges a read is answered from storage, not made up.

A read of a hole or an unwritten extent is answered by the filesystem with zeros without
touching storage, O_DIRECT or not. So a verification that wants to say "read from the medium"
reads only the data ranges and counts the rest as skipped:

* a regular file: ``SEEK_DATA`` / ``SEEK_HOLE`` (iomap reports unwritten extents as holes
  unless the page cache holds data for them, which is then data);
* a loop device (or a partition of one) over a regular file: the same, on its backing file
  (``/sys/block/loopN/loop/backing_file``, shifted by ``loop/offset``), after writing back the
  loop device's own dirty pages into that file, so dirty pages are not taken for holes;
* any other block device: every byte is stored data (a disk has no holes we can see).
"""

from __future__ import annotations

import errno
import os
import stat

from .. import syscalls
from ..sysfiles import block_dir, read_text
from .inuse import loop_backing_ids_of

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from collections.abc import Iterator

    from . import Target

# Filesystems whose SEEK_DATA says nothing (every byte data): the generic llseek.
_NO_MAP = (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTTY, errno.ESPIPE, errno.ENXIO)


class DataMap:
    """The data ranges of [offset, end) of a target, found lazily (a sparse petabyte is cheap).

    ``how`` says where they came from, for the record; ``shift`` maps a target offset to an
    offset of ``fd`` (a loop's backing file starts ``loop/offset`` bytes in).
    """

    def __init__(self, fd: int | None, shift: int, how: str, owns_fd: bool = False) -> None:
        self.fd = fd
        self.shift = shift
        self.how = how
        self._owns_fd = owns_fd

    def ranges(self, offset: int, end: int) -> Iterator[tuple[int, int]]:
        """(start, stop) of each run of stored data in [offset, end), in order."""
        if self.fd is None:
            if end > offset:
                yield offset, end
            return
        pos = offset
        while pos < end:
            data = self._seek(pos, os.SEEK_DATA)
            if data is None:
                yield pos, end  # no map after all: everything from here is data
                return
            if data >= end:
                return
            hole = self._seek(data, os.SEEK_HOLE)
            stop = end if hole is None else min(hole, end)
            yield data, stop
            pos = stop

    def _seek(self, pos: int, whence: int) -> int | None:
        assert self.fd is not None
        try:
            return syscalls.ops.lseek(self.fd, pos + self.shift, whence) - self.shift
        except OSError as err:
            if err.errno == errno.ENXIO and whence == os.SEEK_DATA:
                return 1 << 63  # only a hole from pos to the end
            if err.errno in _NO_MAP:
                self.how = "every byte (SEEK_DATA not supported here)"
                self.close()
                return None
            raise

    def close(self) -> None:
        if self._owns_fd and self.fd is not None:
            os.close(self.fd)
        self.fd = None
        self._owns_fd = False

    def __enter__(self) -> DataMap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def data_map(tgt: Target, offset: int = 0, length: int | None = None) -> DataMap:
    """Where the data of ``tgt`` is (see the module docstring); close it after use.

    On a loop device, dirty pages over [offset, offset+length) are written back into the
    backing file first (written back, not flushed: a flush would be one more request in the
    device's counters, and the backing file's page cache is data to SEEK_DATA already).
    """
    if tgt.kind != "block":
        return DataMap(tgt.fd, 0, "SEEK_DATA on the file")
    loop = _loop_of(tgt.rdev)
    if loop is None:
        return DataMap(None, 0, "every byte (a block device has no holes)")
    name, start = loop
    backing = read_text(f"/sys/block/{name}/loop/backing_file")
    loop_offset = read_text(f"/sys/block/{name}/loop/offset")
    if backing is None or loop_offset is None:
        return DataMap(None, 0, "every byte (the loop device's backing file is not known)")
    try:
        syscalls.ops.sync_file_range(tgt.fd, offset, tgt.size - offset if length is None else length)
        fd = os.open(backing, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        return DataMap(None, 0, f"every byte (backing file {backing}: {err.strerror})")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)  # a loop over a block device: that device has no holes we can see
        return DataMap(None, 0, f"every byte (the loop device is backed by {backing}, not a file)")
    if not _same_backing(tgt.fd, fd):
        os.close(fd)
        return DataMap(None, 0, f"every byte ({backing} is no longer the loop device's backing file)")
    return DataMap(fd, int(loop_offset) + start, f"SEEK_DATA on the backing file {backing}", owns_fd=True)


def _loop_of(rdev: int) -> tuple[str, int] | None:
    """(loop device name, byte offset of this device in it) for a loop or a partition of one."""
    base = os.path.realpath(block_dir(rdev))
    start = 0
    if os.path.exists(os.path.join(base, "partition")):
        sectors = read_text(os.path.join(base, "start"))
        start = int(sectors) * 512 if sectors else 0
        base = os.path.dirname(base)
    name = os.path.basename(base)
    return (name, start) if os.path.isdir(os.path.join(base, "loop")) else None


def _same_backing(loop_fd: int, file_fd: int) -> bool:
    """Whether the opened file is the loop's backing file (the path may have been replaced)."""
    st = os.fstat(file_fd)
    return loop_backing_ids_of(loop_fd) == (st.st_dev, st.st_ino)
