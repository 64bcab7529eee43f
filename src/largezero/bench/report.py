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
import sys
from typing import Any

from .._record import record
from ..sysfiles import read_fields
from ..units import format_size
from .contenders import BUFFERED, DIRECT, LARGEZERO, LIMIT, OFFLOAD, PEER, REFERENCE
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
    from .. import __version__
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


def _fmt_s(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x * 1000:.2f} ms" if x < 0.1 else f"{x:.3f} s"


def _fmt_cpu(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _fmt_rss(n: int | None) -> str:
    if n is None:
        return "-"
    return format_size(n) if n else "0"


def _fmt_x(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _fmt_pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


HEADERS = ("contender", "mode", "median", "spread", "GiB/s", "vs best peer", "of limit", "user s", "sys s",
           "writes", "iovecs", "peak RSS", "dev reqs", "ok")


def table_rows(report: dict[str, Any], scenario: dict[str, Any]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for r in scenario["rows"]:
        if r["failed"]:
            out.append((r["label"], r["mode"], "n/a", "", "", "", "", "", "", "", "", "", "", "n/a"))
            continue
        out.append((
            r["label"], r["mode"], _fmt_s(r["seconds"]), _fmt_pct(r["spread"]),
            "-" if r["gib_s"] is None else f"{r['gib_s']:.2f}",
            _fmt_x(r["vs_best_peer"]), _fmt_pct(r["of_limit"]), _fmt_cpu(r["user"]), _fmt_cpu(r["sys"]),
            "-" if r["write_syscalls"] is None else str(r["write_syscalls"]),
            "-" if r["iovecs"] is None else str(r["iovecs"]), _fmt_rss(r["rss_peak"]),
            "-" if r["device_writes"] is None else str(r["device_writes"]),
            "ok" if r["verified"] else "NOT ZERO",
        ))
    return out


def scenario_title(sc: dict[str, Any]) -> str:
    t = sc["target"]
    obs = sc["cache_observed"]
    cache = obs["text"] if obs else sc["cache_state"]
    sync = "; buffered rows end with fdatasync" if sc["buffered_sync"] else "; buffered = into the page cache"
    return f"{sc['name']}: {format_size(t['length'])} of a {t['description']}; cache {cache}{sync}"


def _notes(sc: dict[str, Any]) -> list[str]:
    return [f"  n/a {r['label']}: {r['failed']}" for r in sc["rows"] if r["failed"]]


def _render_rich(report: dict[str, Any], header: str, out: Any, width: int) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=out, width=width)
    console.print(escape(header))
    for sc in report["scenarios"]:
        table = Table(title=escape(scenario_title(sc)), title_justify="left")
        for h in HEADERS:
            table.add_column(h, justify="left" if h in ("contender", "mode", "ok") else "right", no_wrap=True)
        for row in table_rows(report, sc):
            table.add_row(*(escape(cell) for cell in row))
        console.print(table)
        for note in _notes(sc):
            console.print(escape(note))


def _render_plain(report: dict[str, Any], header: str, out: Any) -> None:
    print(header, file=out)
    for sc in report["scenarios"]:
        print(f"\n{scenario_title(sc)}", file=out)
        body = table_rows(report, sc)
        widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(HEADERS)]
        print("  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True)), file=out)
        for b in body:
            print("  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)), file=out)
        for note in _notes(sc):
            print(note, file=out)


def render_text(report: dict[str, Any], out: Any = None, width: int = 180) -> None:
    """The tables (rich when installed, plain otherwise), the goals and the probe."""
    out = out or sys.stdout
    env = report["environment"]
    header = (f"largezero bench: kernel {env['kernel']}, {env['cpus']} CPUs ({env['cpu']}), "
              f"THP {env['thp'].get('enabled')}, "
              f"CONFIG_PERSISTENT_HUGE_ZERO_FOLIO={env['persistent_huge_zero_folio']}; "
              f"{report['config']['rounds']} rounds, medians, interleaved; load {env.get('loadavg', '?')}")
    try:
        import rich  # noqa: F401
    except ImportError:
        _render_plain(report, header, out)
    else:
        _render_rich(report, header, out, width)
    print("\nTargets (reported, not asserted):", file=out)
    for g in report["goals"]:
        mark = {True: "met", False: "NOT MET", None: "n/a"}[g["met"]]
        value = "-" if g["value"] is None else f"{g['value']:.3f}"
        print(f"  [{mark:7}] {g['scenario']:16} {g['goal']}: {value} (want {g['op']} {g['threshold']}; {g['detail']})",
              file=out)
    for name, why in report["skipped"].items():
        print(f"  skipped target {name}: {why}", file=out)
    print(f"\n{report['seconds']:.1f} s in all", file=out)


def render_markdown(report: dict[str, Any]) -> str:
    """The same tables and targets as GitHub markdown, for docs/performance.md."""
    lines: list[str] = []
    env = report["environment"]
    lines.append(f"Linux {env['kernel']}, {env['cpus']} CPUs ({env['cpu']}), THP `{env['thp'].get('enabled')}`, "
                 f"`CONFIG_PERSISTENT_HUGE_ZERO_FOLIO={env['persistent_huge_zero_folio']}`; "
                 f"{report['config']['rounds']} interleaved rounds, medians; load average "
                 f"{env.get('loadavg', '?')}; {report['seconds']:.0f} s in all.")
    cols = ("contender", "mode", "median", "spread", "GiB/s", "vs best peer", "of limit", "sys s", "writes",
            "iovecs", "peak RSS", "dev reqs")
    keep = [HEADERS.index(c) for c in cols]
    for sc in report["scenarios"]:
        lines += ["", f"#### {scenario_title(sc)}", "", "| " + " | ".join(cols) + " |",
                  "|" + "|".join("---" if c in ("contender", "mode") else "---:" for c in cols) + "|"]
        for row in table_rows(report, sc):
            cells = [row[i] for i in keep]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        for note in _notes(sc):
            lines.append(f"\n{note.strip()}")
    lines += ["", "#### Targets (reported, never asserted)", "",
              "| scenario | target | value | wanted | met | detail |", "|---|---|---:|---|---|---|"]
    for g in report["goals"]:
        value = "-" if g["value"] is None else f"{g['value']:.3f}"
        mark = {True: "yes", False: "**no**", None: "n/a"}[g["met"]]
        lines.append(f"| {g['scenario']} | {g['goal']} | {value} | {g['op']} {g['threshold']} | {mark} | "
                     f"{g['detail']} |")
    return "\n".join(lines) + "\n"


# --- the chart ----------------------------------------------------------------------------

COLORS = {LARGEZERO: "#1f77b4", PEER: "#ff7f0e", LIMIT: "#7f7f7f", REFERENCE: "#2ca02c"}


HEADLINE = ("lz-auto", "lz-large-buffered", "lz-large-direct", "lz-page-buffered", "lz-page-direct",
            "dd-2m-buffered", "dd-2m-direct", "dd-4k-buffered", "fallocate-z", "blkdiscard-z", "pg-buffered",
            "pg-direct", "py-write-bytes", "limit-buffered", "limit-direct")


def plot(report: dict[str, Any], path: str, keys: tuple[str, ...] | None = None, columns: int | None = None) -> None:
    """One panel per scenario: throughput of each contender (log scale), ceilings as lines.

    ``keys`` keeps only those contenders (e.g. :data:`HEADLINE`); ``columns`` lays the panels
    out in a grid (default: two columns from three scenarios on).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = [s for s in report["scenarios"] if any(r["gib_s"] for r in s["rows"])]
    if not scenarios:
        raise ValueError("nothing to plot")
    ncols = columns or (2 if len(scenarios) > 2 else 1)
    nrows = -(-len(scenarios) // ncols)
    per_panel = max(sum(1 for r in s["rows"] if r["gib_s"] and (keys is None or r["key"] in keys)) for s in scenarios)
    panel_h = max(2.0, 0.2 * per_panel + 0.9)
    fig, axes = plt.subplots(nrows, ncols, figsize=(7.5 * ncols, panel_h * nrows + 0.6), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[len(scenarios):]:
        ax.set_visible(False)
    for ax, sc in zip(flat, scenarios, strict=False):
        rows = [r for r in sc["rows"] if r["gib_s"] and (keys is None or r["key"] in keys)]
        values = [r["gib_s"] for r in rows]
        bars = ax.barh(range(len(rows)), values, color=[COLORS.get(r["family"], "#999999") for r in rows])
        for bar, r in zip(bars, rows, strict=True):
            if r["mode"] == "offload":
                bar.set_hatch("///")  # no data moved: "GiB/s" is the range over the call's time
        ax.set_yticks(range(len(rows)), [r["label"] for r in rows], fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("GiB/s (median, log scale)", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        for mode, style in (("direct", "--"), ("buffered", ":")):
            lim = sc["limits_gib_s"].get(mode)
            if lim:
                ax.axvline(lim, color="black", linestyle=style, linewidth=0.8, label=f"{mode} ceiling")
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:.1f}", va="center", fontsize=6)
        ax.set_title(_short_title(sc), fontsize=8, loc="left")
        ax.legend(fontsize=6, loc="lower right")
    env = report["environment"]
    fig.suptitle(f"largezero bench - Linux {env['kernel']}, {env['cpus']} CPUs, "
                 f"{report['config']['rounds']} interleaved rounds. Blue: largezero; orange: peers; "
                 "grey: ceilings; green: bare pwritev; hatched: offload", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (panel_h * nrows + 0.6)))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _short_title(sc: dict[str, Any]) -> str:
    obs = sc["cache_observed"]
    cache = obs["text"] if obs else sc["cache_state"]
    return f"{sc['name']} - {format_size(sc['target']['length'])}, {cache}"

