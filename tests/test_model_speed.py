"""Zeroing a petabyte models in a bounded number of steps: the model is run-length.

No timings here (they belong in benchmarks): the work is counted instead. Every split the
model computes is a miss of split_bio()'s cache, and every O_DIRECT bio it builds a miss of
_dio_bio()'s; a model that walked bios or calls one by one would miss millions of times for
a petabyte, and more for every further doubling of the length.
"""

from __future__ import annotations

import pytest

from largezero.model import bio, split
from largezero.model import run as model
from largezero.model.limits import PRESETS
from largezero.model.sources import SOURCE_NAMES, make_source

TiB, PiB = 1 << 40, 1 << 50
PRESET_NAMES = ("kernel-default", "loop", "nvme-mdts128k", "nvme-mdts2m", "scsi-sata")


def _cold() -> None:
    split.split_bio.cache_clear()
    bio._dio_bio.cache_clear()
    model._call_counts.cache_clear()


def _steps(path: str, preset: str, source_name: str, page: int, length: int, contiguity: int | None = None
           ) -> tuple[int, model.Counts]:
    _cold()
    source = make_source(source_name, page, contiguity)
    r = model.model(path, PRESETS[preset], source, length, write_zeroes=False)
    assert r.counts is not None and r.counts.requests > 0
    steps = split.split_bio.cache_info().misses + bio._dio_bio.cache_info().misses
    return steps, r.counts


@pytest.mark.parametrize("path", ["kernel", "direct"])
@pytest.mark.parametrize("page", [4096, 16384, 65536])
def test_one_pebibyte_takes_bounded_steps(path: str, page: int) -> None:
    sources = [(n, None) for n in SOURCE_NAMES] + [("allocated", page)]  # one bvec per page: the worst case
    for preset in PRESET_NAMES:
        for name, contiguity in sources:
            steps_tib, counts_tib = _steps(path, preset, name, page, TiB, contiguity)
            steps_pib, counts_pib = _steps(path, preset, name, page, PiB, contiguity)
            where = f"{path} {preset} {name}/{contiguity} {page}"
            # A thousand times the length: the same few distinct bios and splits, not more.
            assert steps_pib <= 4096, where
            assert steps_pib <= steps_tib + 16, where
            assert counts_pib.requests >= 1000 * counts_tib.requests, where  # yet it is all counted


def test_one_pebibyte_counts_are_exact_where_they_can_be_worked_out() -> None:
    # ZERO_PAGE on the loop limits: 2^30 bios of 1 MiB, 2 requests of 128 x 4 KiB each.
    r = model.model_kernel(PRESETS["loop"], PiB, make_source("zero-page", 4096))
    assert r.counts is not None
    assert (r.counts.bios, r.counts.bvecs, r.counts.requests) == (2**30, 2**38, 2**31)
    assert r.extra["sectors"] == PiB // 512


def test_iomap_write_model_is_closed_form() -> None:
    """One O_DIRECT write of 64 MiB or of the most one call moves: the same few bios built."""
    from largezero.engine.plan import MAX_RW_COUNT
    from largezero.model.iomap import DioWrite
    from largezero.model.write import model_write

    lim = PRESETS["nvme-mdts2m"]
    misses = []
    for length in (64 << 20, MAX_RW_COUNT):
        _cold()
        r = model_write(lim, DioWrite(4096, length, 0, "hole", 65536), make_source("huge-zero-folio"), "6.19")
        assert r.counts is not None and r.counts.bios >= length // (1 << 20)
        misses.append(bio._dio_bio.cache_info().misses + split.split_bio.cache_info().misses)
    assert misses[1] <= misses[0] + 16 and misses[1] < 200


def test_iomap_write_longer_than_one_call_is_the_calls_the_kernel_makes() -> None:
    """rw_verify_area() cuts a call to MAX_RW_COUNT; the rest is the caller's next calls. Over
    written blocks every call is an overwrite of its own, so the sum of the single calls is the
    answer; into a hole each call but the first starts in the block the previous one padded."""
    import subprocess
    import sys
    import time

    from largezero.engine.plan import MAX_RW_COUNT
    from largezero.model.iomap import DioWrite
    from largezero.model.write import model_write

    lim, bs, zero = PRESETS["nvme-mdts2m"], 65536, make_source("huge-zero-folio")
    length = 3 * MAX_RW_COUNT + 5 * bs
    whole = model_write(lim, DioWrite(0, length, length, "written", bs), zero, "6.18")
    assert whole.counts is not None and whole.extra["calls"] == 4
    parts = [model_write(lim, DioWrite(o, min(MAX_RW_COUNT, length - o), length, "written", bs), zero, "6.18")
             for o in range(0, length, MAX_RW_COUNT)]
    assert whole.counts.vector() == tuple(map(sum, zip(*(p.counts.vector() for p in parts if p.counts), strict=True)))
    assert whole.extra["sectors"] == sum(int(p.extra["sectors"]) for p in parts)  # type: ignore[call-overload]
    hole = model_write(lim, DioWrite(0, length, 0, "hole", bs), zero, "6.18")
    pads = sum(-min(o + MAX_RW_COUNT, length) % bs for o in range(0, length, MAX_RW_COUNT))  # each call's tail pad
    assert hole.counts is not None and hole.extra["sectors"] == (length + pads) // 512
    # 64 GiB, 33 calls: the whole process answers at once.
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "largezero", "model", "--preset", "nvme-mdts2m", "--path", "iomap",
                           "--dio-write", "0:64G", "--block-size", "64K", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - t0 < 5  # < 1 s unloaded; a shared machine gets slack
    assert '"calls": 33' in done.stdout
