"""Another process writing next to the range with O_DIRECT (issue 20, point 1): real processes.

A neighbour writes one sector of a 4 KiB page with O_DIRECT in a loop while largezero zeroes the
other seven sectors. A page-cache write of ours to that page would be dirty when the neighbour's
direct write lands; the kernel cannot drop it and flags the device with EIO, which both our
sync_file_range and the neighbour's fsync() then see. Sector-aligned ranges are written with
O_DIRECT only, so neither side may ever see EIO, and the neighbour's sector keeps its bytes.
"""

from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from largezero import ZeroOptions, syscalls, zero_range
from largezero.cli import main
from largezero.errors import ZeroingError

from .helpers import pattern_bytes, read_range, requires_root

PAGE = 4096
NEIGHBOUR_AT = 4096000  # the first sector of a page; largezero zeroes the other seven
RUNS = 16

# Writes 512 bytes of 0xAB with O_DIRECT at argv[2] until the file argv[3] exists, then fsync()s;
# exits 0, or 5 when any write or the fsync failed with EIO.
NEIGHBOUR = r"""
import errno, mmap, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 512)
buf.write(b"\xab" * 512)
at, stop, status, n = int(sys.argv[2]), sys.argv[3], 0, 0
while not os.path.exists(stop):
    try:
        os.pwritev(fd, [buf], at)
    except OSError as err:
        status = 5 if err.errno == errno.EIO else 6
    n += 1
    if n == 50:
        print("writing", flush=True)
try:
    os.fsync(fd)
except OSError as err:
    status = 5 if err.errno == errno.EIO else 6
sys.exit(status)
"""


def _round(dev: str, stop: str, argv: list[str]) -> tuple[int, int]:
    """One largezero job beside a live neighbour: (largezero's exit code, the neighbour's)."""
    if os.path.exists(stop):
        os.unlink(stop)
    neighbour = subprocess.Popen([sys.executable, "-c", NEIGHBOUR, dev, str(NEIGHBOUR_AT), stop],
                                 stdout=subprocess.PIPE, text=True)
    try:
        assert neighbour.stdout is not None and neighbour.stdout.readline() == "writing\n"
        rc = main(["zero", dev, "-o", str(NEIGHBOUR_AT + 512), "-l", str(PAGE - 512), "--force", *argv])
        time.sleep(0.01)  # the neighbour goes on writing the page after we are done
    finally:
        with open(stop, "w"):
            pass
        neighbour_rc = neighbour.wait(timeout=30)
    return rc, neighbour_rc


@pytest.mark.parametrize("argv", [[], ["-m", "large", "--direct"]], ids=["auto", "large-direct"])
@requires_root
def test_sector_aligned_edges_never_collide_with_a_direct_neighbour(
        ramfs_loop: Callable[[int], str], tmp_path: os.PathLike[str], capsys: pytest.CaptureFixture[str],
        argv: list[str]) -> None:
    dev = ramfs_loop(8 << 20)  # no write-zeroes: auto writes too
    _sixteen_rounds(dev, tmp_path, capsys, argv)


def test_sector_aligned_edges_of_a_file_never_collide_with_a_direct_neighbour(
        scratch_file: Callable[[int], str], tmp_path: os.PathLike[str], capsys: pytest.CaptureFixture[str]) -> None:
    _sixteen_rounds(scratch_file(8 << 20), tmp_path, capsys, ["-m", "large", "--direct"])


def _sixteen_rounds(dev: str, tmp_path: os.PathLike[str], capsys: pytest.CaptureFixture[str],
                    argv: list[str]) -> None:
    stop = os.path.join(os.fspath(tmp_path), "stop")
    results = [_round(dev, stop, argv) for _ in range(RUNS)]
    err = capsys.readouterr().err
    assert results == [(0, 0)] * RUNS, err
    assert read_range(dev, NEIGHBOUR_AT, 512) == b"\xab" * 512
    assert read_range(dev, NEIGHBOUR_AT + 512, PAGE - 512) == bytes(PAGE - 512)


class _CollidingSync(syscalls.Syscalls):
    """sync_file_range fails with EIO, as it does after another process's O_DIRECT write hit a
    dirty page of ours (the kernel's dio_warn_stale_pagecache); everything else is real."""

    def sync_file_range(self, fd: int, offset: int, length: int, flags: int = 7) -> None:
        if flags & syscalls.SYNC_FILE_RANGE_WRITE:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        super().sync_file_range(fd, offset, length, flags)


def test_eio_writing_back_sub_sector_bytes_is_told_as_a_collision(scratch_file: Callable[[int], str]) -> None:
    path = scratch_file(1 << 20)
    offset, length = 8192 + 100, 8192  # a 412-byte sub-sector head, O_DIRECT after it
    with syscalls.installed(_CollidingSync()), pytest.raises(ZeroingError) as info:
        zero_range(path, offset, length, ZeroOptions(method="large", direct=True))
    err = info.value
    assert err.exit_code == 1 and err.stopped_at == offset and err.maybe_until == 8192 + 512
    assert "page-cache collision: another process wrote the same page with O_DIRECT" in str(err)
    assert f"sync_file_range of bytes {offset}..{8192 + 512}" in str(err)
    assert f"resume with --offset {offset} --length {length}" in str(err)


class _DirtyNeighbourPage(syscalls.Syscalls):
    """The wait-only sync_file_range after our O_DIRECT writes reports EIO once, as it does when
    another process had a page shared with our bytes dirty in the page cache during our write
    (the kernel could not drop the page); every write is real and recorded."""

    def __init__(self) -> None:
        self.flagged = False
        self.buffered: list[tuple[int, int]] = []

    def pwritev(self, fd: int, buffers: Sequence[Any], offset: int) -> int:
        n = super().pwritev(fd, buffers, offset)
        if not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            self.buffered.append((offset, n))
        return n

    def sync_file_range(self, fd: int, offset: int, length: int, flags: int = 7) -> None:
        if not flags & syscalls.SYNC_FILE_RANGE_WRITE and not self.flagged:
            self.flagged = True
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        super().sync_file_range(fd, offset, length, flags)


def test_a_dirty_neighbour_page_over_our_direct_bytes_is_rewritten_through_the_page_cache(
        scratch_file: Callable[[int], str]) -> None:
    path = scratch_file(1 << 20)
    offset, length = 8192 + 512, 3 * 4096  # sector-aligned: O_DIRECT only, pages shared at both ends
    faults = _DirtyNeighbourPage()
    with syscalls.installed(faults):
        r = zero_range(path, offset, length, ZeroOptions(method="large", direct=True))
    assert faults.flagged and r.bytes_zeroed == length
    # Exactly our bytes of the two shared pages, again through the page cache; nothing else.
    end = offset + length
    assert faults.buffered == [(offset, 4096 - 512), (end - end % 4096, end % 4096)]
    assert any("written again through the page cache" in note for note in r.fallback)
    data = read_range(path, 0, 1 << 20)
    assert data[offset:end] == bytes(length)
    assert data[:offset] == pattern_bytes(1 << 20)[:offset] and data[end:] == pattern_bytes(1 << 20)[end:]
