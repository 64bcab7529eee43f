"""DirectWriter: bad input, faults injected through the syscall seam, cancel, and threads."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import random
import subprocess
import threading
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import pytest

from largezero import TargetError, UsageError, syscalls
from largezero.errors import Interrupted, ZeroingError
from largezero.iomap import DirectWriter, aligned_buffer
from largezero.mm import pmd_size
from largezero.scratch import fill_pattern, loop_device, make_image, memfs_mount
from largezero.targets import open_target

from .faultinject import Injector
from .helpers import pattern_bytes, read_range, requires_root
from .test_direct_io import Recording

SIZE = 4 << 20
PMD = pmd_size() or (2 << 20)

T = TypeVar("T", bound=syscalls.Syscalls)


@contextlib.contextmanager
def installed(replacement: T) -> Iterator[T]:
    """syscalls.installed() that keeps the replacement's own type for the checker."""
    with syscalls.installed(replacement):
        yield replacement



def sparse(path: str, size: int = SIZE) -> str:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.ftruncate(fd, size)
    os.close(fd)
    return path


def written(path: str, size: int = SIZE) -> str:
    make_image(path, size)
    fill_pattern(path, 0, size)
    return path


def one_line(err: BaseException) -> str:
    text = str(err)
    assert text and "\n" not in text
    return text


# --- bad input ----------------------------------------------------------------------------


def test_negative_offset(tmp_path: Any) -> None:
    path = sparse(str(tmp_path / "f"))
    with DirectWriter(path) as w, pytest.raises(UsageError) as exc:
        w.write(b"x", -1)
    assert "offset -1 is negative" in one_line(exc.value)
    assert os.path.getsize(path) == SIZE and read_range(path, 0, SIZE) == bytes(SIZE)


@pytest.mark.parametrize("block, words", [
    (3000, "not a power of two"),
    (0, "not a power of two"),
    (-4096, "not a power of two"),
    (256, "smaller than the direct I/O alignment"),
    (2 * PMD, "larger than the PMD size"),
])
def test_bad_block_size(tmp_path: Any, block: int, words: str) -> None:
    path = sparse(str(tmp_path / "f"))
    with pytest.raises(UsageError) as exc:
        DirectWriter(path, block_size=block)
    assert words in one_line(exc.value)


def test_block_size_below_alignment_is_fine_when_buffered(tmp_path: Any) -> None:
    path = sparse(str(tmp_path / "f"))
    with DirectWriter(path, block_size=256, direct=False) as w:
        w.write(b"abc", 1000)
    assert read_range(path, 999, 5) == b"\0abc\0"


def test_read_only_target(tmp_path: Any) -> None:
    path = sparse(str(tmp_path / "f"))
    tgt = open_target(path, writable=False)
    try:
        with pytest.raises(TargetError) as exc:
            DirectWriter(tgt)
        assert "not open for writing" in one_line(exc.value)
    finally:
        tgt.close()
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(TargetError):
            DirectWriter(fd)
        os.fstat(fd)  # the caller's descriptor is still open
    finally:
        os.close(fd)


def test_not_bytes_and_closed_writer(tmp_path: Any) -> None:
    path = sparse(str(tmp_path / "f"))
    w = DirectWriter(path)
    with pytest.raises(UsageError, match="bytes-like"):
        w.write("text", 0)  # type: ignore[arg-type]
    w.close()
    with pytest.raises(UsageError, match="closed"):
        w.write(b"x", 0)


def test_offset_past_2_63(tmp_path: Any) -> None:
    path = sparse(str(tmp_path / "f"))
    with DirectWriter(path) as w, pytest.raises(UsageError, match="2\\^63"):
        w.write(b"xy", (1 << 63) - 1)


@requires_root
def test_data_larger_than_block_device(tmp_path: Any) -> None:
    image = written(str(tmp_path / "disk.img"), 1 << 20)
    with loop_device(image) as dev, DirectWriter(dev) as w:
        before = read_range(dev, 0, 1 << 20)
        for offset, length in ((w.target.size - 10, 20), (0, w.target.size + 1), (w.target.size + 512, 1)):
            with pytest.raises(UsageError) as exc:
                w.write(bytes(length), offset)
            assert "larger than the target" in one_line(exc.value)
        assert read_range(dev, 0, 1 << 20) == before
        # Exactly to the end is fine.
        w.write(b"\1" * 700, w.target.size - 700)
        assert read_range(dev, w.target.size - 701, 701) == before[-701:-700] + b"\1" * 700


