"""What zeroing acts on: regular files and block devices, by path or open fd.

Kept apart from the mm and block parts: this module knows how to open, size and align a
target and whether it is safe to write; it zeroes nothing itself.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat

from .. import sysfiles
from .._record import field, record
from ..errors import TargetError, TargetIsADirectory, TargetNotFound, UsageError, option, target_error
from ..syscalls import BLKGETSIZE64, BLKPBSZGET, BLKSSZGET, ioctl_int, statx_dio_align
from . import refusals
from .fsinfo import max_file_size as _max_file_size
from .fsinfo import pseudo_filesystem
from .inuse import device_in_use, file_in_use, in_use_message

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from .blkid import Signature

FILE = "file"
BLOCK = "block"
BLKROGET = 0x125E  # <linux/fs.h>: is the device read-only


@record
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
    # We opened the device with O_EXCL: our own claim, not someone else's, makes a second
    # exclusive open fail EBUSY, so in_use() must not probe for one.
    exclusive: bool = False

    @property
    def key(self) -> tuple[str, int, int]:
        """The target's identity in the memory of refused calls (targets/refusals.py)."""
        return refusals.block_key(self.rdev) if self.kind == BLOCK else refusals.file_key(*self.dev_ino)

    @property
    def block_name(self) -> str | None:
        """The kernel's name for a block device (loop0, nvme0n1p1), from its device number."""
        return sysfiles.block_name(self.rdev) if self.kind == BLOCK else None

    def queue_attr(self, name: str) -> int | None:
        """A queue attribute of a block device (a partition's is its disk's); None for a file."""
        return sysfiles.queue_attr(self.rdev, name) if self.kind == BLOCK else None

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

    def unsupported(self) -> frozenset[str]:
        return refusals.refused(self.key)

    def mark_unsupported(self, what: str) -> None:
        refusals.remember(self.key, what)

    def refresh_size(self) -> int:
        self.size = _size_of(self.fd, self.kind)
        return self.size

    def close(self) -> None:
        if self._direct_fd is not None:
            os.close(self._direct_fd)
            self._direct_fd = None
        if self.owns_fd:
            self.owns_fd = False  # closing twice must never close a descriptor reused since
            os.close(self.fd)

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def in_use(self) -> str | None:
        """Why zeroing this target would destroy something in use, naming what holds it, or None.

        Devices: mounted (also a partition), held (holders), active swap, backing a loop
        device, opened exclusively by another program. Files: backing a loop device (matched
        by st_dev/st_ino), an active swapfile, on a pseudo-filesystem. See inuse.py.
        """
        if self.kind == BLOCK:
            return device_in_use(self.rdev, probe_exclusive=not self.exclusive, path=self.path)
        return file_in_use(*self.dev_ino, fd=self.fd)

    @property
    def max_file_size(self) -> int | None:
        """For a file: the largest size it may reach here (filesystem limit, RLIMIT_FSIZE); None for devices."""
        return _max_file_size(self.fd) if self.kind == FILE else None

    def check_range(self, offset: int, length: int) -> None:
        """Refuse (TargetError, exit 2) a range a file can never hold, before anything is written."""
        limit = self.max_file_size
        if limit is not None and offset + length > limit:
            raise TargetError(f"{self.name}: range ends at byte {offset + length}, past the largest file size "
                              f"this filesystem allows ({limit} bytes)")

    @property
    def copy_on_write(self) -> str | None:
        """None when writes overwrite the old blocks in place, else why not ("btrfs without NOCOW")."""
        from .identity import target_copy_on_write

        return target_copy_on_write(self)

    def identity(self) -> dict[str, object]:
        """What sysfs says the device is (model, serial, wwn, sizes), or a file's dev/ino/fs."""
        from .identity import block_identity, file_identity

        return block_identity(self) if self.kind == BLOCK else file_identity(self)

    def signatures(self) -> list[Signature]:
        """Every signature libblkid finds on a device (files: none are looked for)."""
        if self.kind != BLOCK:
            return []
        # Imported here: only devices are probed, and libblkid's wrapper costs start-up.
        from .blkid import BlkidUnavailable
        from .signatures import find_signatures

        try:
            return find_signatures(self.fd, self.size)
        except BlkidUnavailable as err:
            raise TargetError(f"{self.name}: cannot look for signatures: {err.strerror or err}") from None

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


