"""The library job is the command's job: zero_job().to_json() is what `largezero zero --json` prints,
its prediction equals the device's own counters, and its errors are what Python callers expect."""

from __future__ import annotations

import errno
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable

import pytest

import largezero
from largezero.targets.diskstat import read_stat
from largezero.verify import first_nonzero

from .helpers import read_range

MiB = 1 << 20


def _cli_json(*argv: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-m", "largezero", "zero", *argv, "--json"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert isinstance(out, dict)
    return out


def test_zero_job_on_a_loop_device_is_the_commands_job(ramfs_loop: Callable[[int], str]) -> None:
    dev = ramfs_loop(64 * MiB)
    rng = random.Random(17)
    opts = largezero.ZeroOptions(method="large", direct=True, force=True)
    for _ in range(3):
        off = rng.randrange(0, 32 * MiB)
        length = rng.randrange(1, 16 * MiB)
        outside = read_range(dev, off - 1, 1) if off else b"", read_range(dev, off + length, 1)
        before = read_stat(dev)
        res = largezero.zero_job(dev, off, length, options=opts, verify=True)
        delta = read_stat(dev) - before
        got = res.to_json()
        assert res.ok and got["verify"] == {**got["verify"], "zero": True}  # type: ignore[dict-item]
        pred, meas = got["predicted"], got["measured"]
        assert isinstance(pred, dict) and isinstance(meas, dict)
        counts = {k: pred[k] for k in ("requests", "merges", "sectors")}
        assert counts == {"requests": meas["requests"], "merges": meas["merges"], "sectors": meas["sectors"]}
        assert counts == {"requests": delta.write_ios, "merges": delta.write_merges, "sectors": delta.write_sectors}
        fd = os.open(dev, os.O_RDONLY)
        try:
            assert first_nonzero(fd, off, length) is None
        finally:
            os.close(fd)
        assert (read_range(dev, off - 1, 1) if off else b"", read_range(dev, off + length, 1)) == outside
        # Same keys as the command's --json for the same job.
        cli = _cli_json(dev, "-o", str(off), "-l", str(length), "-m", "large", "--direct", "--force", "--verify")
        assert set(cli) == set(got)
        assert cli["predicted"] == pred


def test_dry_run_job_plans_prices_and_writes_nothing(ramfs_loop: Callable[[int], str]) -> None:
    dev = ramfs_loop(16 * MiB)
    data = read_range(dev, 0, 16 * MiB)
    res = largezero.zero_job(dev, 1000, 5 * MiB, options=largezero.ZeroOptions(direct=True, force=True),
                             dry_run=True)
    got = res.to_json()
    assert got["dry_run"] is True and res.zeroed is None and res.plan is not None
    assert isinstance(got["predicted"], dict) and got["predicted"]["requests"]
    assert read_range(dev, 0, 16 * MiB) == data
    cli = _cli_json(dev, "-o", "1000", "-l", str(5 * MiB), "--direct", "--force", "--dry-run")
    assert cli == got


def test_errors_are_the_oserrors_python_callers_catch(tmp_path: os.PathLike[str]) -> None:
    missing = os.path.join(os.fspath(tmp_path), "missing.img")
    with pytest.raises(FileNotFoundError) as info:
        largezero.zero_job(missing, 0, 4096)
    err = info.value
    assert isinstance(err, largezero.TargetError) and err.errno == errno.ENOENT and err.filename == missing
    assert "create=True" in str(err) and "--create" not in str(err)
    with pytest.raises(IsADirectoryError):
        largezero.zero_range(os.fspath(tmp_path), 0, 1)
    path = os.path.join(os.fspath(tmp_path), "f.img")
    with open(path, "wb") as f:
        f.write(b"x" * 4096)
    with pytest.raises(largezero.UsageError, match="extend=True"):
        largezero.zero_job(path, 0, 8192)
    done = subprocess.run([sys.executable, "-m", "largezero", "zero", path, "-l", "8192"], capture_output=True,
                          text=True)
    assert done.returncode == 2 and "--extend" in done.stderr and "extend=True" not in done.stderr
    # The job ran nothing: the file is as it was.
    assert read_range(path, 0, 4096) == b"x" * 4096


def test_options_are_one_record_that_says_its_flags() -> None:
    opts = largezero.ZeroOptions(method="page", direct=True, sync=True, call_size=1 << 20, large_page=False)
    assert opts.argv() == ["-m", "page", "--direct", "--sync", "--no-large-page", "--call-size", str(1 << 20)]
    with pytest.raises(largezero.UsageError) as info:
        largezero.ZeroOptions(overwrite=True, unmap=True).check()
    assert "overwrite=True and unmap=True cannot be used together" in str(info.value)
    assert "--overwrite and --unmap cannot be used together" in info.value.cli_message()
