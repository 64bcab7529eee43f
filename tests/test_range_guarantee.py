"""The range guarantee with other writers, real processes and real signals.

* Another process writes markers into the bytes just outside both edges at random moments
  while ``largezero zero`` runs: afterwards those bytes are the other writer's last write.
* An O_APPEND logger appends records while the file's last bytes are zeroed with --direct:
  no record is lost and the size never shrinks.
* SIGKILL at random moments: the size never changes, and the last printed resume command
  finishes the job to the same bytes as an uninterrupted run.
* EFBIG part way: the reported prefix and "may also be zero" span match what is on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from largezero.scratch import fill_pattern

from .helpers import pattern_bytes, read_range

LZ = [sys.executable, "-m", "largezero"]
EDGE = 3  # marker bytes on each side of the range

# The other writer: for each "go SEED" line it writes markers just outside [lo, hi) at random
# moments (buffered pwrite, as a logger or database would), then prints the last marker.
WRITER = r"""
import os, random, sys, time
EDGE = int(sys.argv[2])
fd = os.open(sys.argv[1], os.O_RDWR)
for line in sys.stdin:
    _, seed, lo, hi = line.split()
    rng, lo, hi = random.Random(int(seed)), int(lo), int(hi)
    time.sleep(rng.uniform(0, 0.09))
    last = 0
    for _ in range(rng.randint(1, 8)):
        last = rng.randint(1, 255)
        os.pwrite(fd, bytes([last]) * EDGE, lo - EDGE)
        os.pwrite(fd, bytes([last]) * EDGE, hi)
        time.sleep(rng.uniform(0, 0.02))
    print(last, flush=True)
"""


def _races(target: str, size: int, runs: int, extra: list[str], seed: int) -> int:
    """Run ``runs`` zeroing jobs racing the other writer; returns how many raced (all must hold)."""
    rng = random.Random(seed)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, target, str(EDGE)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdin is not None and writer.stdout is not None
    fd = os.open(target, os.O_RDWR)
    try:
        for i in range(runs):
            lo = rng.randrange(EDGE, 1 << 16)
            hi = min(size - EDGE, lo + rng.randrange(1, 3 << 20))
            os.pwrite(fd, b"\xa5" * (hi - lo), lo)  # something to zero
            job = subprocess.Popen([*LZ, "zero", target, "-o", str(lo), "-l", str(hi - lo), *extra],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            writer.stdin.write(f"go {rng.randrange(1 << 30)} {lo} {hi}\n")
            writer.stdin.flush()
            last = int(writer.stdout.readline())
            _, err = job.communicate(timeout=60)
            assert job.returncode == 0, err
            outside = os.pread(fd, EDGE, lo - EDGE) + os.pread(fd, EDGE, hi)
            assert outside == bytes([last]) * (2 * EDGE), f"run {i}: bytes outside [{lo}, {hi}) reverted"
            assert os.pread(fd, hi - lo, lo) == bytes(hi - lo), f"run {i}: range [{lo}, {hi}) not zero"
        return runs
    finally:
        os.close(fd)
        writer.stdin.close()
        writer.wait(timeout=10)


@pytest.mark.parametrize("runs", [100, pytest.param(1000, marks=pytest.mark.long)])
def test_direct_zeroing_of_a_file_never_reverts_a_neighbours_write(scratch_file: Callable[[int], str],
                                                                   runs: int) -> None:
    path = scratch_file(4 << 20)
    assert _races(path, 4 << 20, runs, ["--direct", "-m", "large", "--call-size", "64K"], seed=1) == runs


@pytest.mark.parametrize("runs", [100, pytest.param(1000, marks=pytest.mark.long)])
def test_default_zeroing_of_a_loop_device_never_reverts_a_neighbours_write(ramfs_loop: Callable[[int], str],
                                                                           runs: int) -> None:
    dev = ramfs_loop(4 << 20)
    assert _races(dev, 4 << 20, runs, ["--call-size", "64K"], seed=2) == runs


APPENDER = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
size = os.fstat(fd).st_size
for i in range(int(sys.argv[2])):
    os.write(fd, b"REC%06d" % i + b"." * 54 + b"\n")
    now = os.fstat(fd).st_size
    assert now >= size + 64, (now, size)
    size = now
print("ok", flush=True)
"""


