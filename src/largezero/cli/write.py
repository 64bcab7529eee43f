"""largezero write: write standard input at an offset, padding partial blocks like iomap_dio_zero()."""

from __future__ import annotations

import argparse
import mmap
import os
import stat
import sys
from typing import Any

from .. import syscalls
from ..errors import EXIT_OK, UsageError
from ..iomap.direct_io import DirectWriteError, DirectWriter, WriteResult, aligned_buffer
from ..targets import BLOCK
from ..units import MAX_SIZE, format_size
from .common import print_json, size_arg

# Standard input is read and written this much at a time (rounded to the block size).
CHUNK = 16 << 20

USAGE_EXAMPLES = """\
examples:
  printf hello | largezero write disk.img -o 1000 --direct              5 bytes at 1000, O_DIRECT
  largezero write /dev/loop0 -o 4097 --direct --block-size 64K < blob   64 KiB blocks, partial ones padded
  largezero write disk.img -o 1M --direct --json < blob                 what it took, as JSON
"""


def register(sub: Any) -> None:
    p = sub.add_parser("write", help="write standard input at an offset (any alignment)", epilog=USAGE_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Write standard input to TARGET at OFFSET. With --direct, partial blocks are "
                                   "padded with zeros from the shared zero buffer when they are holes or unwritten, "
                                   "and read-modify-written otherwise.")
    p.add_argument("target", metavar="TARGET", help="regular file or block device (not created)")
    p.add_argument("-o", "--offset", type=size_arg("offset"), required=True, help="first byte to write")
    p.add_argument("-d", "--direct", action="store_true", help="O_DIRECT writes (default: through the page cache)")
    p.add_argument("-b", "--block-size", type=size_arg("block size"), default=None,
                   help="block size, a power of two from the DIO alignment up to the PMD size "
                        "(default: the DIO alignment)")
    p.add_argument("--sync", action="store_true", help="fdatasync before reporting success")
    p.add_argument("-f", "--force", action="store_true", help="use a device even if it is mounted or held")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _stdin_size(fd: int) -> int | None:
    """Bytes left on standard input when it is a regular file; None for pipes and terminals."""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        return max(0, st.st_size - os.lseek(fd, 0, os.SEEK_CUR))
    except OSError:
        return None


def _fill(fd: int, view: memoryview) -> int:
    """Read until ``view`` is full or input ends (pipes return a little at a time)."""
    got = 0
    while got < len(view):
        n = os.readv(fd, [view[got:]])
        if n == 0:
            break
        got += n
    return got


def _summary(r: WriteResult, writer: DirectWriter) -> str:
    mode = "O_DIRECT" if r.direct else "buffered"
    buf = writer.zero_buffer
    rate = f", {format_size(r.bytes_written / r.seconds)}/s" if r.seconds > 0 and r.bytes_written else ""
    return (f"{r.target}: wrote {format_size(r.bytes_written)} at offset {r.offset} ({mode}, "
            f"block {format_size(r.block_size)}): padding {format_size(r.pad_bytes)} "
            f"({format_size(r.zero_pad_bytes)} straight from {buf.name}), "
            f"read {format_size(r.rmw_bytes_read)} for read-modify-write in {r.reads} reads; "
            f"{r.calls} pwritev calls, {r.iovecs} iovecs, {r.seconds:.3f} s{rate}")


def run(args: argparse.Namespace) -> int:
    stdin = 0
    if sys.stdin is None or os.isatty(stdin):
        raise UsageError("no data: standard input is a terminal; redirect or pipe the data to write")
    offset: int = args.offset
    with DirectWriter(args.target, block_size=args.block_size, direct=args.direct, force=args.force) as writer:
        tgt = writer.target
        known = _stdin_size(stdin)
        limit = tgt.size if tgt.kind == BLOCK else MAX_SIZE
        if known is not None and offset + known > limit:
            raise UsageError(f"{tgt.name}: data of {known} bytes at offset {offset} is larger than the target "
                             f"({tgt.size} bytes)")
        total = WriteResult(tgt.name, tgt.kind, writer.direct, offset, 0, writer.block_size, writer.align,
                            span_offset=offset, zero_buffer=writer.zero_buffer, writes=0)
        # Chunks meet on block boundaries, so only the first head and the last tail can be partial.
        staging_size = max(CHUNK - CHUNK % writer.block_size, writer.block_size)
        align = max(mmap.PAGESIZE, writer.align)
        staging = aligned_buffer(staging_size + align)
        pos = offset
        first = True
        while True:
            want = pos - pos % writer.block_size + staging_size - pos
            if tgt.kind == BLOCK:
                want = min(want, max(0, tgt.size - pos) + 1)  # one byte past the end tells overflow
            # Place the data so its address is congruent to its target offset: no bounce copy.
            phase = pos % align
            view = staging[phase: phase + want]
            got = _fill(stdin, view)
            if got == 0 and not first:
                break
            first = False
            if tgt.kind == BLOCK and pos + got > tgt.size:
                done = pos - offset
                if not done:
                    raise UsageError(f"{tgt.name}: data at offset {offset} is larger than the target "
                                     f"({tgt.size} bytes); nothing written")
                raise DirectWriteError(
                    f"{tgt.name}: data is larger than the target: it goes past the end of the device "
                    f"({tgt.size} bytes); wrote the first {done} bytes at offset {offset}",
                    target=tgt.name, offset=offset, length=done, bytes_written=done, what="write",
                )
            total.add(writer.write(view[:got], pos))
            pos += got
            if got < want:
                break
        if args.sync:
            syscalls.ops.fdatasync(tgt.fd)
    if args.json:
        out = total.to_dict()
        out["synced"] = bool(args.sync)
        print_json(out)
    else:
        print(_summary(total, writer))
    return EXIT_OK
