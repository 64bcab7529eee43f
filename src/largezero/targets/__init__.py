"""What zeroing acts on: regular files and block devices, by path or open fd.

Kept apart from the mm and block parts: this module knows how to open, size and align a
target and whether it is safe to write; it zeroes nothing itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from .. import syscalls
from ..errors import TargetError, UsageError
from ..syscalls import BLKGETSIZE64, BLKPBSZGET, BLKSSZGET, ioctl_int, statx_dio_align
from .signatures import PROBE_BYTES, find_signature

FILE = "file"
BLOCK = "block"
BLKROGET = 0x125E  # <linux/fs.h>: is the device read-only

# What a target said it does not support, remembered per inode (files) or device number
# (block devices) for the life of the process, as shutil remembers per-file fast-copy failures.
_unsupported: dict[tuple[str, int, int], set[str]] = {}
_unsupported_lock = threading.Lock()


@dataclass
class Target:
    """An opened target. ``fd`` is buffered; ``direct_fd()`` opens an O_DIRECT twin on demand."""

    name: str  # what the user gave, for messages
    path: str | None  # resolved path, None for a bare fd
    fd: int
    kind: str  # FILE or BLOCK
    size: int
    logical_block_size: int
    physical_block_size: int
    dio_mem_align: int
    dio_offset_align: int
    writable: bool
    rdev: int = 0
    dev_ino: tuple[int, int] = (0, 0)
    owns_fd: bool = True
    _direct_fd: int | None = field(default=None, repr=False)

    @property
    def key(self) -> tuple[str, int, int]:
        if self.kind == BLOCK:
            # diskseq changes whenever a device number gets new media (a loop re-attached),
            # so what one attachment refused is not held against the next.
            return (BLOCK, self.rdev, self._diskseq())
        return (FILE, *self.dev_ino)

    def _diskseq(self) -> int:
        try:
            with open(f"/sys/dev/block/{os.major(self.rdev)}:{os.minor(self.rdev)}/diskseq") as f:
                return int(f.read())
        except (OSError, ValueError):
            return 0

    @property
    def block_name(self) -> str | None:
        """The kernel's name for a block device (loop0, nvme0n1p1), from its device number."""
        if self.kind != BLOCK:
            return None
        try:
            link = os.readlink(f"/sys/dev/block/{os.major(self.rdev)}:{os.minor(self.rdev)}")
        except OSError:
            return None
        return os.path.basename(link)

    @property
    def queue_dir(self) -> str | None:
        """/sys/block/<disk>/queue of the disk (a partition uses its parent's queue)."""
        if self.kind != BLOCK:
            return None
        base = f"/sys/dev/block/{os.major(self.rdev)}:{os.minor(self.rdev)}"
        for candidate in (f"{base}/queue", f"{base}/../queue"):
            if os.path.isdir(candidate):
                return os.path.realpath(candidate)
        return None

    def queue_attr(self, name: str) -> int | None:
        qdir = self.queue_dir
        if qdir is None:
            return None
        try:
            with open(os.path.join(qdir, name)) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def direct_fd(self) -> int:
        """An O_DIRECT descriptor for the same target (reopened through /proc/self/fd)."""
        if self._direct_fd is None:
            if self.dio_offset_align == 0:
                raise TargetError(f"{self.name}: direct I/O is not supported here")
            flags = (os.O_RDWR if self.writable else os.O_RDONLY) | os.O_DIRECT | os.O_CLOEXEC
            try:
                self._direct_fd = os.open(f"/proc/self/fd/{self.fd}", flags)
            except OSError as err:
                if err.errno == errno.EINVAL:
                    raise TargetError(f"{self.name}: direct I/O is not supported here") from None
                raise TargetError(f"{self.name}: cannot open for direct I/O: {err.strerror}") from None
        return self._direct_fd

    @property
    def dio_align(self) -> int:
        """The coarser of the offset and memory alignments direct I/O needs."""
        return max(self.dio_offset_align, self.dio_mem_align, 1)

    def unsupported(self) -> set[str]:
        with _unsupported_lock:
            return set(_unsupported.get(self.key, set()))

    def mark_unsupported(self, what: str) -> None:
        with _unsupported_lock:
            _unsupported.setdefault(self.key, set()).add(what)

    def refresh_size(self) -> int:
        self.size = _size_of(self.fd, self.kind)
        return self.size

    def close(self) -> None:
        if self._direct_fd is not None:
            os.close(self._direct_fd)
            self._direct_fd = None
        if self.owns_fd:
            os.close(self.fd)

    def describe(self) -> dict[str, object]:
        return {
            "target": self.name,
            "path": self.path,
            "kind": self.kind,
            "size": self.size,
            "logical_block_size": self.logical_block_size,
            "physical_block_size": self.physical_block_size,
            "dio_mem_align": self.dio_mem_align,
            "dio_offset_align": self.dio_offset_align,
            "block_device": self.block_name,
        }