@pytest.mark.parametrize("runs", [10, pytest.param(100, marks=pytest.mark.long)])
def test_o_append_logger_loses_nothing_while_the_tail_is_zeroed(tmp_path: os.PathLike[str], runs: int) -> None:
    rng = random.Random(3)
    records = 300
    for i in range(runs):
        path = os.path.join(os.fspath(tmp_path), f"log{i}")
        size = (1 << 20) + rng.randrange(1, 4096)
        with open(path, "wb") as f:
            f.write(pattern_bytes(size))
        lo = size - rng.randrange(1, 200_000)
        job = subprocess.Popen([*LZ, "zero", path, "-o", str(lo), "-l", str(size - lo), "--direct", "-m", "large",
                                "--call-size", "4K"], stderr=subprocess.PIPE, text=True, stdout=subprocess.DEVNULL)
        app = subprocess.run([sys.executable, "-c", APPENDER, path, str(records)], capture_output=True, text=True)
        _, err = job.communicate(timeout=60)
        assert job.returncode == 0, err
        assert app.stdout.strip() == "ok", app.stderr
        data = read_range(path, 0, size + records * 64)
        assert os.path.getsize(path) == size + records * 64
        assert data[lo:size] == bytes(size - lo)
        assert data[:lo] == pattern_bytes(size)[:lo]
        expected = b"".join(b"REC%06d" % r + b"." * 54 + b"\n" for r in range(records))
        assert data[size:] == expected


def _sha(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.mark.parametrize("runs", [12, pytest.param(120, marks=pytest.mark.long)])
def test_sigkill_never_changes_the_size_and_the_resume_finishes_the_job(tmp_path: os.PathLike[str],
                                                                        runs: int) -> None:
    rng = random.Random(4)
    size = 24 << 20
    for i in range(runs):
        path = os.path.join(os.fspath(tmp_path), f"k{i}.img")
        with open(path, "wb"):
            pass
        os.truncate(path, size)
        fill_pattern(path, 0, size)
        lo = rng.randrange(0, 1 << 20)
        hi = size - rng.randrange(0, 1 << 20)
        argv = [path, "-o", str(lo), "-l", str(hi - lo), "--direct", "-m", "large", "--call-size", "64K",
                "--checkpoint", "0.0001"]
        job = subprocess.Popen([*LZ, "zero", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.05, 0.4))
        job.send_signal(signal.SIGKILL)
        _, err = job.communicate(timeout=60)
        assert os.path.getsize(path) == size, f"run {i}: size changed after SIGKILL"
        resumes = [line.split("resume with: ", 1)[1] for line in err.splitlines() if "resume with: " in line]
        cmd = shlex.split(resumes[-1])[1:] if resumes else ["zero", *argv]
        done = subprocess.run([*LZ, *cmd], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        expect = bytearray(pattern_bytes(size))
        expect[lo:hi] = bytes(hi - lo)
        assert _sha(path) == hashlib.sha256(bytes(expect)).hexdigest(), f"run {i}: resume {cmd}"


@pytest.mark.parametrize("extra", [["--direct", "-m", "large"], ["-m", "large"], ["-m", "page", "--direct"]])
def test_efbig_reports_exactly_what_is_zero(tmp_path: os.PathLike[str], extra: list[str]) -> None:
    path = os.path.join(os.fspath(tmp_path), "big.img")
    size = 8 << 20
    with open(path, "wb") as f:
        f.write(pattern_bytes(size))
    limit = (5 << 20) + 12345

    def cap() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run([*LZ, "zero", path, "-o", "1000", "-l", str(size - 2000), *extra, "--json"],
                          capture_output=True, text=True, preexec_fn=cap)
    assert done.returncode == 1, done.stderr
    out = json.loads(done.stdout)
    stopped, maybe = out["stopped_at"], out["maybe_until"] or out["stopped_at"]
    assert 1000 <= stopped <= limit <= size - 1000
    data = read_range(path, 0, size)
    expect = pattern_bytes(size)
    assert data[1000:stopped] == bytes(stopped - 1000), "the reported prefix is not all zero"
    assert data[maybe:] == expect[maybe:], "bytes past the reported span changed"
    assert data[:1000] == expect[:1000]
    assert f"--offset {stopped} --length {size - 1000 - stopped}" in out["error"]
    assert "resume with: largezero zero -o" in done.stderr and f"-l {size - 1000 - stopped}" in done.stderr
