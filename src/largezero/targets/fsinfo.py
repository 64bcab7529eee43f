"""What filesystem a file lives on, and what that means for zeroing it.

``statfs(2)``'s f_type names the filesystem (include/uapi/linux/magic.h). From it follow: is
it storage at all (pseudo-filesystems are not), does a write overwrite the old blocks in place
(copy-on-write filesystems do not). Mount points come from ``largezero.sysfiles`` by the
file's st_dev, never by comparing path strings.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct

from .. import syscalls

# include/uapi/linux/magic.h (and fs/*/ for the few not there).
FS_NAMES: dict[int, str] = {
    0xEF53: "ext4", 0x58465342: "xfs", 0x9123683E: "btrfs", 0xF2F52010: "f2fs", 0x01021994: "tmpfs",
    0x858458F6: "ramfs", 0x4D44: "vfat", 0x2011BAB0: "exfat", 0x5346544E: "ntfs", 0x7366746E: "ntfs3",
    0xCA451A4E: "bcachefs", 0x2FC12FC1: "zfs", 0x3434: "nilfs2", 0x6969: "nfs", 0xFE534D42: "smb2",
    0xFF534D42: "cifs", 0x65735546: "fuse", 0x794C7630: "overlayfs", 0xE0F5E1E2: "erofs",
    0x73717368: "squashfs", 0x28CD3D45: "cramfs", 0x9660: "iso9660", 0x5A3C69F0: "zonefs",
    0x01161970: "gfs2", 0x7461636F: "ocfs2", 0x00C36400: "ceph", 0x47504653: "gpfs",
    # Kernel interfaces that look like files but are not storage: writing zeros to them changes
    # kernel state (/proc/sys, /sys, hugetlbfs pages, message queues) instead of data.
    0x9FA0: "proc", 0x62656572: "sysfs", 0x64626720: "debugfs", 0x73636673: "securityfs",
    0x27E0EB: "cgroup", 0x63677270: "cgroup2", 0x62656570: "configfs", 0xDE5E81E4: "efivarfs",
    0x74726163: "tracefs", 0xCAFE4A11: "bpf", 0x6165676C: "pstore", 0x1CD1: "devpts",
    0x958458F6: "hugetlbfs", 0x19800202: "mqueue", 0x42494E4D: "binfmt_misc", 0x65735543: "fusectl",
    0x6E736673: "nsfs", 0xF97CFF8C: "selinuxfs", 0x43415D53: "smackfs", 0x67596969: "rpc_pipefs",
    0x6E667364: "nfsd", 0x50495045: "pipefs", 0x534F434B: "sockfs", 0x09041934: "anon_inodefs",
    0x5345434D: "secretmem", 0x444D4142: "dmabuf", 0x0187: "autofs",
}
PSEUDO = frozenset({
    "proc", "sysfs", "debugfs", "securityfs", "cgroup", "cgroup2", "configfs", "efivarfs", "tracefs",
    "bpf", "pstore", "devpts", "hugetlbfs", "mqueue", "binfmt_misc", "fusectl", "nsfs", "selinuxfs",
    "smackfs", "rpc_pipefs", "nfsd", "pipefs", "sockfs", "anon_inodefs", "secretmem", "dmabuf", "autofs",
})
# Where a write never lands on the old blocks: the filesystem allocates new ones (copy-on-write
# or log-structured). btrfs is in place only for NOCOW files (chattr +C) without shared extents.
_COPY_ON_WRITE = {"bcachefs": "bcachefs", "zfs": "zfs", "nilfs2": "nilfs2 (log-structured)",
                  "f2fs": "f2fs (log-structured: may write out of place)"}

FS_IOC_GETFLAGS = 0x80086601  # _IOR('f', 1, long); the kernel reads and writes an int
FS_NOCOW_FL = 0x00800000
FIEMAP_EXTENT_SHARED = 0x2000

_statfs_buf = struct.Struct("l")  # struct statfs starts with f_type (__fsword_t, a long)
syscalls.libc.fstatfs.argtypes = [ctypes.c_int, ctypes.c_void_p]
syscalls.libc.statfs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]


def fs_magic(fd: int | None = None, path: str | None = None) -> int | None:
    """statfs f_type of an open fd or a path; None when statfs fails."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on x86-64
    # fstatfs for an fd: the answer is about the open file, whatever its path now names.
    rc = syscalls.libc.fstatfs(fd, buf) if fd is not None else syscalls.libc.statfs(os.fsencode(path or "."), buf)
    if rc != 0:
        return None
    return int(_statfs_buf.unpack_from(buf.raw)[0]) & 0xFFFFFFFF


