"""The iomap DIO-write model against a live XFS with 64 KiB blocks, exactly.

An XFS made with ``mkfs.xfs -b size=65536`` on a loop device over a sparse ramfs file we
create (512 B and 4 KiB logical blocks). Each case prepares a fresh file (a hole, an
unwritten extent from fallocate, or blocks written by one aligned O_DIRECT write, with the
size cut to an unaligned EOF by truncate), then writes LENGTH bytes at OFFSET with O_DIRECT
from a page-aligned buffer and compares /sys/block/<loop>/stat with ``predicted_live`` of
``largezero model --path iomap --device LOOP --dio-write OFFSET:LENGTH --file-size SIZE
--extent STATE --json``: write requests, merges and sectors, exactly.

Keeping the filesystem's own writes out: before each measured write the filesystem is frozen
and thawed (FIFREEZE/FITHAW). Freezing writes back every dirty page, forces the log, pushes
every logged metadata buffer home (the AIL) and covers the log, so nothing is pending; thawing
re-arms the log worker 30 s later. The measurement window is only the pwritev() call, which
returns after its bios complete. What XFS logs for the write (the allocation, the unwritten
extent conversion and the new size at completion) goes into the in-memory CIL and reaches
the disk at the next log force, outside the window: a small transaction never forces the log
by itself, and no O_DSYNC is used. The window can therefore only hold the write's own bios
and the EOF folio's synchronous writeback, which the model predicts; a control case checks
that a quiesced window is silent and that the deferred metadata does reach the disk later.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import mmap
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from largezero.cli import main
from largezero.scratch import is_root, loop_device, make_image, memfs_mount, set_queue_attr
from largezero.syscalls import FALLOC_FL_KEEP_SIZE, ops
from largezero.targets.diskstat import read_stat

from .helpers import NOT_ROOT

KiB = 1 << 10
BS = 64 * KiB
FIFREEZE, FITHAW = 0xC0045877, 0xC0045878
pytestmark = [pytest.mark.root, pytest.mark.skipif(not is_root(), reason=NOT_ROOT)]


def have_mkfs_xfs() -> str | None:
    """None when mkfs.xfs is there (installing xfsprogs if it is not), else why not."""
    if shutil.which("mkfs.xfs"):
        return None
    if shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "xfsprogs"], capture_output=True, check=False,
                       timeout=300)
    if shutil.which("mkfs.xfs"):
        return None
    return "mkfs.xfs is missing and xfsprogs could not be installed (apt-get install xfsprogs)"


def queue_attr(dev: str, name: str) -> int:
    with open(f"/sys/block/{os.path.basename(dev)}/queue/{name}") as f:
        return int(f.read())


@contextlib.contextmanager
def restoring_queue(dev: str, *names: str) -> Iterator[None]:
    # Queue settings outlive the loop attachment: put back what the tests change.
    before = {n: queue_attr(dev, n) for n in names}
    try:
        yield
    finally:
        for n, v in before.items():
            set_queue_attr(dev, n, v)


@dataclass
class Fs:
    dev: str
    mnt: str
    lbs: int
    count: int = 0

    def new_file(self) -> str:
        self.count += 1
        return os.path.join(self.mnt, f"f{self.count}")


@contextlib.contextmanager
def xfs_on_loop(lbs: int) -> Iterator[Fs]:
    why = have_mkfs_xfs()
    if why:
        print(why)
        pytest.skip(why)
    with memfs_mount("ramfs") as ram:
        image = make_image(os.path.join(ram, "xfs.img"), 512 << 20, allocate=False)
        with loop_device(image, sector_size=lbs) as dev, restoring_queue(dev, "max_sectors_kb", "nomerges"):
            subprocess.run(["mkfs.xfs", "-q", "-K", "-b", f"size={BS}", "-s", f"size={lbs}", dev],
                           check=True, capture_output=True)
            mnt = tempfile.mkdtemp(prefix="largezero-xfs-")
            try:
                subprocess.run(["mount", "-t", "xfs", dev, mnt], check=True, capture_output=True)
                try:
                    yield Fs(dev, mnt, lbs)
                finally:
                    subprocess.run(["umount", mnt], check=True, capture_output=True)
            finally:
                os.rmdir(mnt)


@pytest.fixture(scope="module", params=[512, 4096], ids=["512B-sectors", "4K-sectors"])
def xfs(request: pytest.FixtureRequest) -> Iterator[Fs]:
    with xfs_on_loop(request.param) as fs:
        yield fs


_BUF = mmap.mmap(-1, 4 * BS)  # page-aligned, private: O_DIRECT-able user pages
_BUF.write(b"\xa5" * len(_BUF))


def quiesce(mnt: str) -> None:
    fd = os.open(mnt, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, FIFREEZE, 0)
        fcntl.ioctl(fd, FITHAW, 0)
    finally:
        os.close(fd)


def dio_write(path: str, offset: int, length: int, buf: mmap.mmap = _BUF) -> None:
    """One O_DIRECT write of ``length`` pattern bytes from the page-aligned ``buf``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
    try:
        assert os.pwritev(fd, [memoryview(buf)[:length]], offset) == length
    finally:
        os.close(fd)


