"""Checking that a range reads back as zeros, without allocating per chunk.

``first_nonzero`` is what ``largezero verify`` and ``zero --verify`` run:

* holes are skipped with ``SEEK_DATA`` (a hole reads as zeros by definition); where the
  filesystem has no SEEK_DATA (EINVAL/EOPNOTSUPP) every byte is read;
* data is read with ``preadv`` in large chunks into one buffer allocated once per call;
* each chunk is compared against the shared zero buffer with ``bytearray.startswith``, which
  is a ``memcmp``: measured here at ~0.02 s/GiB, against ~0.9 s/GiB for ``memoryview ==``
  (which compares item by item). The zero buffer used is the PMD-sized alias of the 4 KiB
  zero page, so the comparison's source stays in L1;
* only when a chunk differs is the first non-zero byte located, page by page.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

from . import syscalls
from .mm import zero_buffer_for
from .syscalls import BLKGETSIZE64, ioctl_int

CHUNK = 8 << 20
_FIND = 4096


class ShortRead(OSError):
    """The target ended before the range did (it shrank, or the range was past its end)."""


@dataclass(frozen=True)
class VerifyResult:
    offset: int
    length: int
    first_nonzero: int | None  # None: the whole range is zero
    value: int | None  # the byte found there
    bytes_read: int  # data actually read (holes are skipped)
    reads: int

    @property
    def ok(self) -> bool:
        return self.first_nonzero is None


def _first_in(buf: bytearray, start: int, end: int) -> int:
    """Index of the first non-zero byte of buf[start:end], which is known to hold one."""
    for at in range(start, end, _FIND):
        stop = min(end, at + _FIND)
        piece = bytes(buf[at:stop])  # one page, only on the mismatch path
        stripped = piece.lstrip(b"\0")
        if stripped:
            return at + len(piece) - len(stripped)
    raise AssertionError("no non-zero byte where one was found")


def _next_data(fd: int, pos: int, end: int, seek_data: bool) -> tuple[int, bool]:
    """(first position >= pos that may hold data, whether SEEK_DATA keeps working)."""
    if not seek_data:
        return pos, False
    try:
        return syscalls.ops.lseek(fd, pos, os.SEEK_DATA), True
    except OSError as err:
        if err.errno == errno.ENXIO:
            return end, True  # only a hole from pos to EOF
        if err.errno in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTTY, errno.ESPIPE):
            return pos, False  # no SEEK_DATA here: read everything
        raise


def target_size(fd: int) -> int | None:
    """Size of a regular file or block device; None for anything else (nothing to check)."""
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode):
        return st.st_size
    if stat.S_ISBLK(st.st_mode):
        return ioctl_int(fd, BLKGETSIZE64, "Q")
    return None


def check_zero(fd: int, offset: int, length: int, *, chunk: int = CHUNK) -> VerifyResult:
    """Check [offset, offset+length) of an open fd; see the module docstring.

    Raises ShortRead when the target ends inside the range, OSError on read errors.
    """
    if offset < 0 or length < 0:
        raise ValueError("offset and length must not be negative")
    size = target_size(fd)
    if size is not None and offset + length > size:
        raise ShortRead(errno.EINVAL, f"range ends at byte {offset + length}, past the end ({size} bytes)")
    zero = zero_buffer_for(False).view
    zsize = len(zero)
    chunk = max(zsize, chunk - chunk % zsize)
    buf = bytearray(chunk)
    view = memoryview(buf)
    pos, end = offset, offset + length
    seek_data = True
    bytes_read = reads = 0
    while pos < end:
        data, seek_data = _next_data(fd, pos, end, seek_data)
        if data >= end:
            break
        pos = max(pos, data)
        want = min(chunk, end - pos)
        try:
            got = syscalls.ops.preadv(fd, [view[:want]], pos)
        except InterruptedError:
            continue
        reads += 1
        if got <= 0:
            raise ShortRead(errno.EIO, f"unexpected end of data at byte {pos}")
        bytes_read += got
        for at in range(0, got, zsize):
            stop = min(got, at + zsize)
            if not buf.startswith(zero[: stop - at], at, stop):
                where = _first_in(buf, at, stop)
                return VerifyResult(offset, length, pos + where, buf[where], bytes_read, reads)
        pos += got
    return VerifyResult(offset, length, None, None, bytes_read, reads)


def first_nonzero(fd: int, offset: int, length: int) -> int | None:
    """Offset of the first non-zero byte in [offset, offset+length), or None if all zero."""
    return check_zero(fd, offset, length).first_nonzero
