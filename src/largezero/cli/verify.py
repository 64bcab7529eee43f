"""largezero verify: check that a range of a file or block device reads back as zeros."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..errors import EXIT_OK, EXIT_VERIFY_MISMATCH, LargezeroError, UsageError
from ..targets import Target, opened
from ..units import format_size
from ..verify import ShortRead, VerifyResult, check_zero
from .common import print_json, size_arg


def register(sub: Any) -> None:
    p = sub.add_parser("verify", help="check that a byte range reads back as zeros",
                       description="Check that [OFFSET, OFFSET+LENGTH) reads back as zeros. Holes are skipped "
                                   "with SEEK_DATA. Exit 0 when every byte is zero, 3 at the first non-zero byte.")
    p.add_argument("target", metavar="TARGET", help="regular file or block device (opened read-only)")
    p.add_argument("-o", "--offset", type=size_arg("offset"), default=0, help="first byte (default 0)")
    p.add_argument("-l", "--length", type=size_arg("length"), default=None,
                   help="bytes to check (default: to the end)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


class VerifyFailed(LargezeroError):
    """A read error while verifying (not a mismatch: that is exit 3 with a result)."""


def verify_target(tgt: Target, offset: int, length: int | None) -> tuple[VerifyResult, float]:
    """Check a range of an opened target; raises UsageError for a range past its end."""
    size = tgt.refresh_size()
    if offset > size:
        raise UsageError(f"{tgt.name}: offset {offset} is past the end ({size} bytes)")
    if length is None:
        length = size - offset
    if offset + length > size:
        raise UsageError(f"{tgt.name}: range ends at byte {offset + length}, past the end ({size} bytes)")
    started = time.perf_counter()
    try:
        result = check_zero(tgt.fd, offset, length)
    except ShortRead as err:
        raise VerifyFailed(f"{tgt.name}: {err.strerror}") from None
    except OSError as err:
        raise VerifyFailed(f"{tgt.name}: read failed while verifying: {err.strerror or err}") from None
    return result, time.perf_counter() - started


def describe(name: str, r: VerifyResult, seconds: float) -> str:
    if r.ok:
        rate = f", {format_size(r.length / seconds)}/s" if seconds > 0 and r.length else ""
        return (f"{name}: bytes {r.offset}..{r.offset + r.length} are zero "
                f"({format_size(r.length)}, {format_size(r.bytes_read)} read, {seconds:.3f} s{rate})")
    return (f"{name}: first non-zero byte at offset {r.first_nonzero} (0x{r.value or 0:02x}) "
            f"in {r.offset}..{r.offset + r.length}")


def to_dict(name: str, r: VerifyResult, seconds: float) -> dict[str, object]:
    return {
        "target": name,
        "offset": r.offset,
        "length": r.length,
        "zero": r.ok,
        "first_nonzero": r.first_nonzero,
        "value": r.value,
        "bytes_read": r.bytes_read,
        "reads": r.reads,
        "seconds": round(seconds, 6),
    }


def run(args: argparse.Namespace) -> int:
    with opened(args.target, writable=False) as tgt:
        result, seconds = verify_target(tgt, args.offset, args.length)
    if args.json:
        print_json(to_dict(args.target, result, seconds))
    else:
        print(describe(args.target, result, seconds))
    return EXIT_OK if result.ok else EXIT_VERIFY_MISMATCH