@requires_root
def test_read_only_block_device(tmp_path: Any) -> None:
    image = written(str(tmp_path / "disk.img"), 1 << 20)
    device = subprocess.run(["losetup", "--find", "--show", "--read-only", image], check=True,
                            capture_output=True, text=True).stdout.strip()
    try:
        with pytest.raises(TargetError) as exc:
            DirectWriter(device)
        one_line(exc.value)
    finally:
        subprocess.run(["losetup", "-d", device], check=False)


@requires_root
def test_ramfs_has_no_direct_io_but_buffered_works() -> None:
    with memfs_mount("ramfs") as mnt:
        path = sparse(os.path.join(mnt, "f"), 1 << 20)
        with pytest.raises(TargetError, match="direct I/O is not supported"):
            DirectWriter(path)
        with DirectWriter(path, direct=False, block_size=4096) as w:
            w.write(b"hello", 4093)
        assert read_range(path, 4090, 10) == b"\0\0\0hello\0\0"


# --- faults through the seam --------------------------------------------------------------


class Faulty(syscalls.Syscalls):
    """EINTR first, then short writes of ``short`` bytes, EIO once ``fail_after`` bytes are written."""

    def __init__(self, *, eintr: int = 0, short: int | None = None, fail_after: int | None = None,
                 read_error: int | None = None, read_eintr: int = 0, align: int = 512) -> None:
        self.align = align
        self.eintr = eintr
        self.short = short
        self.fail_after = fail_after
        self.read_error = read_error
        self.read_eintr = read_eintr
        self.written = 0
        self.calls = 0
        self.reads = 0

    def pwritev(self, fd: int, buffers: Sequence[Any], offset: int) -> int:
        self.calls += 1
        if self.eintr:
            self.eintr -= 1
            raise InterruptedError(errno.EINTR, "Interrupted system call")
        if self.fail_after is not None and self.written >= self.fail_after:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        want = sum(len(memoryview(b)) for b in buffers)
        n = want if self.short is None else min(want, self.short)
        if self.fail_after is not None:
            n = min(n, self.fail_after - self.written)
        cut = n
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            cut -= n % self.align  # O_DIRECT itself only takes whole sectors...
        done = os.pwritev(fd, _slice(buffers, 0, cut), offset) if cut else 0
        if done == cut < n:
            # ...so the unaligned end of a short write goes through a buffered twin, as if the kernel
            # had stopped mid-sector.
            twin = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY)
            try:
                done += os.pwritev(twin, _slice(buffers, cut, n), offset + cut)
            finally:
                os.close(twin)
        self.written += done
        return done

    def preadv(self, fd: int, buffers: Sequence[Any], offset: int) -> int:
        self.reads += 1
        if self.read_eintr:
            self.read_eintr -= 1
            raise InterruptedError(errno.EINTR, "Interrupted system call")
        if self.read_error is not None:
            raise OSError(self.read_error, os.strerror(self.read_error))
        return os.preadv(fd, buffers, offset)


def _slice(buffers: Sequence[Any], a: int, b: int) -> list[memoryview]:
    """The iovecs covering bytes [a, b) of the whole vector."""
    out, pos = [], 0
    for buf in buffers:
        view = memoryview(buf).cast("B")
        lo, hi = max(a - pos, 0), min(b - pos, len(view))
        if hi > lo:
            out.append(view[lo:hi])
        pos += len(view)
    return out


def expected_after(base: bytes, data: bytes, offset: int) -> bytes:
    out = bytearray(base)
    if offset + len(data) > len(out):
        out.extend(bytes(offset + len(data) - len(out)))
    out[offset: offset + len(data)] = data
    return bytes(out)


@pytest.mark.parametrize("short", [4096, 1000, 333])
def test_eintr_and_short_writes_still_give_the_right_bytes(tmp_path: Any, short: int) -> None:
    """Short O_DIRECT writes, aligned or not (the rest then goes through the page cache)."""
    rng = random.Random(short)
    for layout in (sparse, written):
        path = layout(str(tmp_path / f"{layout.__name__}-{short}"))
        base = read_range(path, 0, SIZE)
        offset, data = 12345, rng.randbytes(300_000)
        with DirectWriter(path, block_size=65536) as w, installed(Faulty(eintr=2, short=short)) as f:
            result = w.write(data, offset)
        assert result.bytes_written == len(data)
        assert f.calls > result.calls >= 2  # EINTR retried, short writes resumed
        assert read_range(path, 0, SIZE) == expected_after(base, data, offset)


