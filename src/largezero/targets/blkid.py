"""Signatures on a device, from libblkid: the library ``blkid``, ``wipefs`` and ``mkfs`` use.

Probing is done as ``wipefs`` does it (misc-utils/wipefs.c ``new_probe()``): the superblocks
chain with ``BLKID_SUBLKS_MAGIC`` (magic string and offset) and ``BADCSUM`` (a signature with a
bad checksum is still a signature), the partitions chain with ``BLKID_PARTS_MAGIC`` and
``FORCE_GPT``, and ``blkid_do_probe()`` called in a loop, which yields one signature per call
from every probing function of every chain, so every filesystem, RAID member, LVM, LUKS and
swap signature and every partition table libblkid knows is found, wherever it sits.

libblkid is loaded with ctypes (``libblkid.so.1`` ships with util-linux on every Linux system).
Only when it cannot be loaded is util-linux's ``blkid -p -o export`` run instead; it reports the
first superblock and the partition table type, without magic offsets.
"""

from __future__ import annotations

import ctypes
import os

from .._record import record

BLKID_SUBLKS_TYPE = 1 << 5
BLKID_SUBLKS_USAGE = 1 << 7
BLKID_SUBLKS_MAGIC = 1 << 9
BLKID_SUBLKS_BADCSUM = 1 << 10
BLKID_PARTS_FORCE_GPT = 1 << 1
BLKID_PARTS_MAGIC = 1 << 3


@record(frozen=True)
class Signature:
    type: str  # libblkid's name: ext4, vfat, swap, LVM2_member, crypto_LUKS, dos, gpt, sun
    offset: int | None  # of the magic, in bytes from the start of the device; None when unknown
    kind: str  # "filesystem" (any superblock: also RAID, LVM, LUKS, swap) or "partition table"
    usage: str | None = None  # libblkid's USAGE: filesystem, raid, crypto, other
    size: int | None = None  # bytes of the magic string at ``offset`` (what wipefs erases); None when unknown

    def describe(self) -> str:
        """Like wipefs: 'an ext4 signature at offset 0x438', 'a dos partition table at offset 0x1fe'."""
        noun = "partition table" if self.kind == "partition table" else "signature"
        article = "an" if self.type[:1].lower() in "aeiou" else "a"
        where = f" at offset 0x{self.offset:x}" if self.offset is not None else ""
        return f"{article} {self.type} {noun}{where}"

    def to_dict(self) -> dict[str, object]:
        return {"type": self.type, "offset": self.offset, "kind": self.kind, "usage": self.usage, "size": self.size}


class BlkidUnavailable(OSError):
    """Neither libblkid nor the blkid command could be used."""


_lib: ctypes.CDLL | None = None
_lib_error: str | None = None


def _library() -> ctypes.CDLL | None:
    """libblkid.so.1, loaded once; None (with the reason kept) when it cannot be."""
    global _lib, _lib_error
    if _lib is not None or _lib_error is not None:
        return _lib
    try:
        lib = ctypes.CDLL("libblkid.so.1", use_errno=True)
    except OSError as err:
        _lib_error = str(err)
        return None
    vp, ci, i64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64
    lib.blkid_new_probe.restype = vp
    lib.blkid_new_probe.argtypes = []
    lib.blkid_free_probe.argtypes = [vp]
    lib.blkid_free_probe.restype = None
    lib.blkid_probe_set_device.argtypes = [vp, ci, i64, i64]
    for fn in ("blkid_probe_enable_superblocks", "blkid_probe_set_superblocks_flags",
               "blkid_probe_enable_partitions", "blkid_probe_set_partitions_flags"):
        getattr(lib, fn).argtypes = [vp, ci]
        getattr(lib, fn).restype = ci
    lib.blkid_do_probe.argtypes = [vp]
    lib.blkid_do_probe.restype = ci
    lib.blkid_probe_lookup_value.argtypes = [vp, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p),
                                            ctypes.POINTER(ctypes.c_size_t)]
    lib.blkid_probe_lookup_value.restype = ci
    _lib = lib
    return lib


