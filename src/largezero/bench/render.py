"""The benchmark report as text and as markdown, through the one table renderer
(``largezero.table``): one table per scenario, then the targets and what was skipped."""

from __future__ import annotations

import sys
from typing import Any

from ..table import Table
from ..units import format_size


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


def scenario_table(report: dict[str, Any], sc: dict[str, Any]) -> Table:
    table = Table(HEADERS, right=[h for h in HEADERS if h not in ("contender", "mode", "ok")],
                  title=scenario_title(sc))
    for row in table_rows(report, sc):
        table.add_row(*row)
    return table


def render_text(report: dict[str, Any], out: Any = None, width: int = 180) -> None:
    """The tables, the goals and the probe; ``width``: the tables' width off a terminal."""
    out = out or sys.stdout
    env = report["environment"]
    header = (f"largezero bench: kernel {env['kernel']}, {env['cpus']} CPUs ({env['cpu']}), "
              f"THP {env['thp'].get('enabled')}, "
              f"CONFIG_PERSISTENT_HUGE_ZERO_FOLIO={env['persistent_huge_zero_folio']}; "
              f"{report['config']['rounds']} rounds, medians, interleaved; load {env.get('loadavg', '?')}")
    print(header, file=out)
    for sc in report["scenarios"]:
        scenario_table(report, sc).print(out, wrap=False, pipe_width=width)
        for note in _notes(sc):
            print(note, file=out)
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
    for sc in report["scenarios"]:
        lines += ["", f"#### {scenario_title(sc)}", "", *scenario_table(report, sc).markdown(cols)]
        for note in _notes(sc):
            lines.append(f"\n{note.strip()}")
    goals = Table(("scenario", "target", "value", "wanted", "met", "detail"), right=("value",))
    for g in report["goals"]:
        value = "-" if g["value"] is None else f"{g['value']:.3f}"
        mark = {True: "yes", False: "**no**", None: "n/a"}[g["met"]]
        goals.add_row(g["scenario"], g["goal"], value, f"{g['op']} {g['threshold']}", mark, str(g["detail"]))
    lines += ["", "#### Targets (reported, never asserted)", "", *goals.markdown()]
    return "\n".join(lines) + "\n"


