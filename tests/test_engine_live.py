"""Plan = execution = model on a live device: ``predicted`` equals ``measured`` from /sys/block/*/stat.

A loop device over a ramfs file we create is idle but for our job, so the device-wide write
counters around the job are the job's own. Random offsets (unaligned included), lengths,
methods, call sizes and ``max_sectors_kb``; the setting is restored afterwards.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from .helpers import read_range, requires_root

CASES = 24


@pytest.fixture
def loop_queue(ramfs_loop: Callable[[int], str]) -> Iterator[tuple[str, str]]:
    dev = ramfs_loop(96 << 20)
    q = f"/sys/block/{os.path.basename(dev)}/queue/max_sectors_kb"
    with open(q) as f:
        saved = f.read().strip()
    try:
        yield dev, q
    finally:
        with open(q, "w") as f:
            f.write(saved)


def _zero_json(*argv: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-m", "largezero", "zero", *argv, "--json"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert isinstance(out, dict)
    return out


@requires_root
def test_predicted_equals_measured_over_random_jobs(loop_queue: tuple[str, str]) -> None:
    dev, q = loop_queue
    rng = random.Random(9)
    for case in range(CASES):
        kb = rng.choice([4, 64, 128, 256, 300, 1024, 1280])
        with open(q, "w") as f:
            f.write(str(kb))
        offset = rng.choice([0, rng.randrange(1 << 20), rng.randrange(1 << 20) // 512 * 512])
        length = rng.choice([rng.randrange(1, 8192), rng.randrange(1, 40 << 20), rng.randrange(1, 40) << 20])
        method = rng.choice(["auto", "large", "page"])
        argv = [dev, "-o", str(offset), "-l", str(length), "-m", method]
        if method != "auto":
            argv.append("--direct")
        if rng.random() < 0.4:
            argv += ["--call-size", str(rng.choice([1 << 20, 3 << 20, 5 << 20]))]
        os.sync()
        out = _zero_json(*argv)
        pred, meas = out["predicted"], out["measured"]
        assert isinstance(pred, dict) and isinstance(meas, dict)
        what = f"case {case}: {argv} at max_sectors_kb {kb}"
        assert (pred["requests"], pred["merges"], pred["sectors"]) == \
            (meas["requests"], meas["merges"], meas["sectors"]), what


@requires_root
def test_dry_run_predicts_and_writes_nothing(loop_queue: tuple[str, str]) -> None:
    dev, _ = loop_queue
    before = read_range(dev, 0, 1 << 20)
    done = subprocess.run([sys.executable, "-m", "largezero", "zero", dev, "-o", "1000", "-l", "20M", "--dry-run",
                           "--json"], capture_output=True, text=True, check=True)
    out = json.loads(done.stdout)
    assert out["dry_run"] is True
    steps = out["plan"]["steps"]
    assert [s["step"] for s in steps] == ["edge", "write", "edge"]
    assert out["predicted"]["requests"] > 0
    assert read_range(dev, 0, 1 << 20) == before
    # The real run of the same job does what the dry run said.
    os.sync()
    real = _zero_json(dev, "-o", "1000", "-l", "20M")
    assert real["predicted"]["requests"] == out["predicted"]["requests"] == real["measured"]["requests"]
