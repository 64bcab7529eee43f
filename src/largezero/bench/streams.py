"""The stream benchmark: ``largezero cat`` against the tools people pipe zeros from.

Three cases, each a whole pipeline timed from the first process started to the last one done,
peers measured in the same run, one after the other:

* ``pipe``: zeros into a pipe read by ``dd of=/dev/null bs=1M``, against ``head -c N /dev/zero``
  and ``dd if=/dev/zero bs=1M`` (target: largezero >= 4x both);
* ``tcp``: zeros into a loopback TCP socket (127.0.0.1 only) read by a small receiver process,
  against ``head -c`` (target >= 2x);
* ``sparse``: an image, 90% holes, streamed into the same pipe, against ``cat image`` (target
  >= 2x, and the output's sha256 equal to cat's).

The machine may be shared: each contender runs ``rounds`` times and the best is kept, and the
ratios, not the absolute numbers, are what the targets are about.
Run ``python -m largezero.bench.streams [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from ..table import Table
from ..units import format_size

GIB = 1 << 30
MIB = 1 << 20
CAT = f"{shlex.quote(sys.executable)} -m largezero cat"
SINK = "dd of=/dev/null bs=1M status=none"
TARGETS = {"pipe": 4.0, "tcp": 2.0, "sparse": 2.0}

# The receiver: accepts one connection on 127.0.0.1, counts bytes to EOF, prints the count.
RECEIVER = r"""
import socket, sys
srv = socket.create_server(("127.0.0.1", 0)); srv.settimeout(120)
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept(); conn.settimeout(120)
buf = bytearray(1 << 20); total = 0
while True:
    n = conn.recv_into(buf)
    if not n:
        break
    total += n
print(total, flush=True)
"""


def _cpu() -> tuple[float, float]:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime, ru.ru_stime


def _timed_shell(line: str) -> tuple[float, float, float, bytes]:
    """Wall seconds, children's user and sys CPU, and stderr of one shell pipeline."""
    u0, s0 = _cpu()
    t0 = time.perf_counter()
    done = subprocess.run(["sh", "-c", line], capture_output=True, timeout=600, check=False)
    wall = time.perf_counter() - t0
    u1, s1 = _cpu()
    if done.returncode != 0:
        raise RuntimeError(f"{line!r} failed ({done.returncode}): {done.stderr.decode().strip()[:200]}")
    return wall, u1 - u0, s1 - s0, done.stderr


def _rss(stderr: bytes) -> int | None:
    for line in reversed(stderr.decode(errors="replace").splitlines()):
        if line.startswith("{"):
            value = json.loads(line).get("rss_growth_bytes")
            return int(value) if value is not None else None
    return None


def _best(case: str, contender: str, nbytes: int, line: str, rounds: int) -> dict[str, Any]:
    best: dict[str, Any] | None = None
    for _ in range(rounds):
        wall, user, sys_cpu, err = _timed_shell(line)
        if best is None or wall < best["seconds"]:
            best = {"case": case, "contender": contender, "bytes": nbytes, "seconds": wall,
                    "cpu_user": user, "cpu_sys": sys_cpu, "rss_growth_bytes": _rss(err), "command": line}
    assert best is not None
    return best


def _tcp_once(sender: list[str]) -> tuple[float, float, float, bytes, int]:
    """One loopback transfer: the sender's stdout is a connected TCP socket."""
    u0, s0 = _cpu()
    recv = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    assert recv.stdout is not None
    try:
        port = int(recv.stdout.readline())
        t0 = time.perf_counter()
        # Blocking: a socket with a timeout is O_NONBLOCK, and head would stop at EAGAIN.
        with socket.create_connection(("127.0.0.1", port)) as conn:
            send = subprocess.Popen(sender, stdout=conn.fileno(), stderr=subprocess.PIPE)
        _, err = send.communicate(timeout=600)
        got = int(recv.stdout.readline() or 0)
        recv.wait(timeout=120)
        wall = time.perf_counter() - t0
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()
    u1, s1 = _cpu()
    if send.returncode != 0:
        raise RuntimeError(f"{sender} failed ({send.returncode}): {err.decode().strip()[:200]}")
    return wall, u1 - u0, s1 - s0, err, got


def _tcp_best(contender: str, sender: list[str], nbytes: int, rounds: int) -> dict[str, Any]:
    best: dict[str, Any] | None = None
    for _ in range(rounds):
        wall, user, sys_cpu, err, got = _tcp_once(sender)
        if got != nbytes:
            raise RuntimeError(f"{contender}: receiver got {got} of {nbytes} bytes")
        if best is None or wall < best["seconds"]:
            best = {"case": "tcp", "contender": contender, "bytes": nbytes, "seconds": wall, "cpu_user": user,
                    "cpu_sys": sys_cpu, "rss_growth_bytes": _rss(err), "command": shlex.join(sender)}
    assert best is not None
    return best


def make_sparse_image(path: str, size: int, data_fraction: float = 0.1) -> int:
    """``size`` bytes, data in 1 MiB runs spread evenly, the rest holes; returns the data bytes."""
    chunk = os.urandom(MIB)
    stride = int(MIB / data_fraction)
    data = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, size)
        for i, offset in enumerate(range(0, size - MIB + 1, stride)):
            os.pwrite(fd, i.to_bytes(8, "little") + chunk[8:], offset)
            data += MIB
        os.fsync(fd)
    finally:
        os.close(fd)
    return data


