"""Queue limits: the ``struct queue_limits`` fields that decide bios, segments and requests.

Read from ``/sys/block/<dev>/queue`` (block/blk-sysfs.c) for a real device, or taken from
:data:`PRESETS` for devices we do not have. Sizes are in bytes except ``max_sectors`` and
``max_hw_sectors`` (512-byte sectors, as the kernel keeps them) and ``chunk_sectors``.
"""

from __future__ import annotations

import os

from .._record import asdict, fields, record, replace
from ..sysfiles import dev_of, read_int, read_lines

SECTOR_SIZE = 512
UINT_MAX = 2**32 - 1

# include/linux/blkdev.h defaults, applied by blk_validate_limits() to a driver that sets nothing.
BLK_MAX_SEGMENTS = 128
BLK_MAX_SEGMENT_SIZE = 65536
BLK_SEG_BOUNDARY_MASK = 0xFFFFFFFF
BLK_SAFE_MAX_SECTORS = 255
# blk_validate_limits(): max_sectors defaults to min(max_hw_sectors, BLK_DEF_MAX_SECTORS_CAP).
BLK_DEF_MAX_SECTORS_CAP = 2560


@record(frozen=True)
class QueueLimits:
    """The subset of ``struct queue_limits`` (include/linux/blkdev.h) the model needs.

    ``partition_start`` is not a queue limit: it is the first sector of a partition on its
    disk. The split works on disk sectors (blk_partition_remap() runs before the split), so
    the physical-block and chunk alignment of a partition's bios depend on it.
    """

    logical_block_size: int = SECTOR_SIZE
    physical_block_size: int = SECTOR_SIZE
    max_sectors: int = BLK_SAFE_MAX_SECTORS
    max_hw_sectors: int = BLK_SAFE_MAX_SECTORS
    max_segments: int = BLK_MAX_SEGMENTS
    max_segment_size: int = BLK_MAX_SEGMENT_SIZE
    seg_boundary_mask: int = BLK_SEG_BOUNDARY_MASK
    virt_boundary_mask: int = 0
    write_zeroes_max_bytes: int = 0
    chunk_sectors: int = 0
    dma_alignment: int = SECTOR_SIZE - 1
    partition_start: int = 0
    name: str = "custom"
    # queue/nomerges (blk_sysfs queue_nomerges_store()): 0 all merges, 1 QUEUE_FLAG_NOXMERGES
    # (the plug's back-merge still runs, only the elevator's hash lookups stop), 2
    # QUEUE_FLAG_NOMERGES (blk_mq_attempt_bio_merge() merges nothing).
    nomerges: int = 0
    # The device class (see :mod:`.accounting`): request-based (blk-mq: a ``queue/scheduler``
    # and an ``mq/`` directory) or bio-based (the driver's own submit_bio: zram, dm, md), and
    # the driver's name from /proc/devices, which decides what a bio-based stat counts.
    bio_based: bool = False
    driver: str = ""

    def __post_init__(self) -> None:
        for field_name in ("logical_block_size", "physical_block_size", "max_sectors", "max_segments",
                           "max_segment_size"):
            if getattr(self, field_name) <= 0:
                raise ValueError(f"queue limit {field_name} must be positive")
        lbs = self.logical_block_size
        if lbs & (lbs - 1) or lbs < SECTOR_SIZE:
            raise ValueError("logical_block_size must be a power of two of at least 512")
        pbs = self.physical_block_size
        if pbs & (pbs - 1):
            raise ValueError("physical_block_size must be a power of two")
        if self.physical_block_size % lbs:
            raise ValueError("physical_block_size must be a multiple of logical_block_size")
        for mask_name in ("seg_boundary_mask", "virt_boundary_mask"):
            mask = getattr(self, mask_name)
            if mask < 0 or mask & (mask + 1):
                raise ValueError(f"{mask_name} must be 2^n - 1")
        if self.max_sectors * SECTOR_SIZE < lbs:
            raise ValueError("max_sectors is smaller than one logical block")
        if self.nomerges not in (0, 1, 2):
            raise ValueError("nomerges must be 0, 1 or 2")

    @property
    def max_bytes(self) -> int:
        return self.max_sectors * SECTOR_SIZE

    @property
    def write_zeroes_max_sectors(self) -> int:
        return self.write_zeroes_max_bytes // SECTOR_SIZE

    @property
    def dio_align(self) -> int:
        """What O_DIRECT needs of offsets, lengths and buffers: blkdev_dio_invalid() (block/fops.c)."""
        return max(self.logical_block_size, self.dma_alignment + 1)

    def with_max_sectors_kb(self, kb: int) -> QueueLimits:
        """As after ``echo kb > max_sectors_kb`` (queue_max_sectors_store(): at most max_hw_sectors)."""
        sectors = kb * 2
        if sectors > self.max_hw_sectors:
            raise ValueError(f"max_sectors_kb {kb} exceeds max_hw_sectors_kb {self.max_hw_sectors // 2}")
        return replace(self, max_sectors=sectors)

    def with_nomerges(self, nomerges: int) -> QueueLimits:
        """As after ``echo nomerges > queue/nomerges``."""
        return replace(self, nomerges=nomerges)

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = dict(asdict(self))
        d["max_sectors_kb"] = self.max_sectors // 2
        d["max_hw_sectors_kb"] = self.max_hw_sectors // 2
        return d

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> QueueLimits:
        known = {spec.name for spec in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})  # type: ignore[arg-type]

    @classmethod
    def from_sysfs(cls, device: str, sysfs: str = "/sys") -> QueueLimits:
        """Read the limits of a block device (``loop0`` or ``/dev/loop0``) from sysfs.

        Only sysfs is read; the device is never opened. For a partition the parent disk's
        queue is read and ``partition_start`` is set. ``seg_boundary_mask`` is not exported
        by sysfs and is taken as the kernel default, which every driver we model keeps.
        """
        name = os.path.basename(os.path.realpath(device)) if device.startswith("/") else device
        node = os.path.realpath(os.path.join(sysfs, "class", "block", name))
        if not os.path.isdir(node):
            raise ValueError(f"{device}: not a block device known to sysfs")
        start = 0
        if os.path.exists(os.path.join(node, "partition")):
            start = _sysfs_int(os.path.join(node, "start"))
            node = os.path.dirname(node)
        queue = os.path.join(node, "queue")

        def attr(attr_name: str, default: int | None = None) -> int:
            return _sysfs_int(os.path.join(queue, attr_name), default)

        return cls(
            logical_block_size=attr("logical_block_size"),
            physical_block_size=attr("physical_block_size"),
            max_sectors=attr("max_sectors_kb") * 2,
            max_hw_sectors=attr("max_hw_sectors_kb") * 2,
            max_segments=attr("max_segments"),
            max_segment_size=attr("max_segment_size"),
            seg_boundary_mask=BLK_SEG_BOUNDARY_MASK,
            virt_boundary_mask=attr("virt_boundary_mask", 0),
            write_zeroes_max_bytes=attr("write_zeroes_max_bytes", 0),
            chunk_sectors=attr("chunk_sectors", 0),
            dma_alignment=attr("dma_alignment", SECTOR_SIZE - 1),
            partition_start=start,
            name=os.path.basename(node),
            nomerges=attr("nomerges", 0),
            bio_based=not (os.path.exists(os.path.join(queue, "scheduler")) or os.path.isdir(os.path.join(node, "mq"))),
            driver=_driver(node),
        )


