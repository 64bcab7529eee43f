"""Error paths of zero_range: injected through the syscall seam, and real ones."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from largezero import TargetError, UsageError, ZeroingError, ZeroOptions, syscalls, zero_range

from .faultinject import Injector
from .helpers import pattern_bytes, read_range, requires_root

SIZE = 8 << 20


@pytest.mark.parametrize("short", [1, 511, 4096, 65537, (2 << 20) - 1])
@pytest.mark.parametrize(("method", "direct"), [("large", False), ("page", False), ("large", True)])
def test_eintr_and_short_writes_resume(scratch_file: Callable[[int], str], short: int, method: str,
                                       direct: bool) -> None:
    path = scratch_file(SIZE)
    # Byte-sized short writes take one system call per byte: keep that range small.
    length = (3 << 20) + 5 if short >= 4096 else (40 << 10) + 7
    with syscalls.installed(Injector(eintr_at=(0, 1), cap=short)):
        result = zero_range(path, 777, length, options=ZeroOptions(method=method, direct=direct))
    assert result.bytes_zeroed == length
    data = read_range(path, 0, SIZE)
    assert data[777 : 777 + length] == bytes(length)
    expected = pattern_bytes(SIZE)
    assert data[:777] == expected[:777]
    assert data[777 + length :] == expected[777 + length :]


@pytest.mark.parametrize("fail_after", [0, 1, 4096, (1 << 20) + 3, 3 << 20])
@pytest.mark.parametrize("code", [errno.EIO, errno.ENOSPC])
def test_error_reports_exactly_what_was_zeroed(scratch_file: Callable[[int], str], fail_after: int,
                                               code: int) -> None:
    path = scratch_file(SIZE)
    offset, length = 1000, 5 << 20
    with syscalls.installed(Injector(fail_after=fail_after, fail_errno=code)), pytest.raises(ZeroingError) as info:
        zero_range(path, offset, length, options=ZeroOptions(method="large"))
    err = info.value
    assert err.bytes_zeroed == fail_after
    assert err.stopped_at == offset + fail_after
    assert err.errno == code
    assert path in str(err) and "large" in str(err) and str(offset + fail_after) in str(err)
    data = read_range(path, 0, SIZE)
    expected = pattern_bytes(SIZE)
    assert data[offset : offset + fail_after] == bytes(fail_after)
    assert data[offset + fail_after :] == expected[offset + fail_after :]
    assert data[:offset] == expected[:offset]


def test_offload_unsupported_falls_back_and_is_remembered(scratch_file: Callable[[int], str]) -> None:
    class NoFallocate(syscalls.Syscalls):
        tries = 0

        def fallocate(self, fd: int, mode: int, offset: int, length: int) -> None:
            NoFallocate.tries += 1
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    path = scratch_file(SIZE)
    with syscalls.installed(NoFallocate()):
        first = zero_range(path, 0, 1 << 20)
        tries_after_first = NoFallocate.tries
        second = zero_range(path, 1 << 20, 1 << 20)
    assert first.method == "large" and second.method == "large"
    assert tries_after_first == 2  # ZERO_RANGE, then WRITE_ZEROES
    assert NoFallocate.tries == tries_after_first  # not asked again for the same file
    assert read_range(path, 0, 2 << 20) == bytes(2 << 20)


def test_offload_real_error_is_not_a_fallback(scratch_file: Callable[[int], str]) -> None:
    class BrokenFallocate(syscalls.Syscalls):
        def fallocate(self, fd: int, mode: int, offset: int, length: int) -> None:
            raise OSError(errno.EIO, "Input/output error")

    path = scratch_file(SIZE)
    with syscalls.installed(BrokenFallocate()), pytest.raises(ZeroingError) as info:
        zero_range(path, 0, 1 << 20)
    assert info.value.bytes_zeroed == 0
    assert read_range(path, 0, SIZE) == pattern_bytes(SIZE)


@pytest.mark.parametrize(("offset", "length"), [(-1, 10), (0, -5), (2**63, 1), (2**62, 2**62)])
def test_bad_ranges(scratch_file: Callable[[int], str], offset: int, length: int) -> None:
    path = scratch_file(4096)
    with pytest.raises(UsageError):
        zero_range(path, offset, length)
    assert read_range(path, 0, 4096) == pattern_bytes(4096)


def test_not_a_file_or_device(tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(TargetError, match="directory"):
        zero_range(os.fspath(tmp_path), 0, 1)
    with pytest.raises(TargetError, match="no such file"):
        zero_range(os.path.join(os.fspath(tmp_path), "missing"), 0, 1)
    assert not os.path.exists(os.path.join(os.fspath(tmp_path), "missing"))
    with pytest.raises(TargetError, match="not a regular file or block device"):
        zero_range("/dev/null", 0, 1)


def test_read_only_file_is_refused_when_not_root(scratch_file: Callable[[int], str]) -> None:
    path = scratch_file(4096)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(UsageError, match="not open for writing"):
            zero_range(fd, 0, 10)
    finally:
        os.close(fd)
    assert read_range(path, 0, 4096) == pattern_bytes(4096)


@requires_root
def test_read_only_mount_and_enospc(tmp_path: os.PathLike[str], file_loop: Callable[[int], str]) -> None:
    dev = file_loop(16 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", dev], check=True, capture_output=True)
    mnt = os.path.join(os.fspath(tmp_path), "mnt")
    os.mkdir(mnt)
    subprocess.run(["mount", dev, mnt], check=True)
    try:
        path = os.path.join(mnt, "f")
        with open(path, "wb") as f:
            f.write(pattern_bytes(1 << 20))
        # ENOSPC: extending beyond the filesystem's free space stops with exact progress.
        with pytest.raises(ZeroingError) as info:
            zero_range(path, 1 << 20, 64 << 20, options=ZeroOptions(method="large", extend=True))
        assert info.value.errno == errno.ENOSPC
        done = info.value.bytes_zeroed
        assert 0 < done < 64 << 20
        assert read_range(path, 1 << 20, done) == bytes(done)
        subprocess.run(["mount", "-o", "remount,ro", mnt], check=True)
        with pytest.raises(TargetError, match="cannot open for writing"):
            zero_range(path, 0, 10)
    finally:
        subprocess.run(["umount", mnt], check=True)


def test_misaligned_direct_io_is_handled(scratch_file: Callable[[int], str]) -> None:
    path = scratch_file(SIZE)
    for offset, length in [(1, 1), (511, 2), (4095, 4098), (12345, (2 << 20) + 7)]:
        result = zero_range(path, offset, length, options=ZeroOptions(method="large", direct=True))
        assert result.bytes_zeroed == length
        assert read_range(path, offset, length) == bytes(length)


def test_peak_rss_stays_small_for_a_4_gib_job(tmp_path: os.PathLike[str]) -> None:
    """Memory is constant in the length: a 4 GiB job grows peak RSS by well under 8 MiB."""
    path = os.path.join(os.fspath(tmp_path), "big.img")
    code = f"""
import os, resource, largezero
fd = os.open({path!r}, os.O_RDWR | os.O_CREAT, 0o600)
os.ftruncate(fd, 4 << 30)
os.close(fd)
largezero.largest_zero_buffer(); largezero.zero_page()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
r = largezero.zero_range({path!r}, 0, 4 << 30, options=largezero.ZeroOptions(method="large", direct=True))
assert r.bytes_zeroed == 4 << 30
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)
"""
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    finally:
        if os.path.exists(path):
            os.unlink(path)
    growth_kib = int(out.strip())
    assert growth_kib < 8 * 1024, f"peak RSS grew by {growth_kib} KiB"
