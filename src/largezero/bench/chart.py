"""The benchmark's chart: one panel per scenario, throughput of each contender on a log scale,
the ceilings as lines. matplotlib is imported only here, only when a chart is asked for."""

from __future__ import annotations

from typing import Any

from ..units import format_size
from .contenders import LARGEZERO, LIMIT, PEER, REFERENCE

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

