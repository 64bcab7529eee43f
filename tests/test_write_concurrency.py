"""``largezero write --direct`` against other processes writing next to it, for real.

Each run starts a real ``largezero write`` process and a real second writer (a small Python
child): the second one pwrites markers into the bytes just outside both edges of the range
at random moments, stopping at a random moment of the job, or appends records with O_APPEND
while ``write`` writes the file's last bytes. After each run the outside bytes must be the
other writer's last write and the inside the data: a user-space read-modify-write of an edge
block, or a grow-then-truncate, loses them. A SIGKILL at a random moment never leaves the file
longer than max(old size, end of the write).
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from largezero.scratch import fill_pattern, make_image

from .helpers import pattern_bytes, read_range

SIZE = 4 << 20
MARK = 8  # bytes of one marker

# The second writer: markers at HEAD (the 8 bytes before the range) and TAIL (the 8 after it),
# each a pwrite of a fresh value, in a tight loop with random short pauses, until standard
# input closes; prints the last value written at each place.
MARKER = r"""
import os, random, select, struct, sys
path, head, tail, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
fd = os.open(path, os.O_WRONLY)
last = {"head": None, "tail": None}
i = 0
while True:
    i += 1
    where = rng.choice(("head", "tail"))
    value = struct.pack("<Q", (seed << 32) | i)
    assert os.pwrite(fd, value, head if where == "head" else tail) == len(value)
    last[where] = value.hex()
    if select.select([sys.stdin], [], [], rng.random() * 0.00005)[0]:
        break  # standard input closed: stop now
print(last["head"], last["tail"])
"""

# The appender: records "R<n>\n" with O_APPEND, random pauses, until standard input closes;
# after each append the size must not be below what it saw last. Prints the count and the
# number of times the size went down.
APPENDER = r"""
import os, random, select, sys
path, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
n = shrank = seen = 0
while True:
    record = b"R%08d\n" % n
    assert os.write(fd, record) == len(record)
    n += 1
    size = os.fstat(fd).st_size
    shrank += size < seen
    seen = max(seen, size)
    if select.select([sys.stdin], [], [], rng.random() * 0.0001)[0]:
        break
print(n, shrank)
"""


def _writer(target: Path, offset: int, data_file: Path) -> subprocess.Popen[bytes]:
    with open(data_file, "rb") as stdin:
        return subprocess.Popen([sys.executable, "-m", "largezero", "write", str(target), "-o", str(offset),
                                 "--direct", "--json"], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _child(script: str, *argv: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", script, *map(str, argv)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(child: subprocess.Popen[bytes]) -> list[str]:
    """Close the child's standard input (the job is over) and read its last words."""
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err.decode()
    return out.decode().split()


def _in_pipe(fd: int) -> int:
    """Bytes waiting in a pipe (FIONREAD works on either end on Linux)."""
    return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])


def _unaligned(rng: random.Random, lo: int, hi: int) -> int:
    while True:
        x = rng.randrange(lo, hi)
        if x % 512:
            return x


