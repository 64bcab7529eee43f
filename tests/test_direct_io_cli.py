"""largezero write, zero --direct's page-cache edges (no reads), and the benchmark in --quick form."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from largezero import ZeroingError, ZeroOptions, syscalls, zero_range
from largezero.scratch import fill_pattern, loop_device, make_image
from largezero.targets import open_target

from .helpers import pattern_bytes, read_range, requires_root

ROOT = Path(__file__).resolve().parent.parent
SIZE = 4 << 20

T = TypeVar("T", bound=syscalls.Syscalls)


@contextlib.contextmanager
def installed(replacement: T) -> Iterator[T]:
    """syscalls.installed() that keeps the replacement's own type for the checker."""
    with syscalls.installed(replacement):
        yield replacement



def largezero(*argv: str, stdin: bytes | Path | None = None) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "largezero", *argv]
    if isinstance(stdin, Path):
        with open(stdin, "rb") as f:
            return subprocess.run(cmd, stdin=f, capture_output=True, timeout=120)
    return subprocess.run(cmd, input=stdin or b"", capture_output=True, timeout=120)


def sparse(path: Path, size: int = SIZE) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def check_one_line_error(done: subprocess.CompletedProcess[bytes], code: int, words: str) -> None:
    assert done.returncode == code, done
    err = done.stderr.decode()
    assert words in err
    assert err.startswith("largezero") and err.count("\n") <= 2  # one line (+ argparse's hint)
    assert "Traceback" not in err


# --- largezero write ----------------------------------------------------------------------


def test_write_direct_json_into_a_hole(tmp_path: Path) -> None:
    target = sparse(tmp_path / "t.img")
    data = random.Random(1).randbytes(100_000)
    done = largezero("write", str(target), "-o", "70001", "--direct", "--block-size", "64K", "--json", stdin=data)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["bytes_written"] == out["length"] == len(data)
    assert out["direct"] is True and out["block_size"] == 65536
    assert "reads" not in out  # no read-modify-write to report (the syscall tests below count reads)
    # A 64 KiB block over a hole: whole 4 KiB granules padded, [64K, 68K) and [168K, 192K); the
    # granules holding our bytes' edges go through the page cache, only our bytes of them.
    assert (out["span_offset"], out["span_length"]) == (65536, 131072)
    assert out["pad_bytes"] == 4096 + 24576 and out["head"] == out["tail"] == "zero"
    assert out["cache_bytes"] == (73728 - 70001) + (170001 - 167936) and out["syncs"] == 2
    assert out["calls"] >= 1 and out["zero_buffer"]["name"] in ("LARGE_ZERO_PAGE", "ZERO_PAGE")
    got = read_range(str(target), 0, SIZE)
    assert got[70001:170001] == data and got[:70001] == bytes(70001) and got[170001:] == bytes(SIZE - 170001)


def test_write_streams_a_pipe_in_block_aligned_chunks(tmp_path: Path) -> None:
    """40 MiB through a pipe at an unaligned offset: chunks meet on block boundaries, so only the
    first head and the last tail are partial, and into a sparse file nothing is read."""
    target = sparse(tmp_path / "t.img", 1 << 20)
    data = random.Random(2).randbytes(40 << 20)
    done = largezero("write", str(target), "-o", "12345", "--direct", "-b", "64K", "--json", stdin=data)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["writes"] >= 3 and out["bytes_written"] == len(data)
    assert out["bounce_bytes"] == 0  # staged at addresses congruent to the offset
    # Padded before (a hole), nothing after: the end is past EOF, where no padding goes.
    assert out["head"] == "zero" and out["tail"] == "cache" and out["pad_bytes"] == 12288
    assert os.path.getsize(target) == 12345 + len(data)
    assert read_range(str(target), 12345, len(data)) == data


def test_write_buffered_text_summary(tmp_path: Path) -> None:
    target = tmp_path / "t.img"
    make_image(str(target), 1 << 20)
    fill_pattern(str(target), 0, 1 << 20)
    done = largezero("write", str(target), "-o", "1000", stdin=b"hello")
    assert done.returncode == 0, done.stderr
    line = done.stdout.decode()
    assert "wrote 5 B at offset 1000 (buffered" in line and line.count("\n") == 1
    expected = bytearray(pattern_bytes(1 << 20))
    expected[1000:1005] = b"hello"
    assert read_range(str(target), 0, 1 << 20) == bytes(expected)


