"""/sys/block/<dev>/stat: the kernel's own request counters (Documentation/block/stat.rst)."""

from __future__ import annotations

import os

from .._record import record
from ..sysfiles import read_text


@record(frozen=True)
class DiskStat:
    read_ios: int
    read_merges: int
    read_sectors: int
    write_ios: int
    write_merges: int
    write_sectors: int
    in_flight: int

    def __sub__(self, other: DiskStat) -> DiskStat:
        return DiskStat(
            self.read_ios - other.read_ios,
            self.read_merges - other.read_merges,
            self.read_sectors - other.read_sectors,
            self.write_ios - other.write_ios,
            self.write_merges - other.write_merges,
            self.write_sectors - other.write_sectors,
            self.in_flight,
        )


def block_name(device: str) -> str:
    """'/dev/loop3' or 'loop3' -> 'loop3' (symlinks resolved)."""
    return os.path.basename(os.path.realpath(device)) if device.startswith("/") else device


def _read_once(path: str) -> DiskStat:
    text = read_text(path)
    if text is None:
        raise OSError(f"cannot read {path}")
    fields = [int(x) for x in text.split()]
    # Fields: read I/Os, read merges, read sectors, read ticks, write I/Os, write merges,
    # write sectors, write ticks, in_flight, ...
    return DiskStat(fields[0], fields[1], fields[2], fields[4], fields[5], fields[6], fields[8])


# How long read_stat waits for the device's in-flight requests to be accounted.
SETTLE_SECONDS = 0.25


def read_stat(device: str, settle: bool = True) -> DiskStat:
    """Counters of a whole block device or a partition, by name or /dev path.

    ``settle``: wait (up to SETTLE_SECONDS) until no request is in flight. blk_mq_end_request()
    completes the bios, which wakes the writer, before blk_account_io_done() counts the
    request: read at once after a job, the last request can be missing from write_ios.
    """
    name = block_name(device)
    path = f"/sys/class/block/{name}/stat"
    stat = _read_once(path)
    if settle and stat.in_flight:
        import time

        deadline = time.monotonic() + SETTLE_SECONDS
        while stat.in_flight and time.monotonic() < deadline:
            time.sleep(0.0002)
            stat = _read_once(path)
    return stat


MEASURED_NOTE = "device-wide write counters around the job"


def write_back(fd: int, offset: int, length: int) -> str:
    """Make what a buffered job left in the page cache reach the device before its counters are
    read: sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER) over the job's range (the range only,
    no device flush). Read at once, the counters show none of it (0/0/0): the flusher or the last
    close writes it later. Returns the note for ``measured``; OSError if the write-back failed."""
    from ..syscalls import ops

    ops.sync_file_range(fd, offset, length)
    return MEASURED_NOTE + "; the buffered writes were written back (sync_file_range) before reading them"


def disk_under(st_dev: int) -> str | None:
    """The kernel name of the block device a filesystem lives on (``vda``, ``loop3``, ``sda1``),
    from a file's st_dev; None for filesystems without one (tmpfs, ramfs, btrfs's anonymous devices)."""
    from ..sysfiles import block_name as name_of

    return name_of(st_dev)
