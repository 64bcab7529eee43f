"""Say only what reached the medium, and certify an erasure (issue 19): verify counts as read only
stored data, --overwrite is flushed before it claims the medium, the erasure record and its
NIST wording, the certificate (read back with pdftotext), wipe (--dry-run's refusals: test_dry_run_refusals)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable

import pytest

from largezero.scratch import fill_pattern, loop_device, make_image
from largezero.targets.fsinfo import fs_magic, fs_name

from .helpers import requires_root

LZ = [sys.executable, "-m", "largezero"]
MiB = 1 << 20
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
needs_pdftotext = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs pdftotext (poppler-utils)")


def _lz(*argv: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*LZ, *argv], capture_output=True, text=True)
    assert done.returncode == code, (argv, done.stdout, done.stderr)
    return done


def _json(*argv: str, code: int = 0) -> dict[str, object]:
    out = json.loads(_lz(*argv, "--json", code=code).stdout)
    assert isinstance(out, dict)
    return out


def _pdf_text(path: str) -> str:
    return subprocess.run(["pdftotext", "-layout", path, "-"], capture_output=True, text=True, check=True).stdout


def _data_file(folder: str, size: int) -> str:
    path = make_image(os.path.join(folder, "data.img"), size, allocate=False)
    fill_pattern(path, 0, size)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        fs = fs_name(fs_magic(fd))
    finally:
        os.close(fd)
    if fs not in ("ext4", "xfs"):
        pytest.skip(f"the test folder is on {fs}: the default zero makes unwritten extents on ext4 and xfs")
    return path


def test_default_zero_of_a_file_with_data_is_not_read_back_from_the_medium(tmp_path: os.PathLike[str]) -> None:
    size = 32 * MiB
    path = _data_file(os.fspath(tmp_path), size)
    zeroed = _json("zero", path)
    assert zeroed["method"] == "offload" and zeroed["medium_overwritten"] is False
    got = _json("verify", path, "--direct")
    assert got["zero"] is True and got["direct"] is True
    # Unwritten extents read as zero without touching the medium: skipped, not read.
    assert got["bytes_read"] <= size // 20 and got["bytes_read"] + got["bytes_skipped"] == size, got
    text = _lz("verify", path, "--direct").stdout
    assert "not read: holes and unwritten extents, which read as zero without touching the medium" in text


@requires_root
def test_loop_device_over_a_file_default_then_overwrite(tmp_path: os.PathLike[str]) -> None:
    size = 32 * MiB
    image = _data_file(os.fspath(tmp_path), size)
    with loop_device(image) as dev:
        _json("zero", dev)
        got = _json("verify", dev, "--direct")
        assert got["zero"] and got["bytes_read"] <= size // 20, got
        assert got["data_map"] == f"SEEK_DATA on the backing file {image}"
        fill_pattern(dev, 0, size)  # the old data again, through the device's page cache (dirty)
        dirty = _json("verify", dev, "--direct", code=3)  # written back before the extents are read
        assert dirty["first_nonzero"] == 0
        out = _json("zero", dev, "--overwrite", "--verify", "--force")
        assert out["synced"] is True and out["medium_overwritten"] is True
        verify = out["verify"]
        assert isinstance(verify, dict)
        assert verify["bytes_read"] == size and verify["bytes_skipped"] == 0 and verify["direct"] is True
        line = _lz("zero", dev, "--overwrite", "--force").stdout
        assert "overwritten on the medium (synced" in line


@requires_root
@needs_pdftotext
def test_certificate_of_an_overwrite_says_clear_and_of_an_offload_never(tmp_path: os.PathLike[str]) -> None:
    folder = os.fspath(tmp_path)
    size = 24 * MiB
    image = make_image(os.path.join(folder, "disk.img"), size)
    fill_pattern(image, 0, size)
    cert = os.path.join(folder, "cert.pdf")
    with loop_device(image) as dev:
        out = _json("zero", dev, "--overwrite", "--verify", "--report", cert)
        e = out["erasure"]
        assert isinstance(e, dict)
        assert e["nist_sp800_88"] == "Clear" and ISO.match(e["started"]) and ISO.match(e["finished"])
        assert e["started"] <= e["finished"] and e["synced"] is True
        assert e["device"]["path"] == dev and e["device"]["size"] == size and e["device"]["transport"] == "loop"
        assert e["verification"]["bytes_read_from_medium"] == size
        assert "Clear at most, not Purge" in e["device_caveat"] and image in e["device_caveat"]
        text = _pdf_text(cert)
        for words in (dev, f"{size} bytes", "NIST SP 800-88", "Clear", "verified", "Serial number",
                      "Started (UTC)", e["started"], "Kernel"):
            assert words in text, (words, text)
        record = os.path.join(folder, "cert.json")
        with open(record, "rb") as f:
            data = f.read()
        assert hashlib.sha256(data).hexdigest() in text
        assert json.loads(data) == out
        # The default zero (offload) with a certificate: never called Clear, and says why.
        fill_pattern(image, 0, size)
        plain = os.path.join(folder, "plain.pdf")
        out = _json("zero", dev, "--force", "--verify", "--report", plain)
        e = out["erasure"]
        assert isinstance(e, dict)
        assert e["nist_sp800_88"] is None and e["nist_sp800_88_reason"].startswith("offload")
        text = _pdf_text(plain)
        assert "category reached: none" in text and "offload" in text
        assert "category reached: Clear" not in text


def test_a_file_is_never_called_clear(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(os.fspath(tmp_path), "f.img")
    make_image(path, 4 * MiB)
    fill_pattern(path, 0, 4 * MiB)
    out = _json("zero", path, "--overwrite", "--verify")
    e = out["erasure"]
    assert isinstance(e, dict)
    assert e["nist_sp800_88"] is None and "a file is not a medium" in e["nist_sp800_88_reason"]
    assert e["device_caveat"] is None and e["medium_overwritten"] is True


@requires_root
def test_wipe_warns_before_writing_and_prints_the_category(tmp_path: os.PathLike[str]) -> None:
    size = 8 * MiB
    image = make_image(os.path.join(os.fspath(tmp_path), "w.img"), size)
    fill_pattern(image, 0, size)
    with loop_device(image) as dev:
        done = _lz("wipe", dev)
        assert "virtual device" in done.stderr and "Purge" in done.stderr
        assert f"{dev}: NIST SP 800-88: Clear" in done.stdout
        with open(image, "rb") as f:
            assert f.read() == bytes(size)
    out = _json("wipe", image)
    e = out["erasure"]
    assert isinstance(e, dict) and e["nist_sp800_88"] is None and out["verify"]["zero"] is True  # type: ignore[index]


@needs_pdftotext
def test_verify_report_certifies_a_verification(tmp_path: os.PathLike[str]) -> None:
    folder = os.fspath(tmp_path)
    path = os.path.join(folder, "z.img")
    make_image(path, 4 * MiB)
    cert = os.path.join(folder, "v.pdf")
    _lz("verify", path, "--report", cert)
    text = _pdf_text(cert)
    assert "Certificate of verification" in text and "not an erasure" in text and path in text
    with open(os.path.join(folder, "v.json"), "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() in text


def test_report_refused_with_dry_run_and_where_it_cannot_be_written(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(os.fspath(tmp_path), "r.img")
    make_image(path, MiB)
    err = _lz("zero", path, "--dry-run", "--report", "x.pdf", code=2).stderr
    assert len(err.strip().splitlines()) == 1 and "--report" in err
    err = _lz("zero", path, "--report", "/nonexistent/dir/x.pdf", code=2).stderr
    assert len(err.strip().splitlines()) == 1 and "cannot write" in err
    with open(path, "rb") as f:
        assert f.read(1) == b"\0"  # refused before anything was done


def test_the_job_reads_back_in_a_phase_of_its_own(tmp_path: os.PathLike[str]) -> None:
    import largezero

    path = os.path.join(os.fspath(tmp_path), "p.img")
    make_image(path, 24 * MiB)
    fill_pattern(path, 0, 24 * MiB)
    zeroing: list[int] = []
    phases: list[tuple[str, int]] = []
    checked: list[int] = []

    def phase(label: str, total: int) -> Callable[[int], None]:
        phases.append((label, total))
        return checked.append

    res = largezero.zero_job(path, MiB, 20 * MiB, options=largezero.ZeroOptions(overwrite=True), verify=True,
                             progress=zeroing.append, phase=phase)
    assert res.ok and phases == [("verifying", 20 * MiB)]
    assert zeroing[-1] == 20 * MiB and checked[-1] == 20 * MiB and checked == sorted(checked)
