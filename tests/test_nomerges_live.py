"""queue/nomerges 0, 1 and 2 against the live kernel, on the kernel and the direct paths.

A loop device over a ramfs file (no write-zeroes). For each case the test sets
max_sectors_kb and nomerges, asks ``largezero model --device LOOP --json`` for
``predicted_live`` (the limits, nomerges included, read back from sysfs), zeroes, and compares
write requests, merges and sectors from /sys/block/<loop>/stat exactly. nomerges 2 makes
blk_mq_attempt_bio_merge() skip the plug: no merges; 1 keeps the plug's back-merge.
"""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
from collections.abc import Iterator

import pytest

from largezero import ZeroOptions, zero_range
from largezero.cli import main
from largezero.model.sources import source_for_buffer
from largezero.scratch import is_root, memfs_loop, set_queue_attr
from largezero.targets.diskstat import DiskStat, read_stat

from .helpers import NOT_ROOT
from .test_iomap_live import restoring_queue

KiB, MiB = 1 << 10, 1 << 20
pytestmark = [pytest.mark.root, pytest.mark.skipif(not is_root(), reason=NOT_ROOT)]


@pytest.fixture(scope="module")
def loop() -> Iterator[str]:
    with memfs_loop(192 * MiB) as dev, restoring_queue(dev, "max_sectors_kb", "nomerges"):
        yield dev


def predicted(capsys: pytest.CaptureFixture[str], dev: str, path: str, offset: int, length: int,
              *more: str) -> dict[str, object]:
    capsys.readouterr()
    assert main(["model", "--device", dev, "--path", path, "-o", str(offset), "-l", str(length), *more,
                 "--json"]) == 0
    live: dict[str, object] = json.loads(capsys.readouterr().out)["predicted_live"]
    return live


@contextlib.contextmanager
def measure(dev: str) -> Iterator[list[DiskStat]]:
    """The write counters' change over the ``with`` block, in the yielded list."""
    out: list[DiskStat] = []
    before = read_stat(dev)
    yield out
    out.append(read_stat(dev) - before)


def exact(got: DiskStat, want: dict[str, object]) -> bool:
    return (got.write_ios, got.write_merges, got.write_sectors) == (want["requests"], want["merges"], want["sectors"])


def kernel_case(capsys: pytest.CaptureFixture[str], dev: str, offset: int, length: int, kb: int,
                nomerges: int) -> str | None:
    set_queue_attr(dev, "max_sectors_kb", kb)
    set_queue_attr(dev, "nomerges", nomerges)
    want = predicted(capsys, dev, "kernel", offset, length)
    with measure(dev) as got:
        subprocess.run(["blkdiscard", "-z", "-o", str(offset), "-l", str(length), dev], check=True,
                       capture_output=True)
    if not exact(got[0], want):
        return f"kernel {offset}:{length} kb={kb} nomerges={nomerges}: measured {got[0]}, predicted {want}"
    return None


def direct_case(capsys: pytest.CaptureFixture[str], dev: str, offset: int, length: int, kb: int,
                nomerges: int, call: int) -> str | None:
    set_queue_attr(dev, "max_sectors_kb", kb)
    set_queue_attr(dev, "nomerges", nomerges)
    want = predicted(capsys, dev, "direct", offset, length, "--call-size", str(call))
    with measure(dev) as got:
        # `model --path direct` runs the engine's own plan (iovec slices, edges): the defaults agree.
        result = zero_range(dev, offset, length, options=ZeroOptions(method="large", direct=True, call_size=call))
    buf = result.zero_buffer
    used = source_for_buffer(buf.size, buf.backing, buf.contiguous_bytes) if buf else None
    if used is None or used.name != want["source"] or used.contiguity != want["contiguity"]:
        pytest.skip(f"zero_range used a buffer the model did not predict ({buf.backing if buf else None})")
    if not exact(got[0], want):
        return (f"direct {offset}:{length} call={call} kb={kb} nomerges={nomerges}: measured {got[0]}, "
                f"predicted {want}")
    return None


@pytest.mark.parametrize(("nomerges", "expect"), [(0, (4, 1)), (1, (4, 1)), (2, (5, 0))])
def test_blkdiscard_zero_1m_4k_at_300(loop: str, nomerges: int, expect: tuple[int, int],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's miss: 300 + 300 + 300 + 124 KiB from the first bio, then the 4 KiB bio."""
    assert kernel_case(capsys, loop, 0, MiB + 4 * KiB, 300, nomerges) is None
    want = predicted(capsys, loop, "kernel", 0, MiB + 4 * KiB)
    assert (want["requests"], want["merges"]) == expect


def test_nomerges_is_read_from_sysfs(loop: str, capsys: pytest.CaptureFixture[str]) -> None:
    for value in (2, 1, 0):
        set_queue_attr(loop, "nomerges", value)
        capsys.readouterr()
        assert main(["model", "--device", loop, "-l", "1M", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["limits"]["nomerges"] == value


def _cases(seed: int, n: int, align: int = 512) -> Iterator[tuple[int, int, int, int, int]]:
    """(offset, length, max_sectors_kb, nomerges, call size), every nomerges value in turn.

    ``align`` 4096 for the direct path: `zero --direct` writes an unaligned head or tail up to
    the page boundary through the page cache (the engine's rule, modelled by the lead's
    block/predict.py); here only its O_DIRECT part is the subject.
    """
    rng = random.Random(seed)
    for i in range(n):
        kb = rng.choice([1280, 600, 512, 300, 256, 128, 64, 33, 8, 4])
        length = rng.choice([rng.randrange(1, 64), rng.randrange(1, 4 * MiB // align),
                             rng.randrange(1, 48 * MiB // align)]) * align
        offset = rng.choice([0, rng.randrange(0, 64) * align, rng.randrange(0, 4 * MiB // align) * align])
        call = rng.choice([rng.randrange(1, 8 * MiB // align) * align, 64 * MiB])
        yield offset, length, kb, i % 3, call


def test_kernel_path_nomerges_sweep(loop: str, capsys: pytest.CaptureFixture[str]) -> None:
    misses = [kernel_case(capsys, loop, off, n, kb, nm) for off, n, kb, nm, _ in _cases(20251211, 24)]
    assert [m for m in misses if m] == []


def test_direct_path_nomerges_sweep(loop: str, capsys: pytest.CaptureFixture[str]) -> None:
    misses = [direct_case(capsys, loop, off, n, kb, nm, call) for off, n, kb, nm, call in _cases(20251212, 18, 4096)]
    assert [m for m in misses if m] == []


@pytest.mark.long
def test_nomerges_sweep_long(loop: str, capsys: pytest.CaptureFixture[str]) -> None:
    misses = [kernel_case(capsys, loop, off, n, kb, nm) for off, n, kb, nm, _ in _cases(1, 150)]
    misses += [direct_case(capsys, loop, off, n, kb, nm, call) for off, n, kb, nm, call in _cases(2, 150, 4096)]
    assert [m for m in misses if m] == []
