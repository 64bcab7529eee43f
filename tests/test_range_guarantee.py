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
import shutil
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

# The other writer: for each "go SEED LO HI STOP" line it writes markers just outside [LO, HI)
# (buffered pwrite, as a logger or database would) every few milliseconds, for a random time up
# to STOP seconds, then prints its last marker.
WRITER = r"""
import os, random, sys, time
EDGE = int(sys.argv[2])
fd = os.open(sys.argv[1], os.O_RDWR)
for line in sys.stdin:
    _, seed, lo, hi, most = line.split()
    rng, lo, hi = random.Random(int(seed)), int(lo), int(hi)
    stop = time.monotonic() + rng.uniform(0, float(most))
    while True:
        last = rng.randint(1, 255)
        os.pwrite(fd, bytes([last]) * EDGE, lo - EDGE)
        os.pwrite(fd, bytes([last]) * EDGE, hi)
        if time.monotonic() > stop:
            break
        time.sleep(rng.uniform(0, 0.004))
    print(last, flush=True)
"""

# A slow disk, made by strace: every write call of the zeroer waits 50 ms before it runs, so a
# neighbour's write lands between any read and write-back of an edge. Measured: the engine
# before the page-cache edges (a user-space read-modify-write of the edge block) reverted the
# neighbour's bytes in 10 of 20 such runs.
SLOW_DISK = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=pwritev,pwritev2,pwrite64",
             "-e", "inject=pwritev,pwritev2,pwrite64:delay_enter=50000"]
needs_strace = pytest.mark.skipif(shutil.which("strace") is None,
                                  reason="strace is not installed (make test installs it as root with apt)")