def _driver(node: str) -> str:
    """The block driver's registered name (/proc/devices) for the disk at sysfs ``node``."""
    rdev = dev_of(node)
    lines = read_lines("/proc/devices") or []
    if rdev is None or "Block devices:" not in lines:
        return ""
    for line in lines[lines.index("Block devices:") + 1:]:
        number, _, name = line.strip().partition(" ")
        if number == str(os.major(rdev)):
            return name.strip()
    return ""


def _sysfs_int(path: str, default: int | None = None) -> int:
    """An attribute every kernel we model has (ValueError when unreadable), or one with a default."""
    value = read_int(path)
    if value is None:
        if default is None:
            raise ValueError(f"cannot read {path}")
        return default
    return value


def _nvme(name: str, mdts: int, *, write_zeroes: bool = False, lbs: int = 512) -> QueueLimits:
    """An NVMe namespace behind a PCIe controller with the given MDTS (bytes).

    drivers/nvme/host/core.c nvme_set_ctrl_limits(): 4 KiB virt boundary (the PRP page), so
    max_segment_size is unlimited; max_segments = max_hw_sectors / 8 + 1, at most
    NVME_MAX_SEGS (128); max_sectors capped at BLK_DEF_MAX_SECTORS_CAP by
    blk_validate_limits(); dma_alignment 3 (dword-aligned buffers).
    """
    hw = mdts // SECTOR_SIZE
    return QueueLimits(
        logical_block_size=lbs, physical_block_size=lbs,
        max_sectors=min(hw, BLK_DEF_MAX_SECTORS_CAP), max_hw_sectors=hw,
        max_segments=min(128, hw // 8 + 1), max_segment_size=UINT_MAX,
        seg_boundary_mask=BLK_SEG_BOUNDARY_MASK, virt_boundary_mask=4095,
        write_zeroes_max_bytes=hw * SECTOR_SIZE if write_zeroes else 0,
        dma_alignment=3, name=name,
    )


# Devices without write-zeroes unless the name says otherwise: they are the ones where the
# zero source matters, since the kernel then falls back to writing zero pages.
PRESETS: dict[str, QueueLimits] = {
    "kernel-default": QueueLimits(name="kernel-default"),
    # drivers/block/loop.c over a file on ramfs (no fallocate: no write-zeroes), as here.
    "loop": QueueLimits(
        max_sectors=2560, max_hw_sectors=2560, max_segments=128, max_segment_size=65536,
        write_zeroes_max_bytes=0, dma_alignment=511, name="loop",
    ),
    # drivers/block/virtio_blk.c with QEMU defaults: seg_max 126, size_max 0 (unlimited).
    "virtio-blk": QueueLimits(
        max_sectors=BLK_DEF_MAX_SECTORS_CAP, max_hw_sectors=UINT_MAX // SECTOR_SIZE, max_segments=126,
        max_segment_size=UINT_MAX, dma_alignment=511, name="virtio-blk",
    ),
    "nvme-mdts128k": _nvme("nvme-mdts128k", 128 << 10),
    "nvme-mdts512k": _nvme("nvme-mdts512k", 512 << 10),
    "nvme-mdts2m": _nvme("nvme-mdts2m", 2 << 20),
    "nvme-mdts2m-4kn": _nvme("nvme-mdts2m-4kn", 2 << 20, lbs=4096),
    "nvme-write-zeroes": _nvme("nvme-write-zeroes", 2 << 20, write_zeroes=True),
    # drivers/block/zram/zram_drv.c: bio-based, 4 KiB blocks, the default BLK_SAFE_MAX_SECTORS
    # rounded to blocks; it advertises write-zeroes (and discard) and accounts neither.
    "zram": QueueLimits(
        logical_block_size=4096, physical_block_size=4096, max_sectors=248, max_hw_sectors=248,
        write_zeroes_max_bytes=UINT_MAX * SECTOR_SIZE, dma_alignment=511, name="zram",
        bio_based=True, driver="zram",
    ),
    # drivers/ata/ahci.h: AHCI_MAX_SG 168, 64 KiB segments (SCSI default), LBA48 65535 sectors;
    # a 512e disk (4 KiB physical). sd disables WRITE SAME for ATA: no write-zeroes.
    "scsi-sata": QueueLimits(
        physical_block_size=4096, max_sectors=BLK_DEF_MAX_SECTORS_CAP, max_hw_sectors=65535,
        max_segments=168, max_segment_size=65536, dma_alignment=511, name="scsi-sata",
    ),
}


def preset(name: str) -> QueueLimits:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset '{name}' (expected one of {', '.join(PRESETS)})") from None
