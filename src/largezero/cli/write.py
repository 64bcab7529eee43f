"""largezero write: write standard input at an offset, O_DIRECT for whole granules, the page cache for the rest."""

from __future__ import annotations

import argparse
import mmap
import os
import select
import shlex
import stat
import sys
from typing import Any

from ..cancel import on_signals
from ..engine.writeloop import fdatasync
from ..errors import EXIT_OK, Interrupted, UsageError, ZeroingError
from ..iomap import DirectWriter, WriteResult, aligned_buffer
from ..targets import BLOCK
from ..units import MAX_SIZE, format_size
from .common import print_json, size_arg

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from ..cancel import Cancel

# Standard input is read and written this much at a time (rounded to the block size).
CHUNK = 16 << 20
# ``what`` of the error for data running past the end of a device: nothing to resume.
_PAST_END = "past the end of the device"

USAGE_EXAMPLES = """\
examples:
  printf hello | largezero write disk.img -o 1000 --direct              5 bytes at 1000, O_DIRECT
  largezero write /dev/loop0 -o 4097 --direct < blob                    partial pages through the page cache
  largezero write disk.img -o 1M --direct --block-size 64K < blob       64 KiB blocks: holes around zero-padded
  largezero write disk.img -o 1M --direct --json < blob                 what it took, as JSON
"""


def register(sub: Any) -> None:
    p = sub.add_parser("write", help="write standard input at an offset (any alignment)", epilog=USAGE_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Write standard input to TARGET at OFFSET. With --direct, whole pages go "
                                   "O_DIRECT and the bytes of partial pages through the page cache: no byte "
                                   "outside the data is ever rewritten. A --block-size larger than a page pads "
                                   "holes and unwritten extents around the data with zeros.")
    p.add_argument("target", metavar="TARGET", help="regular file or block device (not created)")
    p.add_argument("-o", "--offset", type=size_arg("offset"), required=True, help="first byte to write")
    p.add_argument("-d", "--direct", action="store_true", help="O_DIRECT writes (default: through the page cache)")
    p.add_argument("-b", "--block-size", type=size_arg("block size"), default=None,
                   help="block size, a power of two from the DIO alignment up to the PMD size "
                        "(default: the page-cache granule; larger pads holes with zeros)")
    p.add_argument("--sync", action="store_true", help="fdatasync before reporting success")
    p.add_argument("-f", "--force", action="store_true", help="use a device even if it is mounted or held")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


class _Input:
    """Standard input, read to fill each chunk; counts what it consumed for the resume line."""

    def __init__(self, fd: int, wake: int | None, cancel: Cancel) -> None:
        self.fd = fd
        self.cancel = cancel
        self.consumed = 0
        self._poll: select.poll | None = None
        if wake is not None:
            self._poll = select.poll()
            self._poll.register(fd, select.POLLIN)
            self._poll.register(wake, select.POLLIN)

    def fill(self, view: memoryview) -> int:
        """Read until ``view`` is full, input ends, or a signal asks to stop (pipes return a
        little at a time; a read blocked on one is woken through the signal wakeup fd)."""
        got = 0
        while got < len(view) and not self.cancel.is_set():
            if self._poll is not None:
                ready = {fd for fd, _ in self._poll.poll()}
                if self.fd not in ready:
                    continue  # only the wakeup fd: the handler has set cancel
            n = os.readv(self.fd, [view[got:]])
            if n == 0:
                break
            got += n
            self.consumed += n
        return got


def _stdin_size(fd: int) -> int | None:
    """Bytes left on standard input when it is a regular file; None for pipes and terminals."""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        return max(0, st.st_size - os.lseek(fd, 0, os.SEEK_CUR))
    except OSError:
        return None


def _summary(r: WriteResult, writer: DirectWriter) -> str:
    mode = "O_DIRECT" if r.direct else "buffered"
    buf = writer.zero_buffer
    rate = f", {format_size(r.bytes_written / r.seconds)}/s" if r.seconds > 0 and r.bytes_written else ""
    return (f"{r.target}: wrote {format_size(r.bytes_written)} at offset {r.offset} ({mode}, "
            f"block {format_size(r.block_size)}): {format_size(r.cache_bytes)} through the page cache, "
            f"padding {format_size(r.pad_bytes)} from {buf.name}; "
            f"{r.calls} write calls, {r.iovecs} iovecs, {r.seconds:.3f} s{rate}")