def _size_of(fd: int, kind: str) -> int:
    if kind == BLOCK:
        return ioctl_int(fd, BLKGETSIZE64, "Q")
    return os.fstat(fd).st_size


def mounted_or_held(rdev: int) -> str | None:
    """Why a block device is in use: mounted (from /proc/self/mountinfo) or held by another device."""
    major, minor = os.major(rdev), os.minor(rdev)
    wanted = f"{major}:{minor}"
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 4 and parts[2] == wanted:
                    return f"mounted on {parts[4]}"
    except OSError:
        pass
    holders = f"/sys/dev/block/{wanted}/holders"
    with contextlib.suppress(OSError):
        held = os.listdir(holders)
        if held:
            return f"held by {', '.join(sorted(held))}"
    try:
        with open("/proc/swaps") as f:
            for line in f.readlines()[1:]:
                name = line.split()[0]
                with contextlib.suppress(OSError):
                    if os.stat(name).st_rdev == rdev:
                        return "used as swap"
    except OSError:
        pass
    return None


def _alignment(fd: int, kind: str) -> tuple[int, int, int, int]:
    """(logical, physical, dio_mem_align, dio_offset_align)."""
    if kind == BLOCK:
        logical = ioctl_int(fd, BLKSSZGET)
        physical = ioctl_int(fd, BLKPBSZGET)
    else:
        st = os.fstat(fd)
        logical = 512
        physical = st.st_blksize
    dio = statx_dio_align(fd)
    if dio is not None:
        mem, off = dio
    elif kind == BLOCK:
        mem, off = logical, logical
    else:
        # No STATX_DIOALIGN: the filesystem block size is the safe guess.
        mem, off = os.fstat(fd).st_blksize, os.fstat(fd).st_blksize
    return logical, physical, mem, off


# statfs(2) f_type of kernel interfaces that look like files but are not storage: writing
# zeros to them changes kernel settings (/proc/sys, /sys) instead of data.
_PSEUDO_FS = {
    0x9FA0: "proc", 0x62656572: "sysfs", 0x64626720: "debugfs", 0x73636673: "securityfs",
    0x27E0EB: "cgroup", 0x63677270: "cgroup2", 0x62656570: "configfs", 0xDE5E81E4: "efivarfs",
    0x74726163: "tracefs", 0xCAFE4A11: "bpf", 0x6165676C: "pstore", 0x1CD1: "devpts",
}


def _pseudo_filesystem(path: str) -> str | None:
    """The name of the pseudo-filesystem ``path`` is on, or None (also when statfs fails)."""
    buf = ctypes.create_string_buffer(256)  # struct statfs; f_type is the first member
    if syscalls.libc.statfs(os.fsencode(path), buf) != 0:
        return None
    f_type = ctypes.c_ulong.from_buffer(buf).value & 0xFFFFFFFF
    return _PSEUDO_FS.get(f_type)