def _value(lib: ctypes.CDLL, pr: int, name: str) -> str | None:
    data = ctypes.c_char_p()
    size = ctypes.c_size_t()
    if lib.blkid_probe_lookup_value(pr, name.encode(), ctypes.byref(data), ctypes.byref(size)) != 0:
        return None
    raw = data.value
    return raw.decode("utf-8", "replace") if raw is not None else None


def _length(lib: ctypes.CDLL, pr: int, name: str) -> int | None:
    """The length of a binary value (a magic string may hold NUL bytes, so not from _value)."""
    data = ctypes.c_char_p()
    size = ctypes.c_size_t()
    if lib.blkid_probe_lookup_value(pr, name.encode(), ctypes.byref(data), ctypes.byref(size)) != 0:
        return None
    return size.value or None


def _int(text: str | None) -> int | None:
    try:
        return int(text, 10) if text is not None else None
    except ValueError:
        return None


def _probe_library(lib: ctypes.CDLL, fd: int, size: int) -> list[Signature]:
    pr = lib.blkid_new_probe()
    if not pr:
        raise BlkidUnavailable(ctypes.get_errno(), "blkid_new_probe failed")
    try:
        if lib.blkid_probe_set_device(pr, fd, 0, size) != 0:
            code = ctypes.get_errno()
            raise BlkidUnavailable(code, os.strerror(code) if code else "blkid_probe_set_device failed")
        lib.blkid_probe_enable_superblocks(pr, 1)
        lib.blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE | BLKID_SUBLKS_MAGIC
                                              | BLKID_SUBLKS_BADCSUM)
        lib.blkid_probe_enable_partitions(pr, 1)
        lib.blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC | BLKID_PARTS_FORCE_GPT)
        found: list[Signature] = []
        # 0: one more result; 1: every chain is done; -1: a read error (stop with what we have,
        # which is what wipefs does too).
        for _ in range(256):  # bound the loop: a library bug must not hang a zeroing job
            if lib.blkid_do_probe(pr) != 0:
                break
            fstype = _value(lib, pr, "TYPE")
            if fstype:
                found.append(Signature(fstype, _int(_value(lib, pr, "SBMAGIC_OFFSET")), "filesystem",
                                       _value(lib, pr, "USAGE"), _length(lib, pr, "SBMAGIC")))
                continue
            pttype = _value(lib, pr, "PTTYPE")
            if pttype:
                found.append(Signature(pttype, _int(_value(lib, pr, "PTMAGIC_OFFSET")), "partition table",
                                       size=_length(lib, pr, "PTMAGIC")))
        return found
    finally:
        lib.blkid_free_probe(pr)


def _probe_command(fd: int) -> list[Signature]:
    """``blkid -p -o export`` on the descriptor (through /dev/fd, no second exclusive open)."""
    import subprocess  # only without the library: not worth its start-up cost otherwise

    try:
        done = subprocess.run(["blkid", "-p", "-o", "export", f"/dev/fd/{fd}"], pass_fds=(fd,),
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        raise BlkidUnavailable(0, f"libblkid cannot be loaded ({_lib_error}) and blkid failed: {err}") from None
    if done.returncode == 2:  # blkid: nothing found
        return []
    if done.returncode != 0:
        raise BlkidUnavailable(0, f"blkid -p failed: {done.stderr.strip() or done.returncode}")
    values = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    found: list[Signature] = []
    if values.get("TYPE"):
        found.append(Signature(values["TYPE"], _int(values.get("SBMAGIC_OFFSET")), "filesystem", values.get("USAGE")))
    if values.get("PTTYPE"):
        found.append(Signature(values["PTTYPE"], _int(values.get("PTMAGIC_OFFSET")), "partition table"))
    return found


def probe(fd: int, size: int, *, use_library: bool = True) -> list[Signature]:
    """Every signature libblkid finds on the open device or image ``fd`` of ``size`` bytes."""
    lib = _library() if use_library else None
    if lib is not None:
        return _probe_library(lib, fd, size)
    return _probe_command(fd)


def library_status() -> str:
    """'libblkid' when the library is used, else why the blkid command is used instead."""
    return "libblkid" if _library() is not None else f"blkid command (libblkid: {_lib_error})"
