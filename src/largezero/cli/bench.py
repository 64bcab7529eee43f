"""largezero bench: zeroing side by side with dd, fallocate, blkdiscard, PostgreSQL and Python."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError
from .common import print_json, say, size_arg

MIN_ROUNDS = 5
PROBE_SIZE = 4 << 30
DEFAULT_SIZE = 1 << 30
CACHE_CHOICES = ("cold", "warm", "warm-4k")
# The parts of a run: the contender tables, start-up, the CLI as a whole process over sizes,
# the loop device at both max_sectors_kb, the cost of split calls, several devices at once,
# and the stream and verify benchmarks (written elsewhere; skipped with a note if absent).
SECTIONS = ("main", "startup", "process", "loops", "calls", "several", "stream", "verify")
# --quick keeps the tables, start-up and the whole-process sweep: under a minute on a shared
# 2-CPU machine. The other parts take a minute more even small; --sections names them.
QUICK_SECTIONS = ("main", "startup", "process")
PLOT_HINT = "--plot needs matplotlib (pip install 'largezero[plot]')"

EXAMPLES = """\
examples:
  largezero bench --quick                     the headline rows, under a minute
  largezero bench --quick --sections stream   one of the other parts, small
  largezero bench --target file --size 1G     1 GiB on a file of the working filesystem
  largezero bench --cache all --plot bench.png --json > bench.json
