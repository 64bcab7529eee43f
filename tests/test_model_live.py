"""The model against the live kernel: predicted requests == /sys/block/<loop>/stat, exactly.

Loop devices over ramfs files have no write-zeroes, so ``blkdiscard -z`` reaches
__blkdev_issue_zero_pages() (with ZERO_PAGE here: CONFIG_PERSISTENT_HUGE_ZERO_FOLIO is off),
and ``zero_range(options=ZeroOptions(direct=True))`` goes through __blkdev_direct_IO(). Each case sets
max_sectors_kb explicitly and reads the limits back from sysfs, as ``largezero model --device``
does; the attribute is restored afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import subprocess
from collections.abc import Callable, Iterator

import pytest

from largezero import ZeroOptions, ZeroResult, zero_range
from largezero.cli import main
from largezero.engine.plan import default_call_bytes
from largezero.mm import ZeroBuffer
from largezero.model.limits import QueueLimits
from largezero.model.run import Counts, model_calls, model_kernel
from largezero.model.sources import ZeroSource, make_source
from largezero.scratch import fill_pattern, is_root, loop_device, make_image, memfs_loop, memfs_mount, set_queue_attr
from largezero.targets.diskstat import DiskStat, read_stat

from .helpers import NOT_ROOT

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
pytestmark = [pytest.mark.root, pytest.mark.skipif(not is_root(), reason=NOT_ROOT)]


def _queue(dev: str, name: str) -> int:
    with open(f"/sys/block/{os.path.basename(os.path.realpath(dev))}/queue/{name}") as f:
        return int(f.read())


@contextlib.contextmanager
def _restoring_max_sectors(dev: str) -> Iterator[str]:
    # The loop queue (and a user's max_sectors_kb) outlives the attachment: put it back.
    before = _queue(dev, "max_sectors_kb")
    try:
        yield dev
    finally:
        set_queue_attr(dev, "max_sectors_kb", before)


@contextlib.contextmanager
def _ramfs_loop(size: int, sector_size: int | None = None) -> Iterator[str]:
    if sector_size is None:
        with memfs_loop(size) as dev, _restoring_max_sectors(dev):
            yield dev
        return
    with memfs_mount("ramfs") as mnt:
        image = make_image(os.path.join(mnt, "disk.img"), size)
        fill_pattern(image, 0, size)
        with loop_device(image, sector_size=sector_size) as dev, _restoring_max_sectors(dev):
            yield dev


@pytest.fixture(scope="module")
def loop1g() -> Iterator[str]:
    """One ramfs loop device of 1 GiB + 4 MiB, shared by the cases of this module."""
    with _ramfs_loop(1 * GiB + 4 * MiB) as dev:
        yield dev


def limits_of(dev: str, max_sectors_kb: int) -> QueueLimits:
    set_queue_attr(dev, "max_sectors_kb", max_sectors_kb)
    return QueueLimits.from_sysfs(dev)


def measure(dev: str, action: Callable[[], object]) -> DiskStat:
    before = read_stat(dev)
    action()
    return read_stat(dev) - before


def assert_exact(counts: Counts | None, got: DiskStat, length: int) -> None:
    assert counts is not None
    assert (got.write_ios, got.write_merges) == (counts.requests, counts.merges)
    assert got.write_sectors == length // 512


def source_of(buf: ZeroBuffer) -> ZeroSource | None:
    """The model's source for the zero buffer zero_range actually used."""
    page = os.sysconf("SC_PAGESIZE")
    if buf.size == page:
        return make_source("zero-page")
    if buf.backing == "huge-zero-folio":
        return make_source("huge-zero-folio")
    if buf.backing == "zero-page":  # the PMD-sized alias of ZERO_PAGE: one bvec per page
        return make_source("allocated", contiguity=page, buffer_size=buf.size)
    if buf.backing == "allocated" and buf.contiguous_bytes and buf.size % buf.contiguous_bytes == 0:
        return make_source("allocated", contiguity=buf.contiguous_bytes, buffer_size=buf.size)
    return None


