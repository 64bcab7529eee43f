"""Interrupt and resume, driven through the real command line in a child process.

* SIGINT and SIGTERM stop the job at a write boundary, exit 130 and print the command that
  resumes; running it gives the same bytes as one uninterrupted run.
* SIGKILL cannot be caught: the last ``--checkpoint`` line printed before it is a safe place to
  resume from, and resuming from it leaves the range fully zeroed.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from largezero.errors import EXIT_INTERRUPTED

from .helpers import pattern_bytes

SIZE = 256 << 20
EDGE = 1 << 20  # pattern at both ends; the middle is a hole that the job fills with zeros
OFFSET, LENGTH = EDGE - 333, SIZE - 2 * EDGE + 1000
# Thousands of small calls make the job last long enough to be interrupted in the middle.
SLOW = ["-m", "page", "--call-size", "4K", "--checkpoint", "0.02"]
CLI = [sys.executable, "-m", "largezero"]


def _make(path: str) -> str:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, SIZE)
        os.pwrite(fd, pattern_bytes(EDGE), 0)
        os.pwrite(fd, pattern_bytes(EDGE, seed=7), SIZE - EDGE)
    finally:
        os.close(fd)
    return path


def _digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def _expected_digest() -> str:
    """sha256 of the file after one clean run: pattern, zeros over the range, pattern."""
    h = hashlib.sha256()
    h.update(pattern_bytes(EDGE)[:OFFSET])
    zeros = bytes(8 << 20)
    left = LENGTH
    while left:
        n = min(left, len(zeros))
        h.update(zeros[:n])
        left -= n
    tail = pattern_bytes(EDGE, seed=7)
    h.update(tail[OFFSET + LENGTH - (SIZE - EDGE) :])
    return h.hexdigest()


@pytest.fixture(scope="module")
def expected() -> str:
    return _expected_digest()


@pytest.fixture
def workdir(tmp_path: os.PathLike[str]) -> Iterator[str]:
    yield os.fspath(tmp_path)


def _start(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([*CLI, "zero", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoints(proc: subprocess.Popen[str], count: int) -> list[str]:
    """Read stderr until ``count`` checkpoint lines have come; the job is then mid-way."""
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while sum("checkpoint:" in line for line in lines) < count:
        line = proc.stderr.readline()
        assert line, f"the job ended before it could be interrupted: {lines}"
        lines.append(line)
        assert time.monotonic() < deadline
    return lines


def _resume(line: str) -> list[str]:
    """The argv of a printed 'resume with: largezero zero ...' command, run with this Python."""
    command = line.split("resume with: ", 1)[1].strip()
    argv = shlex.split(command)
    assert argv[:2] == ["largezero", "zero"], command
    return [*CLI, *argv[1:]]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_at_a_boundary_and_resume_gives_the_same_bytes(workdir: str, expected: str,
                                                                   signum: int) -> None:
    path = _make(os.path.join(workdir, "disk.img"))
    proc = _start([path, "-o", str(OFFSET), "-l", str(LENGTH), *SLOW])
    try:
        _wait_for_checkpoints(proc, 2)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, err  # 130 for SIGINT, 143 for SIGTERM
    lines = [line for line in err.splitlines() if "checkpoint:" not in line]
    assert len(lines) == 2, lines  # what happened, and how to resume; no traceback
    assert "interrupted at byte" in lines[0] and path in lines[0]
    assert lines[1].startswith("largezero: resume with: largezero zero ")
    stopped = int(lines[0].split("interrupted at byte ")[1].split(";")[0])
    assert OFFSET < stopped < OFFSET + LENGTH, "the signal did not land mid-job"
    assert (stopped - OFFSET) % 4096 == 0, "stopped between two 4 KiB calls"
    with open(path, "rb") as f:
        assert f.read(OFFSET) == pattern_bytes(EDGE)[:OFFSET]
    done = subprocess.run(_resume(lines[1]), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert _digest(path) == expected


def test_sigkill_then_resume_from_the_last_checkpoint(workdir: str, expected: str) -> None:
    path = _make(os.path.join(workdir, "disk.img"))
    proc = _start([path, "-o", str(OFFSET), "-l", str(LENGTH), *SLOW])
    try:
        lines = _wait_for_checkpoints(proc, 3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    last = [line for line in lines if "checkpoint:" in line][-1]
    resume = _resume(last)
    start = int(resume[resume.index("-o") + 1])
    assert OFFSET < start < OFFSET + LENGTH
    done = subprocess.run(resume, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert _digest(path) == expected


def test_interrupting_a_pattern_overwrite_keeps_the_prefix_exact(workdir: str) -> None:
    """On data (not a hole) the bytes after the reported stop are still the old ones."""
    size = 64 << 20
    path = os.path.join(workdir, "full.img")
    data = pattern_bytes(size)
    with open(path, "wb") as f:
        f.write(data)
    proc = _start([path, "-o", "100", "-l", str(size - 200), "-m", "page", "--call-size", "512",
                   "--checkpoint", "0.02"])
    try:
        _wait_for_checkpoints(proc, 2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED, err
    stopped = int(err.split("interrupted at byte ")[1].split(";")[0])
    with open(path, "rb") as f:
        now = f.read()
    assert now[:100] == data[:100]
    assert now[100:stopped] == bytes(stopped - 100)
    assert now[stopped:] == data[stopped:]


def test_several_targets_are_all_stopped_and_each_gets_a_resume_line(workdir: str, expected: str) -> None:
    paths = [_make(os.path.join(workdir, f"t{i}.img")) for i in range(3)]
    proc = _start([*paths, "-o", str(OFFSET), "-l", str(LENGTH), *SLOW])
    try:
        _wait_for_checkpoints(proc, 3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED, err
    resumes = [line for line in err.splitlines() if line.startswith("largezero: resume with:")]
    assert 1 <= len(resumes) <= 3  # a target that was already done has nothing to resume
    for line in resumes:
        done = subprocess.run(_resume(line), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    for p in paths:
        assert _digest(p) == expected
