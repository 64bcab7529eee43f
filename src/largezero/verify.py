"""Checking that a range reads back as zeros, without allocating per chunk."""

from __future__ import annotations

import os

from . import syscalls
from .mm import largest_zero_buffer

_CHUNK = 8 << 20


def first_nonzero(fd: int, offset: int, length: int) -> int | None:
    """Offset of the first non-zero byte in [offset, offset+length), or None if all zero.

    Holes are skipped with SEEK_DATA; data is read into one reused buffer and compared
    against the shared zero buffer.
    """
    zero = largest_zero_buffer().view
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    pos, end = offset, offset + length
    while pos < end:
        try:
            data = syscalls.ops.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            return None  # ENXIO: only a hole up to EOF (or SEEK_DATA unsupported: read all)
        if data >= end:
            return None
        if data > pos:
            pos = data
        want = min(_CHUNK, end - pos)
        got = syscalls.ops.preadv(fd, [view[:want]], pos)
        if got <= 0:
            return None  # past EOF
        for at in range(0, got, len(zero)):
            piece = view[at : min(got, at + len(zero))]
            if piece != zero[: len(piece)]:
                stripped = bytes(piece).lstrip(b"\0")
                return pos + at + len(piece) - len(stripped)
        pos += got
    return None
