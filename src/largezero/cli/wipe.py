"""largezero wipe: the one command for "the old data must be gone".

Zeros written with O_DIRECT over every byte of each target, flushed from the device's cache,
read back from the medium with O_DIRECT, recorded (``--json``: the ``erasure`` record) and,
with ``--report``, certified. It is ``largezero zero --overwrite --sync --verify`` of the whole
target, the same library job; before writing it warns where overwriting is Clear and not Purge
(non-rotational and virtual devices) and names the purge route, and at the end it prints the
NIST SP 800-88 category it reached. ``zero`` stays the fast "reads as zero" tool.
"""

from __future__ import annotations

import argparse

from . import zero
from .common import say

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from typing import Any

EXAMPLES = """\
examples:
  largezero wipe /dev/sdX                          overwrite, flush, verify; print the NIST category
  largezero wipe /dev/sdX --report sdX-cert.pdf    the same, and a certificate (+ sdX-cert.json)
  largezero wipe old.img --json                    the erasure record as JSON
"""


def register(sub: Any) -> None:
    p = sub.add_parser("wipe", help="overwrite, flush, verify and certify: the old data must be gone",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Overwrite every byte of each TARGET with zeros (O_DIRECT), flush the device's "
                                   "cache, read every byte back from the medium with O_DIRECT, and record it. "
                                   "Refused on copy-on-write filesystems. Exit 0 when verified zero, 3 when a "
                                   "non-zero byte is read back.")
    p.add_argument("targets", nargs="+", metavar="TARGET", help="block device or regular file")
    p.add_argument("-f", "--force", action="store_true",
                   help="wipe a target that is in use (mounted, held, swap, backing a loop) or carries a signature")
    p.add_argument("--force-signatures", action="store_true",
                   help="wipe a device that carries a signature, still refusing one in use")
    p.add_argument("--report", metavar="NAME.pdf", default=None,
                   help="write an erasure certificate at NAME.pdf (a page per target) and the record as NAME.json")
    p.add_argument("--checkpoint", type=float, default=None, metavar="SECONDS",
                   help="print a resume command to stderr at most every SECONDS (survives SIGKILL)")
    p.add_argument("--json", action="store_true", help="print the records as JSON (a list for several targets)")
    p.add_argument("-v", "--verbose", action="store_true", help="print the plan and why each choice was made")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    job = argparse.Namespace(**vars(args), offset=0, length=None, method="auto", direct=None, overwrite=True,
                             unmap=False, extend=False, sync=True, dry_run=False, backing="auto", large_page=None,
                             call_size=None, iov_size=None, verify=True, create=False, wipe=True)
    for target in args.targets:
        _warn(target)
    return zero.run(job)


def _warn(target: str) -> None:
    """Before writing: where overwriting this device is Clear and not Purge, and the purge route."""
    from ..job.erasure import caveat
    from ..targets import opened

    try:
        with opened(target, writable=False) as tgt:
            ident = tgt.identity()
    except OSError:
        return  # the job itself says why the target cannot be had
    why = caveat(ident)
    if why and not why.startswith("hard disk"):
        say(f"largezero: wipe: {target}: {why}")
