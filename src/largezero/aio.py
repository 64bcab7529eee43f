"""Reads in flight while the caller checks the last one: Linux native AIO, else one at a time.

``verify`` reads with O_DIRECT and compares each chunk with the zero buffer. Done in turn,
the device idles while the CPU compares; with the next read already submitted
(``io_submit``), the two overlap, with no thread and no GIL hand-off: the kernel fills one
buffer while Python checks the other. Native AIO is only asynchronous for O_DIRECT; on a
buffered descriptor, and where ``io_setup`` is refused (no CONFIG_AIO, ``fs.aio-max-nr``
used up, an architecture whose numbers are not listed here), :class:`SyncReads` does the same
job one ``preadv`` at a time, through the ``syscalls.ops`` seam.
"""

from __future__ import annotations

import ctypes
import errno
import os

from . import syscalls
from .syscalls import libc

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from typing import Any

# (io_setup, io_destroy, io_getevents, io_submit) by architecture.
_NUMBERS = {"x86_64": (206, 207, 208, 209), "aarch64": (0, 1, 4, 2), "riscv64": (0, 1, 4, 2)}
_IOCB_CMD_PREAD = 0
# syscall(2) is variadic: every argument passed as a full long, never an int with stale upper bits.
_L = ctypes.c_long


class _Iocb(ctypes.Structure):
    # struct iocb of <linux/aio_abi.h>, little-endian 64-bit layout (aio_key before aio_rw_flags).
    _fields_ = [("data", ctypes.c_uint64), ("key", ctypes.c_uint32), ("rw_flags", ctypes.c_uint32),
                ("opcode", ctypes.c_uint16), ("reqprio", ctypes.c_int16), ("fildes", ctypes.c_uint32),
                ("buf", ctypes.c_uint64), ("nbytes", ctypes.c_uint64), ("offset", ctypes.c_int64),
                ("reserved2", ctypes.c_uint64), ("flags", ctypes.c_uint32), ("resfd", ctypes.c_uint32)]


class _Event(ctypes.Structure):
    _fields_ = [("data", ctypes.c_uint64), ("obj", ctypes.c_uint64), ("res", ctypes.c_int64),
                ("res2", ctypes.c_int64)]


class SyncReads:
    """The interface of :class:`AioReads`, one blocking ``preadv`` per read, done at ``wait``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._queue: list[tuple[int, Any, int]] = []

    def submit(self, tag: int, view: Any, address: int, offset: int) -> None:
        self._queue.append((tag, view, offset))

    def wait(self) -> tuple[int, int]:
        """(tag, bytes read) of the oldest read; OSError on a read error."""
        tag, view, offset = self._queue.pop(0)
        while True:
            try:
                return tag, syscalls.ops.preadv(self.fd, [view], offset)
            except InterruptedError:
                continue

    def close(self) -> None:
        self._queue.clear()


class AioReads:
    """Up to ``depth`` reads of one descriptor in flight (io_submit), completed by io_getevents."""

    def __init__(self, fd: int, depth: int, numbers: tuple[int, int, int, int]) -> None:
        self.fd = fd
        self._setup, self._destroy, self._getevents, self._submit = numbers
        self._ctx = ctypes.c_ulong(0)
        if libc.syscall(_L(self._setup), _L(depth), ctypes.byref(self._ctx)) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        self._iocbs = [_Iocb() for _ in range(depth)]
        self._free = list(range(depth))
        self._busy: dict[int, int] = {}  # iocb index -> tag
        self._events = (_Event * depth)()
        self._done: list[tuple[int, int]] = []

    def submit(self, tag: int, view: Any, address: int, offset: int) -> None:
        slot = self._free.pop()
        cb = self._iocbs[slot]
        cb.data, cb.opcode, cb.fildes = slot, _IOCB_CMD_PREAD, self.fd
        cb.buf, cb.nbytes, cb.offset = address, len(view), offset
        one = (ctypes.POINTER(_Iocb) * 1)(ctypes.pointer(cb))
        while True:
            got = libc.syscall(_L(self._submit), self._ctx, _L(1), one)
            if got == 1:
                break
            code = ctypes.get_errno()
            if code not in (errno.EINTR, errno.EAGAIN):
                self._free.append(slot)
                raise OSError(code, os.strerror(code))
        self._busy[slot] = tag

    def wait(self) -> tuple[int, int]:
        """(tag, bytes read) of a completed read, the earliest completed first."""
        while not self._done:
            n = libc.syscall(_L(self._getevents), self._ctx, _L(1), _L(len(self._events)), self._events, None)
            if n < 0:
                code = ctypes.get_errno()
                if code == errno.EINTR:
                    continue  # a signal: the caller's handler ran; the reads go on
                raise OSError(code, os.strerror(code))
            for ev in self._events[:n]:
                slot = int(ev.data)
                self._free.append(slot)
                self._done.append((self._busy.pop(slot), int(ev.res)))
        tag, res = self._done.pop(0)
        if res < 0:
            raise OSError(-res, os.strerror(-res))
        return tag, res

    def close(self) -> None:
        """Tear down; io_destroy waits for reads still in flight, so their buffers may go after."""
        if self._ctx.value:
            libc.syscall(_L(self._destroy), self._ctx)
            self._ctx = ctypes.c_ulong(0)


def reads(fd: int, depth: int, direct: bool) -> AioReads | SyncReads:
    """AIO ``depth`` deep for an O_DIRECT descriptor where the kernel offers it, else SyncReads."""
    numbers = _NUMBERS.get(os.uname().machine)
    if direct and depth > 1 and numbers is not None:
        try:
            return AioReads(fd, depth, numbers)
        except OSError:
            pass
    return SyncReads(fd)


libc.syscall.restype = ctypes.c_long
