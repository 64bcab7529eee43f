"""The run-length model against the naive reference (tests/model_reference.py), on random limits.

The model takes whole runs of identical bvecs, bios and calls at once and skips repeating
states; the reference walks every bvec. Same rules, two implementations: any shortcut that
changes a count shows up here.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from largezero.engine.plan import plan_calls
from largezero.model.bio import Bio, BvecRun
from largezero.model.limits import UINT_MAX, QueueLimits
from largezero.model.run import model_calls, model_kernel, run_bios
from largezero.model.sources import ZeroSource, make_source

from . import model_reference as ref

KiB, MiB = 1 << 10, 1 << 20
PAGE = 4096


@st.composite
def limits(draw: st.DrawFn) -> QueueLimits:
    lbs = draw(st.sampled_from([512, 512, 4096]))
    pbs = draw(st.sampled_from([lbs, 4096, 16384]))
    virt = draw(st.sampled_from([0, 0, 4095]))
    seg = draw(st.sampled_from([4096, 65536, 65536 * 3, 1 << 20, UINT_MAX] if virt else
                               [4096, 65536, 65536 * 3, 1 << 20, UINT_MAX]))
    boundary = draw(st.sampled_from([0xFFFFFFFF, 0xFFFFFFFF, 0xFFFF, 0x1FFFFF]))
    max_sectors = draw(st.integers(min_value=lbs // 512, max_value=4096))
    max_sectors -= max_sectors % (lbs // 512)
    chunk = draw(st.sampled_from([0, 0, 0, 256, 2048, 3000]))
    if chunk and chunk % (pbs // 512):
        chunk = 0
    return QueueLimits(
        logical_block_size=lbs, physical_block_size=pbs, max_sectors=max_sectors, max_hw_sectors=4096,
        max_segments=draw(st.integers(min_value=1, max_value=300)), max_segment_size=seg,
        seg_boundary_mask=boundary, virt_boundary_mask=virt, chunk_sectors=chunk,
        dma_alignment=draw(st.sampled_from([3, 511])), nomerges=draw(st.sampled_from([0, 0, 1, 2])),
    )


def ref_limits(lim: QueueLimits) -> ref.Lim:
    return ref.Lim(lim.logical_block_size, lim.physical_block_size, lim.max_sectors, lim.max_segments,
                   lim.max_segment_size, lim.seg_boundary_mask, lim.virt_boundary_mask, lim.chunk_sectors, PAGE,
                   lim.nomerges)


SOURCES = [
    make_source("zero-page", PAGE),
    make_source("huge-zero-folio", PAGE),
    make_source("allocated", PAGE, contiguity=4096),
    make_source("allocated", PAGE, contiguity=64 * KiB),
    make_source("allocated", PAGE, contiguity=64 * KiB, buffer_size=256 * KiB),
]


def vector(d: dict[str, int]) -> tuple[int, ...]:
    return (d["bios"], d["bvecs"], d["segments"], d["requests"], d["merges"])


def model_vector(counts: object) -> tuple[int, ...]:
    assert counts is not None
    return counts.vector()  # type: ignore[attr-defined, no-any-return]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lim=limits(), source=st.sampled_from(SOURCES), blocks=st.integers(min_value=1, max_value=3 * MiB // 512),
       start=st.integers(min_value=0, max_value=64))
def test_kernel_path_matches_reference(lim: QueueLimits, source: ZeroSource, blocks: int, start: int) -> None:
    lbs = lim.logical_block_size
    length = blocks * 512 - blocks * 512 % lbs or lbs
    if source.name == "zero-page":
        length = min(length, 4 * MiB)
    offset = start * lbs
    model = model_kernel(lim, length, source, offset, write_zeroes=False)
    bios = ref.zero_pages(length, source.folio_size, PAGE)
    want = ref.submit_all(bios, offset // 512, ref_limits(lim))
    assert model_vector(model.counts) == vector(want)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lim=limits(), source=st.sampled_from(SOURCES), units=st.integers(min_value=1, max_value=12 * MiB // 512),
       start=st.integers(min_value=0, max_value=64), call=st.sampled_from([None, 512, 4096, 12 * KiB,
                                                                          1 * MiB + 512, 3 * MiB]))
def test_direct_path_matches_reference(lim: QueueLimits, source: ZeroSource, units: int, start: int,
                                       call: int | None) -> None:
    align = lim.dio_align
    length = max(units * 512 - units * 512 % align, align)
    if source.name == "zero-page" or source.contiguity == 4096:
        length = min(length, 3 * MiB)
    offset = start * align
    if call is not None and call < align:
        call = align
    model = model_calls(lim, length, source, offset, call)
    total = {"bios": 0, "bvecs": 0, "segments": 0, "requests": 0, "merges": 0}
    rl = ref_limits(lim)
    for run in plan_calls(offset, length, source.buffer_size, call, align):
        iovecs = [run.iov_len] * run.full_iovecs + ([run.last_iov_len] if run.last_iov_len else [])
        sector = run.offset // 512
        for _ in range(run.calls):
            bios = ref.dio(iovecs, source.contiguity, source.same_page, PAGE, lim.logical_block_size)
            got = ref.submit_all(bios, sector, rl)  # a fresh plug per call
            for key in total:
                total[key] += got[key]
            sector += run.call_bytes // 512
    assert model_vector(model.counts) == vector(total)


def test_reference_agrees_with_a_hand_count() -> None:
    """Guard the reference itself: 1 MiB of ZERO_PAGE on the loop limits is 2 requests of 128 x 4 KiB."""
    rl = ref.Lim(512, 512, 2560, 128, 65536, 0xFFFFFFFF, 0, 0, PAGE)
    bios = ref.zero_pages(1 * MiB, PAGE, PAGE)
    assert [len(b) for b in bios] == [256]
    assert [(n, s) for n, s, _ in ref.split(bios[0], 0, rl)] == [(512 * KiB, 128), (512 * KiB, 128)]


@st.composite
def synthetic_bios(draw: st.DrawFn, lbs: int) -> list[list[ref.Bvec]]:
    """Bios of arbitrary bvecs: odd offsets and lengths, repeats, contiguous neighbours.

    Half the time many small bios, which is where requests merge.
    """
    small: bool = draw(st.booleans())
    bios: list[list[ref.Bvec]] = []
    for _ in range(draw(st.integers(min_value=1, max_value=14 if small else 5))):
        bvecs: list[ref.Bvec] = []
        for _ in range(draw(st.integers(min_value=1, max_value=2 if small else 4))):
            count = draw(st.integers(min_value=1, max_value=3 if small else 70))
            off = draw(st.integers(min_value=0, max_value=16)) * 512
            length = draw(st.sampled_from([512, 1536, 4096, 8192, 65536] if small else
                                          [512, 1536, 4096, 8192, 65536, 2 * MiB]))
            if length > 512 and lbs == 512:
                length -= draw(st.integers(min_value=0, max_value=1)) * 512
            run = draw(st.integers(min_value=0, max_value=2))
            bvecs.extend(ref.Bvec(run, off, length) for _ in range(count))
        contiguous: bool = draw(st.booleans())
        if bios and contiguous:
            # Start where the previous bio ended physically: biovec_phys_mergeable().
            last = bios[-1][-1]
            bvecs[0] = ref.Bvec(last.run, last.off + last.len, bvecs[0].len)
        size = sum(b.len for b in bvecs)
        if size % lbs:
            bvecs.append(ref.Bvec(9, 0, lbs - size % lbs))
        bios.append(bvecs)
    return bios


def to_bio(bvecs: list[ref.Bvec]) -> Bio:
    runs: list[BvecRun] = []
    for b in bvecs:
        if runs and runs[-1].offset == b.off and runs[-1].length == b.len:
            runs[-1] = BvecRun(runs[-1].count + 1, b.off, b.len)
        else:
            runs.append(BvecRun(1, b.off, b.len))
    return Bio(tuple(runs), sum(b.len for b in bvecs), (bvecs[0].run, bvecs[0].off),
               (bvecs[-1].run, bvecs[-1].off + bvecs[-1].len))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), lim=limits(), start=st.integers(min_value=0, max_value=100))
def test_split_and_merge_of_any_bio_match_reference(data: st.DataObject, lim: QueueLimits, start: int) -> None:
    bios = data.draw(synthetic_bios(lim.logical_block_size))
    sector = start * (lim.logical_block_size // 512)
    groups = [(to_bio(b), 1) for b in bios]
    try:
        want = ref.submit_all(bios, sector, ref_limits(lim))
    except ValueError:
        # A piece smaller than a logical block: -EINVAL in the kernel, and in the model.
        with pytest.raises(ValueError):
            run_bios(groups, sector, lim)
        return
    got, _ = run_bios(groups, sector, lim)
    assert tuple(got) == vector(want)
