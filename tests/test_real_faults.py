"""Faults the machine really produces (root): a full ext4, read-only mounts and devices, a loop
device detached mid-job, a file truncated by another process mid-job, an immutable file.

Every mount and loop device here is our own, over images we create, and is undone in
``finally`` blocks, also when an assertion fails.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from largezero import TargetError, ZeroingError, ZeroOptions, zero_range
from largezero.cli import main
from largezero.errors import EXIT_FAILURE, EXIT_USAGE
from largezero.scratch import fill_pattern, loop_device, make_image, memfs_mount

from .helpers import mounted, pattern_bytes, read_range, requires_root

pytestmark = requires_root
CLI = [sys.executable, "-m", "largezero"]


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@pytest.fixture
def small_ext4(tmp_path: os.PathLike[str]) -> Iterator[str]:
    """A fresh 16 MiB ext4 on a loop device over our image, mounted; yields the mount point."""
    image = make_image(os.path.join(os.fspath(tmp_path), "ext4.img"), 16 << 20, allocate=False)
    _run("mkfs.ext4", "-q", "-F", "-m", "0", image)
    with loop_device(image) as dev, mounted(dev) as mnt:
        yield mnt


def _sparse(path: str, size: int, edge: int) -> bytes:
    """A sparse file with pattern at both ends; returns the pattern written at the start."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, size)
        os.pwrite(fd, pattern_bytes(edge), 0)
        os.pwrite(fd, pattern_bytes(edge, seed=9), size - edge)
        os.fsync(fd)
    finally:
        os.close(fd)
    return pattern_bytes(edge)


# --- ENOSPC ------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "direct"), [("large", False), ("page", False), ("large", True)])
def test_enospc_filling_holes_reports_the_exact_stop_and_resumes(small_ext4: str, method: str,
                                                                 direct: bool) -> None:
    size, edge = 64 << 20, 1 << 20
    path = os.path.join(small_ext4, "sparse.img")
    head = _sparse(path, size, edge)
    with pytest.raises(ZeroingError) as info:
        zero_range(path, edge, size - 2 * edge, options=ZeroOptions(method=method, direct=direct))
    err = info.value
    assert err.errno == errno.ENOSPC and err.exit_code == EXIT_FAILURE
    assert 0 <= err.bytes_zeroed < size - 2 * edge
    assert path in str(err) and f"method {method}" in str(err) and f"byte {err.stopped_at}" in str(err)
    assert os.path.getsize(path) == size
    data = read_range(path, 0, size)
    assert data[:edge] == head and data[size - edge :] == pattern_bytes(edge, seed=9)
    assert data[edge : size - edge] == bytes(size - 2 * edge)  # zeros written, holes read as zeros
    # Zeroing a hole needs space; with --unmap the same range needs none.
    result = zero_range(path, err.stopped_at, size - edge - err.stopped_at, options=ZeroOptions(unmap=True))
    assert result.method == "offload" and result.mechanism == "fallocate(PUNCH_HOLE)"
    assert read_range(path, 0, size) == data


def test_enospc_while_extending_leaves_the_file_at_the_stop(small_ext4: str) -> None:
    path = os.path.join(small_ext4, "grow.img")
    with open(path, "wb") as f:
        f.write(pattern_bytes(1 << 20))
    with pytest.raises(ZeroingError) as info:
        zero_range(path, 1 << 20, 62 << 20, options=ZeroOptions(method="large", extend=True))
    err = info.value
    assert err.errno == errno.ENOSPC and 0 < err.bytes_zeroed < 62 << 20
    # The file grew exactly as far as the writes went, and that part is zero.
    assert os.path.getsize(path) == err.stopped_at
    data = read_range(path, 0, err.stopped_at)
    assert data[: 1 << 20] == pattern_bytes(1 << 20) and data[1 << 20 :] == bytes(err.bytes_zeroed)


def test_enospc_from_fallocate_writes_nothing(small_ext4: str) -> None:
    size, edge = 64 << 20, 1 << 20
    path = os.path.join(small_ext4, "sparse.img")
    _sparse(path, size, edge)
    before = read_range(path, 0, size)
    with pytest.raises(ZeroingError) as info:
        zero_range(path, edge, size - 2 * edge)  # auto: fallocate(ZERO_RANGE) over holes needs space
    err = info.value
    assert err.errno == errno.ENOSPC and err.bytes_zeroed == 0 and err.method == "offload"
    assert read_range(path, 0, size) == before and os.path.getsize(path) == size