def test_eio_mid_write_reports_a_true_prefix(tmp_path: Any) -> None:
    path = written(str(tmp_path / "f"))
    base = read_range(path, 0, SIZE)
    offset, data = 70_000, random.Random(1).randbytes(500_000)
    with DirectWriter(path, bounce_size=65536) as w, \
            installed(Faulty(fail_after=200_000)), pytest.raises(ZeroingError) as exc:
        w.write(data, offset)
    err = exc.value
    assert isinstance(err, ZeroingError) and not isinstance(err, Interrupted)
    # 200_000 bytes end mid-sector: the loop finishes that sector through the page cache ("pwrite").
    assert err.exit_code == 1 and err.errno == errno.EIO and err.what in ("pwritev", "pwrite")
    assert 0 < err.bytes_written < len(data)
    assert err.stopped_at == offset + err.bytes_written
    # The failed call (a 64 KiB bounce chunk, or the sector being finished) may have written up to
    # its end, and says so.
    assert err.maybe_until is not None and err.stopped_at < err.maybe_until <= err.stopped_at + 65536
    text = one_line(err)
    assert f"bytes {offset}..{err.stopped_at} are written" in text
    assert f"bytes {err.stopped_at}..{err.maybe_until} may also be written" in text
    assert f"resume with --offset {err.stopped_at} --length {offset + len(data) - err.stopped_at}" in text
    got = read_range(path, 0, SIZE)
    # The reported prefix is on the target; nothing outside the range changed.
    assert got[offset: offset + err.bytes_written] == data[: err.bytes_written]
    assert got[:offset] == base[:offset] and got[offset + len(data):] == base[offset + len(data):]
    # The rest is either old or new bytes, never anything else.
    for i in range(offset + err.bytes_written, offset + len(data), 997):
        assert got[i] in (base[i], data[i - offset])


def test_no_read_ever_even_over_data(tmp_path: Any) -> None:
    """Reads fail here: a write over data, with any block size, does not notice."""
    path = written(str(tmp_path / "f"))
    base = read_range(path, 0, SIZE)
    for block in (4096, 65536, PMD):
        with DirectWriter(path, block_size=block) as w, installed(Faulty(read_error=errno.EIO)) as f:
            result = w.write(b"z" * 100_000, 1000 + block)
        assert result.bytes_written == 100_000
        assert f.reads == 0
        base = expected_after(base, b"z" * 100_000, 1000 + block)
        assert read_range(path, 0, SIZE) == base


def test_cancel_stops_at_a_write_boundary_with_the_exact_prefix(tmp_path: Any) -> None:
    path = written(str(tmp_path / "f"))
    base = read_range(path, 0, SIZE)
    offset, data = 5000, random.Random(4).randbytes(1_000_000)
    cancel = threading.Event()
    # The third write call meets EINTR after a "signal handler" set the event: the loop must stop.
    with DirectWriter(path, bounce_size=65536) as w, installed(Injector(eintr_at=[2], cancel=cancel)), \
            pytest.raises(Interrupted) as exc:
        w.write(data, offset, cancel=cancel)
    err = exc.value
    assert err.exit_code == 130
    # Head edge (page cache), then the first 64 KiB bounce chunk: exactly those are written.
    head = 8192 - offset
    assert err.bytes_written == head + 65536 and err.stopped_at == offset + head + 65536
    assert f"resume with --offset {err.stopped_at} --length {len(data) - err.bytes_written}" in one_line(err)
    got = read_range(path, 0, SIZE)
    assert got[offset: err.stopped_at] == data[: err.bytes_written]
    assert got[err.stopped_at:] == base[err.stopped_at:] and got[:offset] == base[:offset]
    # Already set: nothing at all is written.
    with DirectWriter(path) as w, pytest.raises(Interrupted) as exc:
        w.zero(0, 100, cancel=cancel)
    assert exc.value.bytes_written == 0 and read_range(path, 0, 100) == base[:100]


@pytest.mark.parametrize("fail_at", [200, 150_000, 399_999])
def test_failed_extending_write_never_grows_past_its_end(tmp_path: Any, fail_at: int) -> None:
    """A write from 150_000 to 550_000 into a 100_000-byte file fails after ``fail_at`` bytes:
    the file is never longer than the end of what the failed call may have written, and
    nothing is ever truncated."""
    path = sparse(str(tmp_path / "f"), 100_000)
    rec = Recording()
    faulty = Faulty(fail_after=fail_at)
    faulty.ftruncate = rec.ftruncate  # type: ignore[method-assign]
    with DirectWriter(path, block_size=65536) as w, installed(faulty), pytest.raises(ZeroingError) as exc:
        w.write(b"e" * 400_000, 150_000)
    err = exc.value
    assert rec.ftruncates == []
    assert 100_000 < os.path.getsize(path) <= max(err.maybe_until or 0, err.stopped_at) <= 550_000
    assert read_range(path, 150_000, err.bytes_written) == b"e" * err.bytes_written
    before = min(150_000, os.path.getsize(path))  # the head padding past EOF may have failed part way
    assert read_range(path, 0, before) == bytes(before)


