"""DirectWriter against a reference made with plain buffered writes, and the no-read promise.

Every property test writes the same bytes twice: with the writer into the target, and with
os.pwrite into a reference copy, then compares the whole target (size included), so a byte
changed outside the range fails as surely as a wrong byte inside it.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from largezero import syscalls
from largezero.iomap import DirectWriter, WriteResult, aligned_buffer, iomap_dio_zero, plan_pieces
from largezero.iomap.direct_io import ALIGNED, MERGED, RMW, ZEROED
from largezero.mm import pmd_size
from largezero.scratch import fill_pattern, is_root, loop_device, make_image, memfs_mount

from .helpers import NOT_ROOT, read_range, requires_root

SIZE = 4 << 20
PMD = pmd_size() or (2 << 20)
FILE_BLOCKS = [512, 1024, 4096, 16384, 65536, PMD]
PROPERTY = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

T = TypeVar("T", bound=syscalls.Syscalls)


@contextlib.contextmanager
def installed(replacement: T) -> Iterator[T]:
    """syscalls.installed() that keeps the replacement's own type for the checker."""
    with syscalls.installed(replacement):
        yield replacement



class Counting(syscalls.Syscalls):
    """The real calls, counted: reads (the no-read promise), map lookups and writes."""

    def __init__(self) -> None:
        self.reads = 0
        self.read_bytes = 0
        self.fiemaps = 0
        self.seeks = 0
        self.writes = 0

    def preadv(self, fd: int, buffers: Sequence[Any], offset: int) -> int:
        self.reads += 1
        n = super().preadv(fd, buffers, offset)
        self.read_bytes += n
        return n

    def pread(self, fd: int, length: int, offset: int) -> bytes:
        self.reads += 1
        out = super().pread(fd, length, offset)
        self.read_bytes += len(out)
        return out

    def fiemap(self, fd: int, offset: int, length: int, flags: int = syscalls.FIEMAP_FLAG_SYNC,
               max_extents: int = 64) -> list[syscalls.FiemapExtent]:
        self.fiemaps += 1
        return super().fiemap(fd, offset, length, flags, max_extents)

    def lseek(self, fd: int, offset: int, whence: int) -> int:
        self.seeks += 1
        return super().lseek(fd, offset, whence)

    def pwritev(self, fd: int, buffers: Sequence[Any], offset: int) -> int:
        self.writes += 1
        return super().pwritev(fd, buffers, offset)