def test_enospc_through_the_command_line(small_ext4: str) -> None:
    size, edge = 64 << 20, 1 << 20
    path = os.path.join(small_ext4, "sparse.img")
    _sparse(path, size, edge)
    done = subprocess.run([*CLI, "zero", path, "-o", str(edge), "-l", str(size - 2 * edge), "-m", "large"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_FAILURE
    lines = done.stderr.splitlines()
    assert len(lines) == 2 and "No space left on device" in lines[0] and "Traceback" not in done.stderr
    assert lines[1].startswith("largezero: resume with: largezero zero ")


# --- read-only -----------------------------------------------------------------------------


def test_read_only_mount_is_refused_and_untouched() -> None:
    with memfs_mount("tmpfs") as mnt:
        path = make_image(os.path.join(mnt, "f.img"), 1 << 20)
        fill_pattern(path, 0, 1 << 20)
        _run("mount", "-o", "remount,ro", mnt)
        with pytest.raises(TargetError) as info:
            zero_range(path, 0, 4096)
        assert info.value.exit_code == EXIT_USAGE and "Read-only file system" in str(info.value)
        assert main(["zero", path, "-l", "4K"]) == EXIT_USAGE
        assert read_range(path, 0, 1 << 20) == pattern_bytes(1 << 20)
        # Reading is still allowed: verify opens read-only.
        assert main(["verify", path, "-l", "4K"]) == 3


def test_read_only_loop_device_is_refused(tmp_path: os.PathLike[str]) -> None:
    image = make_image(os.path.join(os.fspath(tmp_path), "ro.img"), 4 << 20)
    fill_pattern(image, 0, 4 << 20)
    dev = subprocess.run(["losetup", "--find", "--show", "--read-only", image], check=True,
                         capture_output=True, text=True).stdout.strip()
    try:
        with pytest.raises(TargetError) as info:
            zero_range(dev, 0, 1 << 20)
        assert info.value.exit_code == EXIT_USAGE and f"{dev}: device is read-only" in str(info.value)
        assert main(["zero", dev, "-l", "1M", "--force"]) == EXIT_USAGE  # --force does not make it writable
    finally:
        _detach_if_ours(dev, image)
    assert read_range(image, 0, 4 << 20) == pattern_bytes(4 << 20)


def test_immutable_file_is_refused(small_ext4: str) -> None:
    path = os.path.join(small_ext4, "locked.img")
    with open(path, "wb") as f:
        f.write(pattern_bytes(1 << 20))
    _run("chattr", "+i", path)
    try:
        with pytest.raises(TargetError) as info:
            zero_range(path, 0, 4096)
        assert "Operation not permitted" in str(info.value)
    finally:
        _run("chattr", "-i", path)
    assert read_range(path, 0, 1 << 20) == pattern_bytes(1 << 20)


# --- a loop device detached during a job ------------------------------------------------


def _backing(dev: str) -> str | None:
    name = os.path.basename(dev)
    try:
        with open(f"/sys/block/{name}/loop/backing_file") as f:
            return f.read().strip()
    except OSError:
        return None


def _detach_if_ours(dev: str, image: str) -> None:
    """Detach only if the device still serves our image: its number may be someone else's now."""
    backing = _backing(dev)
    if backing is not None and os.path.realpath(backing.removesuffix(" (deleted)")) == os.path.realpath(image):
        subprocess.run(["losetup", "-d", dev], check=False, capture_output=True)


@pytest.mark.parametrize("direct", [False, True])
def test_loop_device_detached_mid_job(direct: bool) -> None:
    """``losetup -d`` on a device we hold open only marks it for autoclear (the kernel's lazy
    detach): the job finishes on the device, every byte lands in the backing file, and the
    device goes away when we close it. No hang, no error, nothing outside the range."""
    size = 64 << 20
    with memfs_mount("tmpfs") as mnt:
        image = make_image(os.path.join(mnt, "disk.img"), size)
        fill_pattern(image, 0, size)
        dev = subprocess.run(["losetup", "--find", "--show", image], check=True, capture_output=True,
                             text=True).stdout.strip()
        try:
            detached: list[subprocess.CompletedProcess[str]] = []

            def detach_midway(done: int) -> None:
                if not detached and done >= 8 << 20:
                    detached.append(subprocess.run(["losetup", "-d", dev], capture_output=True, text=True,
                                                   timeout=30))

            off, length = 1000, size - 3000
            result = zero_range(dev, off, length,
                    options=ZeroOptions(method="page", direct=direct, call_size=1 << 20), progress=detach_midway)
            assert detached and detached[0].returncode == 0, detached
            assert result.bytes_zeroed == length
            # Closed now: the autoclear has run (poll briefly: the kernel may finish it in a worker).
            deadline = time.monotonic() + 10
            while _backing(dev) is not None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _backing(dev) is None, "the loop device was not released after the job closed it"
            data = read_range(image, 0, size)
            expected = pattern_bytes(size)
            assert data[:off] == expected[:off] and data[off + length :] == expected[off + length :]
            assert data[off : off + length] == bytes(length)
        finally:
            _detach_if_ours(dev, image)


def test_job_on_a_detached_device_number_is_refused(tmp_path: os.PathLike[str]) -> None:
    """Opening a loop device after it was detached: ENXIO, one line, exit 2."""
    image = make_image(os.path.join(os.fspath(tmp_path), "gone.img"), 1 << 20)
    with loop_device(image) as dev:
        pass
    if _backing(dev) is not None:
        pytest.skip(f"{dev} was attached again by someone else meanwhile")
    with pytest.raises(TargetError) as info:
        zero_range(dev, 0, 4096)
    assert f"{dev}: device has no medium" in str(info.value) and info.value.exit_code == EXIT_USAGE


# --- a file truncated by another process during a job ---------------------------------------


@pytest.mark.parametrize(("method", "direct"), [("large", False), ("page", False), ("large", True)])
def test_file_truncated_by_another_process_mid_job(tmp_path: os.PathLike[str], method: str,
                                                   direct: bool) -> None:
    """The job stops at the next call instead of growing the file back; exit 1, exact prefix."""
    size, off = 32 << 20, 4096 + 7
    path = make_image(os.path.join(os.fspath(tmp_path), "shrink.img"), size)
    fill_pattern(path, 0, size)
    new_size = 24 << 20
    truncated: list[int] = []

    def truncate_midway(done: int) -> None:
        if not truncated and done >= 4 << 20:
            subprocess.run(["truncate", "-s", str(new_size), path], check=True)  # another process
            truncated.append(done)

    with pytest.raises(ZeroingError) as info:
        zero_range(path, off, size - 2 * off,
                options=ZeroOptions(method=method, direct=direct, call_size=1 << 20), progress=truncate_midway)
    err = info.value
    assert truncated and err.bytes_zeroed == truncated[0]
    assert err.exit_code == EXIT_FAILURE and path in str(err)
    told = f"another process truncated the file during the job to {new_size} bytes; it has {new_size} bytes now"
    assert told in str(err)
    assert os.path.getsize(path) == new_size, "the job grew the truncated file back"
    data = read_range(path, 0, new_size)
    expected = pattern_bytes(new_size)
    assert data[:off] == expected[:off]
    assert data[off : err.stopped_at] == bytes(err.bytes_zeroed)
    assert data[err.stopped_at :] == expected[err.stopped_at :]
    # The printed resume is refused (the range is now past the end) rather than growing the file.
    assert main(["zero", path, "-o", str(err.stopped_at), "-l", str(size - off - err.stopped_at)]) == EXIT_USAGE
    assert os.path.getsize(path) == new_size


def test_file_truncated_with_extend_is_grown_as_asked(tmp_path: os.PathLike[str]) -> None:
    """With --extend growing is allowed: the job finishes and the file ends at the range's end."""
    size = 16 << 20
    path = make_image(os.path.join(os.fspath(tmp_path), "grow.img"), size)
    fill_pattern(path, 0, size)
    done = [False]

    def truncate_midway(n: int) -> None:
        if not done[0] and n >= 2 << 20:
            subprocess.run(["truncate", "-s", str(4 << 20), path], check=True)
            done[0] = True

    zero_range(path, 0, size,
            options=ZeroOptions(method="large", call_size=1 << 20, extend=True), progress=truncate_midway)
    assert os.path.getsize(path) == size and read_range(path, 0, size) == bytes(size)


