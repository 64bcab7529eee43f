"""largezero zero: zero a range of one or more files or block devices."""

from __future__ import annotations

import argparse
import os
import time

from ..cancel import Flag
from ..engine.options import check_exclusive, given_options
from ..engine.zeroout import BACKINGS, METHODS, ZeroResult, check_range, plan_job, zero_range
from ..errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_VERIFY_MISMATCH,
    LargezeroError,
    Unsupported,
    UsageError,
    ZeroingError,
)
from ..targets import Target, open_target, opened
from .common import StopOnSignals, print_json, say, size_arg
from .zero_report import describe_plan, predicted, resolved, result_dict, resume_command, summary, verified

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..cancel import Cancel

USAGE_EXAMPLES = """\
examples:
  largezero zero disk.img -o 1M -l 64M            zero 64 MiB at 1 MiB (offload if possible)
  largezero zero disk.img -o 1M -l 64M --dry-run  print the plan, change nothing
  largezero zero /dev/loop0 -m large --direct     O_DIRECT writes from LARGE_ZERO_PAGE
  largezero zero /dev/loop0 --overwrite --verify  zeros over every byte, read back with O_DIRECT
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
    p.add_argument("-d", "--direct", action="store_true", default=None,
                   help="O_DIRECT writes (with auto: for the write fallback)")
    p.add_argument("--overwrite", action="store_true",
                   help="write zeros over every byte with O_DIRECT: no offload, no unmap")
    p.add_argument("--unmap", action="store_true", help="allow deallocation (punch holes, unmap)")
    p.add_argument("--extend", action="store_true", help="allow growing a regular file")
    p.add_argument("--sync", action="store_true", help="fdatasync / flush the device before reporting success")
    p.add_argument("-f", "--force", action="store_true",
                   help="zero a target that is in use (mounted, held, swap, backing a loop) or carries a signature")
    p.add_argument("-n", "--dry-run", action="store_true", help="print the plan and change nothing")
    p.add_argument("--backing", choices=BACKINGS, default="auto",
                   help="backing of LARGE_ZERO_PAGE (default: by I/O mode)")
    p.add_argument("--no-large-page", dest="large_page", action="store_false", default=None,
                   help="never use LARGE_ZERO_PAGE (like LARGEZERO_LARGE_PAGE=0)")
    p.add_argument("--call-size", type=size_arg("call size"), default=None,
                   help="bytes per pwritev call (default 32 MiB)")
    p.add_argument("--iov-size", type=size_arg("iovec size"), default=None,
                   help="bytes of the zero buffer per iovec (default: chosen for the device)")
    p.add_argument("--verify", action="store_true",
                   help="read the range back after zeroing (O_DIRECT with --overwrite); exit 3 on a non-zero byte")
    p.add_argument("--create", action="store_true",
                   help="create TARGET as a regular file if it does not exist (then implies --extend)")
    p.add_argument("--checkpoint", type=float, default=None, metavar="SECONDS",
                   help="print a resume command to stderr at most every SECONDS (survives SIGKILL)")
    p.add_argument("--json", action="store_true", help="print one JSON object (a list for several targets)")
    p.add_argument("-v", "--verbose", action="store_true", help="print the plan and why each choice was made")
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> None:
    """Refuse contradictory flags and repeated targets before anything is opened."""
    check_exclusive(given_options(
        args.method, direct=args.direct, backing=args.backing, large_page=args.large_page, call_size=args.call_size,
        iov_len=args.iov_size, overwrite=args.overwrite, unmap=args.unmap, dry_run=args.dry_run, verify=args.verify,
        create=args.create, sync=args.sync, checkpoint=args.checkpoint))
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


def _checkpointer(args: argparse.Namespace, target: str, offset: int, total: int,
                  bar: Callable[[int], None] | None) -> Callable[[int], None] | None:
    """Progress callback that also prints a resume command every --checkpoint seconds.

    Progress is a contiguous prefix, so any printed offset is a safe place to resume from after
    SIGKILL (the bytes before it are in the page cache or on the device, not necessarily durable).
    A stderr that cannot be written loses the line, never the job.
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
            say(f"largezero: checkpoint: {target}: zeroed {offset}..{offset + done}; "
                f"resume with: {resume_command(args, target, offset + done, total - done)}")

    return report


class _Job:
    """One target of the command: opened up front (so totals are known), then zeroed in its thread."""

    def __init__(self, args: argparse.Namespace, target: str) -> None:
        self.args = args
        self.target = target
        self.tgt: Target | None = None
        self.created = False
        self.total = 0
        self.result: ZeroResult | LargezeroError = LargezeroError("not run")
        self.checked: Any = None

    def open(self) -> None:
        a = self.args
        existed = os.path.lexists(self.target)
        self.tgt = open_target(self.target, force=a.force, create=a.create)
        self.created = a.create and not existed
        # The bar and the resume command need the job's size up front.
        self.total = check_range(self.tgt, a.offset, a.length, a.extend or self.created)

    def zero(self, cancel: Cancel, bar: Callable[[int], None] | None) -> None:
        a, tgt = self.args, self.tgt
        assert tgt is not None
        try:
            self.result = zero_range(
                tgt, a.offset, self.total, method=a.method, direct=a.direct, unmap=a.unmap,
                extend=a.extend or self.created, sync=a.sync, force=a.force, overwrite=a.overwrite,
                backing=a.backing, large_page=a.large_page, call_size=a.call_size, iov_len=a.iov_size,
                progress=_checkpointer(a, self.target, a.offset, self.total, bar), cancel=cancel)
        except (UsageError, Unsupported) as err:
            if self.created and os.path.getsize(tgt.path or self.target) == 0:
                os.unlink(tgt.path or self.target)  # nothing was written: leave no trace of --create
            self.result = err
            return
        except LargezeroError as err:
            self.result = err
            return
        except OSError as err:  # not turned into a LargezeroError below us: still one line
            self.result = LargezeroError(f"{self.target}: {err.strerror or err}")
            return
        if self.created and a.sync:
            # fdatasync made the data durable; the new directory entry needs its directory synced.
            _fsync_dir(os.path.dirname(tgt.path or os.path.abspath(self.target)))
        if a.json and isinstance(self.result, ZeroResult):
            # The record of the job: what was zeroed, and on a device what the model predicted.
            self.result.identity = tgt.identity()
            if self.result.plan is not None:
                self.result.predicted = predicted(self.result.plan, tgt, self.result.zero_buffer)
        if a.verify:
            self._verify(cancel)

    def _verify(self, cancel: Cancel) -> None:
        from ..verify import verify_target

        r = self.result
        assert isinstance(r, ZeroResult)
        try:
            with opened(self.target, writable=False) as ro:
                self.checked = verify_target(ro, r.offset, r.bytes_zeroed, direct=self.args.overwrite, cancel=cancel)
        except LargezeroError as err:
            self.result = err

    def close(self) -> None:
        if self.tgt is not None:
            self.tgt.close()


