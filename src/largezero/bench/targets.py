"""The benchmark's targets, each a context manager that creates it and always removes it.

* ``file``: a regular file on the working filesystem (the scratch directory's, ext4 here);
* ``tmpfs``: a file on a tmpfs we mount (root), else on /dev/shm when it is a tmpfs;
* ``loop``: a loop device over a file on the working filesystem, where the loop driver
  offers write-zeroes (it calls fallocate on its backing file);
* ``loop-nowz``: a loop device over a ramfs file: no write-zeroes, so BLKZEROOUT takes the
  kernel's own ZERO_PAGE fallback (__blkdev_issue_zero_pages()).

Every target is ``length`` plus one PMD (2 MiB) of margin on each side; the zeroed range
is the middle, so the sentinel bytes around it can be checked.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

from .._record import record
from ..scratch import is_root, loop_device, make_image, memfs_mount
from ..sysfiles import mount_containing, mounts
from ..targets import open_target
from .cache import PATTERN_CHUNK, RESIDENT, fill

TARGETS = ("file", "tmpfs", "loop", "loop-nowz")
MARGIN = PATTERN_CHUNK


@record(frozen=True)
class BenchTarget:
    name: str  # one of TARGETS
    path: str  # the file or /dev/loopN
    kind: str  # "file" or "block"
    size: int
    offset: int
    length: int
    memfs: bool  # pages live in memory only: the cache state is always "resident"
    description: str
    device: str | None = None  # loop device name, for /sys/block/<dev>/stat
    write_zeroes_max_bytes: int | None = None
    dio_align: int = 4096

    def cache_states(self, wanted: tuple[str, ...]) -> tuple[str, ...]:
        return (RESIDENT,) if self.memfs else wanted

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "path": self.path,
            "kind": self.kind,
            "size": self.size,
            "offset": self.offset,
            "length": self.length,
            "description": self.description,
            "device": self.device,
            "write_zeroes_max_bytes": self.write_zeroes_max_bytes,
            "dio_align": self.dio_align,
        }


def unavailable(name: str) -> str | None:
    """Why a target cannot be built here, or None."""
    if name not in TARGETS:
        return f"unknown target {name!r}"
    if name in ("loop", "loop-nowz") and not is_root():
        return "needs root (loop devices)"
    if name == "tmpfs" and not is_root() and _shm_dir() is None:
        return "needs root (tmpfs mount) or a tmpfs /dev/shm"
    return None


def _shm_dir() -> str | None:
    shm = next((m for m in mounts() if m.point == "/dev/shm" and m.fstype == "tmpfs"), None)
    return "/dev/shm" if shm and os.access("/dev/shm", os.W_OK) else None


def _fs_type(path: str) -> str:
    mount = mount_containing(path)
    return mount.fstype if mount else "?"


def _describe(path: str, kind: str) -> tuple[int, int | None]:
    tgt = open_target(path)
    try:
        return tgt.dio_align, tgt.queue_attr("write_zeroes_max_bytes") if kind == "block" else None
    finally:
        tgt.close()


@contextlib.contextmanager
def build(name: str, length: int, workdir: str | None = None) -> Iterator[BenchTarget]:
    """Create target ``name`` for a ``length``-byte range; remove everything on exit."""
    why = unavailable(name)
    if why:
        raise RuntimeError(f"target {name}: {why}")
    size = length + 2 * MARGIN
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="largezero-bench-", dir=workdir))
        if name == "file":
            path = make_image(os.path.join(tmp, "target.img"), size)
            align, _ = _describe(path, "file")
            yield BenchTarget(name, path, "file", size, MARGIN, length, False,
                              f"file on {_fs_type(tmp)} ({tmp})", dio_align=align)
            return
        if name == "tmpfs":
            mnt = stack.enter_context(memfs_mount("tmpfs")) if is_root() else _shm_dir()
            assert mnt is not None
            path = os.path.join(mnt, f"largezero-bench-{os.getpid()}.img")
            make_image(path, size)
            stack.callback(os.unlink, path)
            align, _ = _describe(path, "file")
            yield BenchTarget(name, path, "file", size, MARGIN, length, True, f"file on tmpfs ({mnt})",
                              dio_align=align)
            return
        if name == "loop":
            image = make_image(os.path.join(tmp, "loop.img"), size)
            backing = f"{_fs_type(tmp)} file"
        else:
            mnt = stack.enter_context(memfs_mount("ramfs"))
            image = make_image(os.path.join(mnt, "loop.img"), size)
            fd = os.open(image, os.O_WRONLY)
            try:
                fill(fd, size, PATTERN_CHUNK)  # ramfs cannot preallocate: give every sector a page
            finally:
                os.close(fd)
            backing = "ramfs file"
        dev = stack.enter_context(loop_device(image))
        if name == "loop-nowz":
            _drop_write_zeroes(dev)
        align, wz = _describe(dev, "block")
        yield BenchTarget(name, dev, "block", size, MARGIN, length, False,
                          f"loop device over a {backing} (write_zeroes_max_bytes {wz})",
                          device=os.path.basename(dev), write_zeroes_max_bytes=wz, dio_align=align)


def _drop_write_zeroes(dev: str) -> None:
    """A loop device over ramfs advertises no write-zeroes; check, so the label is honest."""
    tgt = open_target(dev)
    try:
        if tgt.queue_attr("write_zeroes_max_bytes"):
            # Some kernels advertise it until the first EOPNOTSUPP: provoke that once.
            with contextlib.suppress(OSError):
                from ..syscalls import ops

                ops.blkzeroout(tgt.fd, 0, tgt.logical_block_size)
    finally:
        tgt.close()


@contextlib.contextmanager
def build_sparse(length: int, workdir: str | None = None) -> Iterator[str]:
    """A sparse ``length``-byte file on the working filesystem, removed on exit."""
    with tempfile.TemporaryDirectory(prefix="largezero-probe-", dir=workdir) as tmp:
        yield make_image(os.path.join(tmp, "probe.img"), length, allocate=False)