def open_target(
    target: str | os.PathLike[str] | int,
    *,
    writable: bool = True,
    force: bool = False,
    create: bool = False,
    force_signatures: bool = False,
) -> Target:
    """Open a regular file or block device for zeroing.

    Opened for writing and without ``force``, a target in use is refused (TargetError, exit 2,
    nothing written), whether given by path or by fd: see ``Target.in_use()``; a device is
    opened O_EXCL, as blkdiscard does, and one with any libblkid signature is refused too
    (``force_signatures`` lifts that refusal alone: a device in use is still refused).
    Files on pseudo-filesystems are refused always. A file is never created unless ``create``.
    """
    if isinstance(target, int):
        tgt = _from_fd(target, str(target), None, owns_fd=False)
        _refuse_if_unsafe(tgt, writable=writable and tgt.writable, force=force, force_signatures=force_signatures)
        return tgt
    name = os.fspath(target)
    if not name:
        raise UsageError("no target given")
    path = os.path.realpath(name)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if not create:
            hint = "" if path.startswith("/dev/") else f" (use {option('create')} to create a file)"
            raise TargetNotFound(f"{name}: no such file or directory{hint}", errno=errno.ENOENT,
                                 filename=name) from None
        if path.startswith("/dev/"):
            # The classic typo: /dev/sdx instead of /dev/sdb would make a file in devtmpfs.
            raise TargetNotFound(f"{name}: no such device; refusing to create a regular file under /dev",
                                 errno=errno.ENOENT, filename=name) from None
        st = None
    except OSError as err:
        raise target_error(name, err) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise TargetIsADirectory(f"{name}: is a directory", errno=errno.EISDIR, filename=name)
    if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise TargetError(f"{name}: not a regular file or block device")
    is_block = st is not None and stat.S_ISBLK(st.st_mode)
    pseudo = pseudo_filesystem(path=path if st is not None else os.path.dirname(path) or ".")
    if pseudo:
        raise TargetError(f"{name}: is on {pseudo}, a pseudo-filesystem: not storage to zero")
    if st is not None and writable and not force:
        # Before the open: opening an active swapfile or a loop's backing file for writing is
        # harmless, but the refusal should not depend on that.
        why = device_in_use(st.st_rdev, probe_exclusive=False) if is_block else file_in_use(st.st_dev, st.st_ino)
        if why:
            raise TargetError(in_use_message(name, is_block, why))
    flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC
    if st is None:
        flags |= os.O_CREAT | os.O_EXCL
    exclusive = is_block and writable and not force
    if exclusive:
        flags |= os.O_EXCL
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as err:
        if err.errno == errno.EBUSY and st is not None:
            why = device_in_use(st.st_rdev, probe_exclusive=True, path=path) or "opened exclusively by another program"
            raise TargetError(in_use_message(name, True, why)) from None
        if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            mode = "writing" if writable else "reading"
            raise target_error(name, err, f"{name}: cannot open for {mode}: {err.strerror}") from None
        if err.errno == errno.ETXTBSY:
            raise TargetError(f"{name}: is in use (text file busy: an active swapfile or a running program)") from None
        raise target_error(name, err) from None
    try:
        opened = os.fstat(fd)
        if st is not None and (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
            # Checked by path, then opened: the path now names another file (renamed over it).
            raise TargetError(f"{name}: was replaced by another file between the checks and the open; "
                              "nothing written")
        tgt = _from_fd(fd, name, path, owns_fd=True)
        tgt.exclusive = exclusive
        # A new file cannot be in use; an existing one was checked above, by path.
        _refuse_if_unsafe(tgt, writable=writable, force=force, checked_in_use=True,
                          force_signatures=force_signatures)
        return tgt
    except BaseException:
        os.close(fd)
        raise


def _refuse_if_unsafe(tgt: Target, *, writable: bool, force: bool, checked_in_use: bool = False,
                      force_signatures: bool = False) -> None:
    """The refusals that need the open target (see docs/reliability.md, "Refusals")."""
    if tgt.kind == FILE:
        pseudo = pseudo_filesystem(fd=tgt.fd)
        if pseudo:  # refused even with --force: there is no storage to zero
            raise TargetError(f"{tgt.name}: is on {pseudo}, a pseudo-filesystem: not storage to zero")
    if not writable:
        return
    if tgt.kind == BLOCK:
        # The kernel lets a read-only device be opened for writing; each write then fails EPERM.
        if ioctl_int(tgt.fd, BLKROGET):
            raise TargetError(f"{tgt.name}: device is read-only")
        if tgt.size == 0:
            raise TargetError(f"{tgt.name}: device has no medium (size 0; a detached loop device?)")
    if force:
        return
    if not checked_in_use:
        why = tgt.in_use()
        if why:
            raise TargetError(in_use_message(tgt.name, tgt.kind == BLOCK, why))
    if tgt.kind == BLOCK and not force_signatures:
        found = probe_signature(tgt)
        if found:
            raise TargetError(f"{tgt.name}: device carries {found}; use {option('force')} to zero it anyway")


def refuse_as_writer(tgt: Target, *, force: bool = False, force_signatures: bool = False) -> None:
    """Refuse a target opened read-only (a dry run) for what would refuse it opened for writing."""
    _refuse_if_unsafe(tgt, writable=True, force=force, force_signatures=force_signatures)


def probe_signature(tgt: Target) -> str | None:
    """Every libblkid signature on a device, described like wipefs, or None when there is none."""
    from .signatures import describe_signatures

    found = tgt.signatures()
    return describe_signatures(found) if found else None


def _from_fd(fd: int, name: str, path: str | None, *, owns_fd: bool) -> Target:
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


def opened(target: str | os.PathLike[str] | int, **kwargs: bool) -> Target:
    """``open_target()`` for a ``with`` block, which closes it (a Target is its own context)."""
    return open_target(target, **kwargs)


def __getattr__(name: str) -> object:
    # ``Signature`` is part of this module's API, loaded on first use (see Target.signatures).
    if name == "Signature":
        from .blkid import Signature

        return Signature
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BLOCK", "FILE", "Signature", "Target", "open_target", "opened", "probe_signature", "refuse_as_writer"]