def extents(path: str, offset: int, length: int) -> list[tuple[int, int, bool]]:
    fd = os.open(path, os.O_RDONLY)
    try:
        return [(e.logical, e.length, bool(e.flags & 0x800)) for e in ops.fiemap(fd, offset, length, flags=0)]
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Case:
    offset: int
    length: int
    file_size: int
    extent: str
    kb: int
    nomerges: int

    def __str__(self) -> str:
        return (f"{self.extent} {self.offset}:{self.length} size={self.file_size} "
                f"max_sectors_kb={self.kb} nomerges={self.nomerges}")


def random_case(rng: random.Random, lbs: int) -> Case:
    kb = rng.choice([4, 8, 16, 60, 64, 100, 128, 256, 300, 1280])
    kb -= kb % (lbs // 1024 or 1)
    length = rng.choice([lbs, rng.randrange(1, 9) * lbs, rng.randrange(1, 128 * KiB // lbs + 1) * lbs])
    kind = rng.choice(["hole", "hole-sparse", "unwritten", "written", "at-eof", "past-eof", "past-eof-far"])
    unaligned_size = rng.randrange(1, BS // lbs) * lbs  # an EOF inside a block
    if kind in ("hole", "hole-sparse", "unwritten", "written"):
        offset = rng.randrange(0, 3 * BS // lbs) * lbs
        size = 0
        if kind == "hole-sparse":  # truncated far beyond the write: holes below EOF
            size = rng.choice([8 * BS, 8 * BS + unaligned_size])
        elif kind == "unwritten":
            size = rng.choice([0, 6 * BS, 6 * BS + unaligned_size])
        elif kind == "written":
            size = -(-(offset + length) // BS) * BS - rng.choice([0, BS - unaligned_size])
            size = max(size, offset + lbs)
        return Case(offset, length, size, "hole" if kind.startswith("hole") else kind, kb, rng.choice([0, 0, 1, 2]))
    eof_block = rng.randrange(0, 3) * BS
    size = eof_block + unaligned_size
    if kind == "at-eof":  # within written blocks, ending at EOF or starting at it
        length = min(length, size)
        if rng.random() < 0.5:
            offset = size - length
        else:
            offset, length = size, min(length, eof_block + BS - size)
        return Case(offset, length, size, "written", kb, rng.choice([0, 0, 1, 2]))
    if kind == "past-eof":  # past EOF, in the EOF block: the zeroed folio is flushed first
        room = (eof_block + BS - size) // lbs
        if room < 2:
            size -= lbs
            room += 1
        offset = size + rng.randrange(1, room) * lbs
        length = min(length, eof_block + BS - offset)
        return Case(offset, length, size, "written", kb, rng.choice([0, 0, 1, 2]))
    offset = eof_block + rng.randrange(1, 3) * BS + rng.randrange(0, BS // lbs) * lbs  # a later, new block
    return Case(offset, length, size, "hole", kb, rng.choice([0, 0, 1, 2]))


def prepare(fs: Fs, case: Case) -> str:
    """A fresh file whose blocks under the write are all in ``case.extent``, of ``case.file_size``."""
    path = fs.new_file()
    first, last = case.offset - case.offset % BS, -(-(case.offset + case.length) // BS) * BS
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if case.extent == "unwritten":
            ops.fallocate(fd, FALLOC_FL_KEEP_SIZE, first, last - first)
        elif case.extent == "written":
            os.close(fd)
            fd = -1
            top = max(last, -(-case.file_size // BS) * BS)  # the EOF block is written too
            dio_write(path, first, top - first)
            fd = os.open(path, os.O_RDWR)
        if fd >= 0:
            os.ftruncate(fd, case.file_size)
    finally:
        if fd >= 0:
            os.close(fd)
    # One extent in the intended state (XFS's FIEMAP stops at EOF: check what lies below it).
    top = min(last, case.file_size) if case.extent == "unwritten" else last
    if case.extent != "hole" and top > first:
        found = extents(path, first, top - first)
        assert len(found) == 1 and found[0][0] <= first and found[0][0] + found[0][1] >= top, found
        assert found[0][2] == (case.extent == "unwritten"), found
    return path


def predicted(fs: Fs, case: Case, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    argv = ["model", "--path", "iomap", "--device", fs.dev, "--dio-write", f"{case.offset}:{case.length}",
            "--file-size", str(case.file_size), "--extent", case.extent, "--json"]
    capsys.readouterr()
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["limits"]["max_sectors_kb"] == case.kb and report["limits"]["nomerges"] == case.nomerges
    live: dict[str, object] = report["predicted_live"]
    return live


def run_case(fs: Fs, case: Case, capsys: pytest.CaptureFixture[str]) -> str | None:
    set_queue_attr(fs.dev, "max_sectors_kb", case.kb)
    set_queue_attr(fs.dev, "nomerges", case.nomerges)
    path = prepare(fs, case)
    want = predicted(fs, case, capsys)
    quiesce(fs.mnt)
    before = read_stat(fs.dev)
    dio_write(path, case.offset, case.length)
    got = read_stat(fs.dev) - before
    measured = (got.write_ios, got.write_merges, got.write_sectors)
    if measured != (want["requests"], want["merges"], want["sectors"]):
        return f"{case}: measured {measured}, predicted {want}"
    return None


def sweep(fs: Fs, seed: int, n: int, capsys: pytest.CaptureFixture[str]) -> list[str]:
    rng = random.Random(seed)
    misses = [run_case(fs, random_case(rng, fs.lbs), capsys) for _ in range(n)]
    return [m for m in misses if m]


def test_quiesced_window_is_silent_and_metadata_comes_later(xfs: Fs) -> None:
    """The method's premise: nothing but the write in the window; its log reaches disk later."""
    quiesce(xfs.mnt)
    before = read_stat(xfs.dev)
    assert (read_stat(xfs.dev) - before).write_ios == 0
    path = xfs.new_file()
    quiesce(xfs.mnt)
    before = read_stat(xfs.dev)
    dio_write(path, 4 * xfs.lbs, xfs.lbs)  # allocation, unwritten conversion, new size: all logged
    window = read_stat(xfs.dev) - before
    assert window.write_sectors == BS // 512  # head pad + data + tail pad: one block, nothing else
    quiesce(xfs.mnt)
    later = read_stat(xfs.dev) - before
    assert later.write_sectors > window.write_sectors  # the log and metadata, written at the freeze


@pytest.mark.parametrize(("case", "expect"), [
    # (case, (requests, merges, sectors)), as measured on 6.18 when the issue was written
    (Case(512, 512, 0, "hole", 1280, 0), (1, 2, 128)),  # one sector mid-block: two zeroing bios
    (Case(0, 512, 0, "hole", 1280, 0), (1, 1, 128)),  # at the block start: only the tail pad
    (Case(0, 4096, 4096, "written", 1280, 0), (1, 1, 128)),  # a 4 KiB rewrite at EOF wrote 64 KiB
    (Case(8192, 4096, 4096, "written", 1280, 0), (2, 1, 240)),  # past EOF: the EOF folio first
    (Case(BS + 512, 512, 4096, "hole", 1280, 0), (1, 2, 128)),  # past EOF, later block: folio deferred
    (Case(1024, 128 * KiB, 0, "hole", 60, 2), (6, 0, 384)),  # nomerges 2: 1 + 3 + 2 pieces, no merge
], ids=str)
def test_known_cases(xfs: Fs, case: Case, expect: tuple[int, int, int],
                     capsys: pytest.CaptureFixture[str]) -> None:
    if (case.offset | case.length | case.file_size) % xfs.lbs:
        pytest.skip(f"not a multiple of the {xfs.lbs}-byte logical block")
    assert run_case(xfs, case, capsys) is None
    if xfs.lbs == 512:
        want = predicted(xfs, case, capsys)
        assert (want["requests"], want["merges"], want["sectors"]) == expect


def test_random_dio_writes(xfs: Fs, capsys: pytest.CaptureFixture[str]) -> None:
    n = 30 if xfs.lbs == 512 else 15
    assert sweep(xfs, 20251210 + xfs.lbs, n, capsys) == []


@pytest.mark.long
def test_random_dio_writes_long(xfs: Fs, capsys: pytest.CaptureFixture[str]) -> None:
    assert sweep(xfs, 7 + xfs.lbs, 300, capsys) == []
