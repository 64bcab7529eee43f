"""The table and the plot of ``largezero model``."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import UsageError
from ..model.limits import QueueLimits
from ..model.predict import model_facts, model_plan
from ..model.run import compare
from ..model.sources import PAGE_SIZES, ZeroSource, make_source, pmd_size_for
from ..table import Table
from ..units import format_size

_COLUMNS = (("source", "source"), ("bios", "bios"), ("bvecs", "bvecs"), ("segments", "segs"),
            ("requests", "requests"), ("merges", "merges"), ("bytes_per_request", "B/req"),
            ("memory_cost", "memory"))


def _short(n: float) -> str:
    """4K, 64K, 2M, 1.2M: sizes in a narrow column."""
    for unit, shift in (("P", 50), ("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift:
            v = n / (1 << shift)
            return f"{v:.0f}{unit}" if v == int(v) else f"{v:.1f}{unit}"
    return f"{n:.0f}"


def _cell(key: str, entry: dict[str, Any]) -> str:
    value = entry.get(key)
    if key == "source":
        name = str(value)
        if value == "allocated":
            name += f"/{_short(entry['contiguity'])}"
        if entry.get("block_size"):
            name = f"{_short(entry['block_size'])} {name} {entry['kernel']}"
        return name
    if value is None:
        return "-"
    if key in ("bytes_per_request", "memory_cost"):
        return _short(float(value))
    # Exact below ten million (the JSON is always exact), three figures above.
    return f"{value:,}" if value < 10**7 else f"{value:.3g}".replace("e+", "e")


def print_table(report: dict[str, Any]) -> None:
    lim = report["limits"]
    title = (f"{report['path']} path, {format_size(report['length']) if report['length'] else 'padding'}"
             f" on {report['limits_from']}: max_sectors {format_size(lim['max_sectors'] * 512)}, "
             f"{lim['max_segments']} segments of {format_size(lim['max_segment_size'])}, "
             f"virt boundary {lim['virt_boundary_mask']:#x}, write-zeroes {format_size(lim['write_zeroes_max_bytes'])}"
             f"; {report.get('device_class', 'request-based')}")
    k = report["kernel"]
    footer = (f"kernel {k['release']}: CONFIG_PERSISTENT_HUGE_ZERO_FOLIO={k['CONFIG_PERSISTENT_HUGE_ZERO_FOLIO']}, "
              f"largest_zero_folio() is {k['largest_zero_folio']}")
    rows = [[_cell(key, e) for key, _ in _COLUMNS] for e in report["sources"]]
    errors = [f"{_cell('source', e)}: {e['error']}" for e in report["sources"] if e.get("error")]
    table = Table([h for _, h in _COLUMNS], right=[h for _, h in _COLUMNS[1:]])
    for r in rows:
        table.add_row(*r)
    print(title)
    table.print(compact=True)
    for line in errors:
        print(line)
    print(footer)


def plot(args: argparse.Namespace, report: dict[str, Any], sources: list[ZeroSource], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib (pip install 'largezero[plot]')") from None
    lim = QueueLimits.from_dict(report["limits"])
    page = report["page_size"]
    model_path = report["path"] if report["path"] != "iomap" else "kernel"
    align = max(lim.dio_align, lim.logical_block_size)
    lengths = [1 << s for s in range(20, 41, 2)]  # 1 MiB .. 1 TiB
    lengths = [n - n % align for n in lengths if n >= align]
    fig, (ax_req, ax_vec, ax_mem) = plt.subplots(1, 3, figsize=(16, 5))
    styles = [("-", "o", 7), ("--", "s", 6), (":", "^", 5), ("-.", "x", 5)]
    for i, src in enumerate(sources):
        if model_path == "direct":
            results = [model_plan(model_facts(lim, n, page_size=page), lim, n, src, 0, args.call_size)
                       for n in lengths]
        else:
            results = [compare(model_path, lim, n, [src], write_zeroes=False)[0] for n in lengths]
        label = src.name + (f" ({format_size(src.contiguity)})" if src.name == "allocated" else "")
        # Sources with the same layout give the same counts: distinct styles keep them all visible.
        line, marker, size = styles[i % len(styles)]
        style = {"linestyle": line, "marker": marker, "markersize": size, "label": label}
        ax_req.loglog(lengths, [r.counts.requests if r.counts else 0 for r in results], **style)
        ax_vec.loglog(lengths, [r.counts.bvecs if r.counts else 0 for r in results], **style)
    for ax, what in ((ax_req, "device requests"), (ax_vec, "bvecs")):
        ax.set_xlabel("bytes zeroed")
        ax.set_ylabel(what)
        ax.set_title(f"{what}, {model_path} path, {report['limits_from']}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    names = ["zero-page", "huge-zero-folio", "rfc-static-2m"]
    width = 0.25
    for i, name in enumerate(names):
        costs = [make_source(name, p).memory_cost for p in PAGE_SIZES]
        xs = [x + (i - 1) * width for x in range(len(PAGE_SIZES))]
        ax_mem.bar(xs, costs, width, label=name)
    ax_mem.set_yscale("log")
    ax_mem.set_xticks(range(len(PAGE_SIZES)),
                      [f"{format_size(p)} pages\n(PMD {format_size(pmd_size_for(p))})" for p in PAGE_SIZES])
    ax_mem.set_ylabel("bytes of memory")
    ax_mem.set_title("memory cost of the zero source per page size")
    ax_mem.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