# --- threads ------------------------------------------------------------------------------


def _run_threads(n: int, work: Any) -> None:
    errors: list[BaseException] = []

    def wrap(i: int) -> None:
        try:
            work(i)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


@pytest.mark.parametrize("layout", ["sparse", "written"])
def test_threads_on_disjoint_block_aligned_ranges(tmp_path: Any, layout: str) -> None:
    block, threads = 65536, 6
    path = (sparse if layout == "sparse" else written)(str(tmp_path / "f"))
    expected = bytearray(read_range(path, 0, SIZE))
    region = SIZE // threads // block * block
    plans: list[list[tuple[int, bytes]]] = []
    for i in range(threads):
        rng = random.Random(i)
        plan = []
        for _ in range(12):
            # Unaligned writes inside the thread's own block-aligned region.
            off = i * region + rng.randrange(0, region - 1)
            data = rng.randbytes(rng.randrange(1, min(150_000, i * region + region - off) + 1))
            plan.append((off, data))
            expected[off: off + len(data)] = data
        plans.append(plan)
    with DirectWriter(path, block_size=block) as w:
        _run_threads(threads, lambda i: [w.write(d, o) for o, d in plans[i]])
    assert read_range(path, 0, SIZE) == bytes(expected)


def test_threads_sharing_partial_blocks_are_serialised(tmp_path: Any) -> None:
    """Neighbours that share blocks: without the range locks, one's padding or stale read-back
    would overwrite the other's bytes."""
    for rounds in range(3):
        path = sparse(str(tmp_path / f"f{rounds}"), 1 << 20)
        piece = 5000  # never a block multiple: every write has partial blocks shared with its neighbours
        count = 96
        data = [random.Random(rounds * 1000 + i).randbytes(piece) for i in range(count)]
        order = list(range(count))
        random.Random(rounds).shuffle(order)
        writers = [DirectWriter(path, block_size=16384) for _ in range(4)]  # separate writers, one lock table

        def work(t: int, writers: list[DirectWriter] = writers, data: list[bytes] = data,
                 order: list[int] = order, piece: int = piece) -> None:
            for k in order[t::4]:
                writers[t].write(data[k], k * piece)

        try:
            _run_threads(4, work)
        finally:
            for w in writers:
                w.close()
        assert read_range(path, 0, count * piece) == b"".join(data)
        assert os.path.getsize(path) == 1 << 20


def test_threads_growing_a_file_together(tmp_path: Any) -> None:
    path = sparse(str(tmp_path / "f"), 1000)
    piece, count = 7000, 40
    data = [bytes([i + 1]) * piece for i in range(count)]
    with DirectWriter(path, block_size=4096) as w:
        _run_threads(4, lambda t: [w.write(data[k], 1000 + k * piece) for k in range(t, count, 4)])
    assert os.path.getsize(path) == 1000 + count * piece
    assert read_range(path, 1000, count * piece) == b"".join(data)
    assert read_range(path, 0, 1000) == bytes(1000)


@requires_root
def test_threads_on_a_loop_device(tmp_path: Any) -> None:
    image = written(str(tmp_path / "disk.img"), SIZE)
    block, threads = 65536, 4
    expected = bytearray(pattern_bytes(SIZE))
    region = SIZE // threads
    with loop_device(image) as dev, DirectWriter(dev, block_size=block) as w:
        plans = []
        for i in range(threads):
            rng = random.Random(50 + i)
            plan = []
            for _ in range(10):
                off = i * region + rng.randrange(0, region - 70_000)
                buf = aligned_buffer(60_000, offset=off) if rng.random() < 0.5 else None
                payload = rng.randbytes(60_000)
                if buf is not None:
                    buf[:] = payload
                plan.append((off, buf if buf is not None else payload))
                expected[off: off + 60_000] = payload
            plans.append(plan)
        _run_threads(threads, lambda i: [w.write(d, o) for o, d in plans[i]])
        assert read_range(dev, 0, SIZE) == bytes(expected)
