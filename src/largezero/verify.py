"""Checking that a range of a target reads back as zeros, and saying what was read from where.

``verify_target`` (and ``check_zero`` under it) is what ``largezero verify``, ``zero --verify``
and ``wipe`` run. Only the target's stored data is read: holes and unwritten extents of a
file, or of a loop device's backing file, are answered by the filesystem with zeros without
touching storage, so reading them proves nothing about the medium. They are found with
``SEEK_DATA`` (:mod:`largezero.targets.extents`) and counted in ``bytes_skipped``;
``bytes_read`` is only what storage returned.

* ``direct=True`` reads with O_DIRECT (no page cache), the range widened to the DIO alignment
  for the reads and only its own bytes compared; two reads in flight (native AIO, see
  :mod:`largezero.inflight`) so the device reads the next chunk while this one is compared.
* ``direct=False`` reads a file through the page cache; a block device with O_DIRECT anyway
  when it takes it (a buffered read first fills the page cache, which made verify slower
  than ``cmp`` and evicted the cache with zeros).

Each chunk is compared against the shared zero buffer with ``bytearray.startswith``, a
``memcmp``; the zero buffer is the PMD-sized alias of the 4 KiB zero page, so the comparison's
source stays in L1. Only when a chunk differs is the first non-zero byte located.

``cancel`` is checked before every read and ``progress`` told the checked prefix after it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import time

from ._record import record
from .errors import EXIT_INTERRUPTED, LargezeroError, TargetError, UsageError, option
from .inflight import reads
from .mm import zero_buffer_for
from .targets import BLOCK, Target, open_target
from .targets.extents import data_map

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from .cancel import Cancel

CHUNK = 8 << 20  # buffered reads
DIRECT_CHUNK = 4 << 20  # O_DIRECT reads, DEPTH of them in flight
DEPTH = 2
_FIND = 4096


class ShortRead(OSError):
    """The target ended before the range did (it shrank, or the range was past its end)."""


class DirectUnsupported(OSError):
    """O_DIRECT reads are not possible on this target (the filesystem refuses O_DIRECT)."""


class VerifyFailed(LargezeroError):
    """A read error while verifying (not a mismatch: that is exit 3 with a result)."""


class VerifyInterrupted(LargezeroError):
    """Verification stopped on request (SIGINT/SIGTERM or a cancel event): says how far it got."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, message: str, *, offset: int, checked: int, bytes_read: int, bytes_skipped: int,
                 remaining: int = 0) -> None:
        super().__init__(message)
        self.offset = offset
        self.checked = checked  # bytes from offset known to be zero
        self.remaining = remaining  # bytes of the range after stopped_at, not checked
        self.verify_left: tuple[int, int, bool] | None = None  # set by a job whose zeroing is done
        self.bytes_read = bytes_read
        self.bytes_skipped = bytes_skipped

    @property
    def stopped_at(self) -> int:
        return self.offset + self.checked


@record(frozen=True)
class VerifyResult:
    offset: int
    length: int
    first_nonzero: int | None  # None: the whole range is zero
    value: int | None  # the byte found there
    bytes_read: int  # stored data read from the target and compared
    reads: int
    bytes_skipped: int = 0  # holes and unwritten extents: zeros made up by the filesystem, not read
    direct: bool = False  # read with O_DIRECT
    mapped: str = ""  # how the stored data was found (SEEK_DATA on the file, on a loop's backing file, ...)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.first_nonzero is None

    def to_dict(self) -> dict[str, object]:
        return {"zero": self.ok, "first_nonzero": self.first_nonzero, "value": self.value,
                "offset": self.offset, "length": self.length, "bytes_read": self.bytes_read,
                "bytes_skipped": self.bytes_skipped, "direct": self.direct, "reads": self.reads,
                "data_map": self.mapped, "seconds": round(self.seconds, 6)}


def _first_in(buf: bytearray, start: int, end: int) -> int:
    """Index of the first non-zero byte of buf[start:end], which is known to hold one."""
    for at in range(start, end, _FIND):
        stop = min(end, at + _FIND)
        piece = bytes(buf[at:stop])  # one page, only on the mismatch path
        stripped = piece.lstrip(b"\0")
        if stripped:
            return at + len(piece) - len(stripped)
    raise AssertionError("no non-zero byte where one was found")


