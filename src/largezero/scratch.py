"""Scratch targets for the demo, the tests and the benchmarks: files we create, ramfs/tmpfs
mounts we make and loop devices we attach to our own files. Everything is undone on exit,
also on error; nothing here opens a device it did not attach.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator


def is_root() -> bool:
    return os.geteuid() == 0


def _run(*argv: str) -> str:
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    return done.stdout.strip()


@contextlib.contextmanager
def scratch_dir(prefix: str = "largezero-") -> Iterator[str]:
    """A temporary directory on the working filesystem, removed with everything in it."""
    with tempfile.TemporaryDirectory(prefix=prefix) as path:
        yield path


@contextlib.contextmanager
def memfs_mount(fstype: str = "ramfs", size: str | None = None) -> Iterator[str]:
    """Mount a fresh ramfs or tmpfs on a temporary directory (root only), unmount on exit.

    A loop device over a ramfs file has no write-zeroes: ramfs has no fallocate, so the loop
    driver advertises write_zeroes_max_bytes = 0 and zeroout takes the kernel's fallback.
    """
    if fstype not in ("ramfs", "tmpfs"):
        raise ValueError("fstype must be ramfs or tmpfs")
    mountpoint = tempfile.mkdtemp(prefix=f"largezero-{fstype}-")
    options = ["-o", f"size={size}"] if size and fstype == "tmpfs" else []
    try:
        _run("mount", "-t", fstype, *options, fstype, mountpoint)
        try:
            yield mountpoint
        finally:
            _run("umount", mountpoint)
    finally:
        os.rmdir(mountpoint)


def make_image(path: str, size: int, *, allocate: bool = True) -> str:
    """Create (never reuse) a file of ``size`` bytes; allocated unless asked for a sparse one."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if allocate:
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError:
                os.ftruncate(fd, size)  # ramfs has no fallocate; its pages come on write
        else:
            os.ftruncate(fd, size)
    finally:
        os.close(fd)
    return path


@contextlib.contextmanager
def loop_device(image: str, *, direct_io: bool = False, sector_size: int | None = None) -> Iterator[str]:
    """Attach a loop device to our own image file, detach it on exit."""
    argv = ["losetup", "--find", "--show"]
    if direct_io:
        argv.append("--direct-io=on")
    if sector_size:
        argv += ["--sector-size", str(sector_size)]
    device = _run(*argv, image)
    try:
        yield device
    finally:
        subprocess.run(["losetup", "-d", device], check=False, capture_output=True)


def set_queue_attr(device: str, name: str, value: int | str) -> None:
    """Write a writable queue attribute (e.g. max_sectors_kb) of a device we attached."""
    dev = os.path.basename(os.path.realpath(device))
    with open(f"/sys/block/{dev}/queue/{name}", "w") as f:
        f.write(str(value))


@contextlib.contextmanager
def memfs_loop(size: int, fstype: str = "ramfs") -> Iterator[str]:
    """A loop device over a ``size``-byte file on a fresh ramfs/tmpfs: no write-zeroes offload."""
    with memfs_mount(fstype) as mnt:
        image = make_image(os.path.join(mnt, "disk.img"), size)
        # ramfs cannot preallocate: fill it so the device has real pages behind every sector.
        fill_pattern(image, 0, size)
        with loop_device(image) as dev:
            yield dev


def fill_pattern(path: str, offset: int, length: int, seed: int = 0x5A) -> None:
    """Write a non-zero pattern over [offset, offset+length) so zeroing is visible."""
    chunk = bytes((seed + i) % 255 + 1 for i in range(1 << 16)) * 16  # 1 MiB, no zero byte
    fd = os.open(path, os.O_WRONLY)
    try:
        pos, end = offset, offset + length
        while pos < end:
            n = min(len(chunk), end - pos)
            pos += os.pwrite(fd, chunk[:n], pos)
    finally:
        os.close(fd)
