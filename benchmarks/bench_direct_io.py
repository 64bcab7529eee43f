"""Unaligned 1 MiB O_DIRECT writes with 64 KiB blocks: the direct writer against a naive one.

Each write is 1 MiB at a random 512-byte-aligned offset, so both its head and its tail fall
inside a 64 KiB block. Targets, each a fresh file on the working filesystem:

* ``sparse``    ftruncate only: every partial block is a hole;
* ``unwritten`` fallocate: every partial block is an unwritten extent;
* ``written``   filled with data: the naive writer reads every partial block back; DirectWriter
                writes its partial pages through the page cache and reads nothing.

Writers, measured in the same run on identical files and offsets:

* ``naive``          reads every partial block whole (O_DIRECT), copies the data into an
                     aligned buffer of the whole span and writes it: what a careful O_DIRECT
                     program does without looking at the file's map;
* ``writer``         DirectWriter, data in an ordinary ``bytes`` (bounced through aligned memory);
* ``writer-aligned`` DirectWriter, data in a buffer from aligned_buffer() (no copy at all).

Writes never share a block (one per 2 MiB slot), so a sparse file stays sparse around each
write. The writers take turns write by write (the order rotating), so a busy machine slows
them alike; each has its own copy of the file. Bytes read are counted through the syscall seam. Run:
``python benchmarks/bench_direct_io.py [--quick] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from largezero import syscalls
from largezero.errors import LargezeroError
from largezero.iomap import DirectWriter, aligned_buffer
from largezero.targets import open_target, opened
from largezero.units import format_size

WRITE = 1 << 20
BLOCK = 64 << 10
SLOT = 2 << 20
LAYOUTS = ("sparse", "unwritten", "written")
WRITERS = ("naive", "writer", "writer-aligned")


class Counting(syscalls.Syscalls):
    """Counts reads and writes as they pass the seam; the calls themselves are the real ones."""

    def __init__(self) -> None:
        self.reads = 0
        self.read_bytes = 0
        self.writes = 0

    def preadv(self, fd: int, buffers: Sequence[Any], offset: int) -> int:
        n = super().preadv(fd, buffers, offset)
        self.reads += 1
        self.read_bytes += n
        return n

    def pread(self, fd: int, length: int, offset: int) -> bytes:
        out = super().pread(fd, length, offset)
        self.reads += 1
        self.read_bytes += len(out)
        return out

    def pwritev(self, fd: int, buffers: Sequence[Any], offset: int) -> int:
        self.writes += 1
        return super().pwritev(fd, buffers, offset)


def make_file(path: str, layout: str, size: int) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, size)
        if layout == "unwritten":
            os.posix_fallocate(fd, 0, size)
        elif layout == "written":
            chunk = bytes(range(1, 256)) * ((4 << 20) // 255 + 1)
            chunk = chunk[: 4 << 20]
            for pos in range(0, size, len(chunk)):
                os.pwrite(fd, chunk[: size - pos], pos)
            os.fsync(fd)
    finally:
        os.close(fd)


def offsets(size: int, seed: int) -> list[int]:
    """One write per 2 MiB slot at a random 512-byte offset that is not block aligned."""
    rng = random.Random(seed)
    out = []
    for slot in range(0, size - SLOT + 1, SLOT):
        while True:
            off = slot + rng.randrange(BLOCK, SLOT - WRITE - BLOCK) // 512 * 512
            if off % BLOCK:
                break
        out.append(off)
    rng.shuffle(out)
    return out


def naive_write(fd: int, data: bytes, offset: int, block: int, scratch: memoryview) -> None:
    """Read-modify-write every partial block, then one aligned write of the whole span."""
    start = offset - offset % block
    end = offset + len(data)
    stop = -(-end // block) * block
    span = scratch[: stop - start]
    if offset % block:
        syscalls.ops.preadv(fd, [span[:block]], start)
    if end % block and not (offset % block and stop - block == start):
        syscalls.ops.preadv(fd, [span[stop - block - start:]], stop - block)
    span[offset - start: end - start] = data
    done = 0
    while done < len(span):
        done += syscalls.ops.pwritev(fd, [span[done:]], start + done)


class Contender:
    """One writer over its own copy of the target, with its own counters."""

    def __init__(self, name: str, path: str, payload: bytes) -> None:
        self.name = name
        self.counter = Counting()
        self.seconds = 0.0
        self.cpu_seconds = 0.0  # user + system CPU of this thread: steadier than wall time on a busy machine
        self.pad = 0
        self.payload = payload
        self.target = open_target(path)
        self.writer: DirectWriter | None = None
        self.scratch = aligned_buffer(WRITE + 2 * BLOCK)
        self.by_phase: dict[int, memoryview] = {}
        if name != "naive":
            self.writer = DirectWriter(self.target, block_size=BLOCK)

    def data_for(self, offset: int) -> bytes | memoryview:
        if self.name != "writer-aligned":
            return self.payload
        # A buffer whose address is congruent to the offset: the writer sends it without a copy.
        phase = offset % 4096
        if phase not in self.by_phase:
            buf = aligned_buffer(WRITE, offset=phase)
            buf[:] = self.payload
            self.by_phase[phase] = buf
        return self.by_phase[phase]

    def write(self, offset: int) -> None:
        data = self.data_for(offset)
        with syscalls.installed(self.counter):
            t0, c0 = time.perf_counter(), time.thread_time()
            if self.writer is None:
                naive_write(self.target.direct_fd(), self.payload, offset, BLOCK, self.scratch)
            else:
                self.pad += self.writer.write(data, offset).pad_bytes
            self.seconds += time.perf_counter() - t0
            self.cpu_seconds += time.thread_time() - c0

    def close(self) -> dict[str, Any]:
        if self.writer is not None:
            self.writer.close()
        self.target.close()
        return {
            "writer": self.name,
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
            "bytes_read": self.counter.read_bytes,
            "reads": self.counter.reads,
            "calls": self.counter.writes,
            "pad_bytes": self.pad,
        }


def run_pass(paths: dict[str, str], offs: list[int], payload: bytes) -> dict[str, dict[str, Any]]:
    """Every writer does each write in turn, the order rotating, so load on the machine hits all alike."""
    contenders = [Contender(name, paths[name], payload) for name in WRITERS]
    try:
        for i, off in enumerate(offs):
            for k in range(len(contenders)):
                contenders[(i + k) % len(contenders)].write(off)
    finally:
        rows = {c.name: c.close() for c in contenders}
    for row in rows.values():
        row["mib_per_s"] = WRITE * len(offs) / row["seconds"] / (1 << 20)
        row["cpu_us_per_write"] = row["cpu_seconds"] / len(offs) * 1e6
    return rows


def bench(size: int, repeat: int, seed: int, workdir: str) -> dict[str, Any]:
    offs = offsets(size, seed)
    payload = random.Random(seed).randbytes(WRITE)
    results: dict[str, Any] = {"write_bytes": WRITE, "block_size": BLOCK, "file_size": size,
                               "writes": len(offs), "repeat": repeat, "layouts": {}}
    for layout in LAYOUTS:
        runs: dict[str, list[dict[str, Any]]] = {w: [] for w in WRITERS}
        same = True
        for rep in range(repeat):
            paths = {name: os.path.join(workdir, f"{layout}-{name}-{rep}.img") for name in WRITERS}
            for path in paths.values():
                make_file(path, layout, size)
            for name, row in run_pass(paths, offs, payload).items():
                runs[name].append(row)
            contents = set()
            for path in paths.values():
                with open(path, "rb") as f:
                    contents.add(hash(f.read()))
                os.unlink(path)
            same = same and len(contents) == 1
        rows = {}
        for name, rs in runs.items():
            row = dict(rs[0])
            for key in ("seconds", "mib_per_s", "cpu_seconds", "cpu_us_per_write"):
                row[key] = statistics.median(r[key] for r in rs)
            rows[name] = row
        naive = rows["naive"]
        for row in rows.values():
            row["speedup_vs_naive"] = row["mib_per_s"] / naive["mib_per_s"]
            row["read_ratio_vs_naive"] = row["bytes_read"] / naive["bytes_read"] if naive["bytes_read"] else None
        results["layouts"][layout] = {"rows": rows, "contents_match": same}
    return results


def print_table(res: dict[str, Any]) -> None:
    print(f"{res['writes']} writes of {format_size(res['write_bytes'])} at random 512-byte offsets, "
          f"block {format_size(res['block_size'])}, file {format_size(res['file_size'])}, "
          f"median of {res['repeat']}")
    print(f"{'layout':<10} {'writer':<15} {'MiB/s':>9} {'x naive':>8} {'CPU us/write':>12} {'bytes read':>12} "
          f"{'reads':>6} {'read/naive':>10} {'calls':>6}")
    for layout, block in res["layouts"].items():
        for name, row in block["rows"].items():
            ratio = row["read_ratio_vs_naive"]
            shown = "-" if ratio is None else f"{ratio:.3f}"
            print(f"{layout:<10} {name:<15} {row['mib_per_s']:>9.1f} {row['speedup_vs_naive']:>8.2f} "
                  f"{row['cpu_us_per_write']:>12.0f} {row['bytes_read']:>12} {row['reads']:>6} {shown:>10} "
                  f"{row['calls']:>6}")
        print(f"{layout:<10} contents identical across writers: {'yes' if block['contents_match'] else 'NO'}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small file, one pass (for tests)")
    p.add_argument("--size", type=int, default=None, help="file size in MiB (default 512, quick 16)")
    p.add_argument("--repeat", type=int, default=None, help="passes per writer (default 3, quick 1)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--dir", default=None, help="where to make the files (default: a temporary directory)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args(argv)
    size = (args.size or (16 if args.quick else 512)) << 20
    repeat = args.repeat or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="largezero-bench-", dir=args.dir) as workdir:
        probe = os.path.join(workdir, "probe")
        make_file(probe, "sparse", 1 << 20)
        try:
            with opened(probe) as tgt:
                tgt.direct_fd()
        except LargezeroError as err:
            print(f"skipped: {err}", file=sys.stderr)
            return 2
        res = bench(size, repeat, args.seed, workdir)
    if args.json:
        json.dump(res, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_table(res)
    bad = [lay for lay, b in res["layouts"].items() if not b["contents_match"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