def test_write_from_a_regular_file_on_stdin(tmp_path: Path) -> None:
    target = tmp_path / "t.img"
    make_image(str(target), 1 << 20)
    fill_pattern(str(target), 0, 1 << 20)
    source = tmp_path / "data"
    source.write_bytes(b"\x07" * 3000)
    done = largezero("write", str(target), "-o", "4095", "--direct", "--json", stdin=source)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["head"] == "cache" and out["tail"] == "cache"
    assert out["cache_bytes"] == 3000 and out["pad_bytes"] == 0  # 4095..7095: no whole page inside
    expected = bytearray(pattern_bytes(1 << 20))
    expected[4095:7095] = b"\x07" * 3000
    assert read_range(str(target), 0, 1 << 20) == bytes(expected)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_write_signal_stops_with_the_exact_resume(tmp_path: Path, signum: int) -> None:
    """A signal while ``write`` waits for more input: exit 128 + signum, one line, and the resume line
    (offset and input position) finishes the job to the bytes an uninterrupted run writes."""
    target = sparse(tmp_path / "t.img", 1 << 20)
    offset = 12345
    data = random.Random(signum).randbytes((16 << 20) + 300_000)
    first = (16 << 20) + 12288 - offset  # the first chunk: 16 MiB from the page holding the offset
    proc = subprocess.Popen([sys.executable, "-m", "largezero", "write", str(target), "-o", str(offset), "--direct"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        proc.stdin.write(data[: first + 100_000])  # the first chunk and part of the second
        proc.stdin.flush()
        while read_range(str(target), offset + first - 4096, 4096) != data[first - 4096: first]:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            time.sleep(0.01)  # waiting for the first chunk to land, not a timing assertion
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    line = err.decode()
    assert proc.returncode == 128 + signum, line
    assert line.count("\n") == 1 and "Traceback" not in line and "interrupted" in line
    at = offset + first
    assert f"bytes {offset}..{at} are written" in line
    assert f"{first + 100_000} bytes of standard input were consumed, {first} of them written" in line
    resume = line.split("resume with: ", 1)[1].strip()
    assert resume == f"tail -c +{first + 1} INPUT | largezero write -o {at} --direct -- {target}"
    assert os.path.getsize(target) == at  # nothing of the unwritten input landed
    argv = shlex.split(resume.split(" | ", 1)[1])
    done = largezero(*argv[1:], stdin=data[first:])
    assert done.returncode == 0, done.stderr
    assert read_range(str(target), 0, offset + len(data)) == bytes(offset) + data


def test_write_failure_names_the_input_position(tmp_path: Path) -> None:
    """EFBIG part way (RLIMIT_FSIZE): exit 1, one line with the prefix written and the resume."""
    target = sparse(tmp_path / "t.img", 0)
    limit = 102_400  # on a sector: the kernel shortens the O_DIRECT call there, then says EFBIG
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
            "from largezero.cli import main; sys.exit(main())")
    data = random.Random(9).randbytes(300_000)
    done = subprocess.run([sys.executable, "-c", code, "write", str(target), "-o", "1000", "--direct"],
                          input=data, capture_output=True, timeout=120)
    line = done.stderr.decode()
    assert done.returncode == 1, line
    assert line.count("\n") == 1 and "File too large" in line
    at = os.path.getsize(target)
    assert at <= limit and read_range(str(target), 1000, at - 1000) == data[: at - 1000]
    assert f"bytes 1000..{at} are written" in line
    assert f"300000 bytes of standard input were consumed, {at - 1000} of them written" in line
    assert f"resume with: tail -c +{at - 1000 + 1} INPUT | largezero write -o {at} --direct -- {target}" in line


@pytest.mark.parametrize("argv, words", [
    (["-o", "-5"], "offset"),
    (["-o", "0", "--direct", "--block-size", "3000"], "block size 3000 is not a power of two"),
    (["-o", "0", "--direct", "--block-size", "256"], "smaller than the direct I/O alignment"),
    (["-o", "0", "--direct", "--block-size", "4M"], "larger than the PMD size"),
    (["-o", "1x"], "offset"),
])
def test_write_bad_input(tmp_path: Path, argv: list[str], words: str) -> None:
    target = sparse(tmp_path / "t.img", 1 << 20)
    check_one_line_error(largezero("write", str(target), *argv, stdin=b"abc"), 2, words)
    assert read_range(str(target), 0, 1 << 20) == bytes(1 << 20)


def test_write_missing_target_and_missing_offset(tmp_path: Path) -> None:
    check_one_line_error(largezero("write", str(tmp_path / "nope"), "-o", "0", stdin=b"x"), 2, "no such file")
    check_one_line_error(largezero("write", str(tmp_path / "nope"), stdin=b"x"), 2, "-o/--offset")


@requires_root
def test_write_data_larger_than_the_device(tmp_path: Path) -> None:
    image = make_image(str(tmp_path / "disk.img"), 1 << 20)
    fill_pattern(image, 0, 1 << 20)
    source = tmp_path / "data"
    source.write_bytes(b"\x01" * 5000)
    with loop_device(image) as dev:
        before = read_range(dev, 0, 1 << 20)
        # Known size on stdin: refused before anything is written.
        check_one_line_error(largezero("write", dev, "-o", str((1 << 20) - 4000), "--direct", stdin=source),
                             2, "larger than the target")
        # A pipe: found on the first chunk, still before any write.
        check_one_line_error(largezero("write", dev, "-o", "0", "--direct", stdin=b"\2" * ((1 << 20) + 1)),
                             2, "larger than the target")
        assert read_range(dev, 0, 1 << 20) == before
        # Up to the last byte is fine.
        done = largezero("write", dev, "-o", str((1 << 20) - 5000), "--direct", "--json", stdin=source)
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert out["cache_bytes"] > 0  # the partial page through the page cache
        assert read_range(dev, 0, 1 << 20) == before[: -5000] + b"\x01" * 5000


@requires_root
def test_write_read_only_device(tmp_path: Path) -> None:
    image = make_image(str(tmp_path / "disk.img"), 1 << 20)
    device = subprocess.run(["losetup", "--find", "--show", "--read-only", image], check=True,
                            capture_output=True, text=True).stdout.strip()
    try:
        check_one_line_error(largezero("write", device, "-o", "0", "--direct", stdin=b"x"), 2, device)
    finally:
        subprocess.run(["losetup", "-d", device], check=False)


# --- zero --direct: the unaligned edges go through the page cache, never read ---------------


class Counting(syscalls.Syscalls):
    def __init__(self, read_error: int | None = None, write_error_at: int | None = None) -> None:
        self.reads = 0
        self.read_error = read_error
        self.write_error_at = write_error_at

    def preadv(self, fd: int, buffers: Sequence[Any], offset: int) -> int:
        self.reads += 1
        if self.read_error:
            raise OSError(self.read_error, os.strerror(self.read_error))
        return super().preadv(fd, buffers, offset)

    def pread(self, fd: int, length: int, offset: int) -> bytes:
        self.reads += 1
        return super().pread(fd, length, offset)

    def pwritev(self, fd: int, buffers: Sequence[Any], offset: int) -> int:
        if self.write_error_at is not None and offset >= self.write_error_at:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return super().pwritev(fd, buffers, offset)


def test_zero_direct_edges_into_holes_read_nothing(tmp_path: Path) -> None:
    target = sparse(tmp_path / "t.img")
    fill_pattern(str(target), 1 << 20, 1 << 20)  # data further on, holes around the edges
    # The range ends 100 bytes into a 4 KiB filesystem block that the aligned middle leaves a hole.
    end = 147 * 4096 + 100
    with installed(Counting()) as c:
        r = zero_range(str(target), 1000, end - 1000, options=ZeroOptions(method="large", direct=True))
    assert r.bytes_zeroed == end - 1000
    assert c.reads == 0
    assert read_range(str(target), 0, 1 << 20) == bytes(1 << 20)
    assert read_range(str(target), 1 << 20, 1 << 20) == pattern_bytes(1 << 20)


def test_zero_direct_edges_next_to_the_middle_read_nothing(tmp_path: Path) -> None:
    """Edges are page-cache granules of their own: the O_DIRECT middle never shares one."""
    target = sparse(tmp_path / "t.img")
    with installed(Counting()) as c:
        r = zero_range(str(target), 1000, 600_000, options=ZeroOptions(method="large", direct=True))
    assert r.bytes_zeroed == 600_000
    assert c.reads == 0
    assert read_range(str(target), 0, SIZE) == bytes(SIZE)


def test_zero_direct_edges_over_data_read_nothing(tmp_path: Path) -> None:
    target = tmp_path / "t.img"
    make_image(str(target), SIZE)
    fill_pattern(str(target), 0, SIZE)
    with installed(Counting()) as c:
        r = zero_range(str(target), 1000, 600_000, options=ZeroOptions(method="large", direct=True))
    assert c.reads == 0  # the page cache merges the edges: no user-space read-modify-write
    assert r.bytes_zeroed == 600_000 and r.calls >= 3
    expected = bytearray(pattern_bytes(SIZE))
    expected[1000:601000] = bytes(600_000)
    assert read_range(str(target), 0, SIZE) == bytes(expected)


def test_zero_direct_edge_errors_keep_exact_progress(tmp_path: Path) -> None:
    target = tmp_path / "t.img"
    make_image(str(target), SIZE)
    fill_pattern(str(target), 0, SIZE)
    with open_target(str(target), writable=False) as tgt:
        align = tgt.dio_align
    # The tail edge (the bytes below the DIO alignment: [600576, 601000) with 512) fails:
    # everything before it is done and reported.
    tail = 601_000 - 601_000 % align
    with installed(Counting(write_error_at=tail)), pytest.raises(ZeroingError) as exc:
        zero_range(str(target), 1000, 600_000, options=ZeroOptions(method="large", direct=True))
    assert exc.value.bytes_zeroed == tail - 1000
    assert exc.value.stopped_at == tail
    got = read_range(str(target), 0, SIZE)
    assert got[1000:tail] == bytes(tail - 1000)
    assert got[tail:] == pattern_bytes(SIZE)[tail:]


@requires_root
def test_zero_direct_on_a_loop_device_edges(tmp_path: Path) -> None:
    image = make_image(str(tmp_path / "disk.img"), SIZE)
    fill_pattern(image, 0, SIZE)
    with loop_device(image) as dev:
        with installed(Counting()) as c:
            r = zero_range(dev, 4097, 100_000, options=ZeroOptions(method="large", direct=True))
        assert r.bytes_zeroed == 100_000
        assert c.reads == 0  # never a read on a device either: its page cache merges the edges
        expected = bytearray(pattern_bytes(SIZE))
        expected[4097:104097] = bytes(100_000)
        assert read_range(dev, 0, SIZE) == bytes(expected)


# --- the benchmark, quick -----------------------------------------------------------------


def test_benchmark_quick_output_is_sane(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_direct_io.py"), "--quick", "--json",
                           "--dir", str(tmp_path)], capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    res = json.loads(done.stdout)
    assert res["block_size"] == 65536 and res["write_bytes"] == 1 << 20 and res["writes"] >= 4
    layouts = res["layouts"]
    assert set(layouts) == {"sparse", "unwritten", "written"}
    for block in layouts.values():
        rows = block["rows"]
        assert block["contents_match"] is True
        assert set(rows) == {"naive", "writer", "writer-aligned"}
        naive = rows["naive"]
        # The naive peer reads both partial blocks of every write, whole.
        assert naive["bytes_read"] == 2 * 65536 * res["writes"]
        for row in rows.values():
            assert row["mib_per_s"] > 0 and row["seconds"] > 0
            assert row["speedup_vs_naive"] == pytest.approx(row["mib_per_s"] / naive["mib_per_s"])
        for writer in ("writer", "writer-aligned"):
            # Never a read: holes are padded, data edges go through the page cache.
            assert rows[writer]["bytes_read"] == 0 and rows[writer]["read_ratio_vs_naive"] == 0
    # No leftovers in the work directory.
    assert list(tmp_path.iterdir()) == []
