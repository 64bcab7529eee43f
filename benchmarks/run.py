"""Run the zeroing benchmark and keep everything it says: table, JSON and chart.

The same engine as ``largezero bench`` (largezero.bench), the same options, plus ``--out``:
a directory that receives ``bench.txt`` (the tables and targets), ``bench.md`` (the same
as markdown), ``bench.json`` (every sample of every round), ``bench.png`` (the chart) and
``headline.png`` (the chart with the main contenders only).
docs/performance.md was made with::

    sudo .venv/bin/python benchmarks/run.py --size 1G --cache cold,warm --out docs/bench

and its quick form with ``--quick``. Another machine's numbers come from the same line.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys

from largezero.bench import HEADLINE, build_report, plot, render_markdown, render_text, run_bench
from largezero.cli.bench import config_from_args, register
from largezero.errors import LargezeroError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    register(sub)
    bench = sub.choices["bench"]
    bench.add_argument("--out", default="benchmarks/results", help="directory for bench.{txt,md,json,png}")
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    try:
        config = config_from_args(args)
    except LargezeroError as err:
        print(f"benchmarks/run.py: {err}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    report = build_report(run_bench(config, progress))
    text = io.StringIO()
    render_text(report, text)
    with open(os.path.join(args.out, "bench.txt"), "w") as f:
        f.write(text.getvalue())
    with open(os.path.join(args.out, "bench.md"), "w") as f:
        f.write(render_markdown(report))
    with open(os.path.join(args.out, "bench.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)
        f.write("\n")
    try:
        plot(report, os.path.join(args.out, "bench.png"))
        plot(report, os.path.join(args.out, "headline.png"), keys=HEADLINE)
    except ImportError:
        print("no matplotlib: no chart", file=sys.stderr)
    sys.stdout.write(text.getvalue())
    print(f"written: {args.out}/bench.txt, bench.md, bench.json, bench.png, headline.png")
    bad = [r for sc in report["scenarios"] for r in sc["rows"] if r["rounds"] and not r["verified"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