def _races(target: str, size: int, runs: int, extra: list[str], seed: int, *, slow: bool = False) -> int:
    """Run ``runs`` zeroing jobs racing the other writer; returns how many raced (all must hold).

    The writer starts at the job's first checkpoint line (the job is writing by then) and stops
    at a random moment, so its last write falls inside the job as often as after it.
    """
    rng = random.Random(seed)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, target, str(EDGE)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdin is not None and writer.stdout is not None
    fd = os.open(target, os.O_RDWR)
    try:
        for i in range(runs):
            lo = rng.randrange(EDGE, 1 << 16)
            span = rng.randrange(1, 3 * 4096) if slow or rng.random() < 0.5 else rng.randrange(1, 3 << 20)
            hi = min(size - EDGE, lo + span)
            os.pwrite(fd, b"\xa5" * (hi - lo), lo)  # something to zero
            argv = [*LZ, "zero", target, "-o", str(lo), "-l", str(hi - lo), *extra, "--checkpoint", "0.000001"]
            job = subprocess.Popen([*SLOW_DISK, *argv] if slow else argv, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
            assert job.stderr is not None
            job.stderr.readline()  # the first checkpoint: the job is writing
            writer.stdin.write(f"go {rng.randrange(1 << 30)} {lo} {hi} {0.1 if slow else 0.02}\n")
            writer.stdin.flush()
            last = int(writer.stdout.readline())
            err = job.stderr.read()
            assert job.wait(timeout=60) == 0, err
            outside = os.pread(fd, EDGE, lo - EDGE) + os.pread(fd, EDGE, hi)
            assert outside == bytes([last]) * (2 * EDGE), f"run {i}: bytes outside [{lo}, {hi}) reverted"
            assert os.pread(fd, hi - lo, lo) == bytes(hi - lo), f"run {i}: range [{lo}, {hi}) not zero"
        return runs
    finally:
        os.close(fd)
        writer.stdin.close()
        writer.wait(timeout=10)


FILE_DIRECT = ["--direct", "-m", "large", "--call-size", "64K"]


@pytest.mark.parametrize("runs", [50, pytest.param(1000, marks=pytest.mark.long)])
def test_direct_zeroing_of_a_file_never_reverts_a_neighbours_write(scratch_file: Callable[[int], str],
                                                                   runs: int) -> None:
    path = scratch_file(4 << 20)
    assert _races(path, 4 << 20, runs, FILE_DIRECT, seed=1) == runs


@pytest.mark.parametrize("runs", [50, pytest.param(1000, marks=pytest.mark.long)])
def test_default_zeroing_of_a_loop_device_never_reverts_a_neighbours_write(ramfs_loop: Callable[[int], str],
                                                                           runs: int) -> None:
    dev = ramfs_loop(4 << 20)
    assert _races(dev, 4 << 20, runs, ["--call-size", "64K"], seed=2) == runs


@needs_strace
@pytest.mark.parametrize("runs", [20, pytest.param(200, marks=pytest.mark.long)])
def test_on_a_slow_disk_a_neighbours_write_during_the_edges_survives(scratch_file: Callable[[int], str],
                                                                     ramfs_loop: Callable[[int], str],
                                                                     runs: int) -> None:
    path = scratch_file(4 << 20)
    assert _races(path, 4 << 20, runs, FILE_DIRECT, seed=3, slow=True) == runs
    dev = ramfs_loop(4 << 20)
    assert _races(dev, 4 << 20, runs, [], seed=4, slow=True) == runs


APPENDER = r"""
import os, random, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
size = os.fstat(fd).st_size
sys.stdin.readline()  # go: the job is writing
for i in range(int(sys.argv[2])):
    os.write(fd, b"REC%06d" % i + b"." * 54 + b"\n")
    now = os.fstat(fd).st_size
    assert now >= size + 64, (now, size)
    size = now
    time.sleep(random.uniform(0, 0.001))
print("ok", flush=True)
"""
RECORDS = 300


def _append_while_zeroing_the_tail(path: str, rng: random.Random, slow: bool) -> None:
    size = (1 << 20) + rng.randrange(1, 4096)
    with open(path, "wb") as f:
        f.write(pattern_bytes(size))
    lo = size - rng.randrange(1, 20_000 if slow else 200_000)
    argv = [*LZ, "zero", path, "-o", str(lo), "-l", str(size - lo), "--direct", "-m", "large", "--call-size", "4K",
            "--checkpoint", "0.000001"]
    # On the slow disk ftruncate waits too: a grow-then-truncate would cut off what was appended meanwhile.
    slow_disk = [*SLOW_DISK[:-1], "inject=pwritev,pwritev2,pwrite64,ftruncate:delay_enter=20000"]
    job = subprocess.Popen([*slow_disk, *argv] if slow else argv, stderr=subprocess.PIPE, text=True,
                           stdout=subprocess.DEVNULL)
    app = subprocess.Popen([sys.executable, "-c", APPENDER, path, str(RECORDS)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert job.stderr is not None
    job.stderr.readline()  # the first checkpoint: the job is writing
    out, app_err = app.communicate("go\n", timeout=60)
    err = job.stderr.read()
    assert job.wait(timeout=60) == 0, err
    assert out.strip() == "ok", app_err
    data = read_range(path, 0, size + RECORDS * 64)
    assert os.path.getsize(path) == size + RECORDS * 64
    assert data[lo:size] == bytes(size - lo)
    assert data[:lo] == pattern_bytes(size)[:lo]
    assert data[size:] == b"".join(b"REC%06d" % r + b"." * 54 + b"\n" for r in range(RECORDS))


@pytest.mark.parametrize("runs", [10, pytest.param(100, marks=pytest.mark.long)])
def test_o_append_logger_loses_nothing_while_the_tail_is_zeroed(tmp_path: os.PathLike[str], runs: int) -> None:
    rng = random.Random(3)
    for i in range(runs):
        _append_while_zeroing_the_tail(os.path.join(os.fspath(tmp_path), f"log{i}"), rng, slow=False)


@needs_strace
@pytest.mark.parametrize("runs", [6, pytest.param(60, marks=pytest.mark.long)])
def test_o_append_logger_loses_nothing_on_a_slow_disk(tmp_path: os.PathLike[str], runs: int) -> None:
    rng = random.Random(6)
    for i in range(runs):
        _append_while_zeroing_the_tail(os.path.join(os.fspath(tmp_path), f"slow{i}"), rng, slow=True)


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
        hi = size if rng.random() < 0.3 else size - rng.randrange(0, 1 << 20)
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
