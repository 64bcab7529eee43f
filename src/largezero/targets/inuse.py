"""Is a target in use? For block devices and regular files, by device and inode numbers.

Everything is matched by numbers (st_rdev for devices, st_dev + st_ino for files), never by
comparing path strings: a file reached through a symlink, a bind mount or a second hard link is
the same file. Each answer names what holds the target, in the words of the refusal message:
"backs /dev/loop3, mounted on /srv", "active swap", "mounted on /mnt", "held by dm-0".
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct

from ..errors import option
from ..sysfiles import block_dir, block_name, dev_of, mount_points, read_lines, read_text, unescape
from .fsinfo import pseudo_filesystem

LOOP_GET_STATUS64 = 0x4C05
# struct loop_info64 (<linux/loop.h>): lo_device, lo_inode, lo_rdevice, lo_offset, lo_sizelimit
# (__u64 each), lo_number, lo_encrypt_type, lo_encrypt_key_size, lo_flags (__u32 each), then
# lo_file_name[64], lo_crypt_name[64], lo_encrypt_key[32], lo_init[2] (__u64): 232 bytes.
_LOOP_INFO64 = struct.Struct("=QQQQQIIII64s64s32s16x")


def _dev_name(rdev: int) -> str:
    """The kernel's name of a block device number (loop3, sda1), or major:minor."""
    return block_name(rdev) or f"{os.major(rdev)}:{os.minor(rdev)}"


def _partitions(rdev: int) -> list[int]:
    """Device numbers of the partitions of a whole disk (none for a partition itself)."""
    found: list[int] = []
    try:
        for entry in os.scandir(block_dir(rdev)):
            if entry.is_dir() and os.path.exists(os.path.join(entry.path, "partition")):
                part = dev_of(entry.path)
                if part is not None:
                    found.append(part)
    except OSError:
        pass
    return found


def _swap_entries() -> list[tuple[str, str]]:
    """(name, type) of every active swap area, from /proc/swaps (names escape space as \\040)."""
    out: list[tuple[str, str]] = []
    for line in (read_lines("/proc/swaps") or [])[1:]:
        parts = line.split()
        if len(parts) >= 2:
            out.append((unescape(os.fsencode(parts[0])).removesuffix("(deleted)"), parts[1]))
    return out


def _device_use(rdev: int) -> list[str]:
    """Mounts, holders and swap of exactly this device number."""
    why = [f"mounted on {m}" for m in mount_points(rdev)]
    try:
        held = sorted(os.listdir(f"{block_dir(rdev)}/holders"))
        if held:
            why.append(f"held by {', '.join(held)}")
    except OSError:
        pass
    for name, kind in _swap_entries():
        try:
            if kind == "partition" and os.stat(name).st_rdev == rdev:
                why.append("active swap")
        except OSError:
            pass
    return why


def loop_devices() -> list[tuple[str, int, str]]:
    """(name, rdev, backing_file) of every attached loop device, from sysfs."""
    out: list[tuple[str, int, str]] = []
    try:
        for entry in sorted(os.listdir("/sys/block")):
            if not entry.startswith("loop"):
                continue
            backing = read_text(f"/sys/block/{entry}/loop/backing_file")
            if backing is None:  # no loop/ directory: not attached
                continue
            rdev = dev_of(f"/sys/block/{entry}")
            if rdev is not None:
                out.append((entry, rdev, backing))
    except OSError:
        pass
    return out


