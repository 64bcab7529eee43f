"""The kernel rules one at a time, on cases worked out by hand from the kernel source."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from largezero._record import replace
from largezero.model.bio import (
    BIO_MAX_VECS,
    Bio,
    BvecRun,
    IovLayout,
    dio_bios,
    iomap_zero_bio,
    write_zeroes_bios,
    zero_pages_bios,
)
from largezero.model.limits import PRESETS, UINT_MAX, QueueLimits, preset
from largezero.model.plug import Tail, submit
from largezero.model.run import compare, model_calls, model_iomap, model_kernel, repeat, run_bios
from largezero.model.sources import all_sources, make_source, pmd_size_for
from largezero.model.split import bvec_split_segs, get_max_io_size, split_bio

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
LOOP = PRESETS["loop"]
ZP = make_source("zero-page", 4096)
HZF = make_source("huge-zero-folio", 4096)


# --- sources --------------------------------------------------------------------------------


def test_huge_zero_folio_is_pmd_sized_per_page_size() -> None:
    assert [pmd_size_for(p) for p in (4096, 16384, 65536)] == [2 * MiB, 32 * MiB, 512 * MiB]
    assert [make_source("huge-zero-folio", p).memory_cost for p in (4096, 16384, 65536)] == \
        [2 * MiB, 32 * MiB, 512 * MiB]
    assert make_source("rfc-static-2m", 65536).memory_cost == 2 * MiB
    assert make_source("zero-page", 16384).memory_cost == 16384


def test_allocated_source_contiguity() -> None:
    a = make_source("allocated", 4096, contiguity=64 * KiB)
    assert (a.buffer_size, a.contiguity, a.memory_cost) == (2 * MiB, 64 * KiB, 2 * MiB)
    with pytest.raises(ValueError):
        make_source("allocated", 4096, contiguity=3 * 4096)
    with pytest.raises(ValueError):
        make_source("zero-page", 4096, contiguity=8192)
    with pytest.raises(ValueError):
        make_source("no-such-source")
    assert [s.name for s in all_sources(4096)] == ["zero-page", "huge-zero-folio", "rfc-static-2m", "allocated"]


# --- limits ---------------------------------------------------------------------------------


def test_presets_follow_the_drivers() -> None:
    default = preset("kernel-default")
    assert (default.max_sectors, default.max_segments, default.max_segment_size, default.seg_boundary_mask) == \
        (255, 128, 65536, 0xFFFFFFFF)
    nvme = preset("nvme-mdts128k")
    # nvme_set_ctrl_limits(): max_hw_sectors / 8 + 1 segments, unlimited segment size, 4 KiB PRPs.
    assert (nvme.max_sectors, nvme.max_segments, nvme.max_segment_size, nvme.virt_boundary_mask) == \
        (256, 33, UINT_MAX, 4095)
    assert preset("nvme-mdts2m").max_segments == 128
    assert preset("nvme-write-zeroes").write_zeroes_max_bytes == 2 * MiB
    with pytest.raises(ValueError):
        preset("floppy")


def test_limits_validate_and_round_trip() -> None:
    d = LOOP.to_dict()
    assert d["max_sectors_kb"] == 1280 and d["max_segments"] == 128
    assert QueueLimits.from_dict(d) == LOOP
    assert LOOP.with_max_sectors_kb(256).max_sectors == 512
    with pytest.raises(ValueError):
        LOOP.with_max_sectors_kb(2048)
    for bad in (dict(logical_block_size=1000), dict(physical_block_size=768), dict(virt_boundary_mask=4096),
                dict(max_segments=0), dict(logical_block_size=4096, max_sectors=4)):
        with pytest.raises(ValueError):
            replace(LOOP, **bad)  # type: ignore[arg-type]


def _fake_sysfs(root: Path) -> None:
    disk = root / "devices" / "virtual" / "block" / "vdz"
    (disk / "vdz1").mkdir(parents=True)
    (disk / "vdz1" / "partition").write_text("1\n")
    (disk / "vdz1" / "start").write_text("2048\n")
    queue = disk / "queue"
    queue.mkdir()
    for name, value in dict(logical_block_size=512, physical_block_size=4096, max_sectors_kb=1280,
                            max_hw_sectors_kb=2560, max_segments=254, max_segment_size=4294967295,
                            virt_boundary_mask=0, write_zeroes_max_bytes=0, chunk_sectors=0,
                            dma_alignment=511).items():
        (queue / name).write_text(f"{value}\n")
    cls = root / "class" / "block"
    cls.mkdir(parents=True)
    os.symlink(disk, cls / "vdz")
    os.symlink(disk / "vdz1", cls / "vdz1")


def test_from_sysfs_reads_the_queue_and_a_partitions_parent(tmp_path: Path) -> None:
    _fake_sysfs(tmp_path)
    disk = QueueLimits.from_sysfs("vdz", sysfs=str(tmp_path))
    assert (disk.physical_block_size, disk.max_sectors, disk.max_hw_sectors, disk.max_segments) == \
        (4096, 2560, 5120, 254)
    assert disk.partition_start == 0 and disk.name == "vdz"
    part = QueueLimits.from_sysfs("vdz1", sysfs=str(tmp_path))
    assert part.partition_start == 2048 and part.max_segments == 254 and part.name == "vdz"
    with pytest.raises(ValueError):
        QueueLimits.from_sysfs("nosuch", sysfs=str(tmp_path))


# --- bios -----------------------------------------------------------------------------------


def test_zero_pages_bios_count_nr_vecs_in_pages() -> None:
    # ZERO_PAGE: 256 bvecs of 4 KiB per bio; the same page never merges.
    [(bio, n)] = zero_pages_bios(256 * MiB, 4096, 4096)
    assert (n, bio.bvecs, bio.size) == (256, 256, 1 * MiB)
    # A 2 MiB folio: still 256 vecs (counted in pages), 2 MiB each: 512 MiB bios.
    [(bio, n)] = zero_pages_bios(1 * GiB, 2 * MiB, 4096)
    assert (n, bio.bvecs, bio.size) == (2, 256, 512 * MiB)
    # The tail: nr_vecs = pages left, one short bvec.
    groups = zero_pages_bios(512 * MiB + 12 * KiB, 2 * MiB, 4096)
    assert [(b.size, b.bvecs, n) for b, n in groups] == [(512 * MiB, 256, 1), (12 * KiB, 1, 1)]


def test_zero_pages_bios_stop_at_uint_max() -> None:
    # 64 KiB pages: the folio is 512 MiB, and bio_add_folio() stops before bi_size passes UINT_MAX:
    # 7 x 512 MiB = 3.5 GiB per bio.
    groups = zero_pages_bios(8 * GiB, 512 * MiB, 65536)
    assert [(b.size, b.bvecs, n) for b, n in groups] == [(3584 * MiB, 7, 2), (1 * GiB, 2, 1)]
    # 16 KiB pages, 32 MiB folio: 127 bvecs fit under 4 GiB.
    [(bio, _)] = zero_pages_bios(8 * GiB, 32 * MiB, 16384)[:1]
    assert bio.bvecs == 127 and bio.size == 127 * 32 * MiB


def test_write_zeroes_bios() -> None:
    lim = PRESETS["nvme-write-zeroes"]
    groups = write_zeroes_bios(5 * MiB, lim)
    assert [(b.size, n, b.bvecs) for b, n in groups] == [(2 * MiB, 2, 0), (1 * MiB, 1, 0)]
    with pytest.raises(ValueError):
        write_zeroes_bios(1 * MiB, LOOP)


def test_dio_bio_of_2m_iovecs_is_255_folios_and_a_page() -> None:
    # bio_iov_iter_get_pages(): with k bvecs the next batch is 256 - k pages, so the 256th bvec
    # gets one page; the next bio starts 4 KiB into that iovec.
    groups = dio_bios(IovLayout(1023, 2 * MiB), HZF, 512)
    first, second = groups[0][0], groups[1][0]
    assert first.bvecs == BIO_MAX_VECS
    assert first.size == 255 * 2 * MiB + 4 * KiB
    assert first.runs[-1] == BvecRun(1, 0, 4 * KiB)
    assert second.runs[0] == BvecRun(1, 4 * KiB, 2 * MiB - 4 * KiB)
    assert second.first == (0, 4 * KiB)
    assert sum(b.size * n for b, n in groups) == 1023 * 2 * MiB


def test_dio_bio_of_zero_page_iovecs_is_256_pages() -> None:
    groups = dio_bios(IovLayout(1024, 4096), ZP, 512)
    assert [(b.size, b.bvecs, n) for b, n in groups] == [(1 * MiB, 256, 4)]
    # 257 pages left: the first bio still gets 256, the last one page.
    groups = dio_bios(IovLayout(257, 4096), ZP, 512)
    assert [(b.size, n) for b, n in groups] == [(1 * MiB, 1), (4 * KiB, 1)]


def test_dio_bio_of_allocated_runs() -> None:
    # 64 KiB runs: each run is a new bvec (runs are not physically adjacent).
    src = make_source("allocated", 4096, contiguity=64 * KiB)
    groups = dio_bios(IovLayout(4, 2 * MiB), src, 512)
    assert sum(b.bvecs * n for b, n in groups) == 4 * 32
    assert all(r.length <= 64 * KiB for b, _ in groups for r in b.runs)


def test_iomap_zero_bio_618_and_619() -> None:
    assert iomap_zero_bio(60 * KiB, 64 * KiB, 4096, "6.18").bvecs == 1
    with pytest.raises(ValueError, match="64 KiB"):
        iomap_zero_bio(64 * KiB + 512, 128 * KiB, 4096, "6.18")
    # 6.19, ZERO_PAGE: one bvec per page; nr_vecs = block / 4 KiB must stay within BIO_MAX_VECS.
    assert iomap_zero_bio(60 * KiB, 64 * KiB, 4096, "6.19").bvecs == 15
    assert iomap_zero_bio(1 * MiB - 512, 1 * MiB, 4096, "6.19").bvecs == 256
    with pytest.raises(ValueError, match="BIO_MAX_VECS"):
        iomap_zero_bio(2 * MiB - 512, 2 * MiB, 4096, "6.19")
    assert iomap_zero_bio(2 * MiB - 512, 2 * MiB, 2 * MiB, "6.19").bvecs == 1


# --- split ----------------------------------------------------------------------------------


def test_get_max_io_size_rounds_to_physical_blocks() -> None:
    lim = QueueLimits(physical_block_size=4096, max_sectors=255, max_hw_sectors=255)
    assert get_max_io_size(0, lim) == 248
    assert get_max_io_size(3, lim) == 253  # ends on a 4 KiB boundary
    chunked = replace(LOOP, chunk_sectors=1024)
    assert get_max_io_size(1000, chunked) == 24


def test_bvec_split_segs() -> None:
    # A 2 MiB bvec in 64 KiB segments, 1280 KiB allowed: 20 segments, then split.
    assert bvec_split_segs(0, 2 * MiB, 128, 1280 * KiB, LOOP) == (20, 1280 * KiB, True)
    # Out of segments first.
    assert bvec_split_segs(0, 2 * MiB, 5, 4 * MiB, LOOP) == (5, 320 * KiB, True)
    # NVMe: unlimited segment size, the whole bvec is one segment.
    assert bvec_split_segs(0, 2 * MiB, 33, 4 * MiB, PRESETS["nvme-mdts2m"]) == (1, 2 * MiB, False)
    # A 64 KiB boundary mask cuts a segment that crosses it.
    lim = replace(LOOP, seg_boundary_mask=0xFFFF)
    assert bvec_split_segs(60 * KiB, 8 * KiB, 128, 1 * MiB, lim) == (2, 8 * KiB, False)


def test_split_zero_page_bio_on_loop_and_default_limits() -> None:
    [(bio, _)] = zero_pages_bios(1 * MiB, 4096, 4096)
    s = split_bio(bio, 0, LOOP)
    # 128 segments of 4 KiB = 512 KiB per request, whatever max_sectors beyond that.
    assert (s.pieces, s.segments, s.last.size, s.last.segments) == (2, 256, 512 * KiB, 128)
    # BLK_SAFE_MAX_SECTORS: 255 sectors cut a bvec in two: 8 x 127.5 KiB + 4 KiB.
    s = split_bio(bio, 0, PRESETS["kernel-default"])
    assert (s.pieces, s.last.size) == (9, 4 * KiB)
    # A bvec cut in two is a segment on each side; the 8th cut (1020 KiB = 255 pages) falls
    # between bvecs, so 7 bvecs are cut.
    assert s.segments == 256 + 7


def test_split_huge_folio_bio() -> None:
    [(bio, _)] = zero_pages_bios(512 * MiB, 2 * MiB, 4096)
    s = split_bio(bio, 0, LOOP)
    assert (s.pieces, s.segments) == (410, 8192)  # 409 x 1280 KiB + 512 KiB
    nvme = PRESETS["nvme-mdts2m"]
    s = split_bio(bio, 0, nvme)
    # One segment per piece and bvec it touches: 410 pieces, plus the 255 bvec boundaries
    # inside the bio, less the 51 that are also piece boundaries (every 10 MiB).
    assert (s.pieces, s.segments) == (410, 614)


def test_split_virt_boundary_gap() -> None:
    lim = PRESETS["nvme-mdts2m"]
    # Two bvecs; the first ends off the 4 KiB boundary: they cannot share a request.
    bio = Bio((BvecRun(1, 0, 1536), BvecRun(1, 0, 4096)), 1536 + 4096, (0, 0), (1, 4096))
    s = split_bio(bio, 0, lim)
    assert (s.pieces, s.segments) == (2, 2)


# --- plug -----------------------------------------------------------------------------------


def _tail(size: int, segs: int, mergeable: bool = True) -> Tail:
    return Tail(mergeable, size, segs, 0, (0, 4096), 0)


def test_plug_back_merge_rules() -> None:
    lim = LOOP.with_max_sectors_kb(300)
    [(small, _)] = zero_pages_bios(4 * KiB, 4096, 4096)
    s = split_bio(small, 0, lim)
    assert submit(_tail(124 * KiB, 31), small, s, 0, lim)[1:] == (0, 1)  # merged
    assert submit(_tail(124 * KiB, 31, mergeable=False), small, s, 0, lim)[1:] == (1, 0)  # split front
    assert submit(_tail(124 * KiB, 128), small, s, 0, lim)[1:] == (1, 0)  # no segment left
    assert submit(_tail(298 * KiB, 1), small, s, 0, lim)[1:] == (1, 0)  # past max_sectors
    assert submit(None, small, s, 0, lim)[1:] == (1, 0)
    # A split bio's first piece carries REQ_NOMERGE: never merged into the tail.
    [(big, _)] = zero_pages_bios(1 * MiB, 4096, 4096)
    assert submit(_tail(4 * KiB, 1), big, split_bio(big, 0, lim), 0, lim)[1:] == (4, 0)


def test_write_zeroes_requests_never_merge() -> None:
    lim = replace(LOOP, write_zeroes_max_bytes=64 * KiB)
    r = model_kernel(lim, 1 * MiB, ZP)
    assert (r.counts.requests, r.counts.merges, r.counts.bvecs) == (16, 0, 0)  # type: ignore[union-attr]
    assert r.mechanism == "REQ_OP_WRITE_ZEROES"
    both = model_kernel(lim, 1 * MiB, ZP, write_zeroes_fails=True)
    assert both.counts.requests == 16 + 2  # type: ignore[union-attr]


# --- whole paths ----------------------------------------------------------------------------


def test_kernel_path_on_loop() -> None:
    # blkdiscard -z of 256 MiB on a ramfs loop: 256 bios of 1 MiB, 2 requests each.
    r = model_kernel(LOOP, 256 * MiB, ZP)
    assert (r.counts.bios, r.counts.requests) == (256, 512)  # type: ignore[union-attr]
    # The last short bio merges into the tail request when both fit (300 KiB requests).
    r = model_kernel(LOOP.with_max_sectors_kb(300), 1 * MiB + 4 * KiB, ZP)
    assert (r.counts.requests, r.counts.merges) == (4, 1)  # type: ignore[union-attr]


def test_direct_path_known_counts() -> None:
    # Measured on 6.18 (docs/kernel notes): 1 GiB in 128 MiB calls: 2048 vs 824 requests.
    assert model_calls(LOOP, 1 * GiB, ZP, call_size=128 * MiB).requests == 2048
    assert model_calls(LOOP, 1 * GiB, HZF, call_size=128 * MiB).requests == 824
    # Where "bios of 256 x 2 MiB" was off by one.
    assert model_calls(LOOP.with_max_sectors_kb(256), 700 * MiB, HZF).requests == 2801
    assert model_calls(LOOP, 2000 * MiB, HZF).requests == 1601


def test_direct_path_rejects_unaligned_ranges() -> None:
    with pytest.raises(ValueError):
        model_calls(LOOP, 1 * MiB + 100, ZP)
    with pytest.raises(ValueError):
        model_kernel(LOOP, 1 * MiB, ZP, offset=100)


def test_iomap_path() -> None:
    r = model_iomap(LOOP, ZP, 64 * KiB)
    assert (r.length, r.counts.bvecs, r.counts.requests) == (64 * KiB - 512, 16, 1)  # type: ignore[union-attr]
    r = model_iomap(LOOP, ZP, 2 * MiB)
    assert r.counts is None and r.error and "BIO_MAX_VECS" in r.error
    results = compare("iomap", LOOP, 0, [ZP, HZF])
    assert {(x.block_size, x.kernel) for x in results} >= {(4096, "6.18"), (2 * MiB, "6.19")}
    rejected_618 = [x.block_size for x in results if x.kernel == "6.18" and x.error]
    assert min(rejected_618) == 128 * KiB


def test_repeat_skips_cycles_exactly() -> None:
    def step(s: int) -> tuple[int, tuple[int, int, int, int, int]]:
        return (s + 1) % 3, (1, s, 0, 0, 0)

    n = 10**12 + 1
    state, totals = repeat(n, 0, step)
    assert state == n % 3 and totals[0] == n and totals[1] == (n // 3) * 3 + (n % 3 == 2)


def test_run_bios_counts_every_bio_once() -> None:
    [(bio, _)] = zero_pages_bios(1 * MiB, 4096, 4096)
    totals, sector = run_bios([(bio, 10**9)], 0, LOOP)
    assert totals[:4] == [10**9, 256 * 10**9, 256 * 10**9, 2 * 10**9] and sector == 2048 * 10**9
