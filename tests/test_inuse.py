"""In use means refused: loop backing files (by inode, not by path), swap, mounts, exclusive
openers, pseudo-filesystems and the filesystem's maximum file size, on real kernel objects."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from largezero.errors import EXIT_USAGE, TargetError
from largezero.scratch import fill_pattern, loop_device, make_image
from largezero.targets import open_target

from .helpers import read_range, requires_root

pytestmark = requires_root
SIZE = 64 << 20


@contextlib.contextmanager
def _mounted_ext4(tmp: str, name: str = "fs") -> Iterator[tuple[str, str, str]]:
    """(image, loop device, mount point) of a fresh ext4 image, mounted; all undone on exit."""
    image = make_image(os.path.join(tmp, f"{name}.img"), SIZE, allocate=False)
    subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True, capture_output=True)
    mnt = os.path.join(tmp, f"{name}-mnt")
    os.mkdir(mnt)
    with loop_device(image) as dev:
        subprocess.run(["mount", dev, mnt], check=True, capture_output=True)
        try:
            yield image, dev, mnt
        finally:
            subprocess.run(["umount", mnt], check=True, capture_output=True)


def _zero_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "largezero", "zero", *args], capture_output=True, text=True)


def test_backing_file_of_a_mounted_loop_is_refused_by_path_fd_and_link(tmp_path: os.PathLike[str]) -> None:
    tmp = os.fspath(tmp_path)
    with _mounted_ext4(tmp) as (image, dev, mnt):
        before = read_range(image, 0, 4 << 20)
        with pytest.raises(TargetError) as info:
            open_target(image)
        assert f"backs {dev}, mounted on {mnt}" in str(info.value) and "force=True" in str(info.value)
        assert info.value.exit_code == EXIT_USAGE
        # By fd: the same refusal, naming the file behind the descriptor.
        fd = os.open(image, os.O_RDWR)
        try:
            with pytest.raises(TargetError) as info:
                open_target(fd)
            assert f"backs {dev}" in str(info.value) and image in str(info.value)
        finally:
            os.close(fd)
        # Another name for the same inode: matched by st_dev/st_ino, not by the path string.
        link = os.path.join(tmp, "hardlink.img")
        os.link(image, link)
        moved = os.path.join(tmp, "renamed.img")
        os.rename(image, moved)
        for name in (link, moved):
            with pytest.raises(TargetError, match=f"backs {dev}"):
                open_target(name)
        done = _zero_cli(link, "-l", "1M")
        assert done.returncode == EXIT_USAGE and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert f"backs {dev}, mounted on {mnt}" in done.stderr
        assert read_range(moved, 0, 4 << 20) == before
        # Read-only use (verify, info) is not refused.
        open_target(link, writable=False).close()


def test_backing_file_of_an_unmounted_loop_is_still_refused(tmp_path: os.PathLike[str]) -> None:
    image = make_image(os.path.join(os.fspath(tmp_path), "plain.img"), 8 << 20)
    fill_pattern(image, 0, 8 << 20)
    with loop_device(image) as dev:
        with pytest.raises(TargetError, match=f"backs {dev}: zeroing it"):
            open_target(image)
        open_target(image, force=True).close()  # --force overrides
    open_target(image).close()  # detached: free again


def test_active_swapfile_and_swap_device_are_refused(tmp_path: os.PathLike[str]) -> None:
    tmp = os.fspath(tmp_path)
    with _mounted_ext4(tmp) as (_, _, mnt):
        swapfile = os.path.join(mnt, "swapfile")
        make_image(swapfile, 16 << 20)  # allocated: swapon refuses files with holes
        os.chmod(swapfile, 0o600)
        subprocess.run(["mkswap", swapfile], check=True, capture_output=True)
        before = read_range(swapfile, 0, 1 << 20)
        subprocess.run(["swapon", swapfile], check=True, capture_output=True)
        try:
            with pytest.raises(TargetError, match="is an active swapfile") as info:
                open_target(swapfile)
            assert info.value.exit_code == EXIT_USAGE
            done = _zero_cli(swapfile, "-l", "1M")
            assert done.returncode == EXIT_USAGE and "active swapfile" in done.stderr, done.stderr
        finally:
            subprocess.run(["swapoff", swapfile], check=True, capture_output=True)
        assert read_range(swapfile, 0, 1 << 20) == before
    image = make_image(os.path.join(tmp, "swapdev.img"), 16 << 20)
    with loop_device(image) as dev:
        subprocess.run(["mkswap", dev], check=True, capture_output=True)
        subprocess.run(["swapon", dev], check=True, capture_output=True)
        try:
            with pytest.raises(TargetError, match=r"device is in use \(active swap\)"):
                open_target(dev, force=False)
        finally:
            subprocess.run(["swapoff", dev], check=True, capture_output=True)


def test_mounted_device_and_exclusive_opener_are_named(tmp_path: os.PathLike[str]) -> None:
    tmp = os.fspath(tmp_path)
    with _mounted_ext4(tmp) as (_, dev, mnt):
        with pytest.raises(TargetError, match=f"mounted on {mnt}"):
            open_target(dev)
        fd = os.open(dev, os.O_RDWR)
        try:
            with pytest.raises(TargetError, match=f"mounted on {mnt}"):
                open_target(fd)
        finally:
            os.close(fd)
    image = make_image(os.path.join(tmp, "excl.img"), 8 << 20)
    with loop_device(image) as dev:
        holder = subprocess.Popen([sys.executable, "-c", f"import os,time; fd=os.open({dev!r}, os.O_RDONLY|os.O_EXCL); "
                                   "print('held', flush=True); time.sleep(30)"], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            with pytest.raises(TargetError) as info:
                open_target(dev)
            assert f"opened exclusively by pid {holder.pid}" in str(info.value)
        finally:
            holder.kill()
            holder.wait()
        time.sleep(0.05)
        open_target(dev).close()


def test_files_on_pseudo_filesystems_are_refused(tmp_path: os.PathLike[str]) -> None:
    # Read-only opens: the refusal comes first, and nothing here could change a kernel setting.
    for path, fs in (("/proc/self/status", "proc"), ("/sys/kernel/mm/transparent_hugepage/enabled", "sysfs")):
        with pytest.raises(TargetError, match=f"is on {fs}, a pseudo-filesystem"):
            open_target(path, writable=False, force=True)
    for fstype in ("mqueue", "hugetlbfs"):
        mnt = os.path.join(os.fspath(tmp_path), fstype)
        os.mkdir(mnt)
        if subprocess.run(["mount", "-t", fstype, fstype, mnt], capture_output=True).returncode != 0:
            continue  # this kernel has no such filesystem
        try:
            path = os.path.join(mnt, "q")
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
            with pytest.raises(TargetError, match=f"is on {fstype}"):
                open_target(path, force=True)
            fd = os.open(path, os.O_RDWR)
            try:
                with pytest.raises(TargetError, match=f"is on {fstype}"):
                    open_target(fd, force=True)
            finally:
                os.close(fd)
            os.unlink(path)
        finally:
            subprocess.run(["umount", mnt], check=True, capture_output=True)


def test_max_file_size_is_the_filesystems_limit(tmp_path: os.PathLike[str]) -> None:
    tmp = os.fspath(tmp_path)
    with _mounted_ext4(tmp) as (_, _, mnt):
        path = make_image(os.path.join(mnt, "f"), 4096)
        tgt = open_target(path)
        try:
            limit = tgt.max_file_size
            assert limit is not None and 1 << 40 < limit < 1 << 63
            os.pwrite(tgt.fd, b"x", limit - 1)  # the last byte a file can have
            with pytest.raises(OSError) as info:
                os.pwrite(tgt.fd, b"x", limit)
            assert info.value.errno == errno.EFBIG
            os.ftruncate(tgt.fd, 4096)
            tgt.check_range(limit - 4096, 4096)
            with pytest.raises(TargetError, match="largest file size") as refused:
                tgt.check_range(limit - 4096, 4097)
            assert refused.value.exit_code == EXIT_USAGE
        finally:
            tgt.close()
    # ext2 (block-mapped files, no extents): the same driver gives a smaller, per-inode limit.
    image = make_image(os.path.join(tmp, "ext2.img"), SIZE, allocate=False)
    subprocess.run(["mkfs.ext2", "-q", "-F", image], check=True, capture_output=True)
    mnt = os.path.join(tmp, "ext2-mnt")
    os.mkdir(mnt)
    with loop_device(image) as dev:
        subprocess.run(["mount", dev, mnt], check=True, capture_output=True)
        try:
            path = make_image(os.path.join(mnt, "f"), 4096)
            small = open_target(path)
            try:
                assert small.max_file_size is not None and small.max_file_size < limit
                os.pwrite(small.fd, b"x", small.max_file_size - 1)
                with pytest.raises(OSError) as info:
                    os.pwrite(small.fd, b"x", small.max_file_size)
                assert info.value.errno == errno.EFBIG
                assert small.copy_on_write is None
            finally:
                small.close()
        finally:
            subprocess.run(["umount", mnt], check=True, capture_output=True)


def test_identity_of_a_loop_device_names_its_backing_file(tmp_path: os.PathLike[str]) -> None:
    image = make_image(os.path.join(os.fspath(tmp_path), "id.img"), 8 << 20)
    with loop_device(image) as dev:
        tgt = open_target(dev, writable=False)
        try:
            ident = tgt.identity()
        finally:
            tgt.close()
    assert ident["size"] == 8 << 20 and ident["logical_block_size"] == 512 and ident["device"] == dev
    loop = ident["loop"]
    assert isinstance(loop, dict) and loop["backing_file"] == image
