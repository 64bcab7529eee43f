"""Turning a run into numbers: medians, ratios against the best peer, fractions of the limits,
the issue's targets (reported, never asserted), and the table, JSON and chart.
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import statistics
import subprocess
from typing import Any

from .._record import record
from ..sysfiles import read_fields
from ..units import format_size
from .contenders import BUFFERED, DIRECT, LIMIT, OFFLOAD, PEER
from .runner import BenchRun, ContenderRun, Scenario

GIB = float(1 << 30)


@record
class Row:
    """One contender in one scenario, summarised over its rounds."""

    key: str
    label: str
    family: str
    mode: str  # resolved: buffered, direct or offload
    detail: str
    rounds: int
    seconds: float | None  # median wall time
    gib_s: float | None
    user: float | None
    sys: float | None
    write_syscalls: int | None
    iovecs: int | None
    rss_peak: int | None
    device_writes: int | None
    device_write_bytes: int | None
    verified: bool
    failed: str | None
    best_peer: str | None = None
    vs_best_peer: float | None = None  # best peer's median time / this one's: > 1 is faster
    of_limit: float | None = None  # this throughput / the ceiling of its mode
    spread: float | None = None  # (max - min) / median of the round times

    def to_dict(self, samples: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items()}
        for k in ("seconds", "gib_s", "user", "sys", "vs_best_peer", "of_limit", "spread"):
            if d[k] is not None:
                d[k] = round(d[k], 6)
        if samples is not None:
            d["samples"] = samples
        return d


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _imedian(values: list[int | None]) -> int | None:
    vals = [v for v in values if v is not None]
    return int(statistics.median(vals)) if vals else None


def summarize(run: ContenderRun, length: int) -> Row:
    c = run.contender
    s = run.samples
    mode = run.resolved_mode or (c.mode if c.mode in (BUFFERED, DIRECT, OFFLOAD) else BUFFERED)
    secs = _median([x.seconds for x in s])
    rss = [x.rss_peak for x in s if x.rss_peak is not None]
    spread = None
    if secs and len(s) > 1:
        spread = (max(x.seconds for x in s) - min(x.seconds for x in s)) / secs
    return Row(
        key=c.key, label=c.label, family=c.family, mode=mode, detail=run.detail, rounds=len(s),
        seconds=secs, gib_s=length / secs / GIB if secs else None,
        user=_median([x.user for x in s]), sys=_median([x.sys for x in s]),
        write_syscalls=_imedian([x.write_syscalls for x in s]), iovecs=_imedian([x.iovecs for x in s]),
        rss_peak=max(rss) if rss else run.rss_tool, device_writes=_imedian([x.device_writes for x in s]),
        device_write_bytes=_imedian([x.device_write_bytes for x in s]),
        verified=bool(s) and all(x.verified for x in s), failed=run.failed, spread=spread,
    )


def scenario_rows(sc: Scenario) -> list[Row]:
    rows = [summarize(r, sc.target.length) for r in sc.runs]
    ok = [r for r in rows if r.seconds and not r.failed]
    peers = [r for r in ok if r.family == PEER]
    limits = {r.mode: r for r in ok if r.family == LIMIT}
    for r in ok:
        same = [p for p in peers if p.mode == r.mode]
        if same:
            best = min(same, key=lambda p: p.seconds or 0.0)
            r.best_peer = best.key
            r.vs_best_peer = (best.seconds or 0.0) / (r.seconds or 1.0)
        lim = limits.get(r.mode)
        if lim and lim.gib_s and r.gib_s:
            r.of_limit = r.gib_s / lim.gib_s
    return rows


# --- the targets of the issue ------------------------------------------------------------------


@record
class Goal:
    goal: str
    scenario: str
    value: float | None
    op: str  # ">=" or "<="
    threshold: float
    detail: str

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.threshold if self.op == ">=" else self.value <= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {"goal": self.goal, "scenario": self.scenario,
                "value": None if self.value is None else round(self.value, 4), "op": self.op,
                "threshold": self.threshold, "met": self.met, "detail": self.detail}


def _by_key(rows: list[Row]) -> dict[str, Row]:
    return {r.key: r for r in rows if r.seconds and not r.failed}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def goals_for(sc: Scenario, rows: list[Row]) -> list[Goal]:
    k = _by_key(rows)
    name = sc.name
    tname = sc.target.name
    out: list[Goal] = []

    def add(goal: str, value: float | None, op: str, threshold: float, detail: str,
            needs: tuple[str, ...]) -> None:
        # A ratio with nothing measurable under it (a system time of 0 on a tiny job) is no
        # verdict either way: the goal is left out rather than listed as neither met nor missed.
        if value is not None and all(n in k for n in needs):
            out.append(Goal(goal, name, value, op, threshold, detail))

    def t(key: str) -> float | None:
        return k[key].seconds if key in k else None

    def g(key: str) -> float | None:
        return k[key].gib_s if key in k else None

    if tname == "file":
        add("O_DIRECT file: >= 2x dd bs=2M oflag=direct", _ratio(g("lz-large-direct"), g("dd-2m-direct")), ">=",
            2.0, "throughput ratio, large --direct / dd", ("lz-large-direct", "dd-2m-direct"))
        add("O_DIRECT file: >= 2.3x the 4 KiB zero-page path", _ratio(g("lz-large-direct"), g("lz-page-direct")),
            ">=", 2.3, "throughput ratio, large --direct / page --direct", ("lz-large-direct", "lz-page-direct"))
        add("O_DIRECT file: >= 90% of the raw O_DIRECT ceiling", _ratio(g("lz-large-direct"), g("limit-direct")),
            ">=", 0.9, "fraction of one-iovec contiguous-buffer pwritev", ("lz-large-direct", "limit-direct"))
        if "lz-large-direct" in k and "lz-page-direct" in k:
            a, b = k["lz-large-direct"].sys, k["lz-page-direct"].sys
            floor = k["limit-direct"].sys if "limit-direct" in k else None
            detail = f"sys {a:.4f} s vs {b:.4f} s" if a is not None and b is not None else ""
            if floor is not None:
                detail += f"; the O_DIRECT ceiling itself takes {floor:.4f} s"
            add("O_DIRECT file: system CPU <= 0.1x the 4 KiB zero-page path", _ratio(a, b), "<=", 0.1, detail,
                ("lz-large-direct", "lz-page-direct"))
    if tname == "loop-nowz":
        add("no write-zeroes: never slower than blkdiscard -z", _ratio(t("blkdiscard-z"), t("lz-auto")), ">=", 1.0,
            "speed ratio, auto / blkdiscard -z", ("lz-auto", "blkdiscard-z"))
        if "lz-auto" in k and "blkdiscard-z" in k:
            a2, b2 = k["lz-auto"].device_writes, k["blkdiscard-z"].device_writes
            add("no write-zeroes: <= 0.45x blkdiscard -z's device requests", _ratio(a2, b2), "<=", 0.45,
                f"{a2} vs {b2} write requests", ("lz-auto", "blkdiscard-z"))
    if sc.target.kind == "file":
        buffered_peers = [r for r in k.values() if r.family == PEER and r.mode == BUFFERED]
        if sc.state != "cold":
            add("buffered file, warm cache: >= 1.3x dd bs=2M", _ratio(g("lz-large-buffered"), g("dd-2m-buffered")),
                ">=", 1.3, "throughput ratio, large / dd bs=2M", ("lz-large-buffered", "dd-2m-buffered"))
        if buffered_peers and "lz-large-buffered" in k:
            best = max(buffered_peers, key=lambda r: r.gib_s or 0.0)
            add("buffered file: >= 0.95x the best peer in every cache state",
                _ratio(g("lz-large-buffered"), best.gib_s), ">=", 0.95, f"best buffered peer: {best.label}",
                ("lz-large-buffered",))
    auto = k.get("lz-auto")
    if auto and auto.mode == OFFLOAD:
        peer = "fallocate-z" if sc.target.kind == "file" else "blkdiscard-z"
        add(f"auto with offload: within 2x of {k[peer].label if peer in k else peer}", _ratio(t("lz-auto"), t(peer)),
            "<=", 2.0, f"time ratio, auto ({auto.detail}) / {peer}", ("lz-auto", peer))
    for mode in (BUFFERED, DIRECT):
        lz, ref = f"lz-large-{mode}", f"ref-pwritev-{mode}"
        a3, b3 = t(lz), t(ref)
        extra = f"{(a3 - b3) * 1e3:+.2f} ms a call" if a3 is not None and b3 is not None else ""
        add(f"API overhead ({mode}): zero_range <= 1.1x a bare pwritev loop", _ratio(a3, b3), "<=", 1.1,
            f"time ratio, same buffer and call size; {extra}", (lz, ref))
    return out


def all_goals(run: BenchRun, rows: dict[str, list[Row]]) -> list[Goal]:
    out: list[Goal] = []
    for sc in run.scenarios:
        out += goals_for(sc, rows[sc.name])
    for p in run.probe:
        out.append(Goal(f"peak RSS growth of a {format_size(p.length)} job < 8 MiB", f"probe: {p.label}",
                        None if p.rss_growth is None else p.rss_growth / (1 << 20), "<=", 8.0,
                        f"MiB of VmHWM growth; {p.seconds:.3f} s; verified {p.verified}"))
    return out


# --- environment ----------------------------------------------------------------------------


def _first_line(argv: list[str]) -> str | None:
    if not shutil.which(argv[0]):
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout or done.stderr).splitlines()[0] if (done.stdout or done.stderr) else None


def environment() -> dict[str, Any]:
    from .._version import __version__
    from ..kconfig import persistent_huge_zero_folio
    from ..mm.zero_page import large_zero_page, pmd_size, thp_status, zero_page

    cpu = read_fields("/proc/cpuinfo").get("model name", "?")
    mem_kib = read_fields("/proc/meminfo").get("MemTotal", "").removesuffix(" kB")
    mem = int(mem_kib) * 1024 if mem_kib.isdigit() else None
    buffers: dict[str, Any] = {"ZERO_PAGE": zero_page().describe()}
    for backing in ("huge-zero-folio", "zero-page", "allocated"):
        b = large_zero_page(backing)
        buffers[backing] = b.describe() if b else None
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory": mem,
        "python": platform.python_version(),
        "largezero": __version__,
        "thp": thp_status(),
        "pmd_size": pmd_size(),
        "persistent_huge_zero_folio": persistent_huge_zero_folio(),
        "zero_buffers": buffers,
        "tools": {"dd": _first_line(["dd", "--version"]), "fallocate": _first_line(["fallocate", "--version"]),
                  "blkdiscard": _first_line(["blkdiscard", "--version"])},
        "root": os.geteuid() == 0,
    }


# --- the report ---------------------------------------------------------------------------


def build_report(run: BenchRun, env: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything, as one JSON-ready dict."""
    rows = {sc.name: scenario_rows(sc) for sc in run.scenarios}
    goals = all_goals(run, rows)
    scenarios = []
    for sc in run.scenarios:
        srows = rows[sc.name]
        by = {r.key: r for r in srows}
        scenarios.append({
            "name": sc.name,
            "target": sc.target.to_dict(),
            "cache_state": sc.state,
            "cache_observed": sc.observed.to_dict() if sc.observed else None,
            "buffered_sync": sc.target.kind == "block",
            "limits_gib_s": {m: (by[f"limit-{m}"].gib_s if f"limit-{m}" in by else None) for m in (DIRECT, BUFFERED)},
            "seconds": round(sc.seconds, 3),
            "rows": [r.to_dict([s.__dict__ for s in run_.samples]) for r, run_ in zip(srows, sc.runs, strict=True)],
        })
    env = dict(env if env is not None else environment())
    env["loadavg"] = f"{run.load[0]} at the start, {run.load[1]} at the end"
    return {
        "environment": env,
        "config": run.config.to_dict(),
        "scenarios": scenarios,
        "goals": [g.to_dict() for g in goals],
        "rss_probe": [p.__dict__ for p in run.probe],
        "skipped": run.skipped,
        "seconds": round(run.seconds, 3),
    }
