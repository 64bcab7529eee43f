"""The command as people run it: ``largezero zero`` as a whole process (exec and start-up
included) beside ``dd``, ``fallocate -z`` and ``blkdiscard -z``, over a sweep of sizes.

Every scenario is one target and one way of writing, each contender a command line; rounds
are interleaved (the order rotates) and medians reported. A C tool starts in ~1.5 ms, so
below some size Python cannot win: :func:`crossovers` names, for each peer, the size from
which the CLI is faster at that size and every larger one.

Between runs the target keeps the state the last run left (written zeros for write paths,
unwritten extents for offload): contenders that do the same kind of work share a scenario,
so the state is the same for all of them. Each run is checked: a pattern written at both
ends of the range beforehand must read back as zeros afterwards.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
from collections.abc import Callable, Iterator, Sequence

from .._record import field, record
from ..scratch import is_root, loop_device, make_image, memfs_mount
from ..units import format_size
from .measure import Spawner
from .startup import bytecode_env, largezero_argv

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
QUICK_SIZES = (4 * KiB, 1 * MiB, 64 * MiB)
FULL_SIZES = (*QUICK_SIZES, 1 * GiB, 8 * GiB)
# A ramfs-backed device lives in memory: on a shared 24 GiB machine 8 GiB of it is too much.
MEMORY_TARGET_MAX = 1 * GiB
MARK = b"\xa5" * 4096
Progress = Callable[[str], None]


@record(frozen=True)
class Job:
    """One contender of a scenario: a label, whether it is ours, and its command line."""

    label: str
    ours: bool
    argv: Callable[[str, int], list[str]]  # (path, length) -> argv; the range is [0, length)


@record
class Measured:
    label: str
    ours: bool
    seconds: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    failed: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    def to_dict(self, length: int) -> dict[str, object]:
        med = self.median
        return {"label": self.label, "ours": self.ours, "median_s": med,
                "gib_s": length / med / GiB if med else None,
                "requests": int(statistics.median(self.requests)) if self.requests else None,
                "rounds": len(self.seconds), "failed": self.failed}


def _lz(*extra: str) -> Callable[[str, int], list[str]]:
    def argv(path: str, length: int) -> list[str]:
        return [*largezero_argv(), "zero", path, "-l", str(length), *extra]

    return argv


def _dd(direct: bool) -> Callable[[str, int], list[str]]:
    def argv(path: str, length: int) -> list[str]:
        bs = 2 * MiB if length >= 2 * MiB else length
        oflag = ["oflag=direct"] if direct else []
        return ["dd", "if=/dev/zero", f"of={path}", f"bs={bs}", f"count={length}", "iflag=count_bytes",
                *oflag, "conv=notrunc", "status=none"]

    return argv


def _fallocate(path: str, length: int) -> list[str]:
    return ["fallocate", "-z", "-l", str(length), path]


def _blkdiscard(path: str, length: int) -> list[str]:
    return ["blkdiscard", "-z", "-l", str(length), path]


# scenario name -> (target kind, contenders). The CLI rows are what a person types.
SCENARIOS: dict[str, tuple[str, list[Job]]] = {
    "file O_DIRECT": ("file", [
        Job("largezero zero -m large --direct", True, _lz("-m", "large", "--direct")),
        Job("dd bs=2M oflag=direct", False, _dd(True)),
    ]),
    "file offload": ("file", [
        Job("largezero zero (auto)", True, _lz()),
        Job("fallocate -z", False, _fallocate),
    ]),
    "ramfs loop (no write-zeroes)": ("loop-nowz", [
        Job("largezero zero (auto)", True, _lz()),
        Job("blkdiscard -z", False, _blkdiscard),
        Job("dd bs=2M oflag=direct", False, _dd(True)),
    ]),
}


def _mark(path: str, length: int) -> None:
    """Pattern at both ends of [0, length): a run that skips its work is caught."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        n = min(len(MARK), length)
        os.pwrite(fd, MARK[:n], 0)
        os.pwrite(fd, MARK[:n], length - n)
        os.fsync(fd)
    finally:
        os.close(fd)


def _zeroed(path: str, length: int) -> bool:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        n = min(len(MARK), length)
        return os.pread(fd, n, 0) == bytes(n) and os.pread(fd, n, length - n) == bytes(n)
    finally:
        os.close(fd)


@contextlib.contextmanager
def scratch_target(kind: str, size: int, workdir: str | None = None) -> Iterator[tuple[str, str | None]]:
    """(path, device name or None) of a fresh target of ``size`` bytes; removed on exit."""
    with contextlib.ExitStack() as stack:
        if kind == "file":
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="largezero-proc-", dir=workdir))
            yield make_image(os.path.join(tmp, "target.img"), size), None
            return
        if kind != "loop-nowz":
            raise ValueError(f"unknown target kind {kind!r}")
        mnt = stack.enter_context(memfs_mount("ramfs"))
        image = make_image(os.path.join(mnt, "loop.img"), size)
        _fill_pages(image, size)
        dev = stack.enter_context(loop_device(image))
        yield dev, os.path.basename(dev)


def _fill_pages(path: str, size: int) -> None:
    """ramfs cannot preallocate: give every sector a page, so the device is all memory."""
    chunk = b"\x5a" * (2 * MiB)
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        pos = 0
        while pos < size:
            pos += os.pwrite(fd, chunk[: min(len(chunk), size - pos)], pos)
    finally:
        os.close(fd)


