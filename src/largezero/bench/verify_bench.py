"""Benchmark: ``largezero verify`` against ``cmp`` and ``dd iflag=direct`` on the same device.

One run, one zeroed loop device over a ramfs file (root only), every contender run as a
process the way a user runs it, best of ``repeat``; the bdev page cache is dropped
(BLKFLSBUF, on our own loop device) before each run so that no contender reads another's
cache. Goals (issue 19): ``verify --direct`` at least 0.85x the speed of ``dd iflag=direct bs=4M``
(reads two deep with native AIO, compared while the next is read), plain ``verify`` at least
as fast as ``cmp -n N DEV /dev/zero``; each row says its ratio and goal.

    python -m largezero.bench.verify_bench [SIZE] [--json]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import time

from ..scratch import is_root, memfs_loop
from ..syscalls import BLKFLSBUF
from ..units import format_size, parse_size


def _drop_cache(dev: str) -> None:
    fd = os.open(dev, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, BLKFLSBUF)
    finally:
        os.close(fd)


def _contenders(dev: str, size: int) -> list[tuple[str, list[str]]]:
    me = [sys.executable, "-m", "largezero", "verify", dev, "-l", str(size)]
    return [
        ("largezero verify", me),
        ("largezero verify --direct", [*me, "--direct"]),
        ("cmp -n N DEV /dev/zero", ["cmp", "-n", str(size), dev, "/dev/zero"]),
        ("dd iflag=direct bs=4M", ["dd", f"if={dev}", "of=/dev/null", "bs=4M", "iflag=direct",
                                   f"count={size // (4 << 20)}", "status=none"]),
    ]


def run_verify_bench(size: int, repeat: int = 3) -> list[dict[str, object]]:
    """Seconds (best of ``repeat``) and GiB/s of each contender over ``size`` zeroed bytes."""
    if not is_root():
        raise PermissionError("the verify benchmark needs root: it attaches a loop device over ramfs")
    size -= size % (4 << 20)  # dd counts whole 4 MiB blocks
    rows: list[dict[str, object]] = []
    with memfs_loop(size) as dev:
        subprocess.run(["blkdiscard", "-z", dev], check=True, capture_output=True)
        best: dict[str, float] = {}
        for _ in range(repeat):  # interleaved, so a noisy neighbour hurts every contender alike
            for name, argv in _contenders(dev, size):
                _drop_cache(dev)
                started = time.perf_counter()
                done = subprocess.run(argv, capture_output=True, text=True)
                seconds = time.perf_counter() - started
                if done.returncode != 0:
                    raise RuntimeError(f"{name} failed ({done.returncode}): {done.stderr.strip()}")
                best[name] = min(best.get(name, seconds), seconds)
        for name, argv in _contenders(dev, size):
            rows.append({"name": name, "command": " ".join(argv), "bytes": size, "seconds": round(best[name], 4),
                         "gib_per_s": round(size / best[name] / (1 << 30), 2)})
    by = {str(r["name"]): float(str(r["seconds"])) for r in rows}
    ratios = {"largezero verify": by["cmp -n N DEV /dev/zero"] / by["largezero verify"],
              "largezero verify --direct": by["dd iflag=direct bs=4M"] / by["largezero verify --direct"]}
    goals = {"largezero verify": 1.0, "largezero verify --direct": 0.85}
    for r in rows:
        if r["name"] in ratios:
            r["speed_vs_peer"] = round(ratios[str(r["name"])], 2)  # >1: faster than its peer
            r["goal"] = goals[str(r["name"])]
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m largezero.bench.verify_bench", description=__doc__.split("\n")[0])
    p.add_argument("size", nargs="?", default="2G", help="bytes of the ramfs-backed loop device (default 2G)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    try:
        rows = run_verify_bench(parse_size(a.size, what="size"), a.repeat)
    except (PermissionError, RuntimeError, ValueError, subprocess.CalledProcessError) as err:
        print(f"verify_bench: {err}", file=sys.stderr)
        return 2
    if a.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    for r in rows:
        vs = f"  x{r['speed_vs_peer']} vs its peer (goal x{r['goal']})" if "speed_vs_peer" in r else ""
        print(f"{r['name']:<28} {r['seconds']:>8.3f} s  {r['gib_per_s']:>6.2f} GiB/s{vs}")
    print(f"({format_size(int(str(rows[0]['bytes'])))} zeroed ramfs-backed loop device, best of {a.repeat}, "
          f"page cache dropped before each run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
