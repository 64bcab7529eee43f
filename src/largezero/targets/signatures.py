"""Is there something on this device? Partition tables and filesystem signatures.

Like ``blkdiscard`` and ``wipefs``, largezero refuses to zero a block device that carries a
partition table or a known filesystem/volume signature unless ``--force``. Only the first
sectors are read (``PROBE_BYTES``); the magics are those of libblkid for the common kinds.
"""

from __future__ import annotations

from collections.abc import Callable

# The furthest magic looked at: iso9660's "CD001" at 32769, btrfs's at 65600.
PROBE_BYTES = 65536 + 4096

# (offset, magic, what) checked as plain byte strings.
_MAGICS: tuple[tuple[int, bytes, str], ...] = (
    (0, b"XFSB", "xfs filesystem"),
    (65536 + 64, b"_BHRfS_M", "btrfs filesystem"),
    (0, b"LUKS\xba\xbe", "LUKS volume"),
    (0, b"SKUL\xba\xbe", "LUKS2 volume (secondary header)"),
    (3, b"NTFS    ", "NTFS filesystem"),
    (0, b"hsqs", "squashfs filesystem"),
    (1024, b"\x10\x20\xf5\xf2", "f2fs filesystem"),
    (32769, b"CD001", "iso9660 filesystem"),
    (4096, b"\xfc\x4e\x2b\xa9", "Linux RAID (md 1.2) member"),
    (0, b"\xfc\x4e\x2b\xa9", "Linux RAID (md 1.1) member"),
    *((lba * 512 + 0, b"LABELONE", "LVM2 physical volume") for lba in range(4)),
    *((page - 10, magic, "swap space") for page in (4096, 8192, 16384, 65536)
      for magic in (b"SWAPSPACE2", b"SWAP-SPACE")),
    *((sector, b"EFI PART", "GPT partition table") for sector in (512, 4096)),
)


def _has(data: bytes, offset: int, magic: bytes) -> bool:
    return data[offset : offset + len(magic)] == magic


def _ext(data: bytes) -> str | None:
    """The ext2/3/4 superblock at 1024: magic 0xEF53 and a plausible block size (1 KiB..64 KiB)."""
    if not _has(data, 1080, b"\x53\xef"):
        return None
    log_block_size = int.from_bytes(data[1048:1052], "little")
    return "ext2/ext3/ext4 filesystem" if log_block_size <= 6 else None


def _fat(data: bytes) -> str | None:
    if not _has(data, 510, b"\x55\xaa"):
        return None
    if _has(data, 54, b"FAT12   ") or _has(data, 54, b"FAT16   ") or _has(data, 82, b"FAT32   "):
        return "FAT filesystem"
    return None


def _mbr(data: bytes) -> str | None:
    """A DOS partition table: the 0x55AA boot signature and four plausible entries."""
    if not _has(data, 510, b"\x55\xaa"):
        return None
    entries = [data[446 + 16 * i : 462 + 16 * i] for i in range(4)]
    if any(e[0] not in (0x00, 0x80) for e in entries):
        return None
    if not any(e[4] for e in entries):
        return None
    if any(e[4] == 0xEE for e in entries):
        return "GPT partition table (protective MBR)"
    return "DOS (MBR) partition table"


_PROBES: tuple[Callable[[bytes], str | None], ...] = (_ext, _fat, _mbr)


def find_signature(data: bytes) -> str | None:
    """What the first ``PROBE_BYTES`` of a device say it carries, or None."""
    for offset, magic, what in _MAGICS:
        if _has(data, offset, magic):
            return what
    for probe in _PROBES:
        found = probe(data)
        if found:
            return found
    return None