def zero_direct(dev: str, offset: int, length: int, method: str, call_size: int | None,
                backing: str = "auto") -> ZeroResult:
    """zero_range(options=ZeroOptions(direct=True)) with the call layout model_calls() takes: iovecs of the whole
    zero buffer and, without a call size, the largest call. The engine's own choices (smaller
    iovecs on a copying device, capped calls, page-cache edges) are block/predict.py's to model."""
    buf = (make_source("zero-page") if method == "page" else make_source("huge-zero-folio")).buffer_size
    call = call_size or default_call_bytes(buf, 4096)
    return zero_range(dev, offset, length,
            options=ZeroOptions(method=method, direct=True, call_size=call, iov_len=buf, backing=backing))


# --- the kernel path: blkdiscard -z -----------------------------------------------------------


def blkdiscard_zero(dev: str, offset: int, length: int) -> None:
    subprocess.run(["blkdiscard", "-z", "-o", str(offset), "-l", str(length), dev], check=True,
                   capture_output=True)


KERNEL_CASES = [
    # (offset, length, max_sectors_kb)
    (0, 256 * MiB, 1280),
    (0, 1 * MiB + 4 * KiB, 300),  # the last short bio merges into the tail request
    (0, 17 * MiB + 12 * KiB, 33),
    (3584, 5 * MiB, 128),
    (0, 100 * MiB + 1536, 100),
    (4096, 3 * MiB + 512, 4),
]


@pytest.mark.parametrize(("offset", "length", "max_sectors_kb"), KERNEL_CASES)
def test_blkdiscard_zero_requests_are_predicted(loop1g: str, offset: int, length: int,
                                                max_sectors_kb: int) -> None:
    lim = limits_of(loop1g, max_sectors_kb)
    assert lim.write_zeroes_max_bytes == 0
    predicted = model_kernel(lim, length, make_source("zero-page"), offset)
    got = measure(loop1g, lambda: blkdiscard_zero(loop1g, offset, length))
    assert_exact(predicted.counts, got, length)
    if (offset, length, max_sectors_kb) == (0, 256 * MiB, 1280):
        assert got.write_ios == 512  # as measured when the issue was written


def test_blkdiscard_zero_after_failing_write_zeroes() -> None:
    """A loop over tmpfs advertises write-zeroes, fails it, and the kernel falls back."""
    with memfs_mount("tmpfs", size="80M") as mnt:
        image = make_image(os.path.join(mnt, "disk.img"), 64 * MiB)
        with loop_device(image) as dev, _restoring_max_sectors(dev):
            set_queue_attr(dev, "max_sectors_kb", 1280)
            lim = QueueLimits.from_sysfs(dev)
            if not lim.write_zeroes_max_bytes:
                pytest.skip("this kernel's loop driver does not offer write-zeroes over tmpfs")
            predicted = model_kernel(lim, 48 * MiB, make_source("zero-page"), write_zeroes_fails=True)
            got = measure(dev, lambda: blkdiscard_zero(dev, 0, 48 * MiB))
            assert predicted.counts is not None
            assert (got.write_ios, got.write_merges) == (predicted.counts.requests, predicted.counts.merges)
            # The loop driver switched write-zeroes off: the next zeroout goes straight to pages.
            lim = QueueLimits.from_sysfs(dev)
            assert lim.write_zeroes_max_bytes == 0
            predicted = model_kernel(lim, 8 * MiB, make_source("zero-page"))
            assert_exact(predicted.counts, measure(dev, lambda: blkdiscard_zero(dev, 0, 8 * MiB)), 8 * MiB)


def test_blkdiscard_zero_with_write_zeroes(file_loop: Callable[[int], str]) -> None:
    dev = file_loop(16 * MiB)
    lim = QueueLimits.from_sysfs(dev)
    if not lim.write_zeroes_max_bytes:
        pytest.skip("the working filesystem gives loop devices no write-zeroes")
    predicted = model_kernel(lim, 12 * MiB, make_source("zero-page"))
    assert predicted.mechanism == "REQ_OP_WRITE_ZEROES"
    got = measure(dev, lambda: blkdiscard_zero(dev, 0, 12 * MiB))
    assert predicted.counts is not None
    assert (got.write_ios, got.write_merges) == (predicted.counts.requests, 0)