def _loop_backing_ids(name: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) of a loop device's backing file, from LOOP_GET_STATUS64.

    Only asked when the sysfs path does not lead to a file (deleted, or outside our mount
    namespace); the ioctl only reads the loop's status, on a read-only descriptor.
    """
    try:
        fd = os.open(f"/dev/{name}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = _LOOP_INFO64.unpack(fcntl.ioctl(fd, LOOP_GET_STATUS64, bytes(_LOOP_INFO64.size)))
    except OSError:
        return None
    finally:
        os.close(fd)
    encoded, ino = int(info[0]), int(info[1])
    # lo_device is huge_encode_dev(): minor low byte, major in bits 8-19, rest of minor above.
    major, minor = (encoded >> 8) & 0xFFF, (encoded & 0xFF) | ((encoded >> 12) & 0xFFF00)
    return os.makedev(major, minor), ino


def loops_over_file(dev: int, ino: int) -> list[tuple[str, int]]:
    """(loop name, loop rdev) of every loop device whose backing file is the inode (dev, ino)."""
    found: list[tuple[str, int]] = []
    for name, rdev, backing in loop_devices():
        try:
            st = os.stat(backing)
            ids: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except OSError:
            ids = _loop_backing_ids(name)
        if ids == (dev, ino):
            found.append((name, rdev))
    return found


def loops_over_device(rdev: int) -> list[tuple[str, int]]:
    """Loop devices whose backing "file" is the block device rdev itself."""
    found: list[tuple[str, int]] = []
    for name, loop_rdev, backing in loop_devices():
        try:
            st = os.stat(backing)
            if stat.S_ISBLK(st.st_mode) and st.st_rdev == rdev:
                found.append((name, loop_rdev))
        except OSError:
            pass
    return found


def _uses_of_loop(loop_rdev: int) -> str:
    """What uses a loop device, for "backs /dev/loop3, mounted on /srv"."""
    why = device_in_use(loop_rdev, probe_exclusive=False)
    return f", {why}" if why else ""


def device_in_use(rdev: int, *, probe_exclusive: bool = True, path: str | None = None) -> str | None:
    """Why the block device rdev is in use, or None.

    Mounted (anywhere, also a partition of it), held (device-mapper, md, bcache: sysfs holders),
    active swap, the backing device of a loop device, and, when ``probe_exclusive``, opened
    exclusively by someone (an O_EXCL open fails EBUSY: mkfs, a running fsck, a VM).
    """
    why = _device_use(rdev)
    for part in _partitions(rdev):
        why += [f"partition {_dev_name(part)} {w}" for w in _device_use(part)]
    for loop, loop_rdev in loops_over_device(rdev):
        why.append(f"backs /dev/{loop}{_uses_of_loop(loop_rdev)}")
    if not why and probe_exclusive:
        holder = _exclusive_holder(rdev, path)
        if holder:
            why.append(holder)
    return "; ".join(why) if why else None


def _exclusive_holder(rdev: int, path: str | None) -> str | None:
    """Whether another opener holds the device exclusively (O_EXCL open fails EBUSY), and who."""
    node = path if path and os.path.exists(path) else f"/dev/{_dev_name(rdev)}"
    try:
        fd = os.open(node, os.O_RDONLY | os.O_EXCL | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        if err.errno != errno.EBUSY:
            return None
        pids = _openers(rdev)
        return "opened exclusively by " + (", ".join(pids) if pids else "another program")
    os.close(fd)
    return None


def _openers(rdev: int) -> list[str]:
    """'pid (comm)' of processes other than us with the device open (only asked after EBUSY)."""
    found: list[str] = []
    me = str(os.getpid())
    try:
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or pid == me:
                continue
            try:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    try:
                        st = os.stat(f"/proc/{pid}/fd/{fd}")
                        if stat.S_ISBLK(st.st_mode) and st.st_rdev == rdev:
                            found.append(f"pid {pid} ({read_text(f'/proc/{pid}/comm') or '?'})")
                            break
                    except OSError:
                        pass
            except OSError:
                pass
    except OSError:
        pass
    return found


def file_in_use(dev: int, ino: int, fd: int | None = None) -> str | None:
    """Why the regular file (dev, ino) is in use, or None: a loop device's backing file, an
    active swapfile, or a file on a pseudo-filesystem."""
    why: list[str] = []
    pseudo = pseudo_filesystem(fd=fd) if fd is not None else None
    if pseudo:
        why.append(f"is on {pseudo}, a pseudo-filesystem: not storage to zero")
    for loop, loop_rdev in loops_over_file(dev, ino):
        why.append(f"backs /dev/{loop}{_uses_of_loop(loop_rdev)}")
    for name, kind in _swap_entries():
        try:
            st = os.stat(name)
            if kind == "file" and (st.st_dev, st.st_ino) == (dev, ino):
                why.append("is an active swapfile")
        except OSError:
            pass
    return "; ".join(why) if why else None


def in_use_message(name: str, is_block: bool, why: str) -> str:
    """'disk.img backs /dev/loop3, mounted on /srv: ...'; 'fd 5 (/srv/disk.img) ...' for an fd."""
    if name.isdigit():
        try:
            name = f"fd {name} ({os.readlink(f'/proc/self/fd/{name}')})"
        except OSError:
            pass
    if is_block:
        return f"{name}: device is in use ({why}); use {option('force')} to override"
    if "pseudo-filesystem" in why:
        return f"{name}: {why}"
    return f"{name} {why}: zeroing it would destroy that; use {option('force')} to override"