def _sha(line: str) -> str:
    out = subprocess.run(["sh", "-c", f"{line} | sha256sum"], capture_output=True, text=True, timeout=600,
                         check=True).stdout
    return out.split()[0]


def _ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row gets ``speedup``: how many times faster largezero was than it, same case."""
    ours = {r["case"]: r for r in rows if r["contender"] == "largezero cat"}
    for r in rows:
        mine = ours.get(r["case"])
        base = None if mine is None else mine["seconds"]
        r["speedup"] = None if base is None or base <= 0 else r["seconds"] / base
        # CPU of the whole pipeline (user + sys of every process): steadier than wall time on a shared machine.
        cpu, base_cpu = r["cpu_user"] + r["cpu_sys"], None if mine is None else mine["cpu_user"] + mine["cpu_sys"]
        r["cpu_ratio"] = None if not base_cpu else cpu / base_cpu
        r["gib_per_s"] = r["bytes"] / GIB / r["seconds"] if r["seconds"] > 0 else None
        is_peer = r["contender"] != "largezero cat"
        r["target"] = TARGETS.get(r["case"]) if is_peer else None
        r["met"] = None if r["target"] is None or r["speedup"] is None else r["speedup"] >= r["target"]
    return rows


def run_stream_bench(quick: bool) -> list[dict[str, Any]]:
    """Run the three cases; quick mode: 512 MiB streams and a 256 MiB image, one round each."""
    rounds = 1 if quick else 2
    n = 512 * MIB if quick else 8 * GIB
    rows = [
        _best("pipe", "largezero cat", n, f"{CAT} -l {n} --json | {SINK}", rounds),
        _best("pipe", "head -c", n, f"head -c {n} /dev/zero | {SINK}", rounds),
        _best("pipe", "dd bs=1M", n, f"dd if=/dev/zero bs=1M count={n // MIB} status=none | {SINK}", rounds),
        _tcp_best("largezero cat", [*shlex.split(CAT), "-l", str(n), "--json"], n, rounds),
        _tcp_best("head -c", ["head", "-c", str(n), "/dev/zero"], n, rounds),
    ]
    size = 256 * MIB if quick else 4 * GIB
    with tempfile.TemporaryDirectory(prefix="largezero-streams-", dir=os.environ.get("LARGEZERO_BENCH_DIR")) as d:
        image = os.path.join(d, "sparse.img")
        data = make_sparse_image(image, size)
        q = shlex.quote(image)
        ours, theirs = f"{CAT} {q} --json", f"cat {q}"
        _timed_shell(f"{theirs} | {SINK}")  # warm the page cache for both, outside the timing
        mine = _best("sparse", "largezero cat", size, f"{ours} | {SINK}", rounds)
        peer = _best("sparse", "cat", size, f"{theirs} | {SINK}", rounds)
        sha_ours, sha_theirs = _sha(ours + " 2>/dev/null"), _sha(theirs)
        for r in (mine, peer):
            r["data_bytes"] = data
            r["sha256_equal"] = sha_ours == sha_theirs
        rows += [mine, peer]
    return _ratios(rows)


def render_stream_rows(rows: list[dict[str, Any]]) -> str:
    """A table (largezero.table): one line per contender, the speedup against the target."""
    import io

    table = Table(("case", "contender", "size", "seconds", "GiB/s", "cpu s", "x slower", "x cpu", "target", "note"),
                  right=("size", "seconds", "GiB/s", "cpu s", "x slower", "x cpu", "target"))
    for r in rows:
        notes = []
        if r.get("met") is not None:
            notes.append("met" if r["met"] else "MISSED")
        if r.get("rss_growth_bytes") is not None:
            notes.append(f"rss +{format_size(r['rss_growth_bytes'])}")
        if "sha256_equal" in r:
            notes.append("sha256 equal" if r["sha256_equal"] else "SHA256 DIFFERS")
        table.add_row(r["case"], r["contender"], format_size(r["bytes"], "steady"), f"{r['seconds']:.3f}",
                      f"{r['gib_per_s']:.2f}" if r.get("gib_per_s") else "-", f"{r['cpu_user'] + r['cpu_sys']:.2f}",
                      f"{r['speedup']:.2f}" if r.get("speedup") is not None else "-",
                      f"{r['cpu_ratio']:.2f}" if r.get("cpu_ratio") is not None else "-",
                      f">={r['target']:g}" if r.get("target") else "", ", ".join(notes))
    out = io.StringIO()
    table.print(out, compact=True, wrap=False, pipe_width=160)
    return out.getvalue() + ("x slower: the contender's wall time over largezero's, whole pipeline, same case; "
                             "x cpu: the same for user+sys CPU of all its processes. The machine is shared: best "
                             "of the rounds run.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m largezero.bench.streams", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="512 MiB streams and a 256 MiB image, one round")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    rows = run_stream_bench(args.quick)
    print(json.dumps(rows, indent=2) if args.json else render_stream_rows(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