# --- our O_DIRECT path: zero_range ------------------------------------------------------------


DIRECT_CASES = [
    # (method, offset, length, call size, max_sectors_kb)
    ("page", 0, 1 * GiB, 128 * MiB, 1280),  # 2048 requests, measured when the issue was written
    ("large", 0, 1 * GiB, 128 * MiB, 1280),  # 824
    ("large", 0, 700 * MiB, None, 256),  # 2801: 255 x 2 MiB + 4 KiB bios
    ("large", 0, 600 * MiB, None, 1280),
    ("large", 4096, 64 * MiB + 12 * KiB, 3 * MiB, 300),
    ("large", 4096, 5 * MiB + 8192, 1 * MiB + 512, 64),  # whole pages: no page-cache edges
    ("large", 0, 9 * MiB, 2 * MiB + 4 * KiB, 4),
    ("page", 0, 5 * MiB + 4 * KiB, None, 300),
    ("page", 8192, 3 * MiB + 4096, 1 * MiB + 512, 33),
    ("page", 0, 64 * MiB, None, 100),
]


@pytest.mark.parametrize(("method", "offset", "length", "call_size", "max_sectors_kb"), DIRECT_CASES)
def test_zero_range_direct_requests_are_predicted(loop1g: str, method: str, offset: int, length: int,
                                                  call_size: int | None, max_sectors_kb: int) -> None:
    lim = limits_of(loop1g, max_sectors_kb)
    result: list[object] = []
    got = measure(loop1g, lambda: result.append(zero_direct(loop1g, offset, length, method, call_size)))
    buf = result[0].zero_buffer  # type: ignore[attr-defined]
    source = source_of(buf)
    if source is None:
        pytest.skip(f"zero buffer backing {buf.backing} cannot be modelled (no PFNs?)")
    predicted = model_calls(lim, length, source, offset, call_size or default_call_bytes(buf.size, 4096))
    assert predicted.calls == result[0].calls  # type: ignore[attr-defined]
    assert_exact(predicted.counts, got, length)
    known = {("page", 1 * GiB, 128 * MiB): 2048, ("large", 1 * GiB, 128 * MiB): 824,
             ("large", 700 * MiB, None): 2801}
    if source.name in ("zero-page", "huge-zero-folio") and (method, length, call_size) in known:
        assert got.write_ios == known[(method, length, call_size)]


@pytest.mark.parametrize("backing", ["zero-page", "allocated"])
def test_zero_range_direct_other_backings(loop1g: str, backing: str) -> None:
    lim = limits_of(loop1g, 300)
    result: list[object] = []
    got = measure(loop1g, lambda: result.append(zero_direct(loop1g, 0, 96 * MiB, "large", 24 * MiB, backing)))
    buf = result[0].zero_buffer  # type: ignore[attr-defined]
    source = source_of(buf)
    if source is None:
        pytest.skip(f"zero buffer backing {buf.backing} cannot be modelled")
    assert_exact(model_calls(lim, 96 * MiB, source, 0, 24 * MiB).counts, got, 96 * MiB)


