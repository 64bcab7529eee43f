"""largezero verify: check that a range of a file or block device reads back as zeros."""

from __future__ import annotations

import argparse

from ..cancel import on_signals
from ..errors import EXIT_OK, EXIT_VERIFY_MISMATCH
from ..targets import opened
from ..units import format_size
from ..verify import VerifyResult, verify_target
from .common import print_json, size_arg

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from typing import Any



def register(sub: Any) -> None:
    p = sub.add_parser("verify", help="check that a byte range reads back as zeros",
                       description="Check that [OFFSET, OFFSET+LENGTH) reads back as zeros. Holes and unwritten "
                                   "extents of files are skipped with SEEK_DATA (counted as skipped) unless "
                                   "--direct, which reads every byte from the medium with O_DIRECT. "
                                   "Exit 0 when every byte is zero, 3 at the first non-zero byte, 130/143/129 "
                                   "on SIGINT/SIGTERM/SIGHUP.")
    p.add_argument("target", metavar="TARGET", help="regular file or block device (opened read-only)")
    p.add_argument("-o", "--offset", type=size_arg("offset"), default=0, help="first byte (default 0)")
    p.add_argument("-l", "--length", type=size_arg("length"), default=None,
                   help="bytes to check (default: to the end)")
    p.add_argument("--direct", action="store_true",
                   help="read every byte with O_DIRECT (no hole skipping, no page cache)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def describe(name: str, r: VerifyResult, seconds: float) -> str:
    how = "O_DIRECT" if r.direct else "buffered"
    skipped = f", {format_size(r.bytes_skipped)} skipped as holes" if r.bytes_skipped else ""
    if r.ok:
        rate = f", {format_size(r.bytes_read / seconds)}/s" if seconds > 0 and r.bytes_read else ""
        return (f"{name}: bytes {r.offset}..{r.offset + r.length} are zero "
                f"({format_size(r.length)}: {format_size(r.bytes_read)} read {how}{skipped}, {seconds:.3f} s{rate})")
    return (f"{name}: first non-zero byte at offset {r.first_nonzero} (0x{r.value or 0:02x}) "
            f"in {r.offset}..{r.offset + r.length} ({format_size(r.bytes_read)} read {how}{skipped})")


def to_dict(name: str, r: VerifyResult, seconds: float) -> dict[str, object]:
    return {
        "target": name,
        "offset": r.offset,
        "length": r.length,
        "zero": r.ok,
        "first_nonzero": r.first_nonzero,
        "value": r.value,
        "bytes_read": r.bytes_read,
        "bytes_skipped": r.bytes_skipped,
        "direct": r.direct,
        "reads": r.reads,
        "seconds": round(seconds, 6),
    }


def run(args: argparse.Namespace) -> int:
    with on_signals() as cancel, opened(args.target, writable=False) as tgt:
        result, seconds = verify_target(tgt, args.offset, args.length, direct=args.direct, cancel=cancel)
    if args.json:
        print_json(to_dict(args.target, result, seconds))
    else:
        print(describe(args.target, result, seconds))
    return EXIT_OK if result.ok else EXIT_VERIFY_MISMATCH