def fs_name(magic: int | None) -> str | None:
    if magic is None:
        return None
    return FS_NAMES.get(magic, f"0x{magic:x}")


def pseudo_filesystem(fd: int | None = None, path: str | None = None) -> str | None:
    """The pseudo-filesystem an fd or path is on, or None (also when statfs fails)."""
    name = fs_name(fs_magic(fd, path))
    return name if name in PSEUDO else None


def max_file_size(fd: int) -> int | None:
    """The largest size this file may reach: the filesystem's limit and RLIMIT_FSIZE.

    The kernel's limit is ``sb->s_maxbytes`` (per inode on ext4: block-mapped files have a
    smaller one). It is not exported, but every filesystem's llseek checks it: ``lseek(fd, x,
    SEEK_SET)`` fails EINVAL exactly when x > limit (``vfs_setpos()``), and a write at pos fails
    EFBIG when pos >= limit (``generic_write_check_limits()``). A binary search with lseek finds
    it in 63 calls; the descriptor's position is restored. ``fpathconf(PC_FILESIZEBITS)`` is no
    use: glibc answers it from a table (64 for ext4, whose files end at 16 TiB with 4 KiB blocks).
    """
    try:
        saved = os.lseek(fd, 0, os.SEEK_CUR)
    except OSError:
        return None
    lo, hi = 0, (1 << 63) - 1  # lo is known to be seekable
    try:
        try:
            os.lseek(fd, hi, os.SEEK_SET)
            lo = hi
        except OSError as err:
            if err.errno != errno.EINVAL:
                return None
        while lo < hi:
            mid = (lo + hi + 1) // 2
            try:
                os.lseek(fd, mid, os.SEEK_SET)
                lo = mid
            except OSError:
                hi = mid - 1
    finally:
        try:
            os.lseek(fd, saved, os.SEEK_SET)
        except OSError:
            pass
    import resource  # here: only a range past the end asks, and every start would pay for it

    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY:
        lo = min(lo, soft)
    return lo


def _inode_flags(fd: int) -> int | None:
    try:
        out = fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8))
    except OSError:
        return None
    return int(struct.unpack_from("i", out)[0])


def _shared_extents(fd: int) -> bool:
    """Whether any extent of the file is shared (reflinked or in a snapshot): writes to it COW."""
    try:
        extents = syscalls.ops.fiemap(fd, 0, max(os.fstat(fd).st_size, 1), flags=0)
    except (OSError, AttributeError, TypeError):
        return False
    return any(e.flags & FIEMAP_EXTENT_SHARED for e in extents)


def copy_on_write(fd: int) -> str | None:
    """None when writes to this open regular file overwrite its blocks in place, else why not."""
    name = fs_name(fs_magic(fd))
    if name == "btrfs":
        flags = _inode_flags(fd)
        if flags is None or not flags & FS_NOCOW_FL:
            return "btrfs without NOCOW"
        if _shared_extents(fd):
            return "btrfs NOCOW file with shared extents (snapshot or reflink)"
        return None
    if name in _COPY_ON_WRITE:
        return _COPY_ON_WRITE[name]
    if name == "xfs" and _shared_extents(fd):
        return "xfs file with shared (reflinked) extents"
    return None