def resume_command(args: argparse.Namespace, target: str, at: int, skip: int) -> str:
    """The shell line that writes the rest: the input from byte ``skip`` at offset ``at``.

    INPUT stands for whatever was on standard input; the target comes after ``--``, quoted,
    so a name like ``-x`` works as typed."""
    argv = ["largezero", "write", "-o", str(at)]
    if args.direct:
        argv.append("--direct")
    if args.block_size is not None:
        argv += ["--block-size", str(args.block_size)]
    for flag in ("sync", "force", "json"):
        if getattr(args, flag):
            argv.append(f"--{flag}")
    return f"tail -c +{skip + 1} INPUT | " + shlex.join([*argv, "--", target])


def _whole_job_error(err: ZeroingError, args: argparse.Namespace, offset: int, consumed: int) -> ZeroingError:
    """The chunk's error restated for the whole command: bytes from ``offset``, the input
    consumed, and the exact resume line."""
    at = err.stopped_at
    done = at - offset
    text = f"bytes {offset}..{at} are written"
    if err.maybe_until is not None and err.maybe_until > at:
        text += f"; bytes {at}..{err.maybe_until} may also be written"
    text += (f"; {consumed} bytes of standard input were consumed, {done} of them written; "
             f"resume with: {resume_command(args, err.target, at, done)}")
    fields: dict[str, Any] = {"target": err.target, "method": "write", "offset": offset, "bytes_zeroed": done,
                              "length": None, "maybe_until": err.maybe_until, "errno": err.errno, "what": err.what}
    if isinstance(err, Interrupted):
        return Interrupted(f"{err.target}: interrupted at byte {at}; {text}", **fields)
    cause = os.strerror(err.errno) if err.errno else "failed"
    return ZeroingError(f"{err.target}: {err.what} failed at byte {at}: {cause} ({text})", **fields)


def run(args: argparse.Namespace) -> int:
    stdin = 0
    if sys.stdin is None or os.isatty(stdin):
        raise UsageError("no data: standard input is a terminal; redirect or pipe the data to write")
    offset: int = args.offset
    with DirectWriter(args.target, block_size=args.block_size, direct=args.direct, force=args.force) as writer, \
            on_signals(wake=True) as cancel:
        tgt = writer.target
        known = _stdin_size(stdin)
        limit = tgt.size if tgt.kind == BLOCK else MAX_SIZE
        if known is not None and offset + known > limit:
            raise UsageError(f"{tgt.name}: data of {known} bytes at offset {offset} is larger than the target "
                             f"({tgt.size} bytes)")
        total = WriteResult(tgt.name, tgt.kind, writer.direct, offset, 0, writer.block_size, writer.align,
                            granule=writer.granule, span_offset=offset, zero_buffer=writer.zero_buffer, writes=0)
        source = _Input(stdin, cancel.wake, cancel)
        try:
            _copy(args, writer, source, total, cancel)
        except ZeroingError as err:
            if err.what == _PAST_END:
                raise
            raise _whole_job_error(err, args, offset, source.consumed) from None
        if args.sync:
            fdatasync(tgt.fd)
    if args.json:
        out = total.to_dict()
        out["synced"] = bool(args.sync)
        print_json(out)
    else:
        print(_summary(total, writer))
    return EXIT_OK


def _copy(args: argparse.Namespace, writer: DirectWriter, source: _Input, total: WriteResult,
          cancel: Cancel) -> None:
    tgt, offset = writer.target, args.offset
    # Chunks meet on block boundaries, so only the first head and the last tail can be partial.
    unit = max(writer.block_size, writer.granule)
    staging_size = max(CHUNK - CHUNK % unit, unit)
    align = max(mmap.PAGESIZE, writer.align)
    staging = aligned_buffer(staging_size + align)
    pos = offset
    first = True
    while True:
        want = pos - pos % unit + staging_size - pos
        if tgt.kind == BLOCK:
            want = min(want, max(0, tgt.size - pos) + 1)  # one byte past the end tells overflow
        # Place the data so its address is congruent to its target offset: no bounce copy.
        phase = pos % align
        view = staging[phase: phase + want]
        got = source.fill(view)
        if cancel.is_set():
            # Stopped while reading: what was read of this chunk is consumed but not written.
            raise Interrupted("interrupted", target=tgt.name, method="write", offset=pos, bytes_zeroed=0,
                              what="interrupted")
        if got == 0 and not first:
            return
        first = False
        if tgt.kind == BLOCK and pos + got > tgt.size:
            done = pos - offset
            if not done:
                raise UsageError(f"{tgt.name}: data at offset {offset} is larger than the target "
                                 f"({tgt.size} bytes); nothing written")
            raise ZeroingError(
                f"{tgt.name}: data is larger than the target: it goes past the end of the device "
                f"({tgt.size} bytes); wrote the first {done} bytes at offset {offset}",
                target=tgt.name, method="write", offset=offset, length=done, bytes_zeroed=done, what=_PAST_END,
            )
        total.add(writer.write(view[:got], pos, cancel=cancel))
        pos += got
        if got < want:
            return