def test_cli_model_predicts_cli_zero(loop1g: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`largezero model --device D --path direct` predicts `largezero zero D --direct -m large`."""
    set_queue_attr(loop1g, "max_sectors_kb", 512)
    length = 300 * MiB + 8 * KiB + 1234  # unaligned: the plan's page-cache tail is modelled too
    assert main(["model", "--device", loop1g, "--path", "direct", "-l", str(length), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kernel"]["CONFIG_PERSISTENT_HUGE_ZERO_FOLIO"] in ("y", "n", "m", "unknown")
    by_source = {e["source"]: e for e in report["sources"]}
    for method, source in (("large", "huge-zero-folio"), ("page", "zero-page")):
        # The model runs the engine's own plan: the defaults of both commands agree.
        argv = ["zero", loop1g, "-l", str(length), "--direct", "-m", method, "--json"]
        got = measure(loop1g, functools.partial(main, argv))
        zero_report = json.loads(capsys.readouterr().out)
        backing = json.dumps(zero_report)
        if source == "huge-zero-folio" and "huge-zero-folio" not in backing:
            continue  # no huge zero folio here: the prediction is for a buffer we did not get
        assert (got.write_ios, got.write_merges) == (by_source[source]["requests"], by_source[source]["merges"])


# --- a seeded sweep over everything, and a 4096-byte-sector device ---------------------------


def _sweep(dev: str, seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    lbs = _queue(dev, "logical_block_size")
    mismatches = []
    for _ in range(n):
        kb = rng.choice([1280, 1024, 600, 512, 300, 256, 128, 64, 32, 8])
        kb -= kb % (lbs // 1024 or 1)
        lim = limits_of(dev, kb)
        align = lim.dio_align
        length = rng.choice([rng.randrange(1, 64), rng.randrange(1, 8 * MiB // align),
                             rng.randrange(1, 200 * MiB // align)]) * align
        offset = rng.choice([0, rng.randrange(0, 64) * align, rng.randrange(0, 4 * MiB // align) * align])
        kind = rng.choice(["kernel", "page", "large", "large"])
        call = rng.choice([None, rng.randrange(1, 64 * MiB // align) * align])
        if kind == "kernel":
            predicted = model_kernel(lim, length, make_source("zero-page"), offset).counts
            got = measure(dev, functools.partial(blkdiscard_zero, dev, offset, length))
        else:
            zeroed: list[ZeroResult] = []

            # Whole pages: the engine writes an unaligned head or tail through the page cache.
            offset -= offset % 4096
            length = max(4096, length - length % 4096)
            call = call - call % 4096 if call and call >= 4096 else None

            def zero(kind: str = kind, offset: int = offset, length: int = length, call: int | None = call,
                     zeroed: list[ZeroResult] = zeroed) -> None:
                zeroed.append(zero_direct(dev, offset, length, kind, call))

            got = measure(dev, zero)
            buf = zeroed[0].zero_buffer
            source = source_of(buf) if buf is not None else None
            if source is None:
                continue
            predicted = model_calls(lim, length, source, offset, call or default_call_bytes(buf.size, 4096)).counts
        assert predicted is not None
        if (got.write_ios, got.write_merges) != (predicted.requests, predicted.merges):
            mismatches.append(f"{kind} off={offset} len={length} call={call} kb={kb}: "
                              f"measured {got.write_ios}/{got.write_merges}, "
                              f"model {predicted.requests}/{predicted.merges}")
    return mismatches


def test_seeded_sweep_512(loop1g: str) -> None:
    assert _sweep(loop1g, 20251125, 40) == []


def test_seeded_sweep_4096_byte_sectors() -> None:
    with _ramfs_loop(256 * MiB, sector_size=4096) as dev:
        assert _queue(dev, "logical_block_size") == 4096
        assert _sweep(dev, 4096, 30) == []


@pytest.mark.long
def test_direct_2000m_single_call_is_1601_requests() -> None:
    """One 2000 MiB call: bios of 510 MiB + 4 KiB, 510 MiB, 510 MiB, 470 MiB."""
    with _ramfs_loop(2000 * MiB + 4 * MiB) as dev:
        lim = limits_of(dev, 1280)
        out: list[object] = []
        got = measure(dev, lambda: out.append(zero_direct(dev, 0, 2000 * MiB, "large", None)))
        source = source_of(out[0].zero_buffer)  # type: ignore[attr-defined]
        if source is None or source.name != "huge-zero-folio":
            pytest.skip("no huge zero folio")
        assert_exact(model_calls(lim, 2000 * MiB, source).counts, got, 2000 * MiB)
        assert got.write_ios == 1601
