"""The thin seam around every system call that writes, reads or offloads.

Production code calls ``syscalls.ops.<name>(...)`` at call time, so a test can install a
subclass that injects errors the machine cannot produce on demand (EINTR, short writes,
EIO after k bytes) with :func:`installed`. Nothing here hides or retries anything.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import select
import struct
from collections.abc import Sequence

from ._record import record

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    import socket
    from typing import Any

# fallocate(2) modes, <linux/falloc.h>.
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
FALLOC_FL_WRITE_ZEROES = 0x80  # Linux 6.17+

# sync_file_range(2) flags.
SYNC_FILE_RANGE_WAIT_BEFORE = 1
SYNC_FILE_RANGE_WRITE = 2
SYNC_FILE_RANGE_WAIT_AFTER = 4

# <linux/fs.h> block ioctls.
BLKSSZGET = 0x1268
BLKPBSZGET = 0x127B
BLKGETSIZE64 = 0x80081272
BLKZEROOUT = 0x127F
BLKFLSBUF = 0x1261
BLKBSZGET = 0x80081270  # the block size of the device's page cache (its buffer heads)

# FS_IOC_FIEMAP, <linux/fiemap.h>: _IOWR('f', 11, struct fiemap).
FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 0x01  # write back dirty pages first, so extent states are current
FIEMAP_EXTENT_LAST = 0x001
FIEMAP_EXTENT_UNKNOWN = 0x002
FIEMAP_EXTENT_DELALLOC = 0x004
FIEMAP_EXTENT_UNWRITTEN = 0x800
_FIEMAP_HEADER = struct.Struct("QQIIII")  # fm_start, fm_length, fm_flags, fm_mapped_extents, fm_extent_count, _
_FIEMAP_EXTENT = struct.Struct("QQQQQI12x")  # fe_logical, fe_physical, fe_length, 2 reserved, fe_flags

# statx(2)
AT_EMPTY_PATH = 0x1000
STATX_BASIC_STATS = 0x7FF
STATX_DIOALIGN = 0x2000

# The one libc handle of the package; other modules set argtypes on the functions they use.
# By soname: ctypes.util.find_library() would start an `ldconfig -p` on every run. Where
# there is no libc.so.6 (musl), the symbols the interpreter itself links are the libc.
try:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:
    libc = ctypes.CDLL(None, use_errno=True)
_libc = libc
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_libc.fallocate.restype = ctypes.c_int
_statx = getattr(_libc, "statx", None)
if _statx is not None:
    _statx.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
    _statx.restype = ctypes.c_int


class _PyBuffer(ctypes.Structure):
    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.py_object),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    ]


def buffer_address(obj: object) -> int:
    """Virtual address of any buffer-protocol object, read-only ones included."""
    view = _PyBuffer()
    if ctypes.pythonapi.PyObject_GetBuffer(ctypes.py_object(obj), ctypes.byref(view), 0) != 0:
        raise TypeError("object does not export a buffer")
    try:
        return int(view.buf or 0)
    finally:
        ctypes.pythonapi.PyBuffer_Release(ctypes.byref(view))


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


_libc.vmsplice.argtypes = [ctypes.c_int, ctypes.POINTER(_Iovec), ctypes.c_size_t, ctypes.c_uint]
_libc.vmsplice.restype = ctypes.c_ssize_t
_check_signals = ctypes.pythonapi.PyErr_CheckSignals
_check_signals.argtypes = []
_check_signals.restype = ctypes.c_int


def _iovecs(buffers: Sequence[Any]) -> tuple[Any, int]:
    """A ctypes iovec array over buffer-protocol objects (read-only ones included)."""
    array = (_Iovec * len(buffers))()
    for i, b in enumerate(buffers):
        view = memoryview(b)
        array[i].iov_base = buffer_address(view)
        array[i].iov_len = view.nbytes
    return array, len(buffers)


@record(frozen=True)
class FiemapExtent:
    logical: int
    length: int
    flags: int
    physical: int = 0  # byte offset on the device (fe_physical); 0 where FIEMAP_EXTENT_UNKNOWN


# FS_IOC_GETFSMAP, <linux/fsmap.h>: _IOWR('X', 59, struct fsmap_head); records in bytes.
FS_IOC_GETFSMAP = 0xC0C0583B
FMR_OWN_FREE = 1  # FMR_OWNER(0, 1): free space
_FSMAP = struct.Struct("IIQQQQ24x")  # fmr_device, fmr_flags, fmr_physical, fmr_owner, fmr_offset, fmr_length
_FSMAP_HEAD = struct.Struct("IIII48x")  # fmh_iflags, fmh_oflags, fmh_count, fmh_entries, reserved


def getfsmap(fd: int, physical: int, count: int = 4) -> list[tuple[int, int, int]]:
    """(physical, length, owner) of the first ``count`` records of the filesystem's space map at or
    after byte ``physical`` of its device (FS_IOC_GETFSMAP; needs CAP_SYS_ADMIN)."""
    buf = bytearray(_FSMAP_HEAD.size + _FSMAP.size * (2 + count))
    _FSMAP_HEAD.pack_into(buf, 0, 0, 0, count, 0)
    _FSMAP.pack_into(buf, _FSMAP_HEAD.size, 0, 0, physical, 0, 0, 0)
    ones = 2**64 - 1
    _FSMAP.pack_into(buf, _FSMAP_HEAD.size + _FSMAP.size, 2**32 - 1, 2**32 - 1, ones, ones, ones, 0)
    fcntl.ioctl(fd, FS_IOC_GETFSMAP, buf)
    entries = _FSMAP_HEAD.unpack_from(buf, 0)[3]
    out = []
    for i in range(entries):
        _dev, _flags, phys, owner, _off, length = _FSMAP.unpack_from(buf, _FSMAP_HEAD.size + _FSMAP.size * (2 + i))
        out.append((phys, length, owner))
    return out


class Syscalls:
    """The real system calls. Subclass and override to inject faults."""

    def pwritev(self, fd: int, buffers: Sequence[Any], offset: int) -> int:
        return os.pwritev(fd, buffers, offset)

    def pwrite(self, fd: int, data: Any, offset: int) -> int:
        return os.pwrite(fd, data, offset)

    def preadv(self, fd: int, buffers: Sequence[Any], offset: int) -> int:
        return os.preadv(fd, buffers, offset)

    def pread(self, fd: int, length: int, offset: int) -> bytes:
        return os.pread(fd, length, offset)

    def fallocate(self, fd: int, mode: int, offset: int, length: int) -> None:
        if _libc.fallocate(fd, mode, offset, length) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))

    def blkzeroout(self, fd: int, offset: int, length: int) -> None:
        fcntl.ioctl(fd, BLKZEROOUT, struct.pack("QQ", offset, length))

    def fdatasync(self, fd: int) -> None:
        os.fdatasync(fd)

    def sync_file_range(self, fd: int, offset: int, length: int,
                        flags: int = SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER,
                        ) -> None:
        """Write back the page cache over [offset, offset+length) and wait for it (no device flush)."""
        fn = _libc.sync_file_range
        fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
        if fn(fd, offset, length, flags) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def lseek(self, fd: int, offset: int, whence: int) -> int:
        return os.lseek(fd, offset, whence)

    def ftruncate(self, fd: int, length: int) -> None:
        os.ftruncate(fd, length)

    def fiemap(self, fd: int, offset: int, length: int, flags: int = FIEMAP_FLAG_SYNC,
               max_extents: int = 64) -> list[FiemapExtent]:
        """FS_IOC_FIEMAP over [offset, offset+length): the extents that overlap it, in order.

        One ioctl per ``max_extents`` extents; a range with more is walked in several calls.
        """
        out: list[FiemapExtent] = []
        end = offset + length
        pos = offset
        while pos < end:
            buf = bytearray(_FIEMAP_HEADER.size + _FIEMAP_EXTENT.size * max_extents)
            _FIEMAP_HEADER.pack_into(buf, 0, pos, end - pos, flags, 0, max_extents, 0)
            fcntl.ioctl(fd, FS_IOC_FIEMAP, buf)
            mapped = _FIEMAP_HEADER.unpack_from(buf, 0)[3]
            if mapped == 0:
                break
            last = False
            for i in range(mapped):
                logical, phys, ext_len, _r0, _r1, ext_flags = _FIEMAP_EXTENT.unpack_from(
                    buf, _FIEMAP_HEADER.size + i * _FIEMAP_EXTENT.size)
                out.append(FiemapExtent(logical, ext_len, ext_flags, phys))
                last = bool(ext_flags & FIEMAP_EXTENT_LAST)
            nxt = out[-1].logical + out[-1].length
            if last or mapped < max_extents or nxt <= pos:
                break
            pos = nxt
        return out

    # --- streams (largezero cat): pipes, sockets, in-kernel copies ---------------------------

    def vmsplice(self, fd: int, buffers: Sequence[Any], flags: int = 0) -> int:
        """vmsplice(2) of user memory into a pipe: the pipe references the pages, no copy."""
        array, count = _iovecs(buffers)
        while True:
            n = _libc.vmsplice(fd, array, count, flags)
            if n >= 0:
                return int(n)
            code = ctypes.get_errno()
            if code != errno.EINTR:
                raise OSError(code, os.strerror(code))
            # PEP 475, as os.* does it: run the Python signal handlers (Ctrl-C raises
            # KeyboardInterrupt from here), then retry.
            if _check_signals() != 0:
                raise KeyboardInterrupt

    def splice(self, src: int, dst: int, count: int, offset_src: int | None = None,
               offset_dst: int | None = None, flags: int = 0) -> int:
        return os.splice(src, dst, count, offset_src, offset_dst, flags)

    def writev(self, fd: int, buffers: Sequence[Any]) -> int:
        return os.writev(fd, buffers)

    def write(self, fd: int, data: Any) -> int:
        return os.write(fd, data)

    def sendmsg(self, sock: socket.socket, buffers: Sequence[Any], flags: int = 0) -> int:
        return sock.sendmsg(buffers, [], flags)

    def copy_file_range(self, src: int, dst: int, count: int, offset_src: int | None = None,
                        offset_dst: int | None = None) -> int:
        return os.copy_file_range(src, dst, count, offset_src, offset_dst)

    def sendfile(self, out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        return os.sendfile(out_fd, in_fd, offset, count)

    def poll(self, fd: int, events: int, timeout_ms: int | None = None) -> int:
        """Wait until ``fd`` is ready; returns the revents (POLLERR/POLLHUP included)."""
        p = select.poll()
        p.register(fd, events)
        ready = p.poll(timeout_ms)
        return ready[0][1] if ready else 0


ops: Syscalls = Syscalls()


class installed:  # lower case: it reads as a function, ``with syscalls.installed(fake):``
    """Route every system call through ``replacement`` for the duration of the block. A class,
    not @contextlib.contextmanager: contextlib is one more import on every start."""

    def __init__(self, replacement: Syscalls) -> None:
        self.replacement = replacement
        self.previous: Syscalls | None = None

    def __enter__(self) -> Syscalls:
        global ops
        self.previous, ops = ops, self.replacement
        return self.replacement

    def __exit__(self, *exc: object) -> None:
        global ops
        assert self.previous is not None
        ops = self.previous


def ioctl_int(fd: int, request: int, fmt: str = "i") -> int:
    """Read one integer through an ioctl (block size, device size)."""
    size = struct.calcsize(fmt)
    out = fcntl.ioctl(fd, request, bytes(size))
    return int(struct.unpack(fmt, out)[0])


def statx_dio_align(fd: int) -> tuple[int, int] | None:
    """(dio_mem_align, dio_offset_align) from statx(STATX_DIOALIGN), or None where unsupported.

    Layout of struct statx from <linux/stat.h>: stx_mask at 0, dio_mem_align at 152,
    dio_offset_align at 156.
    """
    if _statx is None:
        return None
    buf = ctypes.create_string_buffer(256)
    if _statx(fd, b"", AT_EMPTY_PATH, STATX_DIOALIGN, buf) != 0:
        return None
    mask, = struct.unpack_from("I", buf.raw, 0)
    if not mask & STATX_DIOALIGN:
        return None
    mem_align, offset_align = struct.unpack_from("II", buf.raw, 152)
    if offset_align == 0:
        # The filesystem says direct I/O is not supported on this file.
        return (0, 0)
    return mem_align, offset_align


def is_unsupported(err: OSError) -> bool:
    """Errors that mean "this call does not apply here", as opposed to a real I/O error."""
    return err.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.ENOSYS, errno.ENODEV)


def proves_unsupported(err: OSError, mechanism: str) -> bool:
    """Whether an offload call's error proves the mechanism is absent here, to be remembered.

    EOPNOTSUPP / ENOTTY / ENOSYS say so. EINVAL is ambiguous (a bad range says EINVAL too); it
    is remembered only where fallocate(2) documents it as "mode not supported by this
    filesystem", for the newest mode, FALLOC_FL_WRITE_ZEROES, which older kernels reject so.
    """
    if err.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.ENOSYS):
        return True
    return err.errno == errno.EINVAL and mechanism == "WRITE_ZEROES"
