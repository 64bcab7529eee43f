"""One plan: ``model --device D --path direct`` prices the engine's own plan for D.

Three kinds of loop device the test attaches (the device facts that decide the plan and its
price differ between them):

* over a ramfs file, 512-byte sectors, page-sized buffers (BLKBSZGET 4096);
* over a ramfs file of an odd size: BLKBSZGET is 512, so an unaligned edge written back
  through the page cache is one bio per 512-byte buffer;
* in direct-I/O mode (``losetup --direct-io=on``) over a file on ext4, itself on a loop device
  over ramfs: the driver hands pages to the backing file without a copy, so the plan uses
  whole-buffer iovecs, not the small ones for copying drivers.

For random unaligned ranges: the model's ``predicted_live`` = ``zero --dry-run --json``'s
``predicted`` = ``zero --json``'s ``predicted`` and ``measured`` = the write counters the test
reads itself from /sys/block/<dev>/stat around the run.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
from collections.abc import Iterator

import pytest

from largezero.scratch import fill_pattern, is_root, loop_device, make_image, memfs_mount, set_queue_attr
from largezero.targets.diskstat import read_stat

from .helpers import NOT_ROOT, run_json, triple

KiB, MiB = 1 << 10, 1 << 20
pytestmark = [pytest.mark.root, pytest.mark.skipif(not is_root(), reason=NOT_ROOT)]


@contextlib.contextmanager
def ext4_dio_loop(mnt: str, size: int) -> Iterator[str]:
    """A direct-I/O loop device over a filled file on ext4, the ext4 on a loop over ``mnt``'s ramfs."""
    image = make_image(os.path.join(mnt, "ext4.img"), size + 16 * MiB)
    with loop_device(image) as lower:
        subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", lower],
                       check=True, capture_output=True)
        fs = os.path.join(mnt, "fs")
        os.mkdir(fs)
        subprocess.run(["mount", lower, fs], check=True, capture_output=True)
        try:
            backing = make_image(os.path.join(fs, "disk.img"), size)
            fill_pattern(backing, 0, size)  # written extents: no unwritten conversion during the runs
            with loop_device(backing, direct_io=True) as dev:
                yield dev
        finally:
            subprocess.run(["umount", fs], check=False, capture_output=True)


@pytest.fixture(scope="module")
def devices() -> Iterator[dict[str, str]]:
    with memfs_mount("ramfs") as mnt, contextlib.ExitStack() as stack:
        out = {}
        for kind, size in (("ramfs", 24 * MiB), ("odd", 24 * MiB + 3 * 512)):
            image = make_image(os.path.join(mnt, f"{kind}.img"), size)
            fill_pattern(image, 0, size)
            out[kind] = stack.enter_context(loop_device(image))
        out["dio-ext4"] = stack.enter_context(ext4_dio_loop(mnt, 24 * MiB))
        yield out


def test_device_facts(devices: dict[str, str]) -> None:
    """The three devices differ in the facts the plan and its price come from."""
    from largezero.targets import open_target
    from largezero.targets.facts import facts_of

    facts = {}
    for kind, dev in devices.items():
        with open_target(dev, writable=False) as tgt:
            facts[kind] = facts_of(tgt)
    assert facts["ramfs"].buffer_block == 4096 and facts["ramfs"].copies_data
    assert facts["odd"].buffer_block == 512
    assert not facts["dio-ext4"].copies_data


def check_cases(capsys: pytest.CaptureFixture[str], dev: str, seed: str, n: int) -> list[str]:
    """``n`` random unaligned ranges; the ones where the five numbers are not all equal."""
    rng = random.Random(seed)
    size = int(subprocess.run(["blockdev", "--getsize64", dev], check=True, capture_output=True,
                              text=True).stdout)
    misses = []
    for i in range(n):
        length = rng.choice([rng.randrange(1, 16), rng.randrange(1, 2 * MiB // 512),
                             rng.randrange(1, 12 * MiB // 512)]) * 512
        offset = rng.randrange(0, (size - length) // 512) * 512
        method = "page" if i % 3 == 2 else "large"
        rng_args = ["-o", str(offset), "-l", str(length)]
        model = run_json(capsys, ["model", "--device", dev, "--path", "direct", *rng_args, "--json",
                                  *(["--zero-source", "zero-page"] if method == "page" else [])])
        live = model["predicted_live"] if method == "large" else model["sources"][0]  # type: ignore[index]
        zero = ["zero", dev, *rng_args, "-m", method, "--direct", "--json"]
        dry = run_json(capsys, [*zero, "--dry-run"])
        before = read_stat(dev)
        real = run_json(capsys, [*zero, "--force"])
        delta = read_stat(dev) - before
        stat = (delta.write_ios, delta.write_merges, delta.write_sectors)
        got = {"model": triple(live), "dry-run": triple(dry["predicted"]), "predicted": triple(real["predicted"]),
               "measured": triple(real["measured"]), "stat": stat}
        if len(set(got.values())) != 1:
            misses.append(f"{method} {offset}:{length}: {got}")
    return misses


@pytest.mark.parametrize("kind", ["ramfs", "odd", "dio-ext4"])
def test_model_dry_run_predicted_measured_and_stat_agree(devices: dict[str, str], kind: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert check_cases(capsys, devices[kind], f"one-plan-{kind}", 6) == []


@pytest.mark.long
@pytest.mark.parametrize("kind", ["ramfs", "odd", "dio-ext4"])
def test_one_plan_long(devices: dict[str, str], kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert check_cases(capsys, devices[kind], f"one-plan-long-{kind}", 50) == []


def test_nomerges_2_with_512_byte_buffers(devices: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """Each 512-byte buffer of an edge is its own request when the queue merges nothing."""
    from .test_iomap_live import restoring_queue

    dev = devices["odd"]
    with restoring_queue(dev, "nomerges"):
        set_queue_attr(dev, "nomerges", 2)
        assert check_cases(capsys, dev, "nomerges-2", 6) == []
        got = run_json(capsys, ["zero", dev, "-o", "512", "-l", "1M", "--direct", "-m", "large", "--dry-run",
                                "--json"])
        assert triple(got["predicted"])[1] == 0


def test_buffered_job_is_measured_after_write_back(devices: dict[str, str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A buffered job's bytes reach the device before ``measured`` is read: never 0/0/0."""
    dev = devices["ramfs"]
    before = read_stat(dev)
    got = run_json(capsys, ["zero", dev, "-o", "4096", "-l", "4M", "-m", "large", "--force", "--json"])
    delta = read_stat(dev) - before
    assert got["direct"] is False and got["synced"] is False
    measured = got["measured"]
    assert isinstance(measured, dict) and "written back" in measured["note"]
    assert measured["sectors"] == 4 * MiB // 512 == delta.write_sectors
    assert (measured["requests"], measured["merges"]) == (delta.write_ios, delta.write_merges)
