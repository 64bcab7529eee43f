"""largezero verify and zero --verify: the first non-zero byte, holes skipped, no allocation per
chunk, and as fast as ``cmp`` against /dev/zero (measured and printed, not asserted)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
import tracemalloc
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from largezero import syscalls, zero_range
from largezero.cli import main
from largezero.errors import EXIT_OK, EXIT_VERIFY_MISMATCH
from largezero.verify import CHUNK, check_zero, first_nonzero

from .faultinject import Injector


def _file(path: str, size: int, data: dict[int, bytes] | None = None, *, sparse: bool = True) -> str:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if sparse:
            os.ftruncate(fd, size)
        else:
            zeros = bytes(8 << 20)
            for pos in range(0, size, len(zeros)):
                os.pwrite(fd, zeros[: min(len(zeros), size - pos)], pos)
        for at, blob in (data or {}).items():
            os.pwrite(fd, blob, at)
    finally:
        os.close(fd)
    return path


@pytest.fixture
def tmp(tmp_path: os.PathLike[str]) -> str:
    return os.fspath(tmp_path)


def test_all_zero_and_first_nonzero_through_the_command_line(tmp: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = _file(os.path.join(tmp, "f"), 32 << 20, {(20 << 20) + 5: b"\x00\x07\x09"}, sparse=False)
    assert main(["verify", path, "-l", "20M"]) == EXIT_OK
    assert "are zero" in capsys.readouterr().out
    assert main(["verify", path]) == EXIT_VERIFY_MISMATCH
    out = capsys.readouterr().out
    assert f"first non-zero byte at offset {(20 << 20) + 6} (0x07)" in out
    assert main(["verify", path, "-o", str((20 << 20) + 7), "--json"]) == EXIT_VERIFY_MISMATCH
    report = json.loads(capsys.readouterr().out)
    assert report["zero"] is False and report["first_nonzero"] == (20 << 20) + 7 and report["value"] == 9
    assert main(["verify", path, "-o", str((20 << 20) + 8), "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["first_nonzero"] is None


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    where=st.integers(0, (12 << 20) - 1),
    value=st.integers(1, 255),
    start=st.integers(0, 12 << 20),
    sparse=st.booleans(),
)
def test_finds_exactly_the_first_nonzero_byte(tmp: str, where: int, value: int, start: int, sparse: bool) -> None:
    size = 12 << 20  # more than one chunk
    path = _file(os.path.join(tmp, "h"), size, {where: bytes([value])}, sparse=sparse)
    fd = os.open(path, os.O_RDONLY)
    try:
        length = size - start
        found = check_zero(fd, start, length)
        assert found.first_nonzero == (where if start <= where else None)
        if found.first_nonzero is not None:
            assert found.value == value
        # A range that stops just before the byte is all zero.
        if start <= where:
            assert first_nonzero(fd, start, where - start) is None
    finally:
        os.close(fd)


def test_holes_are_skipped_with_seek_data(tmp: str) -> None:
    size = 4 << 30  # 4 GiB of holes with two small pieces of (zero) data
    path = _file(os.path.join(tmp, "sparse"), size, {1 << 20: bytes(4096), 3 << 30: bytes(4096)})
    fd = os.open(path, os.O_RDONLY)
    try:
        started = time.perf_counter()
        r = check_zero(fd, 0, size)
        seconds = time.perf_counter() - started
    finally:
        os.close(fd)
    assert r.ok
    assert r.bytes_read <= 2 * CHUNK, f"read {r.bytes_read} bytes of a file that is almost all hole"
    assert seconds < 5


def test_without_seek_data_every_byte_is_read(tmp: str) -> None:
    class NoSeekData(syscalls.Syscalls):
        def lseek(self, fd: int, offset: int, whence: int) -> int:
            if whence in (os.SEEK_DATA, os.SEEK_HOLE):
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            return super().lseek(fd, offset, whence)

    path = _file(os.path.join(tmp, "s"), 16 << 20, {(15 << 20) + 3: b"\x01"})
    fd = os.open(path, os.O_RDONLY)
    try:
        with syscalls.installed(NoSeekData()):
            r = check_zero(fd, 0, 16 << 20)
    finally:
        os.close(fd)
    assert r.first_nonzero == (15 << 20) + 3 and r.bytes_read >= 15 << 20


def test_no_allocation_per_chunk(tmp: str) -> None:
    path = _file(os.path.join(tmp, "z"), 256 << 20, sparse=False)
    fd = os.open(path, os.O_RDONLY)
    try:
        check_zero(fd, 0, 1 << 20)  # map the zero buffer outside the measurement
        tracemalloc.start()
        try:
            r = check_zero(fd, 0, 256 << 20)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        os.close(fd)
    assert r.ok and r.reads == (256 << 20) // CHUNK
    # One chunk buffer for the whole call, whatever the length.
    assert peak < CHUNK + (256 << 10), f"peak Python allocation {peak} bytes for {r.reads} reads"


def test_read_error_is_one_line_exit_1(tmp: str, capsys: pytest.CaptureFixture[str]) -> None:
    class Failing(syscalls.Syscalls):
        def preadv(self, fd: int, buffers: Sequence[Any], offset: int) -> int:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    path = _file(os.path.join(tmp, "e"), 1 << 20, sparse=False)
    with syscalls.installed(Failing()):
        assert main(["verify", path]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "Input/output error" in err[0] and path in err[0]


def test_zero_verify_catches_a_device_that_lies(tmp: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Writes that report success without writing: only --verify can tell, and it does (exit 3)."""

    class Lying(Injector):
        def pwritev(self, fd: int, buffers: Sequence[Any], offset: int) -> int:
            want = sum(len(memoryview(b)) for b in buffers)
            if offset >= 1 << 20:
                return want  # claims success, writes nothing
            return super().pwritev(fd, buffers, offset)

    path = _file(os.path.join(tmp, "liar"), 4 << 20, {0: b"\xaa" * (4 << 20)})
    assert main(["zero", path, "-m", "large", "--call-size", "512K", "--verify"]) == EXIT_OK
    assert "verified zero" in capsys.readouterr().out
    _file(path, 4 << 20, {0: b"\xaa" * (4 << 20)})
    with syscalls.installed(Lying()):
        code = main(["zero", path, "-m", "large", "--call-size", "512K", "--verify"])
    out, err = capsys.readouterr()
    assert code == EXIT_VERIFY_MISMATCH
    assert f"verify failed: first non-zero byte at offset {1 << 20} (0xaa)" in err


def test_zero_verify_in_json(tmp: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = _file(os.path.join(tmp, "j"), 4 << 20, {0: b"\x55" * (4 << 20)})
    assert main(["zero", path, "-o", "1000", "-l", "1M", "--verify", "--json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert report["verify"]["zero"] is True and report["verify"]["first_nonzero"] is None


def test_benchmark_against_cmp(tmp: str) -> None:
    """Prints our time and cmp's over the same cached 256 MiB of zeros; no timing assertion."""
    size = 256 << 20
    path = _file(os.path.join(tmp, "zeros"), size, sparse=False)
    # Both agree on where the first difference is.
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, b"\x01", size - 10)
        done = subprocess.run(["cmp", "-n", str(size), path, "/dev/zero"], capture_output=True, text=True)
        assert done.returncode == 1
        cmp_byte = int(done.stdout.split("byte ")[1].split(",")[0])  # 1-based
        assert check_zero(fd, 0, size).first_nonzero == cmp_byte - 1
        os.pwrite(fd, b"\x00", size - 10)
        os.fsync(fd)
    finally:
        os.close(fd)

    def ours() -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            assert check_zero(fd, 0, size).ok
        finally:
            os.close(fd)

    def theirs() -> None:
        assert subprocess.run(["cmp", "-n", str(size), path, "/dev/zero"], capture_output=True).returncode == 0

    def best(fn: Any) -> float:
        times = []
        for _ in range(3):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    ours()
    theirs()  # warm the page cache for both
    t_ours, t_cmp = best(ours), best(theirs)
    gib = size / (1 << 30)
    print(f"\nverify 256 MiB cached: largezero {t_ours:.3f} s ({gib / t_ours:.1f} GiB/s), "
          f"cmp {t_cmp:.3f} s ({gib / t_cmp:.1f} GiB/s): cmp/largezero = {t_cmp / t_ours:.1f}x")


def test_verify_after_zero_range_on_every_method(tmp: str) -> None:
    for method, direct in (("auto", None), ("large", False), ("page", False), ("large", True)):
        path = _file(os.path.join(tmp, f"m-{method}-{direct}"), 8 << 20, {0: b"\x33" * (8 << 20)})
        zero_range(path, 777, 5 << 20, method=method, direct=direct)
        fd = os.open(path, os.O_RDONLY)
        try:
            assert check_zero(fd, 777, 5 << 20).ok
            assert check_zero(fd, 776, 10).first_nonzero == 776
            assert check_zero(fd, 777, (5 << 20) + 1).first_nonzero == 777 + (5 << 20)
        finally:
            os.close(fd)
