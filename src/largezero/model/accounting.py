"""What a device's ``/sys/block/<dev>/stat`` counts, by device class.

Request-based (blk-mq) devices
    blk_account_io_done() counts each request when it completes: bios after
    __bio_split_to_limits(), merged under the plug (:mod:`.plug`). Write-zeroes and discard
    requests are counted like writes.
Bio-based devices (the driver's own ``submit_bio``: zram, device-mapper, md, NVMe multipath)
    the driver accounts (bio_start_io_acct()/bio_end_io_acct()) what it chooses. Nothing is
    merged: there is no plug of requests. Each driver is its own rule, in :data:`BIO_DRIVERS`;
    for a driver not listed the model says it cannot know, instead of a number.
"""

from __future__ import annotations

from .._record import record
from .limits import QueueLimits


@record(frozen=True)
class BioAccounting:
    """How a bio-based driver accounts the bios it is given."""

    splits: bool  # bio_split_to_limits() before accounting (else one I/O per bio as submitted)
    counts_write_zeroes: bool  # REQ_OP_WRITE_ZEROES (and discard) appear in the stat
    note: str


# drivers/block/zram/zram_drv.c zram_submit_bio(): reads and writes are accounted per bio,
# whole (zram walks the bvecs itself and never splits); discard and write-zeroes go to
# zram_bio_discard() and are not accounted. Checked on this kernel: one 8 MiB O_DIRECT bio
# with max_sectors_kb 124 counts 1 write of 16384 sectors; `blkdiscard -z` counts nothing.
BIO_DRIVERS: dict[str, BioAccounting] = {
    "zram": BioAccounting(False, False, "zram (bio-based): one write per bio as submitted, no split, "
                                        "no merges; write-zeroes and discard are not counted"),
}


def bio_accounting(lim: QueueLimits) -> BioAccounting | None:
    """The rule of a bio-based device's driver; None for a request-based device."""
    if not lim.bio_based:
        return None
    return BIO_DRIVERS.get(lim.driver)


def unknown_accounting(lim: QueueLimits) -> str | None:
    """Why the stat of this device cannot be predicted, or None when it can."""
    if lim.bio_based and lim.driver not in BIO_DRIVERS:
        name = lim.driver or "unknown driver"
        return (f"{lim.name} is bio-based ({name}): its driver decides what its stat counts, "
                "and that rule is not known here")
    return None


def device_class(lim: QueueLimits) -> str:
    """'request-based' or 'bio-based (driver)' for the report."""
    return f"bio-based ({lim.driver or 'unknown driver'})" if lim.bio_based else "request-based"
