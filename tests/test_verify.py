"""largezero verify and zero --verify: the first non-zero byte, holes skipped and counted,
--direct reading every byte, no allocation per chunk, cancel and signals (exit 130), and the
same answer as ``cmp`` against /dev/zero. Speed is measured by bench/verify_bench.py, not here."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from largezero import ZeroOptions, syscalls, zero_range
from largezero.cli import main
from largezero.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, EXIT_VERIFY_MISMATCH
from largezero.scratch import memfs_mount
from largezero.verify import CHUNK, DIRECT_CHUNK, VerifyInterrupted, check_zero, first_nonzero

from .faultinject import Injector
from .helpers import requires_root


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
        r = check_zero(fd, 0, size)
    finally:
        os.close(fd)
    assert r.ok and not r.direct
    assert r.bytes_read <= 2 * CHUNK, f"read {r.bytes_read} bytes of a file that is almost all hole"
    assert r.bytes_read + r.bytes_skipped == size and r.bytes_skipped >= size - 2 * CHUNK


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


def test_agrees_with_cmp(tmp: str) -> None:
    """cmp against /dev/zero and check_zero, buffered and direct, name the same first byte."""
    size = 64 << 20
    path = _file(os.path.join(tmp, "zeros"), size, {size - 10: b"\x01"}, sparse=False)
    done = subprocess.run(["cmp", "-n", str(size), path, "/dev/zero"], capture_output=True, text=True)
    assert done.returncode == 1
    cmp_byte = int(done.stdout.split("byte ")[1].split(",")[0])  # 1-based
    fd = os.open(path, os.O_RDONLY)
    try:
        assert check_zero(fd, 0, size).first_nonzero == cmp_byte - 1
        assert check_zero(fd, 0, size, direct=True).first_nonzero == cmp_byte - 1
    finally:
        os.close(fd)


def test_verify_after_zero_range_on_every_method(tmp: str) -> None:
    for method, direct in (("auto", None), ("large", False), ("page", False), ("large", True)):
        path = _file(os.path.join(tmp, f"m-{method}-{direct}"), 8 << 20, {0: b"\x33" * (8 << 20)})
        zero_range(path, 777, 5 << 20, options=ZeroOptions(method=method, direct=direct))
        fd = os.open(path, os.O_RDONLY)
        try:
            assert check_zero(fd, 777, 5 << 20).ok
            assert check_zero(fd, 776, 10).first_nonzero == 776
            assert check_zero(fd, 777, (5 << 20) + 1).first_nonzero == 777 + (5 << 20)
        finally:
            os.close(fd)


def test_direct_reads_every_byte_holes_included(tmp: str, capsys: pytest.CaptureFixture[str]) -> None:
    size = 16 << 20
    path = _file(os.path.join(tmp, "holes"), size)  # all hole
    fd = os.open(path, os.O_RDONLY)
    try:
        plain = check_zero(fd, 0, size)
        assert plain.ok and plain.bytes_read == 0 and plain.bytes_skipped == size and plain.reads == 0
        direct = check_zero(fd, 0, size, direct=True)
        assert direct.ok and direct.direct and direct.bytes_read == size and direct.bytes_skipped == 0
        assert direct.reads >= size // DIRECT_CHUNK
        # Unaligned ranges: only the range's own bytes are counted.
        odd = check_zero(fd, 1234, 5 << 20, direct=True)
        assert odd.ok and odd.bytes_read == 5 << 20
    finally:
        os.close(fd)
    assert main(["verify", path, "--direct", "--json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert report["bytes_read"] == size and report["bytes_skipped"] == 0 and report["direct"] is True
    assert main(["verify", path, "-o", "1M", "-l", "3M", "--json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert report["bytes_read"] == 0 and report["bytes_skipped"] == 3 << 20 and report["direct"] is False
    assert main(["verify", path, "-l", "3M"]) == EXIT_OK
    assert "0 B read buffered, 3 MiB skipped as holes" in capsys.readouterr().out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.integers(0, (9 << 20) - 1), start=st.integers(0, 9 << 20), value=st.integers(1, 255))
def test_direct_finds_exactly_the_first_nonzero_byte(tmp: str, where: int, start: int, value: int) -> None:
    size = 9 << 20  # not a multiple of the 4 MiB direct chunk
    path = _file(os.path.join(tmp, "d"), size, {where: bytes([value])})
    fd = os.open(path, os.O_RDONLY)
    try:
        found = check_zero(fd, start, size - start, direct=True)
        assert found.first_nonzero == (where if start <= where else None)
        if found.first_nonzero is not None:
            assert found.value == value
        else:
            assert found.bytes_read == size - start
    finally:
        os.close(fd)


def test_cancel_stops_with_how_far_it_got(tmp: str) -> None:
    path = _file(os.path.join(tmp, "c"), 64 << 20)
    fd = os.open(path, os.O_RDONLY)
    cancel = threading.Event()
    cancel.set()
    try:
        for direct in (False, True):
            with pytest.raises(VerifyInterrupted) as info:
                check_zero(fd, 4096, 32 << 20, direct=direct, cancel=cancel)
            assert info.value.exit_code == EXIT_INTERRUPTED and info.value.stopped_at == 4096
            assert "resume with -o 4096" in str(info.value)
    finally:
        os.close(fd)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_a_long_verify_exits_128_plus_signum_within_a_second(tmp: str, signum: int) -> None:
    path = _file(os.path.join(tmp, "long"), 1 << 40)  # 1 TiB of holes, read with O_DIRECT: minutes
    proc = subprocess.Popen([sys.executable, "-m", "largezero", "verify", path, "--direct"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Wait until it reads (its handlers are installed by then), by its I/O counter.
        for _ in range(200):
            with open(f"/proc/{proc.pid}/io") as f:
                rchar = int(next(line for line in f if line.startswith("rchar:")).split()[1])
            if rchar > 64 << 20:
                break
            threading.Event().wait(0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=1.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signum, err  # 130 for SIGINT, 143 for SIGTERM
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "interrupted at byte" in lines[0] and out == ""


@requires_root
def test_direct_where_o_direct_is_refused_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with memfs_mount("ramfs") as mnt:  # ramfs has no O_DIRECT
        path = _file(os.path.join(mnt, "r"), 1 << 20, sparse=False)
        assert main(["verify", path, "--direct"]) == EXIT_USAGE
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "direct I/O" in err[0]
        assert main(["verify", path]) == EXIT_OK  # plain verify reads it buffered