"""


def register(sub: Any) -> None:
    from ..bench.runner import QUICK_PROBE, QUICK_SIZE, QUICK_TARGETS
    from ..bench.targets import TARGETS
    from ..units import format_size

    p = sub.add_parser(
        "bench", help="benchmark zeroing against dd, fallocate -z, blkdiscard -z and others",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Zero the same range of the same target with every method, interleaved round by "
        "round, and report medians, CPU, system calls, iovecs, peak RSS, device requests, ratios "
        "against the best peer and fractions of the measured ceilings. Scratch targets only: it "
        "creates its own files, mounts and loop devices and removes them.")
    p.add_argument("-t", "--target", action="append", metavar="TARGET",
                   help=f"{', '.join(TARGETS)} or all (repeatable or comma-separated; default all, "
                   f"{','.join(QUICK_TARGETS)} with --quick)")
    p.add_argument("-s", "--size", type=size_arg("size"), default=None,
                   help=f"bytes zeroed per run (default {format_size(DEFAULT_SIZE)}; "
                   f"{format_size(QUICK_SIZE)} with --quick)")
    p.add_argument("-r", "--rounds", type=int, default=MIN_ROUNDS,
                   help=f"measured rounds, medians reported (at least {MIN_ROUNDS}; default {MIN_ROUNDS})")
    p.add_argument("--quick", action="store_true",
                   help="under a minute: the headline contenders on a file, tmpfs and a ramfs-backed loop "
                   f"device (cold), start-up and the whole-process sweep ({','.join(QUICK_SECTIONS)}), small "
                   "sizes, fewer rounds")
    p.add_argument("--cache", default=None, metavar="STATES",
                   help=f"page-cache states, comma-separated: {', '.join(CACHE_CHOICES)} or all "
                   "(default cold,warm; cold with --quick)")
    p.add_argument("-c", "--contender", action="append", metavar="KEY",
                   help="only these contenders (key prefix, e.g. lz-large, dd-, or KEY$ for that one "
                   "only; repeatable; default all, the headline ones with --quick)")
    p.add_argument("--dir", default=None, help="where files and loop images are created (default: $TMPDIR)")
    p.add_argument("--probe-size", type=size_arg("probe size"), default=None,
                   help=f"length of the peak-RSS probe job (default {format_size(PROBE_SIZE)}, "
                   f"{format_size(QUICK_PROBE)} with --quick; 0 to skip)")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="do not read every range back (faster, but nothing is checked)")
    p.add_argument("--list", action="store_true", help="list the contenders and exit")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.add_argument("--plot", metavar="FILE.png", default=None, help="write a chart (needs matplotlib)")
    p.add_argument("--sections", default=None, metavar="LIST",
                   help=f"only these parts, comma-separated: {', '.join(SECTIONS)} (default all; "
                   f"{','.join(QUICK_SECTIONS)} with --quick)")
    p.set_defaults(func=run)


def _choices(values: list[str], allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    """Comma-separated and repeated names, 'all' for every one, duplicates dropped in order."""
    out: list[str] = []
    for value in values:
        for name in value.split(","):
            name = name.strip()
            if name == "all":
                out += allowed
            elif name in allowed:
                out.append(name)
            else:
                raise UsageError(f"unknown {what} '{name}' (expected {', '.join(allowed)} or all)")
    return tuple(dict.fromkeys(out))


def _targets(values: list[str] | None, quick: bool) -> tuple[str, ...]:
    from ..bench.runner import QUICK_TARGETS
    from ..bench.targets import TARGETS

    if values:
        return _choices(values, tuple(TARGETS), "target")
    return QUICK_TARGETS if quick else tuple(TARGETS)


def _cache(value: str | None, quick: bool) -> tuple[str, ...]:
    from ..bench.runner import QUICK_CACHE

    if value is None:
        return QUICK_CACHE if quick else ("cold", "warm")
    return _choices([value], tuple(CACHE_CHOICES), "cache state")


def config_from_args(args: argparse.Namespace) -> Any:
    from ..bench import BenchConfig

    if args.rounds < MIN_ROUNDS:
        raise UsageError(f"--rounds must be at least {MIN_ROUNDS}: medians of fewer say little")
    from ..bench.runner import QUICK_CONTENDERS, QUICK_PROBE, QUICK_SIZE

    size = args.size if args.size is not None else (QUICK_SIZE if args.quick else DEFAULT_SIZE)
    if size <= 0:
        raise UsageError("--size must be positive")
    if size % 4096:
        raise UsageError("--size must be a multiple of 4 KiB (every contender, dd oflag=direct included)")
    contenders = args.contender if args.contender or not args.quick else list(QUICK_CONTENDERS)
    probe = args.probe_size if args.probe_size is not None else (QUICK_PROBE if args.quick else PROBE_SIZE)
    return BenchConfig(targets=_targets(args.target, args.quick), size=size, rounds=args.rounds,
                       cache=_cache(args.cache, args.quick), contenders=contenders, verify=args.verify,
                       workdir=args.dir, rss_probe=probe or None, quick=args.quick)


def run(args: argparse.Namespace) -> int:
    import importlib.util

    from ..bench import all_contenders, build_report, plot, render_text, run_bench, select

    if args.plot and importlib.util.find_spec("matplotlib") is None:
        say(f"largezero: {PLOT_HINT}")  # before anything runs: a chart we cannot draw is refused
        return EXIT_USAGE
    if args.sections:
        sections = _choices([args.sections], SECTIONS, "section")
    else:
        sections = QUICK_SECTIONS if args.quick else SECTIONS
    if args.list:
        for c in all_contenders():
            kinds = "/".join(sorted(c.kinds))
            print(f"{c.key:26} {c.family:10} {c.mode:9} {kinds:11} {c.label}")
        return EXIT_OK
    config = config_from_args(args)
    try:
        select(config.contenders)
    except ValueError as err:
        raise UsageError(str(err)) from None
    tty = sys.stderr.isatty()

    def progress(message: str) -> None:
        print(f"\r\033[K{message}", end="", file=sys.stderr, flush=True)

    from ..bench.sections import run_sections

    report: dict[str, Any] = {"scenarios": []}
    if "main" in sections:
        result = run_bench(config, progress if tty else None)
        report = build_report(result)
    if tty:
        print("\r\033[K", end="", file=sys.stderr, flush=True)
    texts = run_sections(sections, args.quick, args.dir, report, progress if tty else None)
    if tty:
        print("\r\033[K", end="", file=sys.stderr, flush=True)
    if args.plot and "main" in sections:
        plot(report, args.plot)
    if args.json:
        print_json(report)
    else:
        if "main" in sections:
            render_text(report)
        for text in texts:
            print()
            print(text)
        if args.plot and "main" in sections:
            print(f"chart: {args.plot}")
    bad = [f"{sc['name']}: {r['label']}" for sc in report["scenarios"] for r in sc["rows"]
           if r["rounds"] and not r["verified"]]
    if bad:
        print("largezero: range not zero after: " + "; ".join(bad), file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK
