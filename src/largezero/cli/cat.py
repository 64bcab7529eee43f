"""largezero cat: zeros (or a file, its holes from the zero buffer) as a stream on stdout.

Behaves like coreutils cat at the edges: a reader that goes away ends it quietly with 141,
EAGAIN on a non-blocking stdout waits with poll, a closed stdout (``>&-``) is one line and 1,
SIGINT, SIGTERM and SIGHUP say how many bytes went out and exit 130, 143 and 129. A file or
block device on stdout goes through the refusals of ``zero`` (mounted, held, a signature,
backing a loop) unless --force; a FILE that is not a regular file or block device (a FIFO)
is refused without waiting for a writer.
"""

from __future__ import annotations

import argparse
import os

from ..cancel import STOP
from ..errors import EXIT_INTERRUPTED, EXIT_OK, Interrupted, LargezeroError, UsageError
from .common import closed_at_start, say, size_arg

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from typing import Any

EXIT_PIPE = 128 + 13  # what a shell reports for a writer killed by SIGPIPE, as coreutils cat gives
STDOUT = 1

EXAMPLES = """\
examples:
  largezero cat -l 100G | ssh host 'dd of=/dev/sdX bs=1M'   100 GiB of zeros, never copied by us
  largezero cat disk.img | zstd > disk.img.zst              holes from the zero buffer, data by splice
  largezero cat -o 1G -l 4G disk.img > part.img             a sparse input stays sparse
"""


class StdoutClosed(LargezeroError):
    """Standard output is not open: there is nowhere to write."""


def register(sub: Any) -> None:
    p = sub.add_parser("cat", help="zeros, or a file with its holes from the zero buffer, to stdout",
                       description="Write LENGTH zero bytes to standard output (no -l: endless, like "
                                   "/dev/zero), or FILE's bytes from OFFSET with its holes and unwritten "
                                   "extents served from the zero buffer. Pipes get vmsplice of the huge "
                                   "zero folio, sockets splice, files and block devices the zeroing engine.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE", nargs="?", default=None,
                   help="regular file or block device to stream (default: zeros)")
    p.add_argument("-o", "--offset", type=size_arg("offset"), default=0, help="first byte of FILE (default 0)")
    p.add_argument("-l", "--length", type=size_arg("length"), default=None,
                   help="bytes to write (default: endless zeros, or to the end of FILE)")
    p.add_argument("-f", "--force", action="store_true",
                   help="write binary zeros to a terminal, or to a file or device that is in use (mounted, held, "
                        "backing a loop) or carries a signature")
    p.add_argument("--json", action="store_true", help="print one JSON object to stderr at the end")
    p.add_argument("-v", "--verbose", action="store_true", help="say on stderr which mechanism ran")
    p.set_defaults(func=run)


def _check_stdout(args: argparse.Namespace) -> None:
    """Before anything is opened: a closed fd 1 would otherwise be reused by our own input
    (main() points a closed fd 1 at /dev/null, so a stream into it would "succeed")."""
    if STDOUT in closed_at_start:
        raise StdoutClosed("standard output is closed: nowhere to write")
    try:
        os.fstat(STDOUT)
    except OSError as err:
        raise StdoutClosed(f"standard output: {err.strerror}") from None
    if args.file is None and not args.force and os.isatty(STDOUT):
        raise UsageError("refusing to write binary zeros to a terminal (use --force, or redirect stdout)")
    if args.file is None and args.offset:
        raise UsageError("--offset needs a FILE: a stream of zeros has no offset")


def _report(args: argparse.Namespace, result: Any, outcome: str) -> None:
    if args.verbose:
        via = ", ".join(f"{name} ({calls} calls, {n} bytes)" for name, (calls, n) in result.mechanisms.items())
        src = f"{result.source} " if result.source else "zeros "
        say(f"largezero cat: {src}to {result.kind}: {result.bytes} bytes by {via or 'nothing'}; "
            f"zero buffer {result.zero_buffer or 'none'}; {result.seconds:.3f} s; {outcome}")
        for why in result.fallback:
            say(f"largezero cat: fallback: {why}")
    if args.json:
        import json

        obj = result.to_dict()
        obj["outcome"] = outcome
        say(json.dumps(obj))


def _quiet_stdout() -> None:
    """After EPIPE: point fd 1 at /dev/null so nothing at exit tries the dead pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, STDOUT)
        os.close(devnull)
    except OSError:
        pass


def run(args: argparse.Namespace) -> int:
    _check_stdout(args)
    from ..stream import StreamResult, stream_file, zero_stream

    result = StreamResult("stdout", "")
    try:
        # The one cancel flag: inside the zeroing engine (a file or device on stdout) a signal
        # stops at a call boundary; elsewhere it raises where the stream is (a blocked pipe).
        if args.file is None:
            zero_stream(STDOUT, args.length, result=result, name="stdout", cancel=STOP, force=args.force)
        else:
            stream_file(args.file, STDOUT, args.offset, args.length, result=result, name="stdout", cancel=STOP,
                        force=args.force)
    except BrokenPipeError:
        _quiet_stdout()
        _report(args, result, "reader gone")
        return EXIT_PIPE
    except (KeyboardInterrupt, Interrupted):
        _report(args, result, "interrupted")
        say(f"largezero cat: interrupted after {result.bytes} bytes")
        return EXIT_INTERRUPTED
    except LargezeroError:
        raise
    except OSError as err:
        _report(args, result, "failed")
        raise LargezeroError(f"write error after {result.bytes} bytes: {err.strerror or err}") from None
    _report(args, result, "done")
    return EXIT_OK