def _fsync_dir(path: str) -> None:
    fd = os.open(path or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _dry_run(args: argparse.Namespace) -> int:
    """Print each target's plan (and, on a block device, the model's prediction); write nothing."""
    out: list[dict[str, object]] = []
    for target in args.targets:
        with opened(target, writable=False) as tgt:
            length = check_range(tgt, args.offset, args.length, args.extend)
            plan, buf, _ = plan_job(tgt, args.offset, length, method=args.method, direct=args.direct,
                                    unmap=args.unmap, extend=args.extend, overwrite=args.overwrite,
                                    backing=args.backing, large_page=args.large_page, call_size=args.call_size,
                                    iov_len=args.iov_size)
            if args.json:
                entry: dict[str, object] = {"target": target, "dry_run": True, "plan": plan.to_dict(),
                                            "zero_buffer": {"name": buf.name, "size": buf.size,
                                                            "backing": buf.backing}}
                pred = predicted(plan, tgt, buf if plan.method != "offload" else None)
                if pred is not None:
                    entry["predicted"] = pred
                out.append(entry)
            else:
                print(describe_plan(plan, target))
    if args.json:
        print_json(out[0] if len(out) == 1 else out)
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    if args.dry_run:
        return _dry_run(args)
    from .progress import progress_display

    cancel = Flag()
    jobs = [_Job(args, t) for t in args.targets]
    try:
        for job in jobs:
            try:
                job.open()
            except LargezeroError as err:
                job.result = err
                job.close()
                job.tgt = None
        ready = [j for j in jobs if j.tgt is not None]
        with StopOnSignals(cancel), \
                progress_display([(f"zeroing {j.target}", j.total) for j in ready], not args.json) as bars:
            if len(ready) == 1:
                # One target runs here: the handlers only set the flag, which the job polls at
                # every call, so a thread would add nothing but its start-up.
                ready[0].zero(cancel, bars[0] if bars else None)
            else:
                _zero_together(ready, cancel, bars)
    finally:
        for job in jobs:
            job.close()
    return _report(args, jobs)


def _zero_together(jobs: list[_Job], cancel: Flag, bars: list[Callable[[int], None]] | None) -> None:
    """Several targets at once, one thread each (the writes drop the GIL)."""
    import threading

    workers = [threading.Thread(target=j.zero, args=(cancel, bars[i] if bars else None)) for i, j in enumerate(jobs)]
    for w in workers:
        w.start()
    for w in workers:
        while w.is_alive():
            w.join(0.1)  # short joins keep the main thread responsive to signals


def _report(args: argparse.Namespace, jobs: list[_Job]) -> int:
    code = EXIT_OK
    for job in jobs:
        res, checked, target = job.result, job.checked, job.target
        where = resolved(target)
        shown = f"{target} -> {where}" if where else target
        if isinstance(res, LargezeroError):
            say(f"largezero: {res}")
            if isinstance(res, ZeroingError) and res.remaining is not None:
                say(f"largezero: resume with: {resume_command(args, target, res.stopped_at, res.remaining)}")
            code = _worst(code, res.exit_code)
            continue
        if checked is not None and not checked.ok:
            v = checked
            say(f"largezero: {shown}: verify failed: first non-zero byte at offset {v.first_nonzero} "
                f"(0x{v.value or 0:02x}) in {v.offset}..{v.offset + v.length}")
            code = _worst(code, EXIT_VERIFY_MISMATCH)
        if not args.json:
            line = summary(res, args.verbose)
            if where:
                line = line.replace(f"{target}: ", f"{shown}: ", 1)
            if checked is not None and checked.ok:
                line += "; " + verified(checked)
            try:
                print(line)
            except BrokenPipeError:  # the reader went away: the job's status stands
                pass
    if args.json:
        out = [result_dict(job.target, job.result, job.checked) for job in jobs]
        print_json(out[0] if len(out) == 1 else out)
    return code


# When several targets fail differently, the exit code says the worst: interrupted, then a
# failure part way, then a verify mismatch, then refused; 0 only when every target succeeded.
_SEVERITY = {EXIT_OK: 0, EXIT_USAGE: 1, EXIT_VERIFY_MISMATCH: 2, 1: 3, EXIT_INTERRUPTED: 4}


def _worst(a: int, b: int) -> int:
    return max(a, b, key=lambda c: _SEVERITY.get(c, 3))
