"""largezero demo: the main job on an embedded default."""

from __future__ import annotations

import argparse
from typing import Any

from ..demo import DEFAULT_SIZE, DemoRow, rows_as_dicts, run_demo
from ..errors import EXIT_FAILURE, EXIT_OK
from ..kconfig import persistent_huge_zero_folio
from ..mm import largest_zero_buffer
from ..table import Table
from ..units import format_size
from .common import print_json, size_arg


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="zero scratch targets with ZERO_PAGE vs LARGE_ZERO_PAGE and compare",
                       description="Create a scratch file (and, as root, a ramfs-backed loop device), fill it, "
                       "zero a range with page vs large, buffered vs direct, verify, and compare.")
    p.add_argument("-s", "--size", type=size_arg("size"), default=DEFAULT_SIZE,
                   help=f"scratch size (default {format_size(DEFAULT_SIZE)})")
    p.add_argument("--no-device", dest="device", action="store_false", default=None,
                   help="skip the loop device part")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def _table(rows: list[DemoRow]) -> None:
    table = Table(("target", "run", "method", "zero source", "seconds", "GiB/s", "calls", "iovecs", "requests",
                   "verified"), right=("seconds", "GiB/s", "calls", "iovecs", "requests"),
                  title="largezero demo: the same range zeroed each way")
    for r in rows:
        rate = f"{r.length / r.seconds / 2**30:.2f}" if r.seconds > 0 else "-"
        name = r.target if r.target.startswith("/dev/") else "file"
        table.add_row(name, r.label, r.method, r.backing, f"{r.seconds:.3f}", rate, str(r.calls), str(r.iovecs),
                      "-" if r.requests is None else str(r.requests), "ok" if r.verified else "FAILED")
    table.print(pipe_width=132)  # a pipe or a log: do not squeeze the table into 80 columns


def run(args: argparse.Namespace) -> int:
    rows, notes = run_demo(args.size, args.device)
    ok = all(r.verified for r in rows)
    if args.json:
        print_json({"rows": rows_as_dicts(rows), "notes": notes, "verified": ok})
    else:
        buf = largest_zero_buffer()
        print(f"zero buffer: {buf.name} {format_size(buf.size)} backed by {buf.backing}, RSS {buf.rss_bytes} bytes; "
              f"kernel CONFIG_PERSISTENT_HUGE_ZERO_FOLIO={persistent_huge_zero_folio()}")
        _table(rows)
        for note in notes:
            print(note)
    return EXIT_OK if ok else EXIT_FAILURE
