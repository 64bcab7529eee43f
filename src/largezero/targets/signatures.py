"""Is there something on this device? Every signature libblkid knows (see ``blkid.py``).

Like ``blkdiscard`` and ``wipefs``, largezero refuses to zero a block device that carries a
partition table or a filesystem, RAID, LVM, LUKS or swap signature unless ``--force``: the
message names each signature and its offset the way ``wipefs`` lists them.
"""

from __future__ import annotations

from .blkid import BlkidUnavailable, Signature, probe


def find_signatures(fd: int, size: int, *, use_library: bool = True) -> list[Signature]:
    """The signatures on an open device or image; raises BlkidUnavailable when it cannot tell."""
    return probe(fd, size, use_library=use_library)


def describe_signatures(found: list[Signature]) -> str:
    """'an ext4 signature at offset 0x438', or 'a dos partition table at offset 0x1fe and ...'."""
    parts = [s.describe() for s in found]
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


__all__ = ["BlkidUnavailable", "Signature", "describe_signatures", "find_signatures"]
