"""A dry run refuses what the real run refuses (the Ansible module's check mode relies on it),
and ``force_signatures`` lifts the signature refusal alone, never the in-use one."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

import largezero

from .helpers import mounted, read_range, requires_root

SIZE = 16 << 20


@requires_root
def test_dry_run_refuses_like_the_real_run(ramfs_loop: Callable[[int], str]) -> None:
    dev = ramfs_loop(SIZE)
    subprocess.run(["mkfs.ext4", "-q", "-F", dev], check=True, capture_output=True)
    before = read_range(dev, 0, SIZE)
    for dry_run in (True, False):
        with pytest.raises(largezero.TargetError, match="carries an ext4 signature"):
            largezero.zero_job(dev, options=largezero.ZeroOptions(overwrite=True), dry_run=dry_run)
    planned = largezero.zero_job(dev, options=largezero.ZeroOptions(overwrite=True, force_signatures=True),
                                 dry_run=True).to_json()
    assert planned["dry_run"] is True and planned["plan"]["length"] == SIZE
    assert read_range(dev, 0, SIZE) == before
    with mounted(dev) as where:
        before = read_range(dev, 0, SIZE)  # mounting wrote the superblock's mount count and times
        for dry_run in (True, False):
            with pytest.raises(largezero.TargetError, match=f"mounted on {where}"):
                largezero.zero_job(dev, options=largezero.ZeroOptions(overwrite=True, force_signatures=True),
                                   dry_run=dry_run)
        assert read_range(dev, 0, SIZE) == before


@requires_root
def test_force_signatures_on_the_command_line_zeroes_a_released_disk_but_not_a_mounted_one(
        ramfs_loop: Callable[[int], str]) -> None:
    dev = ramfs_loop(SIZE)
    subprocess.run(["mkfs.ext4", "-q", "-F", dev], check=True, capture_output=True)
    cmd = [sys.executable, "-m", "largezero", "zero", "--overwrite", "--force-signatures", dev]
    with mounted(dev):
        before = read_range(dev, 0, SIZE)
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 2 and "mounted on" in done.stderr and "--force" in done.stderr, done.stderr
        assert read_range(dev, 0, SIZE) == before
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert read_range(dev, 0, SIZE) == bytes(SIZE)
