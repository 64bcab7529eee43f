"""largezero model: options, JSON, table, plot and errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from largezero.cli import main
from largezero.kconfig import persistent_huge_zero_folio

from .helpers import requires_root


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(["model", *argv, "--json"]) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def test_json_compares_every_source(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, "--preset", "loop", "--path", "direct", "-l", "1G", "--call-size", "128M")
    sources = report["sources"]
    assert isinstance(sources, list)
    assert [s["source"] for s in sources] == ["zero-page", "huge-zero-folio", "rfc-static-2m", "allocated"]
    for s in sources:
        assert {"source", "bios", "bvecs", "segments", "requests", "bytes_per_request", "memory_cost"} <= set(s)
    by = {s["source"]: s for s in sources}
    # The loop preset is a copying device: the engine's plan points each iovec at 128 KiB of the
    # huge zero folio (832 requests, as measured live), where whole 2 MiB iovecs would make 824.
    assert by["zero-page"]["requests"] == 2048 and by["huge-zero-folio"]["requests"] == 832
    assert by["huge-zero-folio"]["iov_len"] == 128 << 10
    assert by["zero-page"]["zero_method"] == "page" and by["huge-zero-folio"]["zero_method"] == "large"
    assert by["zero-page"]["memory_cost"] == 4096 and by["huge-zero-folio"]["memory_cost"] == 2 << 20
    assert report["path"] == "direct" and report["preset"] == "loop"
    limits = report["limits"]
    assert isinstance(limits, dict) and limits["max_sectors_kb"] == 1280
    kernel = report["kernel"]
    assert isinstance(kernel, dict)
    assert kernel["CONFIG_PERSISTENT_HUGE_ZERO_FOLIO"] == persistent_huge_zero_folio()


def test_kernel_path_says_what_the_running_kernel_uses(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, "--preset", "nvme-mdts128k", "-l", "64M")
    kernel = report["kernel"]
    assert isinstance(kernel, dict)
    expected = {"y": "huge-zero-folio", "n": "zero-page"}.get(persistent_huge_zero_folio(), "unknown")
    assert kernel["largest_zero_folio"] == expected
    assert expected in str(report["note"])


def test_one_source_with_contiguity_and_page_size(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, "--preset", "virtio-blk", "--zero-source", "allocated:64K", "--page-size", "16K")
    entries = report["sources"]
    assert isinstance(entries, list) and len(entries) == 1
    assert entries[0]["contiguity"] == 65536 and entries[0]["page_size"] == 16384
    report = run_json(capsys, "--zero-source", "huge-zero-folio", "--page-size", "64K")
    entries = report["sources"]
    assert isinstance(entries, list) and len(entries) == 1
    assert entries[0]["memory_cost"] == 512 << 20


def test_iomap_rows_per_block_size(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, "--path", "iomap", "--preset", "loop", "--block-size", "64K",
                      "--block-size", "2M", "--zero-source", "zero-page")
    rows = {(e["block_size"], e["kernel"], e["source"]): e for e in report["sources"]}  # type: ignore[attr-defined]
    assert rows[(65536, "6.18", "allocated")]["requests"] == 1
    assert "error" in rows[(2 << 20, "6.18", "allocated")]
    assert "BIO_MAX_VECS" in rows[(2 << 20, "6.19", "zero-page")]["error"]


def test_write_zeroes_options(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, "--preset", "nvme-write-zeroes", "-l", "8M", "--zero-source", "zero-page")
    assert report["sources"][0]["mechanism"] == "REQ_OP_WRITE_ZEROES"  # type: ignore[index]
    assert report["sources"][0]["requests"] == 4  # type: ignore[index]
    report = run_json(capsys, "--preset", "nvme-write-zeroes", "-l", "8M", "--zero-source", "zero-page",
                      "--no-write-zeroes")
    assert report["sources"][0]["bvecs"] == 2048  # type: ignore[index]


def test_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "--preset", "scsi-sata", "--path", "direct", "-l", "256M"]) == 0
    out = capsys.readouterr().out
    for word in ("zero-page", "huge-zero-folio", "rfc-static-2m", "allocated/2M", "requests",
                 "CONFIG_PERSISTENT_HUGE_ZERO_FOLIO"):
        assert word in out


def test_the_table_is_a_compact_listing_with_the_title_and_footer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "--preset", "loop", "-l", "16M"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert " path, 16 MiB on preset loop: " in lines[0] and lines[-1].startswith("kernel ")
    # largezero.table in its compact style: a rule under the header, no frame around the rows.
    assert any(set(line.strip()) <= {"─", " "} and "─" in line for line in lines)
    assert any(line.lstrip().startswith("zero-page") for line in lines) and "┃" not in "".join(lines)


@pytest.mark.parametrize("argv", [
    ["--zero-source", "hugepage"],
    ["--zero-source", "zero-page:64K"],
    ["--path", "kernel", "--call-size", "1M"],
    ["--preset", "loop", "--max-sectors-kb", "4096"],
    ["--page-size", "8K"],
    ["--device", "nosuchdevice0"],
    ["--preset", "loop", "--write-zeroes-fails"],
    ["--zero-source", "allocated:3K"],
    ["--path", "iomap", "--file", "/etc/hostname"],  # --file needs --dio-write
    ["--path", "iomap", "--dio-write", "0:4K", "--file", "/nonexistent/file"],
    ["--path", "iomap", "--dio-write", "0:4K", "--file", "/etc/hostname", "--extent", "written"],
])
def test_bad_input_is_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("largezero: ") and err.count("\n") == 1


def test_bad_preset_is_rejected_by_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "--preset", "floppy"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'floppy'" in err and "Traceback" not in err


def test_plot_writes_a_png_and_matplotlib_is_lazy(tmp_path: Path) -> None:
    png = tmp_path / "model.png"
    code = ("import sys\nfrom largezero.cli import main\n"
            "assert main(['model', '--preset', 'loop', '-l', '1M', '--json']) == 0\n"
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported without --plot'\n"
            f"assert main(['model', '--preset', 'nvme-mdts128k', '--plot', {str(png)!r}]) == 0\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@requires_root
def test_device_reads_sysfs_only(ramfs_loop: object, capsys: pytest.CaptureFixture[str]) -> None:
    dev = ramfs_loop(8 << 20)  # type: ignore[operator]
    report = run_json(capsys, "--device", dev, "--path", "direct", "-l", "4M")
    limits = report["limits"]
    assert isinstance(limits, dict)
    with open(f"/sys/block/{dev.rsplit('/', 1)[-1]}/queue/max_segments") as f:
        assert limits["max_segments"] == int(f.read())
    assert report["device"] == dev and report["preset"] is None


def test_direct_path_models_unaligned_ranges_like_the_engine(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, "--preset", "loop", "--path", "direct", "-o", "1000", "-l", "1000000")
    by = {s["source"]: s for s in report["sources"]}
    # head edge [1000, 4096) and tail edge through the page cache: one request each, around the middle
    assert by["huge-zero-folio"]["mechanism"] == "pwritev O_DIRECT + page-cache edges"
    assert by["huge-zero-folio"]["requests"] >= 3
