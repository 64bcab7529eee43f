"""largezero zero: zero a range of one or more files or block devices."""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from ..block.zeroout import BACKINGS, METHODS, ZeroResult, zero_range
from ..errors import EXIT_OK, LargezeroError, ZeroingError
from ..units import format_size
from .common import print_json, size_arg
from .progress import progress_bar

USAGE_EXAMPLES = """\
examples:
  largezero zero disk.img -o 1M -l 64M           zero 64 MiB at 1 MiB (offload if possible)
  largezero zero /dev/loop0 -m large --direct     O_DIRECT writes from LARGE_ZERO_PAGE
  largezero zero disk.img -l 1G -m page --json    the pre-RFC 4 KiB ZERO_PAGE path
"""


def register(sub: Any) -> None:
    p = sub.add_parser("zero", help="zero a byte range", epilog=USAGE_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Zero [OFFSET, OFFSET+LENGTH) of files or block devices.")
    p.add_argument("targets", nargs="+", metavar="TARGET", help="regular file or block device")
    p.add_argument("-o", "--offset", type=size_arg("offset"), default=0, help="first byte (default 0)")
    p.add_argument("-l", "--length", type=size_arg("length"), default=None,
                   help="bytes to zero (default: to the end)")
    p.add_argument("-m", "--method", choices=METHODS, default="auto",
                   help="auto: offload where real, else large writes (default)")
    p.add_argument("-d", "--direct", action="store_true", default=None, help="O_DIRECT writes")
    p.add_argument("--unmap", action="store_true", help="allow deallocation (punch holes, unmap)")
    p.add_argument("--extend", action="store_true", help="allow growing a regular file")
    p.add_argument("--sync", action="store_true", help="fdatasync / flush the device before reporting success")
    p.add_argument("-f", "--force", action="store_true", help="use a device even if it is mounted or held")
    p.add_argument("--backing", choices=BACKINGS, default="auto",
                   help="backing of LARGE_ZERO_PAGE (default: by I/O mode)")
    p.add_argument("--no-large-page", dest="large_page", action="store_false", default=None,
                   help="never use LARGE_ZERO_PAGE (like LARGEZERO_LARGE_PAGE=0)")
    p.add_argument("--call-size", type=size_arg("call size"), default=None,
                   help="bytes per pwritev call (default: IOV_MAX iovecs under 2 GiB)")
    p.add_argument("--json", action="store_true", help="print one JSON object (a list for several targets)")
    p.add_argument("-v", "--verbose", action="store_true", help="say what was chosen and why")
    p.set_defaults(func=run)


@contextlib.contextmanager
def _stop_on_signals(cancel: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM stop the job at the next write boundary (BLKDEV_ZERO_KILLABLE)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: object) -> None:
        cancel.set()

    for s in previous:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _resume_command(args: argparse.Namespace, target: str, err: ZeroingError) -> str:
    stopped = err.stopped_at
    end = args.offset + args.length if args.length is not None else None
    argv = ["largezero", "zero", target, "-o", str(stopped)]
    if end is not None:
        argv += ["-l", str(end - stopped)]
    if args.method != "auto":
        argv += ["-m", args.method]
    for flag in ("direct", "unmap", "extend", "sync", "force"):
        if getattr(args, flag):
            argv.append(f"--{flag}")
    return shlex.join(argv)


def _summary(r: ZeroResult, verbose: bool) -> str:
    how = r.mechanism + (", O_DIRECT" if r.direct else "")
    if r.zero_buffer is not None and r.method != "offload":
        buf = r.zero_buffer
        how += f", {buf.name} {format_size(buf.size)} {buf.backing}"
    rate = f", {format_size(r.bytes_zeroed / r.seconds)}/s" if r.seconds > 0 and r.bytes_zeroed else ""
    line = (f"{r.target}: zeroed {format_size(r.bytes_zeroed)} at offset {r.offset} with {r.method} ({how}): "
            f"{r.calls} calls, {r.iovecs} iovecs, {r.seconds:.3f} s{rate}")
    if verbose and r.fallback:
        line += "\n  fallback: " + "; ".join(r.fallback)
    return line


def _zero_one(args: argparse.Namespace, target: str, cancel: threading.Event, show_bar: bool) -> ZeroResult:
    total = args.length if args.length is not None else 0
    with progress_bar(total, f"zeroing {target}", show_bar) as bar:
        return zero_range(
            target, args.offset, args.length, method=args.method, direct=args.direct, unmap=args.unmap,
            extend=args.extend, sync=args.sync, force=args.force, backing=args.backing,
            large_page=args.large_page, call_size=args.call_size, progress=bar, cancel=cancel,
        )


def run(args: argparse.Namespace) -> int:
    cancel = threading.Event()
    results: list[ZeroResult | LargezeroError] = [LargezeroError("not run")] * len(args.targets)
    show_bar = not args.json and len(args.targets) == 1

    def work(i: int, target: str) -> None:
        try:
            results[i] = _zero_one(args, target, cancel, show_bar)
        except LargezeroError as err:
            results[i] = err

    with _stop_on_signals(cancel):
        if len(args.targets) == 1:
            work(0, args.targets[0])
        else:
            # Several targets at once, each in its own thread; the zero buffer is shared.
            threads = [threading.Thread(target=work, args=(i, t)) for i, t in enumerate(args.targets)]
            for t in threads:
                t.start()
            for t in threads:
                while t.is_alive():
                    t.join(0.1)  # short joins keep the main thread responsive to signals

    code = EXIT_OK
    for target, res in zip(args.targets, results, strict=True):
        if isinstance(res, LargezeroError):
            print(f"largezero: {res}", file=sys.stderr)
            if isinstance(res, ZeroingError):
                print(f"largezero: resume with: {_resume_command(args, target, res)}", file=sys.stderr)
            code = max(code, res.exit_code)
        elif not args.json:
            print(_summary(res, args.verbose))
    if args.json:
        out = [r.to_dict() if isinstance(r, ZeroResult) else {"target": t, "error": str(r),
               "exit_code": r.exit_code, "bytes_zeroed": getattr(r, "bytes_zeroed", 0)}
               for t, r in zip(args.targets, results, strict=True)]
        print_json(out[0] if len(out) == 1 else out)
    return code