def _marker_runs(tmp_path: Path, runs: int, seed: int) -> None:
    rng = random.Random(seed)
    target = Path(make_image(str(tmp_path / "target.img"), SIZE))
    fill_pattern(str(target), 0, SIZE)
    expected = bytearray(pattern_bytes(SIZE))
    for run in range(runs):
        offset = _unaligned(rng, MARK, SIZE // 2)
        length = min(rng.choice([rng.randrange(1, 4000), rng.randrange(4000, 3 << 20)]), SIZE - MARK - 200 - offset)
        end = offset + length
        if end % 512 == 0:
            end -= 1 + rng.randrange(100)
            length = end - offset
        data = rng.randbytes(length)
        # The writer reads its standard input to EOF before it writes a byte, so closing that
        # pipe starts its writes; the marker, hammering both edges all along, is stopped at a
        # random moment of those writes (or a little after), so its last write lands before,
        # inside, or after a read-modify-write window, if there were one.
        marker = _child(MARKER, target, offset - MARK, end, run + 1)
        writer = subprocess.Popen([sys.executable, "-m", "largezero", "write", str(target), "-o", str(offset),
                                   "--direct", "--json"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        assert writer.stdin is not None
        writer.stdin.write(data[:-1])
        writer.stdin.flush()
        while _in_pipe(writer.stdin.fileno()):  # until it has read all but the last byte
            assert writer.poll() is None, writer.stderr.read().decode() if writer.stderr else ""
            time.sleep(0.001)  # waiting, not a timing assertion
        writer.stdin.write(data[-1:])
        writer.stdin.close()
        writer.stdin = None  # closed by hand: communicate() must not flush it
        time.sleep(rng.random() * (0.0005 + length / 1e9))  # about the time ~length bytes take
        head, tail = _finish(marker)
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err.decode()
        result = json.loads(out)
        assert result["pad_bytes"] == 0 and "reads" not in result
        expected[offset:end] = data
        if head != "None":
            expected[offset - MARK: offset] = bytes.fromhex(head)
        if tail != "None":
            expected[end: end + MARK] = bytes.fromhex(tail)
        got = read_range(str(target), 0, SIZE + 1)
        assert len(got) == SIZE
        # Inside: the data; outside: the other writer's last write, every other byte as before.
        assert got[offset:end] == data, f"run {run}: data at {offset}..{end}"
        assert got[offset - MARK: offset] == expected[offset - MARK: offset], f"run {run}: head marker lost"
        assert got[end: end + MARK] == expected[end: end + MARK], f"run {run}: tail marker lost"
        assert got == expected, f"run {run}"


def test_markers_next_to_both_edges_survive(tmp_path: Path) -> None:
    _marker_runs(tmp_path, 50, seed=1)


@pytest.mark.long
def test_markers_next_to_both_edges_survive_long(tmp_path: Path) -> None:
    _marker_runs(tmp_path, 1000, seed=2)


def _append_runs(tmp_path: Path, runs: int, seed: int) -> None:
    rng = random.Random(seed)
    for run in range(runs):
        size = _unaligned(rng, 1 << 20, 2 << 20)
        target = Path(make_image(str(tmp_path / f"log{run}.img"), size))
        fill_pattern(str(target), 0, size)
        length = rng.randrange(1, 300_000)
        offset = size - length
        data = rng.randbytes(length)
        (tmp_path / "data").write_bytes(data)
        appender = _child(APPENDER, target, run)
        writer = _writer(target, offset, tmp_path / "data")
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err.decode()
        count, shrank = map(int, _finish(appender))
        got = read_range(str(target), 0, os.path.getsize(target))
        assert shrank == 0, f"run {run}: the size went down {shrank} times"
        assert got[:offset] == pattern_bytes(size)[:offset]
        assert got[offset:size] == data
        # Every record, in order, none lost or overwritten.
        assert got[size:] == b"".join(b"R%08d\n" % i for i in range(count)), f"run {run}: records lost"
        target.unlink()


def test_o_append_records_survive_a_write_of_the_last_bytes(tmp_path: Path) -> None:
    _append_runs(tmp_path, 12, seed=3)


@pytest.mark.long
def test_o_append_records_survive_long(tmp_path: Path) -> None:
    _append_runs(tmp_path, 300, seed=4)


def _kill_runs(tmp_path: Path, runs: int, seed: int) -> None:
    rng = random.Random(seed)
    data_file = tmp_path / "data"
    for run in range(runs):
        size = _unaligned(rng, 1 << 20, 2 << 20)
        target = Path(make_image(str(tmp_path / f"k{run}.img"), size))
        fill_pattern(str(target), 0, size)
        # Ends a little past EOF, inside a granule: the write that used to grow to the granule
        # boundary and truncate back.
        end = _unaligned(rng, size + 1, size + 6000)
        offset = _unaligned(rng, 0, size)
        data_file.write_bytes(rng.randbytes(end - offset))
        writer = _writer(target, offset, data_file)
        time.sleep(rng.random() * 0.4)  # a random moment of its life: start-up, the middle, the tail
        writer.send_signal(signal.SIGKILL)
        writer.communicate(timeout=60)
        now = os.path.getsize(target)
        assert size <= now <= end, f"run {run}: {now} bytes after SIGKILL (was {size}, end {end})"
        assert now in (size, end) or now % 4096 == 0, f"run {run}: size {now}"
        assert read_range(str(target), 0, offset) == pattern_bytes(size)[:offset]
        target.unlink()


def test_sigkill_never_grows_past_the_end(tmp_path: Path) -> None:
    _kill_runs(tmp_path, 12, seed=5)


@pytest.mark.long
def test_sigkill_never_grows_past_the_end_long(tmp_path: Path) -> None:
    _kill_runs(tmp_path, 200, seed=6)