def _mismatch(raw: bytearray, lo: int, hi: int, zero: memoryview) -> int | None:
    """Index in raw of the first non-zero byte of raw[lo:hi], or None when it is all zero."""
    zsize = len(zero)
    for at in range(lo, hi, zsize):
        piece_end = min(hi, at + zsize)
        if not raw.startswith(zero[: piece_end - at], at, piece_end):
            return _first_in(raw, at, piece_end)
    return None


class _Buffer:
    """One read buffer, page-aligned (O_DIRECT needs its memory aligned), reused for every read."""

    def __init__(self, size: int) -> None:
        self.raw = bytearray(size + 4096)
        address = ctypes.addressof((ctypes.c_char * len(self.raw)).from_buffer(self.raw))
        self.pad = -address % 4096
        self.address = address + self.pad
        self.view = memoryview(self.raw)[self.pad : self.pad + size]


def _pieces(ranges: Iterator[tuple[int, int]], chunk: int, align: int) -> Iterator[tuple[int, int, int, int]]:
    """(read from, read to, own bytes from, own bytes to) of each read over the data ranges."""
    for lo, hi in ranges:
        cur = lo
        while cur < hi:
            at = cur - cur % align
            stop = min(at + chunk, -(-hi // align) * align)
            yield at, stop, cur, min(stop, hi)
            cur = min(stop, hi)


def verify_target(tgt: Target, offset: int = 0, length: int | None = None, *, direct: bool = False,
                  cancel: Cancel | None = None, progress: Callable[[int], None] | None = None) -> VerifyResult:
    """Check [offset, offset+length) of an opened target (None: to its end).

    Raises UsageError for a range past the end, TargetError when ``direct`` is impossible,
    VerifyFailed on a read error, VerifyInterrupted when ``cancel`` is set.
    """
    size = tgt.refresh_size()
    if offset > size:
        raise UsageError(f"{tgt.name}: offset {offset} is past the end ({size} bytes)")
    if length is None:
        length = size - offset
    if offset + length > size:
        raise UsageError(f"{tgt.name}: range ends at byte {offset + length}, past the end ({size} bytes)")
    try:
        return check_zero(tgt, offset, length, direct=direct, cancel=cancel, progress=progress)
    except DirectUnsupported as err:
        raise TargetError(f"{tgt.name}: {err.strerror}; verify without {option('direct')}") from None
    except ShortRead as err:
        raise VerifyFailed(f"{tgt.name}: {err.strerror}") from None
    except OSError as err:
        raise VerifyFailed(f"{tgt.name}: read failed while verifying: {err.strerror or err}") from None


def check_zero(target: Target | int, offset: int, length: int, *, chunk: int | None = None, direct: bool = False,
               cancel: Cancel | None = None, progress: Callable[[int], None] | None = None,
               depth: int | None = None) -> VerifyResult:
    """Check [offset, offset+length) of a target (or an open fd); see the module docstring.

    Raises ShortRead when the target ends inside the range, DirectUnsupported when ``direct``
    cannot be had, VerifyInterrupted when ``cancel`` is set, OSError on read errors.
    """
    if offset < 0 or length < 0:
        raise ValueError("offset and length must not be negative")
    tgt = target if isinstance(target, Target) else open_target(target, writable=False)
    try:
        size = tgt.refresh_size()
        if offset + length > size:
            raise ShortRead(errno.EINVAL, f"range ends at byte {offset + length}, past the end ({size} bytes)")
        read_fd, use_direct = tgt.fd, False
        if (direct or tgt.kind == BLOCK) and tgt.dio_offset_align:
            try:
                read_fd, use_direct = tgt.direct_fd(), True
            except TargetError:
                pass
        if direct and not use_direct:
            raise DirectUnsupported(errno.EINVAL, "direct I/O (O_DIRECT) is not supported here")
        if not use_direct:
            try:
                os.posix_fadvise(tgt.fd, offset, length, os.POSIX_FADV_SEQUENTIAL)  # doubles readahead
            except OSError:
                pass
        want = chunk or (DIRECT_CHUNK if use_direct else CHUNK)
        # A short range needs no 8 MiB buffer: allocating and faulting one costs more than the check.
        want = min(want, -(-(length + 8192) // 4096) * 4096)
        align = tgt.dio_align if use_direct else 1
        if depth is None:  # a reader thread pays off only over more than two chunks
            depth = DEPTH if use_direct and length > 2 * want else 1
        with data_map(tgt, offset, length) as dmap:
            return _Check(read_fd, offset, length, max(align, want - want % align), align,
                          depth if use_direct else 1, use_direct, cancel, progress).run(dmap.ranges(offset,
                                                                                                    offset + length),
                                                                                        dmap.how)
    finally:
        if tgt is not target:
            tgt.close()


class _Check:
    """One pass over the data ranges: reads ``depth`` deep, each compared in order."""

    def __init__(self, fd: int, offset: int, length: int, chunk: int, align: int, depth: int, direct: bool,
                 cancel: Cancel | None, progress: Callable[[int], None] | None) -> None:
        self.fd, self.offset, self.end = fd, offset, offset + length
        self.chunk, self.align, self.depth, self.direct = chunk, align, depth, direct
        self.cancel, self.progress = cancel, progress
        self.bytes_read = self.reads = 0
        self.pos = offset  # [offset, pos) is known to read as zero
        self.started = time.perf_counter()

    def _result(self, first: int | None, value: int | None, mapped: str) -> VerifyResult:
        end = self.end if first is None else first
        return VerifyResult(self.offset, self.end - self.offset, first, value, self.bytes_read, self.reads,
                            end - self.offset - self.bytes_read, self.direct, mapped,
                            time.perf_counter() - self.started)

    def _interrupted(self) -> VerifyInterrupted:
        pos, skipped = self.pos, self.pos - self.offset - self.bytes_read
        return VerifyInterrupted(
            f"verify interrupted at byte {pos}: bytes {self.offset}..{pos} are zero "
            f"({self.bytes_read} read, {skipped} skipped)",
            offset=self.offset, checked=pos - self.offset, bytes_read=self.bytes_read, bytes_skipped=skipped,
            remaining=self.end - pos)

    def run(self, ranges: Iterator[tuple[int, int]], mapped: str) -> VerifyResult:
        zero = zero_buffer_for(False).view
        pieces = _pieces(ranges, self.chunk, self.align)
        bufs = [_Buffer(self.chunk) for _ in range(self.depth)]
        free = list(range(self.depth))
        flight = reads(self.fd, self.depth, self.direct)
        queued: list[tuple[int, int, int, int, int]] = []  # (buffer, at, stop, lo, hi), oldest first
        landed: dict[int, int] = {}  # buffer -> bytes read, completed out of order
        more = True
        try:
            while True:
                while more and free and not (self.cancel is not None and self.cancel.is_set()):
                    piece = next(pieces, None)
                    if piece is None:
                        more = False
                        break
                    i = free.pop()
                    at, stop = piece[0], piece[1]
                    flight.submit(i, bufs[i].view[: stop - at], bufs[i].address, at)
                    queued.append((i, *piece))
                if not queued:
                    if more:
                        raise self._interrupted()
                    break
                i, at, stop, lo, hi = queued[0]
                while i not in landed:
                    tag, got = flight.wait()
                    landed[tag] = got
                got = landed.pop(i)
                queued.pop(0)
                self.reads += 1
                if at + got < hi:
                    raise ShortRead(errno.EIO, f"unexpected end of data at byte {max(lo, at + got)}")
                self.bytes_read += hi - lo
                buf = bufs[i]
                where = _mismatch(buf.raw, buf.pad + lo - at, buf.pad + hi - at, zero)
                if where is not None:
                    self.bytes_read -= hi - (at + where - buf.pad)  # read, but past the answer
                    return self._result(at + where - buf.pad, buf.raw[where], mapped)
                free.append(i)
                self.pos = hi
                if self.progress is not None:
                    self.progress(hi - self.offset)
                if self.cancel is not None and self.cancel.is_set() and (queued or more):
                    raise self._interrupted()
        finally:
            flight.close()
        self.pos = self.end
        if self.progress is not None:
            self.progress(self.end - self.offset)
        return self._result(None, None, mapped)


def first_nonzero(fd: int, offset: int, length: int) -> int | None:
    """Offset of the first non-zero byte in [offset, offset+length), or None if all zero."""
    return check_zero(fd, offset, length).first_nonzero
