"""Helpers for tests: expected contents, reading ranges back, the root marker."""

from __future__ import annotations

import os

import pytest

from largezero.scratch import is_root

NOT_ROOT = "needs root: loop devices, mounts and /proc/self/pagemap PFNs"
requires_root = pytest.mark.skipif(not is_root(), reason=NOT_ROOT)


def pattern_bytes(length: int, seed: int = 0x5A) -> bytes:
    """The same non-zero pattern fill_pattern() writes, for building expected contents."""
    chunk = bytes((seed + i) % 255 + 1 for i in range(1 << 16)) * 16
    reps, rest = divmod(length, len(chunk))
    return chunk * reps + chunk[:rest]



def read_range(path: str, offset: int, length: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        out = bytearray()
        while len(out) < length:
            chunk = os.pread(fd, min(length - len(out), 64 << 20), offset + len(out))
            if not chunk:
                break
            out += chunk
        return bytes(out)
    finally:
        os.close(fd)
