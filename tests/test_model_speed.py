"""Zeroing a petabyte must model in well under a second, from cold caches."""

from __future__ import annotations

import time

import pytest

from largezero.block import bio, model, split
from largezero.block.limits import PRESETS
from largezero.block.sources import SOURCE_NAMES, make_source

PiB = 1 << 50


def _cold() -> None:
    split.split_bio.cache_clear()
    bio._dio_bio.cache_clear()
    model._call_counts.cache_clear()


@pytest.mark.parametrize("path", ["kernel", "direct"])
@pytest.mark.parametrize("page", [4096, 16384, 65536])
def test_one_pebibyte_models_fast(path: str, page: int) -> None:
    sources = [make_source(n, page) for n in SOURCE_NAMES]
    sources.append(make_source("allocated", page, contiguity=page))  # one bvec per page: the worst case
    for name in ("kernel-default", "loop", "nvme-mdts128k", "nvme-mdts2m", "scsi-sata"):
        for source in sources:
            _cold()
            started = time.perf_counter()
            r = model.model(path, PRESETS[name], source, PiB, write_zeroes=False)
            elapsed = time.perf_counter() - started
            assert r.counts is not None and r.counts.requests > 0
            assert elapsed < 0.5, f"{path} {name} {source.name}/{source.contiguity}: {elapsed:.3f} s"


def test_one_pebibyte_counts_are_exact_where_they_can_be_worked_out() -> None:
    # ZERO_PAGE on the loop limits: 2^30 bios of 1 MiB, 2 requests of 128 x 4 KiB each.
    r = model.model_kernel(PRESETS["loop"], PiB, make_source("zero-page", 4096))
    assert r.counts is not None
    assert (r.counts.bios, r.counts.bvecs, r.counts.requests) == (2**30, 2**38, 2**31)
