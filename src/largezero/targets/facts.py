"""The facts of an opened target that the plan is a function of."""

from __future__ import annotations

import mmap
import os

from .._record import record
from ..sysfiles import read_text
from . import BLOCK, FILE, Target

PAGE_SIZE = mmap.PAGESIZE

# Drivers that move every byte with the CPU (memcpy), not by DMA from the pinned pages.
_COPYING_DRIVERS = ("loop", "zram", "ram")
# A filesystem block larger than this is not a page-cache granule we size edges by.
_MAX_GRANULE = 2 << 20


@record(frozen=True)
class TargetFacts:
    """What the plan needs to know about a target; built by ``targets``, or by hand for the model."""

    name: str
    kind: str  # FILE or BLOCK
    size: int
    logical_block_size: int = 512
    dio_align: int = 512  # the coarser of the DIO offset and memory alignments; 0: no O_DIRECT
    cache_granule: int = PAGE_SIZE  # smallest page-cache folio: max(page, filesystem block)
    write_zeroes: bool = False  # block devices: write_zeroes_max_bytes > 0
    copies_data: bool = False  # the driver copies each byte with the CPU (loop, zram, brd)
    buffer_block: int = PAGE_SIZE  # block devices: the page cache's buffer-head size (BLKBSZGET)
    copy_on_write: str | None = None  # why writes do not overwrite in place, or None
    unsupported: frozenset[str] = frozenset()  # offload calls this target refused before


def copies_data(tgt: Target) -> bool:
    """Whether the device's driver moves every byte with the CPU (loop not in direct-I/O mode, zram, brd)."""
    name = tgt.block_name or ""
    if not name.startswith(_COPYING_DRIVERS):
        return False
    # A loop device in direct-I/O mode hands the pages to the backing file without a copy.
    return read_text(f"/sys/block/{name}/loop/dio") != "1"


def cache_granule_of(tgt: Target) -> int:
    """The smallest page-cache folio of the target: a page, or the filesystem block when larger."""
    if tgt.kind == BLOCK:
        return max(PAGE_SIZE, tgt.logical_block_size)
    try:
        block = os.fstatvfs(tgt.fd).f_bsize
    except OSError:
        block = PAGE_SIZE
    return max(PAGE_SIZE, block if block <= _MAX_GRANULE and not block & (block - 1) else PAGE_SIZE)


def buffer_block_of(tgt: Target) -> int:
    """BLKBSZGET: the block size of a device's page cache; an edge written through it is written
    back as one bio per buffer of this size (512 on a device whose size is not a multiple of 4 KiB)."""
    from ..syscalls import BLKBSZGET, ioctl_int

    try:
        return ioctl_int(tgt.fd, BLKBSZGET, "Q") & 0xFFFFFFFF  # an int in a size_t-sized slot
    except OSError:
        return max(PAGE_SIZE, tgt.logical_block_size)


def init_blocksize(size: int, logical_block_size: int) -> int:
    """The buffer size a device of ``size`` bytes starts with (set_init_blocksize(), block/bdev.c):
    the largest power of two up to a page that divides the size, at least the logical block."""
    bsize = logical_block_size
    while bsize < PAGE_SIZE and not size % (bsize * 2):
        bsize *= 2
    return bsize


def facts_of(tgt: Target) -> TargetFacts:
    return TargetFacts(
        name=tgt.name,
        kind=BLOCK if tgt.kind == BLOCK else FILE,
        size=tgt.size,
        logical_block_size=tgt.logical_block_size,
        dio_align=tgt.dio_align if tgt.dio_offset_align else 0,
        cache_granule=cache_granule_of(tgt),
        write_zeroes=tgt.kind == BLOCK and (tgt.queue_attr("write_zeroes_max_bytes") or 0) > 0,
        copies_data=tgt.kind == BLOCK and copies_data(tgt),
        buffer_block=buffer_block_of(tgt) if tgt.kind == BLOCK else PAGE_SIZE,
        copy_on_write=tgt.copy_on_write,
        unsupported=tgt.unsupported(),
    )
