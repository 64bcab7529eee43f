"""Concurrency: many threads on disjoint ranges of one file, several targets in one command,
and the shared zero buffer, which nobody can write into."""

from __future__ import annotations

import ctypes
import errno
import functools
import io
import os
import random
import socket
import subprocess
import sys
import threading
from collections.abc import Callable

import pytest

from largezero import Target, ZeroOptions, open_target, zero_range
from largezero.cli import main
from largezero.errors import EXIT_OK
from largezero.mm import ZeroBuffer, large_zero_page, zero_page
from largezero.scratch import fill_pattern, make_image

from .helpers import pattern_bytes, read_range

THREADS = 16


def _disjoint(rng: random.Random, size: int, count: int, align: int) -> list[tuple[int, int]]:
    """``count`` disjoint ranges in [0, size), with gaps between them, aligned to ``align``."""
    cuts = sorted(rng.sample(range(1, size // align), 2 * count))
    ranges = [(cuts[2 * i] * align, (cuts[2 * i + 1] - cuts[2 * i]) * align) for i in range(count)]
    return [(o, n) for o, n in ranges if n > 0]


def _run_threads(jobs: list[Callable[[], object]]) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def run(job: Callable[[], object]) -> None:
        try:
            barrier.wait()
            job()
        except BaseException as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def _expected(size: int, ranges: list[tuple[int, int]]) -> bytes:
    data = bytearray(pattern_bytes(size))
    for off, n in ranges:
        data[off : off + n] = bytes(n)
    return bytes(data)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_threads_on_unaligned_disjoint_ranges_of_one_file(tmp_path: os.PathLike[str], seed: int) -> None:
    """Buffered methods (and fallocate offload) at byte granularity, all at once."""
    size = 32 << 20
    path = make_image(os.path.join(os.fspath(tmp_path), "shared.img"), size)
    fill_pattern(path, 0, size)
    rng = random.Random(seed)
    ranges = _disjoint(rng, size, THREADS, 1)
    jobs: list[Callable[[], object]] = []
    for o, n in ranges:
        method = rng.choice(["auto", "large", "page"])
        call_size = None if method == "auto" else rng.choice([None, 4096, 65536 + 1])
        jobs.append(functools.partial(zero_range, path, o, n, ZeroOptions(method=method, call_size=call_size)))
    assert _run_threads(jobs) == []
    assert read_range(path, 0, size) == _expected(size, ranges)


def test_threads_mixing_direct_and_buffered_on_page_aligned_ranges(tmp_path: os.PathLike[str]) -> None:
    """O_DIRECT and buffered writers on one file are coherent when they do not share a page
    (ranges that share a page across the two modes can lose data in the page cache: the
    kernel's rule, not ours; see docs/reliability.md)."""
    size = 32 << 20
    path = make_image(os.path.join(os.fspath(tmp_path), "mixed.img"), size)
    fill_pattern(path, 0, size)
    rng = random.Random(7)
    ranges = _disjoint(rng, size, THREADS, 4096)
    jobs: list[Callable[[], object]] = [
        functools.partial(zero_range, path, o, n, ZeroOptions(method=("large", "page")[i % 2], direct=i % 3 == 0))
        for i, (o, n) in enumerate(ranges)
    ]
    assert _run_threads(jobs) == []
    assert read_range(path, 0, size) == _expected(size, ranges)


def test_threads_sharing_one_open_target(tmp_path: os.PathLike[str]) -> None:
    size = 16 << 20
    path = make_image(os.path.join(os.fspath(tmp_path), "one-fd.img"), size)
    fill_pattern(path, 0, size)
    ranges = _disjoint(random.Random(11), size, THREADS, 1)
    tgt: Target = open_target(path)
    try:
        jobs: list[Callable[[], object]] = [
            functools.partial(zero_range, tgt, o, n, ZeroOptions(method="large", call_size=8192)) for o, n in ranges
        ]
        assert _run_threads(jobs) == []
    finally:
        tgt.close()
    assert read_range(path, 0, size) == _expected(size, ranges)


def test_several_targets_in_one_command(tmp_path: os.PathLike[str], capsys: pytest.CaptureFixture[str]) -> None:
    tmp = os.fspath(tmp_path)
    sizes = [3 << 20, 5 << 20, (7 << 20) + 333]
    paths = []
    for i, size in enumerate(sizes):
        p = make_image(os.path.join(tmp, f"t{i}.img"), size)
        fill_pattern(p, 0, size)
        paths.append(p)
    # Zero from 777 to each file's end, with small calls so the threads interleave.
    assert main(["zero", *paths, "-o", "777", "-m", "large", "--call-size", "64K"]) == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3
    for p, size, line in zip(paths, sizes, out, strict=True):
        assert line.startswith(f"{p}: zeroed")
        data = read_range(p, 0, size)
        assert data[:777] == pattern_bytes(777) and data[777:] == bytes(size - 777)


def test_several_targets_one_failing_does_not_stop_the_others(tmp_path: os.PathLike[str],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    tmp = os.fspath(tmp_path)
    good = make_image(os.path.join(tmp, "good.img"), 2 << 20)
    fill_pattern(good, 0, 2 << 20)
    short = make_image(os.path.join(tmp, "short.img"), 4096)
    fill_pattern(short, 0, 4096)
    assert main(["zero", good, short, "-l", "1M"]) == 2  # short.img: range past its end
    out, err = capsys.readouterr()
    assert out.startswith(f"{good}: zeroed") and len(err.splitlines()) == 1 and "short.img" in err
    assert read_range(good, 0, 1 << 20) == bytes(1 << 20)
    assert read_range(short, 0, 4096) == pattern_bytes(4096)


# --- the shared zero buffer is read-only --------------------------------------------------


def _buffers() -> list[ZeroBuffer]:
    bufs = [zero_page()]
    for backing in ("huge-zero-folio", "zero-page", "allocated"):
        b = large_zero_page(backing)
        if b is not None:
            bufs.append(b)
    return bufs


def _is_zero(buf: ZeroBuffer) -> bool:
    return bytes(buf.view) == bytes(buf.size)


def _maps_perms(address: int) -> str:
    with open("/proc/self/maps") as f:
        for line in f:
            span, perms = line.split()[:2]
            lo, hi = (int(x, 16) for x in span.split("-"))
            if lo <= address < hi:
                return perms
    raise AssertionError(f"{address:#x} is not mapped")


_libc = ctypes.CDLL(None, use_errno=True)
_libc.read.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
_libc.read.restype = ctypes.c_ssize_t


@pytest.mark.parametrize("index", range(4), ids=["ZERO_PAGE", "huge-zero-folio", "zero-page", "allocated"])
def test_writing_into_the_zero_buffer_fails_safely(index: int, tmp_path: os.PathLike[str]) -> None:
    bufs = _buffers()
    if index >= len(bufs):
        pytest.skip("this backing is not available here")
    buf = bufs[index]
    view = buf.view
    src = make_image(os.path.join(os.fspath(tmp_path), "ones"), 8192)
    fill_pattern(src, 0, 8192)
    fd = os.open(src, os.O_RDONLY)
    try:
        # Python refuses every way in, before any system call is made.
        with pytest.raises(TypeError):
            view[0] = 1
        with pytest.raises(TypeError):
            view[: 4] = b"abcd"
        with pytest.raises((TypeError, BufferError)):
            os.readv(fd, [view])
        with pytest.raises((TypeError, BufferError)):
            os.preadv(fd, [view[:4096]], 0)
        with pytest.raises(TypeError):
            ctypes.c_char.from_buffer(view)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            io.BytesIO(b"x" * 16).readinto(view)
        a, b = socket.socketpair()
        try:
            a.send(b"hello")
            with pytest.raises(TypeError):
                b.recv_into(view)
        finally:
            a.close()
            b.close()
        # Below Python: the mapping is PROT_READ, so the kernel refuses to copy into it.
        assert _maps_perms(buf.address)[:2] == "r-"
        got = _libc.read(fd, ctypes.c_void_p(buf.address), 4096)
        assert got == -1 and ctypes.get_errno() == errno.EFAULT
    finally:
        os.close(fd)
    assert _is_zero(buf)


def test_a_raw_store_into_the_zero_buffer_kills_only_the_offender() -> None:
    """A C-level store into the buffer is a SIGSEGV in that process; it cannot make zeros non-zero."""
    code = (
        "import ctypes\n"
        "from largezero.mm import zero_buffer_for\n"
        "b = zero_buffer_for(True)\n"
        "print('mapped', flush=True)\n"
        "ctypes.memmove(b.address, b'\\x01', 1)\n"
        "print('wrote', flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout == "mapped\n"
    assert done.returncode == -11  # SIGSEGV
    for buf in _buffers():
        assert _is_zero(buf)


def test_zero_buffer_stays_zero_under_concurrent_jobs(tmp_path: os.PathLike[str]) -> None:
    size = 8 << 20
    path = make_image(os.path.join(os.fspath(tmp_path), "z.img"), size)
    fill_pattern(path, 0, size)
    ranges = _disjoint(random.Random(3), size, 8, 4096)
    jobs: list[Callable[[], object]] = [
        functools.partial(zero_range, path, o, n, ZeroOptions(method="large", direct=True)) for o, n in ranges
    ]
    assert _run_threads(jobs) == []
    for buf in _buffers():
        assert _is_zero(buf)
