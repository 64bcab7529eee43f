"""Small readers of /proc and /sys, the one place that opens them (psutil's ``_common`` and
``_pslinux`` helpers are the model).

Every reader answers None (or an empty list) when the file is missing or unreadable: a kernel
without the attribute, a device gone, a namespace that hides it. Callers decide what that
means; none of them needs the OSError. Text is decoded with surrogateescape, as os.fsdecode
does, so a name in any byte encoding survives a round trip back to a path.

The mount table is parsed here once for everybody: /proc/self/mountinfo (with its octal
escapes, ``\\040`` for a space, decoded), or /proc/self/mounts where mountinfo is missing.
"""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from collections.abc import Iterator


def read_text(path: str, errors: str = "surrogateescape") -> str | None:
    """The file's text without surrounding whitespace, or None when it cannot be read."""
    try:
        with open(path, errors=errors) as f:
            return f.read().strip()
    except OSError:
        return None


def read_int(path: str) -> int | None:
    """The first word of the file as a decimal integer, or None (unreadable, empty, not a number)."""
    text = read_text(path)
    try:
        return int(text.split()[0]) if text else None
    except ValueError:
        return None


def read_lines(path: str) -> list[str] | None:
    """The file's lines without their newlines, or None when it cannot be read."""
    text = read_all(path)
    return None if text is None else text.splitlines()


def read_fields(path: str) -> dict[str, str]:
    """'Key: value' lines (/proc/self/status, /proc/meminfo, /proc/self/io, /proc/cpuinfo) as a
    dict; the first of repeated keys wins (cpuinfo repeats them per CPU). Empty when unreadable."""
    out: dict[str, str] = {}
    for line in read_lines(path) or ():
        key, sep, value = line.partition(":")
        if sep:
            out.setdefault(key.strip(), value.strip())
    return out


def read_u64s(path: str, index: int, count: int) -> tuple[int, ...] | None:
    """``count`` native 64-bit words from word ``index`` on (/proc/self/pagemap, /proc/kpageflags),
    or None when the file cannot be read or is short there."""
    import struct  # only the page-table readers need it

    try:
        with open(path, "rb") as f:
            f.seek(index * 8)
            raw = f.read(count * 8)
    except OSError:
        return None
    return struct.unpack(f"{count}Q", raw) if len(raw) == count * 8 else None


def write_text(path: str, text: str) -> bool:
    """Write a /proc or /sys control file (clear_refs, a queue attribute); False when refused."""
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError:
        return False
    return True


def read_all(path: str) -> str | None:
    """The file's whole text as it is (smaps, for a scan of its own), or None."""
    try:
        with open(path, errors="surrogateescape") as f:
            return f.read()
    except OSError:
        return None


# --- block devices in sysfs -----------------------------------------------------------------


def block_dir(rdev: int) -> str:
    """/sys/dev/block/MAJ:MIN, the sysfs directory of a block device number (a symlink)."""
    return f"/sys/dev/block/{os.major(rdev)}:{os.minor(rdev)}"


def block_name(rdev: int) -> str | None:
    """The kernel's name of a block device number (loop3, nvme0n1p1), None when sysfs has none."""
    try:
        return os.path.basename(os.readlink(block_dir(rdev)))
    except OSError:
        return None


def queue_attr(rdev: int, name: str) -> int | None:
    """/sys/block/<disk>/queue/<name> of a block device number (a partition uses its disk's queue)."""
    base = block_dir(rdev)
    for queue in (f"{base}/queue", f"{base}/../queue"):
        if os.path.isdir(queue):
            return read_int(f"{queue}/{name}")
    return None


def dev_of(sysdir: str) -> int | None:
    """The device number in a sysfs directory's ``dev`` file ("7:3")."""
    text = read_text(os.path.join(sysdir, "dev"))
    major, sep, minor = (text or "").partition(":")
    try:
        return os.makedev(int(major), int(minor)) if sep else None
    except ValueError:
        return None


# --- the mount table ------------------------------------------------------------------------

_OCTAL = re.compile(rb"\\([0-7]{3})")


def unescape(field: bytes) -> str:
    """A name from the mount table or /proc/swaps: octal escapes (\\040 space, \\011 tab, \\012
    newline, \\134 backslash) decoded, then the bytes as os.fsdecode reads a path."""
    if b"\\" in field:
        field = _OCTAL.sub(lambda m: bytes((int(m[1], 8),)), field)
    return os.fsdecode(field)


class Mount:
    """One line of the mount table. ``dev`` is st_dev of the files on it (-1 from /proc/mounts)."""

    __slots__ = ("dev", "fstype", "options", "point", "root", "source")

    def __init__(self, dev: int, root: str, point: str, fstype: str, source: str, options: str) -> None:
        self.dev, self.root, self.point = dev, root, point
        self.fstype, self.source, self.options = fstype, source, options

    def __repr__(self) -> str:
        return f"Mount({self.source!r} on {self.point!r} type {self.fstype!r})"


def mounts() -> list[Mount]:
    """The mount table of this process's namespace, read and parsed once per call."""
    return list(_mountinfo()) or list(_proc_mounts())


def _raw_lines(path: str) -> list[bytes]:
    try:
        with open(path, "rb") as f:
            return f.read().splitlines()
    except OSError:
        return []


def _mountinfo() -> Iterator[Mount]:
    # "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
    # (proc(5)): optional fields until the " - " separator, then type, source, super options.
    for line in _raw_lines("/proc/self/mountinfo"):
        left, _, right = line.partition(b" - ")
        parts, rest = left.split(b" "), right.split(b" ")
        if len(parts) < 6 or len(rest) < 2:
            continue
        major, _, minor = parts[2].partition(b":")
        try:
            dev = os.makedev(int(major), int(minor))
        except ValueError:
            continue
        yield Mount(dev, unescape(parts[3]), unescape(parts[4]), unescape(rest[0]), unescape(rest[1]),
                    os.fsdecode(parts[5]))


def _proc_mounts() -> Iterator[Mount]:
    for line in _raw_lines("/proc/self/mounts"):
        parts = line.split(b" ")
        if len(parts) >= 4:
            yield Mount(-1, "/", unescape(parts[1]), unescape(parts[2]), unescape(parts[0]), os.fsdecode(parts[3]))


def mount_of(st_dev: int) -> Mount | None:
    """The first mount of the filesystem whose files have this st_dev."""
    return next((m for m in mounts() if m.dev == st_dev), None)


def mount_points(dev: int) -> list[str]:
    """Every mount point of the filesystem on device ``dev`` (it can be mounted many times)."""
    return [m.point for m in mounts() if m.dev == dev]


def mount_containing(path: str) -> Mount | None:
    """The mount whose mount point is the longest prefix of ``path`` (symlinks resolved)."""
    real = os.path.realpath(path)
    best: Mount | None = None
    for m in mounts():
        inside = real == m.point or real.startswith(m.point.rstrip("/") + "/")
        if inside and (best is None or len(m.point) >= len(best.point)):
            best = m
    return best
