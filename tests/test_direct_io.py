"""DirectWriter against a reference made with plain buffered writes, and the range promise.

Every property test writes the same bytes twice: with the writer into the target, and with
os.pwrite into a reference copy, then compares the whole target (size included), so a byte
changed outside the range fails as surely as a wrong byte inside it. The calls themselves are
recorded through the syscall seam: no read ever, no ftruncate ever, no O_DIRECT call sharing
a page-cache granule with a byte outside the range, no page-cache write outside the range.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from largezero import syscalls
from largezero.iomap import DirectWriter, WriteResult, aligned_buffer, iomap_dio_zero, plan_pieces
from largezero.iomap.result import ALIGNED, CACHED, ZEROED
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


class Recording(syscalls.Syscalls):
    """The real calls, recorded: every write with whether its fd is O_DIRECT, every read
    (there must be none), every ftruncate (none either), map lookups and write-backs."""

    def __init__(self) -> None:
        self.writes: list[tuple[bool, int, int]] = []  # (O_DIRECT, offset, bytes written)
        self.reads = 0
        self.read_bytes = 0
        self.ftruncates: list[int] = []
        self.fiemaps = 0
        self.seeks = 0
        self.syncs: list[tuple[int, int]] = []

    def pwritev(self, fd: int, buffers: Sequence[Any], offset: int) -> int:
        direct = bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)
        n = super().pwritev(fd, buffers, offset)
        self.writes.append((direct, offset, n))
        return n

    def pwrite(self, fd: int, data: Any, offset: int) -> int:
        return self.pwritev(fd, [data], offset)

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

    def ftruncate(self, fd: int, length: int) -> None:
        self.ftruncates.append(length)
        super().ftruncate(fd, length)

    def fiemap(self, fd: int, offset: int, length: int, flags: int = syscalls.FIEMAP_FLAG_SYNC,
               max_extents: int = 64) -> list[syscalls.FiemapExtent]:
        self.fiemaps += 1
        return super().fiemap(fd, offset, length, flags, max_extents)

    def lseek(self, fd: int, offset: int, whence: int) -> int:
        self.seeks += 1
        return super().lseek(fd, offset, whence)

    def sync_file_range(self, fd: int, offset: int, length: int,
                        flags: int = syscalls.SYNC_FILE_RANGE_WAIT_BEFORE | syscalls.SYNC_FILE_RANGE_WRITE
                        | syscalls.SYNC_FILE_RANGE_WAIT_AFTER) -> None:
        self.syncs.append((offset, length))
        super().sync_file_range(fd, offset, length, flags)

    def check_range(self, offset: int, end: int, granule: int, result: WriteResult) -> None:
        """The promise, call by call: nothing read, nothing truncated; outside [offset, end)
        only zero padding (explicit large blocks) and never in a granule holding our bytes."""
        assert self.reads == 0 and self.read_bytes == 0
        assert self.ftruncates == []
        pad_lo, pad_hi = result.span_offset, result.span_offset + result.span_length
        for direct, a, n in self.writes:
            b = a + n
            if a < offset or b > end:
                # Padding: inside the span, on whole granules that hold none of our bytes.
                assert pad_lo <= a and b <= pad_hi, (a, b, offset, end)
                assert a % granule == 0 and b % granule == 0
                assert b <= offset - offset % granule or a >= -(-end // granule) * granule
            elif direct:
                # O_DIRECT only over whole granules: it never shares a page with an outside byte.
                assert a % granule == 0 and b % granule == 0, (a, b)


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
                     directory: str | None = None, direct: bool = True) -> tuple[WriteResult, Recording]:
    data = payload(seed, length, offset, aligned)
    with pair(layout, seed, directory) as (target, ref):
        # Opened outside the recorded block: opening may read (a device's signature probe).
        with DirectWriter(target, block_size=block, direct=direct) as w, installed(Recording()) as rec:
            result = w.write(data, offset)
        reference_write(ref, bytes(data), offset)
        assert os.path.getsize(target) == os.path.getsize(ref)
        assert whole(target) == whole(ref)
    granule = w.granule
    rec.check_range(offset, offset + length, granule, result)
    assert result.bytes_written == length
    if aligned and direct:
        assert result.bounce_bytes == 0  # an address congruent to the offset goes straight out
    assert result.calls == len(rec.writes)
    if block <= granule:
        # The default and any block up to the granule: not a byte outside the range is written.
        assert result.pad_bytes == 0 and ZEROED not in (result.head, result.tail)
        assert sum(n for _, _, n in rec.writes) == length
    if length:
        assert result.span_offset <= offset and offset + length <= result.span_offset + result.span_length
        partial = {"head": offset % granule != 0, "tail": (offset + length) % granule != 0}
        assert result.head == (ZEROED if result.span_offset < offset else CACHED if partial["head"] else ALIGNED)
        end = offset + length
        assert result.tail == (ZEROED if result.span_offset + result.span_length > end
                               else CACHED if partial["tail"] else ALIGNED)
        if direct:
            # Each page-cache edge is written back at once, as the O_DIRECT parts are.
            assert len(rec.syncs) == result.syncs
            assert result.cache_bytes == sum(n for d, a, n in rec.writes if not d and offset <= a < end)
        else:
            assert result.cache_bytes == length and not any(d for d, _, _ in rec.writes)
    return result, rec


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
@example(w=(65536, SIZE + 100_000, 1000, False, 1))  # past the end: the gap before it holds no data
def test_written_data_matches_reference(w: tuple[int, int, int, bool, int]) -> None:
    result, _ = check_file_write("written", *w)
    # Over data nothing is ever padded, whatever the block size. Past the file's old end (a
    # write beyond EOF) the gap holds no data: a large block pads it as it pads a hole.
    offset, end = w[1], w[1] + w[2]
    span_end = result.span_offset + result.span_length
    assert (result.head == ZEROED) == (result.span_offset < offset)
    assert (result.tail == ZEROED) == (span_end > end)
    assert result.span_offset >= min(offset, SIZE), "padded over data before the range"
    assert span_end <= max(end, SIZE) or end >= SIZE, "padded over data after the range"
    if end <= SIZE:
        assert result.pad_bytes == 0 and ZEROED not in (result.head, result.tail)


@settings(PROPERTY, max_examples=25)
@given(w=writes)
def test_buffered_mode_matches_reference(w: tuple[int, int, int, bool, int]) -> None:
    for layout in ("holes", "written"):
        check_file_write(layout, *w, direct=False)


@PROPERTY
@given(w=writes, layout=st.sampled_from(["sparse", "prealloc"]))
def test_large_blocks_pad_holes_and_unwritten_extents(w: tuple[int, int, int, bool, int], layout: str) -> None:
    result, rec = check_file_write(layout, *w)
    assert rec.fiemaps == 0  # SEEK_HOLE answers alone here
    block, offset, length = w[0], w[1], w[2]
    if length and block > 4096:
        # Every whole granule of the block outside the range and inside the file is padding.
        end, g = offset + length, 4096
        head = offset - offset % g - (offset - offset % block)
        tail = max(0, min(-(-end // block) * block, SIZE - SIZE % g, max(SIZE, end)) - -(-end // g) * g)
        assert result.pad_bytes == head + tail == result.zero_pad_bytes


def test_unwritten_extent_in_page_cache_found_by_fiemap() -> None:
    """SEEK_DATA calls a cached unwritten extent data; FIEMAP_EXTENT_UNWRITTEN finds it a hole."""
    result, rec = check_file_write("cached", 65536, 3 * 65536 + 9000, 200_000, False, 7)
    assert rec.fiemaps >= 1
    assert result.head == ZEROED and result.tail == ZEROED
    assert result.zero_pad_bytes > 0


def test_written_partial_granules_go_through_the_page_cache() -> None:
    block = 65536
    offset = 5 * block + 1500
    result, rec = check_file_write("written", block, offset, 2 * block, False, 3)
    assert result.head == CACHED and result.tail == CACHED
    end = offset + 2 * block
    # Exactly our bytes of each partial granule, buffered; the middle O_DIRECT; both edges synced.
    buffered = sorted((a, n) for d, a, n in rec.writes if not d)
    assert buffered == [(offset, 4096 - 1500), (end - end % 4096, end % 4096)]
    assert result.cache_bytes == 4096 - 1500 + end % 4096
    assert sorted(rec.syncs) == buffered


def test_padding_is_its_own_call_from_the_zero_buffer() -> None:
    block = 65536
    offset, length = block + 4096, 5 * block
    data = aligned_buffer(length, offset=offset)
    data[:] = random.Random(1).randbytes(length)
    with pair("sparse", 1) as (target, ref), DirectWriter(target, block_size=block) as w:
        with installed(Recording()) as rec:
            result = w.write(data, offset)
        reference_write(ref, bytes(data), offset)
        assert whole(target) == whole(ref)
    # [zero head 4 KiB][data][zero tail 60 KiB]: three O_DIRECT calls, nothing buffered.
    head, tail = 4096, 7 * block - (offset + length)
    assert rec.writes == [(True, block, head), (True, offset, length), (True, offset + length, tail)]
    assert result.bounce_bytes == 0  # straight from the caller's buffer
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
                with installed(Recording()) as rec:
                    result = w.zero(offset, length)
                reference_write(ref, bytes(length), offset)
                assert os.path.getsize(target) == os.path.getsize(ref)
                assert whole(target) == whole(ref)
            assert result.bytes_written == length
            rec.check_range(offset, offset + length, w.granule, result)
            if layout == "written":
                assert result.pad_bytes == 0


def test_sequential_writes_share_a_writer_and_file_grows_exactly() -> None:
    rng = random.Random(11)
    with pair("holes", 11) as (target, ref), DirectWriter(target, block_size=16384) as w, \
            installed(Recording()) as rec:
        for _ in range(60):
            offset, length = rng.randrange(0, SIZE + 300_000), rng.randrange(0, 40_000)
            data = rng.randbytes(length)
            before = os.path.getsize(target)
            w.write(data, offset)
            # Straight to max(old size, end): never a granule further, never cut back.
            assert os.path.getsize(target) == max(before, offset + length)
            reference_write(ref, data, offset)
        assert os.path.getsize(target) == os.path.getsize(ref)
        assert whole(target) == whole(ref)
    assert rec.ftruncates == [] and rec.reads == 0


def _shape(pieces: list[Any]) -> list[tuple[int, int, str]]:
    return [(p.start, p.end, p.kind) for p in pieces]


def test_plan_pieces() -> None:
    # 10 bytes inside one granule: one page-cache piece of exactly those bytes.
    assert _shape(plan_pieces(4196, 4206, 4096)) == [(4196, 4206, "cache")]
    # Unaligned both ends: cache, whole granules O_DIRECT, cache.
    assert _shape(plan_pieces(5000, 70000, 4096)) == [
        (5000, 8192, "cache"), (8192, 69632, "data"), (69632, 70000, "cache")]
    # Two partial granules and no whole one between: one page-cache piece.
    assert _shape(plan_pieces(5000, 9000, 4096)) == [(5000, 9000, "cache")]
    # Padding on whole granules only; the granules holding our bytes stay page-cache pieces.
    assert _shape(plan_pieces(5000, 70000, 4096, pad_from=0, pad_to=131072)) == [
        (0, 4096, "zero"), (5000, 8192, "cache"), (8192, 69632, "data"), (69632, 70000, "cache"),
        (73728, 131072, "zero")]
    assert _shape(plan_pieces(8192, 65536, 4096, pad_from=0, pad_to=131072)) == [
        (0, 8192, "zero"), (8192, 65536, "data"), (65536, 131072, "zero")]
    # Buffered: the caller's bytes are one page-cache piece.
    assert _shape(plan_pieces(5000, 70000, 4096, direct=False)) == [(5000, 70000, "cache")]
    assert plan_pieces(5, 5, 4096) == []
    with pytest.raises(ValueError, match="granules"):
        plan_pieces(5000, 70000, 4096, pad_from=100)


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
    with DirectWriter(dev, block_size=block) as w, installed(Recording()) as rec:
        assert w.target.kind == "block"
        result = w.write(data, offset)
    reference_write(ref, bytes(data), offset)
    assert read_range(dev, 0, SIZE) == read_range(ref, 0, SIZE)
    # Never assume a hole on a block device: nothing padded, whatever the block size; and
    # never a read: partial granules go through the device's page cache.
    rec.check_range(offset, offset + length, w.granule, result)
    assert result.pad_bytes == 0 and ZEROED not in (result.head, result.tail)
    assert sum(n for _, _, n in rec.writes) == length
    partial = (offset % w.granule != 0) + ((offset + length) % w.granule != 0) if length else 0
    if partial:
        assert result.cache_bytes > 0 and rec.syncs


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
    """tmpfs: 4 KiB DIO alignment, SEEK_HOLE but no FIEMAP; holes are still found and padded."""
    rng = random.Random(3)
    with memfs_mount("tmpfs") as mnt:
        for _ in range(20):
            block = rng.choice([4096, 65536])
            offset, length = rng.randrange(0, SIZE), rng.randrange(0, 300_000)
            result, _ = check_file_write("sparse", block, offset, length, rng.random() < 0.5,
                                         rng.randrange(1 << 30), directory=mnt)
            assert result.align == 4096
            check_file_write("written", block, offset, length, False, rng.randrange(1 << 30), directory=mnt)


def test_aligned_buffer_address_is_congruent_to_the_offset() -> None:
    from largezero.syscalls import buffer_address

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
