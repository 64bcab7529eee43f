"""Is a byte range a hole, an unwritten extent or past EOF? (``need_zeroout`` in fs/iomap/direct-io.c)

Only an explicit block size larger than the page-cache granule asks this: zero padding is
written over such ranges and nowhere else. Any doubt, any error, and a block device: data,
left alone.
"""

from __future__ import annotations

import errno
import os

from .. import syscalls
from ..syscalls import FIEMAP_EXTENT_UNWRITTEN, is_unsupported
from ..targets import BLOCK, Target
from .result import WriteResult


def known_zero(tgt: Target, a: int, b: int, size: int, result: WriteResult) -> bool:
    """Whether every byte of [a, b) is in a hole (SEEK_HOLE), an UNWRITTEN extent, or past ``size``."""
    if b <= a or tgt.kind == BLOCK:
        return False
    hi = min(b, size)
    pos = a
    while pos < hi:
        result.map_calls += 1
        try:
            data_at = syscalls.ops.lseek(tgt.fd, pos, os.SEEK_DATA)
        except OSError as err:
            return err.errno == errno.ENXIO  # ENXIO: no data from pos to EOF
        if data_at >= hi:
            return True
        result.map_calls += 1
        try:
            hole_at = syscalls.ops.lseek(tgt.fd, data_at, os.SEEK_HOLE)
        except OSError:
            return False
        seg_end = min(hole_at, hi)
        if not _unwritten(tgt, data_at, seg_end, result):
            return False
        pos = seg_end
    return True


def _unwritten(tgt: Target, a: int, b: int, result: WriteResult) -> bool:
    """Whether FIEMAP shows [a, b) entirely covered by UNWRITTEN extents.

    SEEK_DATA reports an unwritten extent as data once the page cache holds a folio for it
    (a buffered read is enough), so this is where such extents are found. FIEMAP_FLAG_SYNC
    writes back dirty pages first: an unwritten extent under dirty data is data.
    """
    if "FIEMAP" in tgt.unsupported():
        return False
    result.map_calls += 1
    try:
        extents = syscalls.ops.fiemap(tgt.fd, a, b - a)
    except OSError as err:
        if is_unsupported(err):
            tgt.mark_unsupported("FIEMAP")
        return False
    pos = a
    for ext in extents:
        if ext.logical > pos or not ext.flags & FIEMAP_EXTENT_UNWRITTEN:
            return False  # a gap FIEMAP does not explain, or written data
        pos = max(pos, ext.logical + ext.length)
        if pos >= b:
            return True
    return pos >= b
