"""largezero zero: zero a range of one or more files or block devices."""

from __future__ import annotations

import argparse
import os
import time

from ..cancel import STOP, on_signals
from ..engine.options import BACKINGS, METHODS, ZeroOptions
from ..errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_VERIFY_MISMATCH,
    LargezeroError,
    UsageError,
    ZeroingError,
)
from ..job import JobResult, ZeroJob, error_json
from .common import print_json, say, size_arg
from .zero_report import describe_plan, nist_line, resume_command, summary, verified, verify_resume_command

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..cancel import Cancel
    from ..engine.writeloop import Progress
    from ..job import Phase
    from .progress import ProgressDisplay

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
    p.add_argument("--force-signatures", action="store_true",
                   help="zero a device that carries a signature, still refusing one in use (cleaning released disks)")
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
    p.add_argument("--report", metavar="NAME.pdf", default=None,
                   help="write an erasure certificate at NAME.pdf (a page per target) and the record as NAME.json")
    p.add_argument("--json", action="store_true", help="print one JSON object (a list for several targets)")
    p.add_argument("-v", "--verbose", action="store_true", help="print the plan and why each choice was made")
    p.set_defaults(func=run)


def options_from(args: argparse.Namespace) -> ZeroOptions:
    """The one option record of the command line's flags."""
    return ZeroOptions(method=args.method, direct=args.direct, overwrite=args.overwrite, unmap=args.unmap,
                       extend=args.extend, sync=args.sync, force=args.force,
                       force_signatures=args.force_signatures, create=args.create,
                       call_size=args.call_size, iov_len=args.iov_size, backing=args.backing,
                       large_page=args.large_page)


def _check_args(args: argparse.Namespace, opts: ZeroOptions) -> None:
    """Refuse contradictory flags and repeated targets before anything is opened."""
    opts.check(dry_run=args.dry_run, verify=args.verify, checkpoint=args.checkpoint)
    if args.create and args.length is None:
        raise UsageError("--create needs --length: a new file has nothing to zero to its end")
    if args.report is not None:
        if args.dry_run:
            raise UsageError("--dry-run and --report cannot be used together: a dry run erases nothing to certify")
        from ..job.certificate import check_available

        check_available(args.report)
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


class _Target:
    """One target of the command: its library job and, once run, its outcome."""

    def __init__(self, args: argparse.Namespace, opts: ZeroOptions, target: str) -> None:
        self.args = args
        self.opts = opts
        self.target = target
        self.job = ZeroJob(target, args.offset, args.length, options=opts, verify=args.verify,
                           dry_run=args.dry_run)
        self.outcome: JobResult | LargezeroError = LargezeroError("not run")

    def open(self) -> bool:
        return self._guard(self.job.open)

    def run(self, cancel: Cancel, bar: Callable[[int], None] | None, phase: Phase | None = None) -> None:
        progress = self._checkpointer(bar)
        self._guard(lambda: self.job.run(progress, cancel, phase))

    def _guard(self, step: Callable[[], object]) -> bool:
        try:
            got = step()
        except LargezeroError as err:
            self.outcome = err
        except OSError as err:  # not turned into a LargezeroError below us: still one line
            self.outcome = LargezeroError(f"{self.target}: {err.strerror or err}")
        else:
            if isinstance(got, JobResult):
                self.outcome = got
            return True
        self.job.close()
        return False

    def _checkpointer(self, bar: Callable[[int], None] | None) -> Progress | None:
        """Progress callback that also prints a resume command every --checkpoint seconds.

        Progress is a contiguous prefix, so any printed offset is a safe place to resume from after
        SIGKILL (the bytes before it are in the page cache or on the device, not necessarily durable).
        A stderr that cannot be written loses the line, never the job.
        """
        a = self.args
        if a.checkpoint is None:
            return bar
        every, last = float(a.checkpoint), [time.monotonic()]
        offset, total = a.offset, self.job.total

        def report(done: int) -> None:
            if bar is not None:
                bar(done)
            now = time.monotonic()
            if now - last[0] >= every:
                last[0] = now
                say(f"largezero: checkpoint: {self.target}: zeroed {offset}..{offset + done}; resume with: "
                    f"{self.resume(offset + done, total - done)}")

        return report

    def resume(self, stopped: int, remaining: int) -> str:
        return resume_command(self.opts, self.target, stopped, remaining, verify=self.args.verify,
                              checkpoint=self.args.checkpoint)


