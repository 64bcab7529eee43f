"""A real driver: the disk under the root filesystem (virtio-blk on these machines).

Read-only use of the disk: only its /sys/block/<disk>/stat is read. The only writes are to a
file this test creates (and removes) on the root filesystem. ``zero --json`` on that file
reports ``predicted`` (the file's O_DIRECT calls over its mappings, priced on the disk's
limits) and ``measured`` (the disk's write counters around the job): equal within 1%, other
processes writing to the same disk at the same time. Each attempt starts in a quiet moment of
the disk and a few attempts are allowed for other writers' bursts (skipped if the disk is
never quiet); the prediction itself is exact and checked against the disk's limits.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

from largezero.model.limits import QueueLimits
from largezero.scratch import is_root
from largezero.targets.diskstat import disk_under, read_stat

from .helpers import NOT_ROOT, run_json

GiB = 1 << 30
pytestmark = [pytest.mark.root, pytest.mark.skipif(not is_root(), reason=NOT_ROOT)]


def wait_quiet(disk: str, window: float = 0.3, patience: float = 5.0) -> bool:
    """Wait (at most ``patience`` seconds) for a ``window`` in which the disk writes nothing:
    other sessions share it, and their bursts last seconds."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        before = read_stat(disk, settle=False)
        time.sleep(window)
        if (read_stat(disk, settle=False) - before).write_ios == 0:
            return True
    return False


def test_zero_a_file_on_the_root_disk(tmp_path: os.PathLike[str], capsys: pytest.CaptureFixture[str]) -> None:
    where = os.fspath(tmp_path)
    disk = disk_under(os.stat(where).st_dev)
    if disk is None or shutil.disk_usage(where).free < 8 * GiB:
        pytest.skip("the test directory is not on a block device with 8 GiB free")
    lim = QueueLimits.from_sysfs(disk)
    if lim.bio_based or lim.partition_start:
        pytest.skip(f"{disk} is not a whole request-based disk")
    path = os.path.join(where, "row.img")
    try:
        run_json(capsys, ["zero", path, "--create", "-l", "2G", "-m", "large", "--direct", "--json"])
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # its blocks allocated and written: the runs below overwrite in place
        finally:
            os.close(fd)
        tries = []
        deadline = time.monotonic() + 30  # the suite's time: a disk busy that long is skipped
        for _ in range(5):
            if time.monotonic() > deadline or not wait_quiet(disk):
                pytest.skip(f"{disk} is busy with other writers: no quiet moment to measure in")
            before = read_stat(disk)
            got = run_json(capsys, ["zero", path, "-m", "large", "--direct", "--json"])
            delta = read_stat(disk) - before
            pred, meas = got["predicted"], got["measured"]
            assert isinstance(pred, dict) and isinstance(meas, dict), got
            assert meas["device"] == pred["device"] == disk
            # The job's own requests are all counted: other writers only add.
            assert delta.write_ios >= pred["requests"] and delta.write_sectors >= pred["sectors"]
            tries.append((meas["requests"], delta.write_ios, meas["sectors"]))
            if all(abs(n - pred["requests"]) <= pred["requests"] / 100 for n in tries[-1][:2]) and \
                    abs(meas["sectors"] - pred["sectors"]) <= pred["sectors"] / 100:  # type: ignore[operator]
                break
        else:
            pytest.fail(f"predicted {pred['requests']} requests, measured (job, test, sectors) {tries}")
        assert pred["sectors"] == 2 * GiB // 512
        # Whole 4 MiB requests on virtio-blk (max_sectors_kb 4096, 254 segments of 2 MiB folios).
        if lim.max_sectors == 8192 and lim.max_segments >= 2:
            assert pred["requests"] == 2 * GiB // (4 << 20)
    finally:
        os.unlink(path)
