"""largezero zero: zero a range of one or more files or block devices."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..block.zeroout import BACKINGS, METHODS, ZeroResult, check_options, zero_range
from ..errors import (
    EXIT_OK,
    EXIT_USAGE,
    EXIT_VERIFY_MISMATCH,
    LargezeroError,
    Unsupported,
    UsageError,
    ZeroingError,
)
from ..targets import Target, open_target, opened
from ..units import format_size
from ..verify import VerifyResult
from .common import print_json, size_arg
from .progress import progress_bar
from .verify import verify_target

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
    p.add_argument("--verify", action="store_true",
                   help="read the range back after zeroing (like 'largezero verify'); exit 3 on a non-zero byte")
    p.add_argument("--create", action="store_true",
                   help="create TARGET as a regular file if it does not exist (then implies --extend)")
    p.add_argument("--checkpoint", type=float, default=None, metavar="SECONDS",
                   help="print a resume command to stderr at most every SECONDS (survives SIGKILL)")
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


def _resume_command(args: argparse.Namespace, target: str, stopped: int) -> str:
    """The command that zeroes what is left, from ``stopped`` (the first byte not yet zeroed)."""
    end = args.offset + args.length if args.length is not None else None
    argv = ["largezero", "zero", target, "-o", str(stopped)]
    if end is not None:
        argv += ["-l", str(end - stopped)]
    if args.method != "auto":
        argv += ["-m", args.method]
    for flag in ("direct", "unmap", "extend", "sync", "force", "verify"):
        if getattr(args, flag):
            argv.append(f"--{flag}")
    if args.create and not args.extend:
        argv.append("--extend")  # the file exists now, and may be shorter than the range
    if args.backing != "auto":
        argv += ["--backing", args.backing]
    if args.large_page is False:
        argv.append("--no-large-page")
    if args.call_size is not None:
        argv += ["--call-size", str(args.call_size)]
    if args.checkpoint is not None:
        argv += ["--checkpoint", f"{args.checkpoint:g}"]
    return shlex.join(argv)


def _resolved(target: str) -> str | None:
    """The path a symlink target resolves to (what is really opened), else None."""
    return os.path.realpath(target) if os.path.islink(target) else None


def _check_args(args: argparse.Namespace) -> None:
    """Refuse contradictory flags and repeated targets before anything is opened."""
    check_options(args.method, direct=args.direct, backing=args.backing, large_page=args.large_page,
                  call_size=args.call_size)
    if args.create and args.length is None:
        raise UsageError("--create needs --length: a new file has nothing to zero to its end")
    if args.checkpoint is not None and not args.checkpoint > 0:
        raise UsageError(f"--checkpoint must be a positive number of seconds, not {args.checkpoint}")
    seen: dict[object, str] = {}
    for t in args.targets:
        if not t:
            raise UsageError("empty target name")
        try:
            st = os.stat(t)
            key: object = (st.st_dev, st.st_ino)
        except OSError:
            key = os.path.realpath(t)
        if key in seen:
            raise UsageError(f"{t}: given twice (the same target as {seen[key]})")
        seen[key] = t


def _checkpointer(args: argparse.Namespace, target: str,
                  bar: Callable[[int], None] | None) -> Callable[[int], None] | None:
    """Progress callback that also prints a resume command every --checkpoint seconds.

    Progress is a contiguous prefix, so any printed offset is a safe place to resume from after
    SIGKILL (the bytes before it are in the page cache or on the device, not necessarily durable).
    """
    if args.checkpoint is None:
        return bar
    every = float(args.checkpoint)
    last = [time.monotonic()]

    def report(done: int) -> None:
        if bar is not None:
            bar(done)
        now = time.monotonic()
        if now - last[0] >= every:
            last[0] = now
            print(f"largezero: checkpoint: {target}: zeroed {args.offset}..{args.offset + done}; "
                  f"resume with: {_resume_command(args, target, args.offset + done)}", file=sys.stderr, flush=True)

    return report


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


def _fsync_dir(path: str) -> None:
    fd = os.open(path or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open(args: argparse.Namespace, target: str) -> tuple[Target, bool]:
    """Open the target ourselves (so --create can work); (target, whether we created it)."""
    existed = os.path.lexists(target)
    tgt = open_target(target, force=args.force, create=args.create)
    return tgt, args.create and not existed


def _zero_one(args: argparse.Namespace, target: str, cancel: threading.Event,
              show_bar: bool) -> tuple[ZeroResult, tuple[VerifyResult, float] | None]:
    tgt, created = _open(args, target)
    # The bar needs the job's size up front; with no --length that is the rest of the target.
    total = args.length if args.length is not None else max(0, tgt.size - args.offset)
    try:
        with progress_bar(total, f"zeroing {target}", show_bar) as bar:
            result = zero_range(
                tgt, args.offset, args.length, method=args.method, direct=args.direct, unmap=args.unmap,
                extend=args.extend or created, sync=args.sync, force=args.force, backing=args.backing,
                large_page=args.large_page, call_size=args.call_size,
                progress=_checkpointer(args, target, bar), cancel=cancel,
            )
    except (UsageError, Unsupported):
        if created and os.path.getsize(tgt.path or target) == 0:
            os.unlink(tgt.path or target)  # nothing was written: leave no trace of --create
        raise
    finally:
        tgt.close()
    if created and args.sync:
        # fdatasync made the data durable; the new directory entry needs its directory synced.
        _fsync_dir(os.path.dirname(tgt.path or os.path.abspath(target)))
    checked = None
    if args.verify:
        with opened(target, writable=False) as ro:
            checked = verify_target(ro, result.offset, result.bytes_zeroed)
    return result, checked


def _result_dict(target: str, r: ZeroResult | LargezeroError,
                 checked: tuple[VerifyResult, float] | None) -> dict[str, object]:
    if isinstance(r, LargezeroError):
        out: dict[str, object] = {"target": target, "error": str(r), "exit_code": r.exit_code,
                                  "bytes_zeroed": getattr(r, "bytes_zeroed", 0)}
    else:
        out = r.to_dict()
    resolved = _resolved(target)
    if resolved:
        out["resolved"] = resolved
    if checked is not None:
        v, seconds = checked
        out["verify"] = {"zero": v.ok, "first_nonzero": v.first_nonzero, "bytes_read": v.bytes_read,
                         "seconds": round(seconds, 6)}
    return out


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    cancel = threading.Event()
    results: list[ZeroResult | LargezeroError] = [LargezeroError("not run")] * len(args.targets)
    checks: list[tuple[VerifyResult, float] | None] = [None] * len(args.targets)
    show_bar = not args.json and len(args.targets) == 1

    def work(i: int, target: str) -> None:
        try:
            results[i], checks[i] = _zero_one(args, target, cancel, show_bar)
        except LargezeroError as err:
            results[i] = err
        except OSError as err:  # not turned into a LargezeroError below us: still one line
            results[i] = LargezeroError(f"{target}: {err.strerror or err}")

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
    for target, res, checked in zip(args.targets, results, checks, strict=True):
        resolved = _resolved(target)
        shown = f"{target} -> {resolved}" if resolved else target
        if isinstance(res, LargezeroError):
            print(f"largezero: {res}", file=sys.stderr)
            if isinstance(res, ZeroingError):
                print(f"largezero: resume with: {_resume_command(args, target, res.stopped_at)}", file=sys.stderr)
            code = _worst(code, res.exit_code)
            continue
        if checked is not None and not checked[0].ok:
            v = checked[0]
            print(f"largezero: {shown}: verify failed: first non-zero byte at offset {v.first_nonzero} "
                  f"(0x{v.value or 0:02x}) in {v.offset}..{v.offset + v.length}", file=sys.stderr)
            code = _worst(code, EXIT_VERIFY_MISMATCH)
        if not args.json:
            line = _summary(res, args.verbose)
            if resolved:
                line = line.replace(f"{target}: ", f"{shown}: ", 1)
            if checked is not None and checked[0].ok:
                line += f"; verified zero ({checked[1]:.3f} s)"
            print(line)
    if args.json:
        out = [_result_dict(t, r, c) for t, r, c in zip(args.targets, results, checks, strict=True)]
        print_json(out[0] if len(out) == 1 else out)
    return code


# When several targets fail differently, the exit code says the worst: interrupted, then a
# failure part way, then a verify mismatch, then refused; 0 only when every target succeeded.
_SEVERITY = {EXIT_OK: 0, EXIT_USAGE: 1, EXIT_VERIFY_MISMATCH: 2, 1: 3, 130: 4}


def _worst(a: int, b: int) -> int:
    return max(a, b, key=lambda c: _SEVERITY.get(c, 3))
