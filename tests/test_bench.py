"""The benchmark engine: structure, verification, ratios and limits; never timings.

The short form runs every contender on tiny ranges (a warm-up and one round) and checks that
each result reads back as zeros and that the ratios, limits and targets are computed. The
long form, behind ``-m long``, runs the real thing on every target.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from largezero.bench import (
    BenchConfig,
    all_contenders,
    build_report,
    render_markdown,
    render_text,
    run_bench,
    select,
)
from largezero.bench import cache as bench_cache
from largezero.bench.measure import Spawner, measured_call
from largezero.bench.runner import verify_range
from largezero.bench.targets import MARGIN, build
from largezero.cli import main
from largezero.scratch import is_root

from .helpers import requires_root

SMALL = 4 << 20
FAMILIES = {"largezero", "peer", "limit", "reference"}


def _run(targets: tuple[str, ...], tmp_path: Any, **kw: Any) -> dict[str, Any]:
    config = BenchConfig(targets=targets, size=kw.pop("size", SMALL), rounds=kw.pop("rounds", 1),
                         cache=kw.pop("cache", ("cold",)), workdir=str(tmp_path), rss_probe=kw.pop("rss_probe", None),
                         **kw)
    return build_report(run_bench(config))


def _rows(report: dict[str, Any], scenario: str) -> dict[str, dict[str, Any]]:
    sc = next(s for s in report["scenarios"] if s["name"] == scenario)
    return {r["key"]: r for r in sc["rows"]}


def _check_every_row(report: dict[str, Any], allowed_failures: frozenset[str] = frozenset()) -> None:
    for sc in report["scenarios"]:
        for r in sc["rows"]:
            if r["failed"]:
                assert r["key"] in allowed_failures, f"{sc['name']}: {r['key']} failed: {r['failed']}"
                continue
            assert r["rounds"] >= 1, r
            assert r["verified"], f"{sc['name']}: {r['label']} left non-zero bytes or changed a sentinel"
            assert r["seconds"] > 0 and r["gib_s"] > 0
            assert r["write_syscalls"] is not None and r["iovecs"] is not None
            assert r["user"] is not None and r["sys"] is not None
            for s in r["samples"]:
                assert s["verified"]
            if r["mode"] in ("buffered", "direct"):
                # Every write method is shown as a fraction of the ceiling of its mode.
                assert r["of_limit"] is not None and r["of_limit"] > 0, r["key"]
            if r["family"] in ("largezero", "reference") and r["mode"] in ("buffered", "direct"):
                assert r["best_peer"] is not None and r["vs_best_peer"] > 0, r["key"]


# --- the contenders -------------------------------------------------------------------------


def test_contenders_are_complete_and_unique() -> None:
    every = all_contenders()
    keys = [c.key for c in every]
    assert len(keys) == len(set(keys))
    assert {c.family for c in every} == FAMILIES
    for c in every:
        assert (c.call is None) != (c.argv is None), c.key
    for key in ("lz-auto", "lz-large-buffered", "lz-large-direct", "lz-page-buffered", "lz-page-direct",
                "lz-large-direct-hzf", "lz-large-direct-zp", "lz-large-direct-alloc", "dd-4k-buffered",
                "dd-4k-direct", "dd-2m-buffered", "dd-2m-direct", "fallocate-z", "blkdiscard-z", "pg-buffered",
                "pg-direct", "py-write-bytes", "py-write-4k", "limit-direct", "limit-buffered"):
        assert key in keys


def test_select_by_prefix_and_unknown() -> None:
    assert {c.key for c in select(["dd-"])} == {"dd-4k-buffered", "dd-4k-direct", "dd-2m-buffered", "dd-2m-direct"}
    assert [c.key for c in select(["lz-auto$"])] == ["lz-auto"]
    assert {c.key for c in select(["lz-auto"])} == {"lz-auto", "lz-auto-direct"}
    with pytest.raises(ValueError, match="unknown contender"):
        select(["nope"])
    with pytest.raises(ValueError, match="unknown contender"):
        select(["lz-$"])


# --- measurement ----------------------------------------------------------------------------


def test_measured_call_counts_write_syscalls(tmp_path: Any) -> None:
    path = os.path.join(tmp_path, "f")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        def three() -> None:
            for i in range(3):
                os.pwrite(fd, b"x", i)
            os.pwritev(fd, [b"a", b"b"], 3)

        _, c = measured_call(three)
    finally:
        os.close(fd)
    assert c.write_syscalls == 4
    assert c.seconds > 0


@pytest.mark.skipif(shutil.which("dd") is None, reason="no dd")
def test_spawner_counts_a_tools_writes_and_cpu(tmp_path: Any) -> None:
    path = os.path.join(tmp_path, "f")
    spawner = Spawner()
    try:
        c = spawner.run(["dd", "if=/dev/zero", f"of={path}", "bs=4K", "count=5", "status=none"])
        assert c.exit_code == 0
        assert c.write_syscalls == 5  # the reaped child's syscw lands in ours
        bad = spawner.run(["dd", "if=/dev/zero", "of=/nonexistent/dir/x", "count=1", "status=none"])
        assert bad.exit_code != 0 and bad.stderr
    finally:
        spawner.close()
    assert os.path.getsize(path) == 5 * 4096


# --- the cache state and verification -----------------------------------------------------


def test_prepare_sets_the_cache_state_and_pattern(tmp_path: Any) -> None:
    path = os.path.join(tmp_path, "f")
    size = 4 * MARGIN
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.ftruncate(fd, size)
    os.close(fd)
    bench_cache.prepare(path, size, "warm", block=False, memfs=False)
    warm = bench_cache.observe(path, MARGIN, 2 * MARGIN, "warm")
    assert warm.resident_fraction == 1.0
    bench_cache.prepare(path, size, "cold", block=False, memfs=False)
    cold = bench_cache.observe(path, MARGIN, 2 * MARGIN, "cold")
    assert cold.resident_fraction < 0.05
    with open(path, "rb") as f:
        data = f.read()
    assert data == bench_cache.pattern_at(0, size)
    assert 0 not in data


def test_verify_range_catches_a_stray_byte_and_a_touched_sentinel(tmp_path: Any) -> None:
    path = os.path.join(tmp_path, "f")
    size = 3 * MARGIN
    with open(path, "wb") as f:
        f.write(bench_cache.pattern_at(0, size))
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, bytes(MARGIN), MARGIN)
        assert verify_range(path, MARGIN, MARGIN)
        os.pwrite(fd, b"\1", MARGIN + 12345)
        assert not verify_range(path, MARGIN, MARGIN)
        os.pwrite(fd, b"\0", MARGIN + 12345)
        os.pwrite(fd, b"\0", MARGIN - 1)  # zeroed one byte too many, below the range
        assert not verify_range(path, MARGIN, MARGIN)
    finally:
        os.close(fd)


# --- the engine, short form -----------------------------------------------------------------


def test_every_contender_on_a_file(tmp_path: Any) -> None:
    report = _run(("file",), tmp_path, cache=("cold", "warm"), rss_probe=8 << 20)
    assert [s["name"] for s in report["scenarios"]] == ["file/cold", "file/warm"]
    _check_every_row(report)
    rows = _rows(report, "file/cold")
    assert "blkdiscard-z" not in rows  # block devices only
    assert rows["lz-auto"]["mode"] == "offload" and rows["lz-auto"]["iovecs"] == 0
    assert rows["lz-large-direct"]["mode"] == "direct"
    assert rows["lz-page-direct"]["iovecs"] == SMALL // 4096
    assert rows["dd-4k-buffered"]["write_syscalls"] == SMALL // 4096
    assert rows["pg-buffered"]["iovecs"] == SMALL // 8192
    assert rows["limit-direct"]["of_limit"] == pytest.approx(1.0)
    assert rows["lz-large-direct"]["rss_peak"] is not None
    sc = report["scenarios"][0]
    assert sc["cache_observed"]["resident_fraction"] == 0
    assert report["scenarios"][1]["cache_observed"]["resident_fraction"] == 1.0
    assert set(sc["limits_gib_s"]) == {"direct", "buffered"} and all(sc["limits_gib_s"].values())
    goals = {(g["scenario"], g["goal"]) for g in report["goals"]}
    for goal in ("O_DIRECT file: >= 2x dd bs=2M oflag=direct", "O_DIRECT file: >= 2.3x the 4 KiB zero-page path",
                 "O_DIRECT file: >= 90% of the raw O_DIRECT ceiling",
                 "buffered file: >= 0.95x the best peer in every cache state",
                 "auto with offload: within 2x of fallocate -z",
                 "API overhead (direct): zero_range <= 1.1x a bare pwritev loop"):
        assert ("file/cold", goal) in goals
    assert ("file/warm", "buffered file, warm cache: >= 1.3x dd bs=2M") in goals
    for g in report["goals"]:
        assert g["value"] is not None and g["met"] in (True, False)
    assert [p["label"] for p in report["rss_probe"]] == ["largezero large --direct", "largezero large",
                                                         "largezero auto"]
    assert all(p["verified"] and p["rss_growth"] is not None for p in report["rss_probe"])
    json.dumps(report)  # everything serialisable
    out: list[str] = []

    class W:
        def write(self, s: str) -> None:
            out.append(s)

        def flush(self) -> None:
            pass

    render_text(report, W())
    text = "".join(out)
    assert "file/cold" in text and "Targets (reported, not asserted)" in text
    md = render_markdown(report)
    assert "| largezero large --direct | direct |" in md and "#### Targets" in md


@requires_root
def test_tmpfs_and_loop_targets(tmp_path: Any) -> None:
    report = _run(("tmpfs", "loop", "loop-nowz"), tmp_path)
    assert [s["name"] for s in report["scenarios"]] == ["tmpfs/resident", "loop/cold", "loop-nowz/cold"]
    _check_every_row(report, allowed_failures=frozenset({"fallocate-z"}))
    tmpfs = _rows(report, "tmpfs/resident")
    assert tmpfs["fallocate-z"]["failed"]  # tmpfs has no FALLOC_FL_ZERO_RANGE
    assert tmpfs["lz-auto"]["mode"] == "buffered"  # so auto falls back to large writes
    loop = _rows(report, "loop/cold")
    assert loop["lz-auto"]["mode"] == "offload" and "BLKZEROOUT" in loop["lz-auto"]["detail"]
    nowz = _rows(report, "loop-nowz/cold")
    assert nowz["lz-auto"]["mode"] == "direct"
    for key in ("lz-auto", "blkdiscard-z", "dd-2m-buffered", "lz-large-buffered"):
        assert nowz[key]["device_writes"] and nowz[key]["device_write_bytes"] >= SMALL, key
    goals = {g["goal"]: g for g in report["goals"] if g["scenario"] == "loop-nowz/cold"}
    assert goals["no write-zeroes: <= 0.45x blkdiscard -z's device requests"]["value"] is not None
    assert goals["no write-zeroes: never slower than blkdiscard -z"]["value"] is not None


def test_unavailable_targets_are_skipped_with_a_reason(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from largezero.bench import targets

    monkeypatch.setattr(targets, "unavailable", lambda name: "not here" if name == "loop" else None)
    report = _run(("loop",), tmp_path)
    assert report["scenarios"] == [] and report["skipped"] == {"loop": "not here"}


@requires_root
def test_targets_clean_up_after_themselves(tmp_path: Any) -> None:
    with build("loop-nowz", SMALL, str(tmp_path)) as tgt:
        dev = tgt.device
        assert tgt.write_zeroes_max_bytes == 0
        assert os.path.exists(f"/sys/block/{dev}/loop/backing_file")
    assert not os.path.exists(f"/sys/block/{dev}/loop/backing_file")
    assert os.listdir(tmp_path) == []


# --- the command line ---------------------------------------------------------------------


def test_cli_refuses_fewer_than_five_rounds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--rounds", "3", "--sections", "main"]) == 2
    assert "at least 5" in capsys.readouterr().err


def test_cli_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    assert "lz-large-direct-hzf" in out and "blkdiscard-z" in out


def test_cli_json_and_plot(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    png = os.path.join(tmp_path, "bench.png")
    code = main(["bench", "-t", "file", "-s", "1M", "--cache", "warm", "-c", "lz-large-d", "-c", "dd-2m",
                 "-c", "limit-", "--probe-size", "0", "--dir", str(tmp_path), "--json", "--plot", png,
                 "--sections", "main"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    rows = _rows(report, "file/warm")
    assert set(rows) == {"lz-large-direct", "lz-large-direct-hzf", "lz-large-direct-zp", "lz-large-direct-alloc",
                         "dd-2m-buffered", "dd-2m-direct", "limit-direct", "limit-buffered"}
    assert all(r["rounds"] == 5 and r["verified"] for r in rows.values())
    assert report["config"]["rounds"] == 5
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_benchmarks_run_script_writes_its_files(tmp_path: Any) -> None:
    import importlib.util

    script = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "run.py")
    spec = importlib.util.spec_from_file_location("bench_run", script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = os.path.join(tmp_path, "out")
    code = module.main(["-t", "file", "-s", "1M", "--cache", "warm", "-c", "lz-large-direct", "-c", "limit-",
                        "--probe-size", "0", "--dir", str(tmp_path), "--out", out])
    assert code == 0
    assert sorted(os.listdir(out)) == ["bench.json", "bench.md", "bench.png", "bench.txt", "headline.png"]


# --- the long form ------------------------------------------------------------------------


@pytest.fixture
def big_enough_tmp(tmp_path: Any) -> Iterator[str]:
    st = os.statvfs(tmp_path)
    if st.f_bavail * st.f_frsize < (6 << 30):
        pytest.skip("needs 6 GiB free for the 4 GiB RSS probe")
    yield str(tmp_path)


@pytest.mark.long
def test_long_every_target_every_state(big_enough_tmp: str, request: pytest.FixtureRequest) -> None:
    if "long" not in (request.config.getoption("markexpr") or "") or "not long" in request.config.getoption("markexpr"):
        pytest.skip("minutes of I/O: run with -m long")
    targets = ("file", "tmpfs", "loop", "loop-nowz") if is_root() else ("file",)
    report = _run(targets, big_enough_tmp, size=256 << 20, rounds=5, cache=("cold", "warm", "warm-4k"),
                  rss_probe=4 << 30)
    _check_every_row(report, allowed_failures=frozenset({"fallocate-z"}))
    assert all(p["rss_growth"] is not None and p["verified"] for p in report["rss_probe"])


# --- whole process, start-up and the issue-13 sections ---------------------------------------


def test_crossovers_name_the_size_from_which_the_cli_stays_faster() -> None:
    from largezero.bench.process import crossovers

    def rows(ours: float, dd: float) -> list[dict[str, Any]]:
        return [{"label": "lz", "ours": True, "median_s": ours}, {"label": "dd", "ours": False, "median_s": dd}]

    assert crossovers({4096: rows(0.05, 0.001), 1 << 20: rows(0.06, 0.07), 1 << 30: rows(0.2, 0.8)}) == {"dd": 1 << 20}
    # Faster once, slower again later: not "from" that size.
    assert crossovers({4096: rows(0.05, 0.1), 1 << 20: rows(0.06, 0.01)}) == {"dd": None}


def test_whole_process_rows_are_checked_and_ratioed(tmp_path: Any) -> None:
    from largezero.bench.process import run_sweep

    report = run_sweep((4096, 1 << 20), rounds=1, workdir=str(tmp_path), scenarios=["file O_DIRECT"])
    sc = report[0]
    for rows in sc["sizes"].values():
        assert [r["failed"] for r in rows] == [None, None]
        ours, dd = rows
        assert ours["ours"] and ours["median_s"] > 0 and dd["x_ours"] == dd["median_s"] / ours["median_s"]
    assert set(sc["faster_from"]) == {"dd bs=2M oflag=direct"}


def test_startup_rows_cover_every_command_and_succeed() -> None:
    from largezero.bench.startup import measure_startup, render_startup

    rows = measure_startup(rounds=1)
    labels = {r.label for r in rows}
    assert {"largezero --help", "largezero info FILE", "largezero zero FILE -l 4K",
            "largezero verify FILE -l 4K", "python -c pass (this venv)"} <= labels
    assert all(r.exit_code == 0 for r in rows), [(r.label, r.exit_code) for r in rows]
    assert "x" in render_startup(rows)


def test_instruction_counts_are_repeatable_and_rank_commands() -> None:
    from largezero.bench.startup import count_instructions

    if not shutil.which("valgrind"):
        pytest.skip("valgrind is not installed (make test installs it as root with apt-get)")
    bare = [count_instructions([sys.executable, "-c", "pass"]) for _ in range(2)]
    more = count_instructions([sys.executable, "-c", "import argparse"])
    assert bare[0] and bare[1] and more
    assert abs(bare[0] - bare[1]) / bare[0] < 0.02  # the point of counting: no drift with load
    assert more > bare[0] * 1.2


@requires_root
def test_queue_setting_is_restored(ramfs_loop: Any) -> None:
    from largezero.bench.scenarios import queue_setting

    dev = ramfs_loop(4 << 20)
    path = f"/sys/block/{os.path.basename(dev)}/queue/max_sectors_kb"
    with open(path) as f:
        before = f.read()
    with queue_setting(dev, "max_sectors_kb", 256), open(path) as f:
        assert f.read().strip() == "256"
    with open(path) as f:
        assert f.read() == before


def test_plot_without_matplotlib_is_refused_before_anything_runs(tmp_path: Any) -> None:
    import subprocess
    import sys

    png = os.path.join(tmp_path, "b.png")
    code = ("import sys\n"
            "class NoPlot:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'matplotlib':\n"
            "            raise ImportError(name)\n"
            "sys.meta_path.insert(0, NoPlot())\n"
            "import importlib.util\n"
            "importlib.util.find_spec = lambda name, *a: None if name == 'matplotlib' else None\n"
            "from largezero.cli import main\n"
            f"sys.exit(main(['bench', '--plot', {png!r}, '--sections', 'startup']))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr == "largezero: --plot needs matplotlib (pip install 'largezero[plot]')\n"
    assert done.stdout == "" and not os.path.exists(png)


def test_unknown_section_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--sections", "main,nope"]) == 2
    assert "unknown section 'nope'" in capsys.readouterr().err


def test_stream_and_verify_sections_run_or_say_why_not() -> None:
    from largezero.bench.sections import run_sections

    report: dict[str, Any] = {}
    texts = run_sections(["stream", "verify"], True, None, report)
    assert len(texts) == 2
    assert "skipped" in texts[0] or "streams" in report
    assert "skipped" in texts[1] or "verify" in report


def test_quick_is_a_trimmed_run_and_the_full_run_is_unchanged() -> None:
    """--quick (under a minute): the headline contenders, three targets, one cache state, a
    1 GiB probe and three parts; without it every target, contender, state and part."""
    from largezero.bench.runner import QUICK_CONTENDERS, QUICK_TARGETS
    from largezero.bench.targets import TARGETS
    from largezero.cli import build_parser
    from largezero.cli.bench import QUICK_SECTIONS, SECTIONS, config_from_args

    def config(*words: str) -> Any:
        return config_from_args(build_parser(["bench"]).parse_args(["bench", *words]))

    quick, full = config("--quick"), config()
    assert quick.targets == QUICK_TARGETS and set(QUICK_TARGETS) < set(TARGETS)
    assert quick.cache == ("cold",) and quick.size == 16 << 20 and quick.rss_probe == 1 << 30
    keys = [c.key for c in select(quick.contenders)]
    assert keys == [k.rstrip("$") for k in QUICK_CONTENDERS] and len(keys) == 10
    assert {"lz-auto", "lz-large-direct", "lz-page-direct", "dd-2m-direct", "blkdiscard-z", "fallocate-z"} <= set(keys)
    assert full.targets == TARGETS and full.cache == ("cold", "warm") and full.contenders is None
    assert full.size == 1 << 30 and full.rss_probe == 4 << 30
    # What is asked for wins over the quick defaults.
    asked = config("--quick", "-t", "loop", "-c", "dd-", "--cache", "warm", "--probe-size", "0")
    assert asked.targets == ("loop",) and asked.contenders == ["dd-"] and asked.cache == ("warm",)
    assert asked.rss_probe is None
    assert set(QUICK_SECTIONS) < set(SECTIONS) and "main" in QUICK_SECTIONS