def make_layout(path: str, layout: str, seed: int = 0) -> None:
    """A SIZE-byte file: ``holes`` (sparse, a few data patches), ``sparse`` (no data at all),
    ``unwritten`` (fallocated, a few patches), ``prealloc`` (fallocated, no data),
    ``cached`` (fallocated, then read through the page cache), ``written`` (all data)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, SIZE)
        if layout in ("unwritten", "prealloc", "cached"):
            os.posix_fallocate(fd, 0, SIZE)
        if layout == "cached":
            # Pages over unwritten extents in the cache make SEEK_DATA call them data; FIEMAP must not.
            for pos in range(0, SIZE, 1 << 20):
                os.pread(fd, 1 << 20, pos)
    finally:
        os.close(fd)
    if layout == "written":
        fill_pattern(path, 0, SIZE)
    elif layout in ("holes", "unwritten"):
        rng = random.Random(seed)
        for _ in range(6):
            off = rng.randrange(0, SIZE - 1)
            fill_pattern(path, off, min(SIZE - off, rng.randrange(1, 200_000)), seed=rng.randrange(1, 250))


def reference_write(path: str, data: bytes, offset: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        done = 0
        while done < len(data):
            done += os.pwrite(fd, data[done:], offset + done)
    finally:
        os.close(fd)


def whole(path: str) -> bytes:
    return read_range(path, 0, os.path.getsize(path))


@contextlib.contextmanager
def pair(layout: str, seed: int, directory: str | None = None) -> Iterator[tuple[str, str]]:
    """A fresh target of the layout and its reference copy, removed afterwards."""
    with tempfile.TemporaryDirectory(dir=directory) as d:
        target = os.path.join(d, "target.img")
        ref = os.path.join(d, "ref.img")
        # Built twice rather than copied: a copy would read the target into the page cache.
        make_layout(target, layout, seed)
        make_layout(ref, layout, seed)
        yield target, ref


def payload(seed: int, length: int, offset: int, aligned: bool) -> bytes | memoryview:
    data = random.Random(seed).randbytes(length)
    if not aligned:
        return data
    buf = aligned_buffer(length, offset=offset)
    buf[:] = data
    return buf


writes = st.tuples(
    st.sampled_from(FILE_BLOCKS),
    st.integers(0, SIZE + 200_000),  # past EOF too: the file grows to exactly offset + length
    st.one_of(st.integers(0, 5000), st.integers(0, 700_000)),
    st.booleans(),  # data in an aligned buffer (no bounce) or in bytes (bounced)
    st.integers(0, 2**32),
)


def check_file_write(layout: str, block: int, offset: int, length: int, aligned: bool, seed: int,
                     directory: str | None = None, direct: bool = True) -> tuple[WriteResult, Counting]:
    data = payload(seed, length, offset, aligned)
    with pair(layout, seed, directory) as (target, ref):
        # Opened outside the counted block: opening may read (a device's signature probe).
        with DirectWriter(target, block_size=block, direct=direct) as w, installed(Counting()) as counter:
            result = w.write(data, offset)
        reference_write(ref, bytes(data), offset)
        assert os.path.getsize(target) == os.path.getsize(ref)
        assert whole(target) == whole(ref)
    assert result.bytes_written == length
    if aligned and direct:
        assert result.bounce_bytes == 0  # an address congruent to the offset goes straight out
    assert result.rmw_bytes_read == counter.read_bytes
    assert result.reads == counter.reads
    assert result.calls == counter.writes
    if length:
        assert result.span_offset <= offset and offset + length <= result.span_offset + result.span_length
        assert result.span_offset % block == 0 or (not direct and result.head == MERGED)
    return result, counter


@PROPERTY
@given(w=writes)
def test_holes_match_reference(w: tuple[int, int, int, bool, int]) -> None:
    check_file_write("holes", *w)


@PROPERTY
@given(w=writes)
def test_unwritten_extents_match_reference(w: tuple[int, int, int, bool, int]) -> None:
    check_file_write("unwritten", *w)


@PROPERTY
@given(w=writes)
def test_written_data_matches_reference(w: tuple[int, int, int, bool, int]) -> None:
    result, _ = check_file_write("written", *w)
    block, offset, length = w[0], w[1], w[2]
    if length and offset + length <= SIZE:
        # Partial blocks over data are read back, never zeroed.
        assert result.head in (ALIGNED, RMW) and result.tail in (ALIGNED, RMW)
        assert result.pad_bytes == 0
        assert result.rmw_bytes_read <= 2 * block


@settings(PROPERTY, max_examples=25)
@given(w=writes)
def test_buffered_mode_matches_reference(w: tuple[int, int, int, bool, int]) -> None:
    for layout in ("holes", "written"):
        result, counter = check_file_write(layout, *w, direct=False)
        assert counter.reads == 0  # the page cache does its own read-modify-write


@PROPERTY
@given(w=writes, layout=st.sampled_from(["sparse", "prealloc"]))
def test_no_read_into_holes_or_unwritten_extents(w: tuple[int, int, int, bool, int], layout: str) -> None:
    result, counter = check_file_write(layout, *w)
    assert counter.reads == 0 and result.rmw_bytes_read == 0
    assert counter.fiemaps == 0  # SEEK_HOLE answers alone here
    if w[2]:
        # Every byte of the span outside the range is padding.
        assert result.pad_bytes == result.span_length - w[2]
        assert result.head in (ALIGNED, ZEROED) and result.tail in (ALIGNED, ZEROED)


def test_unwritten_extent_in_page_cache_found_by_fiemap() -> None:
    """SEEK_DATA calls a cached unwritten extent data; FIEMAP_EXTENT_UNWRITTEN saves the read."""
    result, counter = check_file_write("cached", 65536, 3 * 65536 + 1000, 200_000, False, 7)
    assert counter.fiemaps >= 1
    assert counter.reads == 0
    assert result.head == ZEROED and result.tail == ZEROED
    assert result.zero_pad_bytes > 0


def test_written_partial_blocks_read_only_their_uncovered_part() -> None:
    block = 65536
    offset = 5 * block + 1500  # the head gap, 1500 bytes, ends inside the third sector of the block
    result, counter = check_file_write("written", block, offset, 2 * block, False, 3)
    assert result.head == RMW and result.tail == RMW
    # Each gap is read rounded out to whole sectors, not the whole block: 3 sectors at the head,
    # the tail block from the sector holding our last byte.
    assert counter.reads == 2
    assert result.rmw_bytes_read == 1536 + (block - 1024)


def test_one_pwritev_per_span_mixes_zero_buffer_and_data() -> None:
    block = 65536
    offset, length = block + 4096, 5 * block
    data = aligned_buffer(length, offset=offset)
    data[:] = random.Random(1).randbytes(length)
    with pair("sparse", 1) as (target, ref), DirectWriter(target, block_size=block) as w:
        with installed(Counting()) as counter:
            result = w.write(data, offset)
        reference_write(ref, bytes(data), offset)
        assert whole(target) == whole(ref)
    assert counter.writes == 1 and result.calls == 1
    assert result.bounce_bytes == 0  # straight from the caller's buffer
    # [zero head 4 KiB][data][zero tail 60 KiB]: padding iovecs point into the one shared zero buffer.
    head, tail = 4096, 7 * block - (offset + length)
    zero_iovecs = len(iomap_dio_zero(w.zero_buffer, head)) + len(iomap_dio_zero(w.zero_buffer, tail))
    assert result.iovecs == zero_iovecs + 1
    assert result.zero_pad_bytes == result.pad_bytes == head + tail
    assert (result.span_offset, result.span_length) == (block, 6 * block)


def test_zero_matches_reference() -> None:
    rng = random.Random(5)
    for layout in ("holes", "written", "unwritten", "sparse"):
        for _ in range(12):
            block = rng.choice(FILE_BLOCKS)
            offset, length = rng.randrange(0, SIZE + 10_000), rng.randrange(0, 300_000)
            with pair(layout, rng.randrange(1 << 30)) as (target, ref), DirectWriter(target, block_size=block) as w:
                with installed(Counting()) as c:
                    result = w.zero(offset, length)
                reference_write(ref, bytes(length), offset)
                assert os.path.getsize(target) == os.path.getsize(ref)
                assert whole(target) == whole(ref)
            assert result.bytes_written == length
            if layout == "sparse":
                assert c.reads == 0 and result.pad_bytes + length == result.span_length
            elif layout == "written" and length and offset + length <= SIZE:
                partial = {"head": offset % block != 0, "tail": (offset + length) % block != 0}
                assert {"head": result.head == RMW, "tail": result.tail == RMW} == partial
                assert (c.reads > 0) == any(partial.values()) and c.reads <= 2

def test_sequential_writes_share_a_writer_and_file_grows_exactly() -> None:
    rng = random.Random(11)
    with pair("holes", 11) as (target, ref), DirectWriter(target, block_size=16384) as w:
        for _ in range(60):
            offset, length = rng.randrange(0, SIZE + 300_000), rng.randrange(0, 40_000)
            data = rng.randbytes(length)
            w.write(data, offset)
            reference_write(ref, data, offset)
        assert os.path.getsize(target) == os.path.getsize(ref)
        assert whole(target) == whole(ref)


def _shape(pieces: list[Any]) -> list[tuple[int, int, str, bool | None]]:
    return [(p.start, p.end, p.kind, None if p.window is None else p.window.read) for p in pieces]


def test_plan_pieces() -> None:
    # 10 bytes inside one 512-byte granule of a 4 KiB block; head a hole, tail data: one window, read.
    assert _shape(plan_pieces(4196, 4206, 4096, 8192, 512, ZEROED, RMW)) == [(4096, 8192, "window", True)]
    # Both gaps holes: zeros, the granule assembled in scratch, zeros.
    assert _shape(plan_pieces(4196, 4206, 4096, 8192, 512, ZEROED, ZEROED)) == [
        (4096, 4608, "window", False), (4608, 8192, "zero", None)]
    assert _shape(plan_pieces(5000, 70000, 4096, 73728, 512, ZEROED, ZEROED)) == [
        (4096, 4608, "zero", None), (4608, 5120, "window", False), (5120, 69632, "data", None),
        (69632, 70144, "window", False), (70144, 73728, "zero", None)]
    assert _shape(plan_pieces(5000, 70000, 4096, 73728, 512, RMW, RMW)) == [
        (4096, 5120, "window", True), (5120, 69632, "data", None), (69632, 73728, "window", True)]
    # Buffered: granule 1, no windows at all.
    assert _shape(plan_pieces(5000, 70000, 4096, 73728, 1, ZEROED, ZEROED)) == [
        (4096, 5000, "zero", None), (5000, 70000, "data", None), (70000, 73728, "zero", None)]


# --- block devices ------------------------------------------------------------------------


@contextlib.contextmanager
def loop_pair(sector: int | None = None) -> Iterator[tuple[str, str]]:
    """A loop device over a patterned image of our own, and a plain reference file with the same bytes."""
    with tempfile.TemporaryDirectory() as d:
        image = make_image(os.path.join(d, "disk.img"), SIZE)
        fill_pattern(image, 0, SIZE)
        ref = os.path.join(d, "ref.img")
        shutil.copyfile(image, ref)
        with loop_device(image, sector_size=sector) as dev:
            yield dev, ref


@pytest.fixture(scope="module")
def loop512() -> Iterator[tuple[str, str]]:
    if not is_root():
        pytest.skip(NOT_ROOT)
    with loop_pair() as p:
        yield p


@pytest.fixture(scope="module")
def loop4k() -> Iterator[tuple[str, str]]:
    if not is_root():
        pytest.skip(NOT_ROOT)
    with loop_pair(4096) as p:
        yield p


def _device_write(dev: str, ref: str, block: int, offset: int, length: int, seed: int, aligned: bool) -> None:
    length = min(length, SIZE - offset)
    data = payload(seed, length, offset, aligned)
    with DirectWriter(dev, block_size=block) as w, installed(Counting()) as counter:
        assert w.target.kind == "block"
        result = w.write(data, offset)
    reference_write(ref, bytes(data), offset)
    assert read_range(dev, 0, SIZE) == read_range(ref, 0, SIZE)
    # Never assume a hole on a block device: every partial block is read.
    partial = (offset % block != 0) + ((offset + length) % block != 0) if length else 0
    assert ZEROED not in (result.head, result.tail)
    if partial:
        assert counter.reads >= 1 and result.rmw_bytes_read > 0
    else:
        assert counter.reads == 0


@requires_root
@PROPERTY
@given(block=st.sampled_from([512, 4096, 65536, PMD]), offset=st.integers(0, SIZE - 1),
       length=st.one_of(st.integers(0, 5000), st.integers(0, 600_000)), seed=st.integers(0, 2**32),
       aligned=st.booleans())
def test_loop_device_matches_reference(loop512: tuple[str, str], block: int, offset: int, length: int,
                                       seed: int, aligned: bool) -> None:
    _device_write(*loop512, block, offset, length, seed, aligned)


@requires_root
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(block=st.sampled_from([4096, 65536]), offset=st.integers(0, SIZE - 1),
       length=st.integers(0, 300_000), seed=st.integers(0, 2**32), aligned=st.booleans())
def test_loop_device_4k_sectors_matches_reference(loop4k: tuple[str, str], block: int, offset: int, length: int,
                                                  seed: int, aligned: bool) -> None:
    _device_write(*loop4k, block, offset, length, seed, aligned)


@requires_root
def test_tmpfs_file_without_fiemap() -> None:
    """tmpfs: 4 KiB DIO alignment, SEEK_HOLE but no FIEMAP; holes still need no read."""
    rng = random.Random(3)
    with memfs_mount("tmpfs") as mnt:
        for _ in range(20):
            block = rng.choice([4096, 65536])
            offset, length = rng.randrange(0, SIZE), rng.randrange(0, 300_000)
            result, counter = check_file_write("sparse", block, offset, length, rng.random() < 0.5,
                                               rng.randrange(1 << 30), directory=mnt)
            assert counter.reads == 0
            assert result.align == 4096
            check_file_write("written", block, offset, length, False, rng.randrange(1 << 30), directory=mnt)


def test_aligned_buffer_address_is_congruent_to_the_offset() -> None:
    from largezero.mm.zero_page import buffer_address

    for offset in (0, 1, 511, 4097, 12345, (1 << 40) + 3):
        buf = aligned_buffer(10_000, offset=offset)
        assert len(buf) == 10_000 and not buf.readonly and bytes(buf) == bytes(10_000)
        assert buffer_address(buf) % 4096 == offset % 4096
    assert buffer_address(aligned_buffer(100, offset=5, align=65536)) % 65536 == 5


@pytest.mark.long
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(w=writes, layout=st.sampled_from(["holes", "unwritten", "written", "cached", "sparse"]),
       direct=st.booleans())
def test_long_all_layouts_match_reference(w: tuple[int, int, int, bool, int], layout: str, direct: bool) -> None:
    check_file_write(layout, *w, direct=direct)