def open_target(
    target: str | os.PathLike[str] | int,
    *,
    writable: bool = True,
    force: bool = False,
    create: bool = False,
) -> Target:
    """Open a regular file or block device for zeroing.

    A block device is opened O_EXCL, so one that is mounted or held by the kernel is refused
    (EBUSY), as blkdiscard does, unless ``force``. A file is never created unless ``create``.
    """
    if isinstance(target, int):
        return _from_fd(target, str(target), None, owns_fd=False, force=force)
    name = os.fspath(target)
    if not name:
        raise UsageError("no target given")
    path = os.path.realpath(name)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if not create:
            hint = "" if path.startswith("/dev/") else " (use --create to create a file)"
            raise TargetError(f"{name}: no such file or directory{hint}") from None
        if path.startswith("/dev/"):
            # The classic typo: /dev/sdx instead of /dev/sdb would make a file in devtmpfs.
            raise TargetError(f"{name}: no such device; refusing to create a regular file under /dev") from None
        st = None
    except OSError as err:
        raise TargetError(f"{name}: {err.strerror}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise TargetError(f"{name}: is a directory")
    if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise TargetError(f"{name}: not a regular file or block device")
    is_block = st is not None and stat.S_ISBLK(st.st_mode)
    pseudo = _pseudo_filesystem(path if st is not None else os.path.dirname(path) or ".")
    if pseudo:
        raise TargetError(f"{name}: is on {pseudo}, a pseudo-filesystem: not storage to zero")
    if is_block and writable and not force:
        why = mounted_or_held(st.st_rdev) if st is not None else None
        if why:
            raise TargetError(f"{name}: device is in use ({why}); use --force to override")
    flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC
    if st is None:
        flags |= os.O_CREAT | os.O_EXCL
    if is_block and writable and not force:
        flags |= os.O_EXCL
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as err:
        if err.errno == errno.EBUSY:
            raise TargetError(f"{name}: device is in use; use --force to override") from None
        if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise TargetError(f"{name}: cannot open for writing: {err.strerror}") from None
        raise TargetError(f"{name}: {err.strerror}") from None
    try:
        tgt = _from_fd(fd, name, path, owns_fd=True, force=force)
        if tgt.kind == BLOCK and writable:
            # The kernel lets a read-only device be opened for writing; each write then fails EPERM.
            if ioctl_int(fd, BLKROGET):
                raise TargetError(f"{name}: device is read-only")
            if tgt.size == 0:
                raise TargetError(f"{name}: device has no medium (size 0; a detached loop device?)")
        if tgt.kind == BLOCK and writable and not force:
            found = probe_signature(tgt)
            if found:
                raise TargetError(f"{name}: device carries a {found}; use --force to zero it anyway")
        return tgt
    except BaseException:
        os.close(fd)
        raise


def probe_signature(tgt: Target) -> str | None:
    """A partition table or filesystem signature in the device's first sectors, or None."""
    want = min(tgt.size, PROBE_BYTES)
    try:
        data = syscalls.ops.pread(tgt.fd, want, 0)
    except OSError as err:
        raise TargetError(f"{tgt.name}: cannot read the first sectors: {err.strerror}") from None
    return find_signature(data)


def _from_fd(fd: int, name: str, path: str | None, *, owns_fd: bool, force: bool) -> Target:
    try:
        st = os.fstat(fd)
    except OSError as err:
        raise TargetError(f"{name}: {err.strerror}") from None
    if stat.S_ISBLK(st.st_mode):
        kind = BLOCK
    elif stat.S_ISREG(st.st_mode):
        kind = FILE
    else:
        raise TargetError(f"{name}: not a regular file or block device")
    access = _opened_for_writing(fd)
    logical, physical, mem, off = _alignment(fd, kind)
    return Target(
        name=name,
        path=path,
        fd=fd,
        kind=kind,
        size=_size_of(fd, kind),
        logical_block_size=logical,
        physical_block_size=physical,
        dio_mem_align=mem,
        dio_offset_align=off,
        writable=access,
        rdev=st.st_rdev,
        dev_ino=(st.st_dev, st.st_ino),
        owns_fd=owns_fd,
    )


def _opened_for_writing(fd: int) -> bool:
    """Whether the descriptor was opened for writing."""
    mode = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    return mode in (os.O_WRONLY, os.O_RDWR)


@contextlib.contextmanager
def opened(target: str | os.PathLike[str] | int, **kwargs: bool) -> Iterator[Target]:
    t = open_target(target, **kwargs)
    try:
        yield t
    finally:
        t.close()


__all__ = ["BLOCK", "FILE", "Target", "mounted_or_held", "open_target", "opened", "probe_signature"]