def run_jobs(path: str, device: str | None, length: int, jobs: Sequence[Job], rounds: int,
             spawner: Spawner, covers: Sequence[Sequence[str]] | None = None) -> list[Measured]:
    """A warm-up round, then ``rounds`` interleaved rounds of every job on [0, length).

    ``covers``: per job, the paths it zeroes (default: ``path``); all are marked before and
    checked after it.
    """
    out = [Measured(j.label, j.ours) for j in jobs]
    paths = [list(c) for c in covers] if covers is not None else [[path] for _ in jobs]
    for rnd in range(-1, rounds):
        shift = max(rnd, 0) % len(jobs)
        for i in [*range(shift, len(jobs)), *range(shift)]:
            m, job = out[i], jobs[i]
            if m.failed:
                continue
            for p in paths[i]:
                _mark(p, length)
            c = spawner.run(job.argv(path, length), device)
            if c.exit_code:
                m.failed = f"exit {c.exit_code}: {c.stderr or 'no message'}"
            elif not all(_zeroed(p, length) for p in paths[i]):
                m.failed = "range not zero afterwards"
            elif rnd >= 0:
                m.seconds.append(c.seconds)
                if c.device is not None:
                    m.requests.append(c.device.write_ios)
    return out


def crossovers(rows: dict[int, list[dict[str, object]]]) -> dict[str, int | None]:
    """For each peer: the smallest size from which the CLI is faster at it and at every larger
    size measured (None: never, at these sizes)."""
    sizes = sorted(rows)
    peers = {str(r["label"]) for rs in rows.values() for r in rs if not r["ours"]}
    out: dict[str, int | None] = {}
    for peer in sorted(peers):
        since: int | None = None
        for size in sizes:
            ours = [r["median_s"] for r in rows[size] if r["ours"] and r["median_s"] is not None]
            theirs = [r["median_s"] for r in rows[size] if r["label"] == peer and r["median_s"] is not None]
            if not ours or not theirs:
                continue
            faster = float(ours[0]) < float(theirs[0])  # type: ignore[arg-type]
            since = (since if since is not None else size) if faster else None
        out[peer] = since
    return out


def run_sweep(sizes: Sequence[int] = QUICK_SIZES, rounds: int = 5, workdir: str | None = None,
              scenarios: Sequence[str] | None = None, progress: Progress | None = None) -> list[dict[str, object]]:
    """Every scenario at every size: rows with medians and ratios to each peer, plus crossovers."""
    report: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="largezero-pyc-") as pyc:
        spawner = Spawner(bytecode_env(pyc))  # as an installed package runs: bytecode cached
        try:
            _sweep(sizes, rounds, workdir, scenarios, progress, spawner, report)
        finally:
            spawner.close()
    return report


def _sweep(sizes: Sequence[int], rounds: int, workdir: str | None, scenarios: Sequence[str] | None,
           progress: Progress | None, spawner: Spawner, report: list[dict[str, object]]) -> None:
    for name in scenarios or list(SCENARIOS):
        kind, jobs = SCENARIOS[name]
        if kind == "loop-nowz" and not is_root():
            report.append({"name": name, "skipped": "needs root (loop devices)"})
            continue
        usable = [s for s in sizes if kind == "file" or s <= MEMORY_TARGET_MAX]
        by_size: dict[int, list[dict[str, object]]] = {}
        with scratch_target(kind, max(usable), workdir) as (path, device):
            for size in usable:
                if progress:
                    progress(f"whole process: {name}, {format_size(size, 'exact')}")
                measured = run_jobs(path, device, size, jobs, rounds, spawner)
                by_size[size] = _with_ratios([m.to_dict(size) for m in measured])
        report.append({"name": name, "target": kind, "sizes": {str(s): rs for s, rs in by_size.items()},
                       "faster_from": crossovers(by_size),
                       "not_run": [s for s in sizes if s not in usable]})


def _with_ratios(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Each row gets ``x_ours``: the CLI's speed over its own (>1: the CLI is faster)."""
    ours = next((r["median_s"] for r in rows if r["ours"]), None)
    for r in rows:
        med = r["median_s"]
        r["x_ours"] = float(med) / float(ours) if ours and med else None  # type: ignore[arg-type]
    return rows


def render_sweep(report: Sequence[dict[str, object]]) -> str:
    lines = ["whole process, exec included (median seconds; x = the CLI's speed over that row's)"]
    for sc in report:
        if "skipped" in sc:
            lines.append(f"  {sc['name']}: skipped ({sc['skipped']})")
            continue
        lines.append(f"  {sc['name']}:")
        sizes: dict[str, list[dict[str, object]]] = sc["sizes"]  # type: ignore[assignment]
        for size, rows in sizes.items():
            for r in rows:
                if r["failed"]:
                    cell = f"failed: {r['failed']}"
                else:
                    req = f"  {r['requests']} requests" if r["requests"] is not None else ""
                    x = "" if r["ours"] or r["x_ours"] is None else f"  CLI {r['x_ours']:.2f}x"
                    cell = f"{float(r['median_s']):8.4f} s  {float(r['gib_s']):6.2f} GiB/s{req}{x}"  # type: ignore[arg-type]
                lines.append(f"    {format_size(int(size), 'exact'):>8}  {str(r['label']):34} {cell}")
        faster: dict[str, int | None] = sc["faster_from"]  # type: ignore[assignment]
        for peer, since in faster.items():
            when = f"from {format_size(since, 'exact')} up" if since is not None else "at none of these sizes"
            lines.append(f"    the CLI beats {peer} {when}")
        if sc.get("not_run"):
            skipped = ", ".join(format_size(n, "exact") for n in sc["not_run"])  # type: ignore[attr-defined]
            lines.append(f"    not run (memory-backed, shared machine): {skipped}")
    return "\n".join(lines)
