"""largezero verify: check that a range of a file or block device reads back as zeros."""

from __future__ import annotations

import argparse

from ..cancel import on_signals
from ..errors import EXIT_OK, EXIT_VERIFY_MISMATCH
from ..targets import opened
from ..units import format_size
from ..verify import VerifyInterrupted, VerifyResult, verify_target
from .common import print_json, say, size_arg

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("verify", help="check that a byte range reads back as zeros",
                       description="Check that [OFFSET, OFFSET+LENGTH) reads back as zeros. Only stored data is read: "
                                   "holes and unwritten extents (of a file, or of a loop device's backing "
                                   "file) read as zero without touching the medium, so they are found with "
                                   "SEEK_DATA and counted as skipped, not read. Exit 0 when every byte is zero, "
                                   "3 at the first non-zero byte, 130/143/129 on SIGINT/SIGTERM/SIGHUP.")
    p.add_argument("target", metavar="TARGET", help="regular file or block device (opened read-only)")
    p.add_argument("-o", "--offset", type=size_arg("offset"), default=0, help="first byte (default 0)")
    p.add_argument("-l", "--length", type=size_arg("length"), default=None,
                   help="bytes to check (default: to the end)")
    p.add_argument("--direct", action="store_true",
                   help="read the stored data with O_DIRECT, from the medium, not the page cache")
    p.add_argument("--report", metavar="NAME.pdf", default=None,
                   help="write a certificate of the verification at NAME.pdf and its record as NAME.json")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def describe(name: str, r: VerifyResult) -> str:
    how = "with O_DIRECT" if r.direct else "buffered"
    skipped = (f", {format_size(r.bytes_skipped)} not read: holes and unwritten extents, which read as zero "
               "without touching the medium" if r.bytes_skipped else "")
    if r.ok:
        rate = f", {format_size(r.bytes_read / r.seconds)}/s" if r.seconds > 0 and r.bytes_read else ""
        return (f"{name}: bytes {r.offset}..{r.offset + r.length} are zero ({format_size(r.length)}: "
                f"{format_size(r.bytes_read)} read {how}{skipped}; {r.seconds:.3f} s{rate})")
    return (f"{name}: first non-zero byte at offset {r.first_nonzero} (0x{r.value or 0:02x}) "
            f"in {r.offset}..{r.offset + r.length} ({format_size(r.bytes_read)} read {how}{skipped})")


def to_dict(name: str, r: VerifyResult) -> dict[str, object]:
    return {"target": name, **r.to_dict()}


def run(args: argparse.Namespace) -> int:
    from .progress import progress_display

    if args.report is not None:
        from ..job.certificate import check_available

        check_available(args.report)
    with on_signals() as cancel, opened(args.target, writable=False) as tgt:
        started = _utc() if args.report else ""
        size = tgt.refresh_size()
        length = args.length if args.length is not None else max(0, size - args.offset)
        try:
            with progress_display([(f"verifying {args.target}", length)], not args.json) as display:
                result = verify_target(tgt, args.offset, args.length, direct=args.direct, cancel=cancel,
                                       progress=display.updater(0))
        except VerifyInterrupted as err:  # the bar is gone by now: the message stays alone
            from .zero_report import verify_resume_command

            say(f"largezero: {err}")
            rest = err.offset + length - err.stopped_at
            say(f"largezero: resume with: {verify_resume_command(args.target, err.stopped_at, rest, args.direct)}")
            return err.exit_code
        if args.report:
            from ..job.erasure import verification_record

            record = verification_record(args.target, tgt.identity(), result, started, _utc())
    if args.json:
        print_json(to_dict(args.target, result))
    else:
        print(describe(args.target, result))
    if args.report:
        from ..job.certificate import write_report

        try:
            pdf, digest = write_report(args.report, [record], kind="verification")
        except OSError as err:
            say(f"largezero: --report {args.report}: {err.strerror or err}")
            return 1
        say(f"largezero: certificate written to {pdf}; record sha256 {digest}")
    return EXIT_OK if result.ok else EXIT_VERIFY_MISMATCH


def _utc() -> str:
    from ..job.erasure import utc_now

    return utc_now()