def run(args: argparse.Namespace) -> int:
    opts = options_from(args)
    _check_args(args, opts)
    targets = [_Target(args, opts, t) for t in args.targets]
    try:
        ready = [t for t in targets if t.open()]
        if args.dry_run:
            for t in ready:
                t.run(STOP, None)
        else:
            _zero(args, ready)
    finally:
        for t in targets:
            t.job.close()
    return _report(args, targets)


def _zero(args: argparse.Namespace, ready: list[_Target]) -> None:
    from .progress import progress_display

    # SIGINT, SIGTERM, SIGHUP set the one flag, which each job polls at every call boundary.
    with on_signals() as cancel, \
            progress_display([(f"zeroing {t.target}", t.job.total) for t in ready], not args.json) as display:
        if len(ready) == 1:
            # One target runs here: the handlers only set the flag, which the job polls at
            # every call, so a thread would add nothing but its start-up.
            ready[0].run(cancel, display.updater(0), _phase(display, 0, ready[0].target))
        else:
            _zero_together(ready, cancel, display)


def _phase(display: ProgressDisplay, i: int, target: str) -> Phase | None:
    """The job's next phase on the same line: 'verifying TARGET', from zero."""
    if not display.shown:
        return None

    def start(label: str, total: int) -> Progress | None:
        display.phase(i, f"{label} {target}", total)
        return display.updater(i)

    return start


def _zero_together(targets: list[_Target], cancel: Cancel, display: ProgressDisplay) -> None:
    """Several targets at once, one thread each (the writes drop the GIL)."""
    import threading

    workers = [threading.Thread(target=t.run, args=(cancel, display.updater(i), _phase(display, i, t.target)))
               for i, t in enumerate(targets)]
    for w in workers:
        w.start()
    for w in workers:
        while w.is_alive():
            w.join(0.1)  # short joins keep the main thread responsive to signals


def _report(args: argparse.Namespace, targets: list[_Target]) -> int:
    code = EXIT_OK
    out: list[dict[str, object]] = []
    for t in targets:
        res = t.outcome
        if isinstance(res, LargezeroError):
            say(f"largezero: {res.cli_message()}")
            if isinstance(res, ZeroingError) and res.remaining is not None:
                say(f"largezero: resume with: {t.resume(res.stopped_at, res.remaining)}")
            left = getattr(res, "verify_left", None)
            if left is not None:  # interrupted while reading back: the zeroing is done
                say("largezero: the zeros are written; resume the verification with: "
                    f"{verify_resume_command(t.target, *left)}")
            code = _worst(code, res.exit_code)
            out.append(error_json(t.target, res))
            continue
        out.append(res.to_json())
        shown = f"{t.target} -> {res.resolved}" if res.resolved else t.target
        v = res.verified
        if v is not None and not v.ok:
            say(f"largezero: {shown}: verify failed: first non-zero byte at offset {v.first_nonzero} "
                f"(0x{v.value or 0:02x}) in {v.offset}..{v.offset + v.length}")
            code = _worst(code, EXIT_VERIFY_MISMATCH)
        if args.json:
            continue
        if res.zeroed is None:
            assert res.plan is not None
            _print(describe_plan(res.plan, t.target))
            continue
        line = summary(res.zeroed, args.verbose)
        if res.resolved:
            line = line.replace(f"{res.zeroed.target}: ", f"{shown}: ", 1)
        if v is not None and v.ok:
            line += "; " + verified(v)
        _print(line)
        if getattr(args, "wipe", False):
            _print(nist_line(shown, out[-1]))
    if args.json:
        print_json(out[0] if len(out) == 1 else out)
    if args.report is not None:
        code = _worst(code, _certify(args.report, out))
    return code


def _certify(path: str, records: list[dict[str, object]]) -> int:
    """Write the certificate and its record; a failure to write them fails the command (exit 1)."""
    from ..job.certificate import write_report

    try:
        pdf, digest = write_report(path, records)
    except OSError as err:
        say(f"largezero: --report {path}: {err.strerror or err}")
        return 1
    say(f"largezero: certificate written to {pdf}; record sha256 {digest}")
    return EXIT_OK


def _print(line: str) -> None:
    try:
        print(line)
    except BrokenPipeError:  # the reader went away: the job's status stands
        pass


# When several targets fail differently, the exit code says the worst: interrupted, then a
# failure part way, then a verify mismatch, then refused; 0 only when every target succeeded.
_SEVERITY = {EXIT_OK: 0, EXIT_USAGE: 1, EXIT_VERIFY_MISMATCH: 2, 1: 3, EXIT_INTERRUPTED: 4}


def _worst(a: int, b: int) -> int:
    return max(a, b, key=lambda c: _SEVERITY.get(c, 3))
