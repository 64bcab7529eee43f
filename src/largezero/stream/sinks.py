"""How zeros and data reach a stream output: the base sink, and pipes, sockets and the rest.

Every sink has the same two verbs, ``zeros(n)`` and ``data(src, offset, n)``. Each kind tries
its fast call first; a call the output refuses (EINVAL, ENOSYS, EOPNOTSUPP) is remembered for
the file behind the fd (targets/refusals.py) and the one fallback runs: ``writev`` from the
zero buffer for zeros, a bounded read-and-write for data (shutil's fast-copy pattern).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import stat
from collections.abc import Callable

from .. import syscalls
from ..engine.plan import MAX_RW_COUNT, default_call_bytes
from ..mm import ZeroBuffer, zero_buffer_for
from ..targets import refusals
from . import calls
from .calls import REFUSED, SPLICE_F_MORE, SPLICE_F_NONBLOCK, wait_writable
from .result import StreamResult, check_cancel

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from typing import Any

    from ..cancel import Cancel

PIPE, SOCKET, FILE, BLOCK, TTY, OTHER = "pipe", "socket", "file", "block", "tty", "other"
PIPE_TARGET = 1 << 20  # grow a pipe to 1 MiB (the default pipe-max-size): 16x fewer wake-ups
COPY_CHUNK = 1 << 20  # the bounded buffer of the read-and-write fallback
SEND_CHUNK = 64 << 20  # one vectored send: big enough to amortise, small enough to stop on Ctrl-C
# Each vmsplice iovec is the first 256 KiB of LARGE_ZERO_PAGE, repeated. The reader copies out
# of the pages the pipe references; a 256 KiB source stays in its L2 where all 2 MiB do not.
# 8 GiB into `dd of=/dev/null bs=1M`, 5 runs each: 128-256 KiB 0.40-0.48 s, 1-2 MiB 0.52-0.73 s,
# 16 KiB 1.1 s, 4 KiB 6.3 s (many iovecs per call cost more than the cache saves).
VMSPLICE_IOV = 256 << 10


def classify(fd: int) -> str:
    """What an output fd is: pipe (or FIFO), socket, file, block, tty or other."""
    st = os.fstat(fd)
    if stat.S_ISFIFO(st.st_mode):
        return PIPE
    if stat.S_ISSOCK(st.st_mode):
        return SOCKET
    if stat.S_ISREG(st.st_mode):
        return FILE
    if stat.S_ISBLK(st.st_mode):
        return BLOCK
    return TTY if os.isatty(fd) else OTHER


def describe_buffer(buf: ZeroBuffer) -> str:
    return f"{buf.name} ({buf.backing}, {buf.size} bytes)"


def grow_pipe(fd: int, want: int = PIPE_TARGET) -> int:
    """Grow a pipe to ``want`` bytes where allowed (never shrink it); return its capacity."""
    try:
        size = fcntl.fcntl(fd, calls.F_GETPIPE_SZ)
    except OSError:
        return 1 << 16
    if size < want:
        # EPERM over pipe-max-size or the user's pipe quota: keep what we have.
        with contextlib.suppress(OSError):
            size = fcntl.fcntl(fd, calls.F_SETPIPE_SZ, want)
    return int(size)


class Sink:
    """An output that takes ``zeros`` and ``data``; the base writes with writev and read/write."""

    kind = OTHER

    def __init__(self, fd: int, result: StreamResult, cancel: Cancel | None) -> None:
        self.fd = fd
        self.result = result
        self.cancel = cancel
        self.key = refusals.key_of(fd)
        self._wbuf: ZeroBuffer | None = None
        self._wfull: list[memoryview] = []
        self._wcall = 0
        self._copy: memoryview | None = None

    # -- the fallback, written once -----------------------------------------------------------

    def usable(self, call: str) -> bool:
        return call not in refusals.refused(self.key)

    def refuse(self, call: str, err: OSError, instead: str) -> None:
        refusals.remember(self.key, call)
        self.result.note(f"{call} refused ({err.strerror or err}); using {instead}")

    def call(self, move: Callable[..., int], *args: Any, wait_fd: int | None = None) -> int:
        """One output call, made again after EAGAIN once ``wait_fd`` (default: the output)
        polls writable; Ctrl-C is checked before every try. Other errors are the caller's."""
        while True:
            check_cancel(self.cancel, self.result)
            try:
                return move(*args)
            except BlockingIOError:
                wait_writable(self.fd if wait_fd is None else wait_fd)

    def _writev_buffer(self) -> ZeroBuffer:
        if self._wbuf is None:
            # writev copies with the CPU: the 4 KiB zero page aliased over 2 MiB stays in L1.
            self._wbuf = zero_buffer_for(False)
            self._wcall = default_call_bytes(self._wbuf.size)
            self._wfull = self._wbuf.iovecs(self._wcall)
            if self.result.zero_buffer is None:
                self.result.zero_buffer = describe_buffer(self._wbuf)
        return self._wbuf

    def write_zeros(self, n: int) -> None:
        """``n`` zeros with writev from the zero buffer: the fallback of every kind."""
        buf = self._writev_buffer()
        left = n
        while left > 0:
            want = min(left, self._wcall)
            k = self.call(syscalls.ops.writev, self.fd, self._wfull if want == self._wcall else buf.iovecs(want))
            if k <= 0:
                raise OSError(errno.EIO, "write made no progress")
            self.result.record("writev", k, zeros=True)
            left -= k

    def put(self, data: memoryview) -> None:
        """Write all of ``data`` at the output's position (streams: in order)."""
        while len(data):
            k = self.call(self.write_some, data)
            if k <= 0:
                raise OSError(errno.EIO, "write made no progress")
            self.result.record("read+write", k, zeros=False)
            data = data[k:]

    def write_some(self, data: memoryview) -> int:
        """One write of ``data`` at the output's position; returns the bytes written."""
        return syscalls.ops.write(self.fd, data)

    def fast_data(self, call: str, instead: str, n: int, move: Callable[[int], int]) -> tuple[int, bool]:
        """Up to ``n`` bytes with the fast ``call`` while this output takes it: ``move(done)``
        moves some of what is left after ``done`` bytes and returns how many.

        Returns (bytes moved, whether the input ended). A refusal (EINVAL, ENOSYS, EOPNOTSUPP,
        EXDEV) is remembered for the fd and ends the loop; the caller falls back.
        """
        done = 0
        while done < n and self.usable(call):
            try:
                k = self.call(move, done)
            except OSError as err:
                if err.errno not in REFUSED:
                    raise
                self.refuse(call, err, instead)
                break
            if k == 0:
                return done, True
            self.result.record(call, k, zeros=False)
            done += k
        return done, False

    def rest_by_copy(self, src: int, offset: int, n: int, done: int, ended: bool) -> int:
        """After a fast call moved ``done`` of ``n`` bytes: the rest through the bounded copy."""
        return done if ended or done >= n else done + self.copy_data(src, offset + done, n - done)

    def copy_data(self, src: int, offset: int, n: int) -> int:
        """``n`` bytes of ``src`` from ``offset`` through a bounded buffer; fewer at its EOF."""
        if self._copy is None:
            self._copy = memoryview(bytearray(COPY_CHUNK))
        done = 0
        while done < n:
            check_cancel(self.cancel, self.result)
            k = syscalls.ops.preadv(src, [self._copy[: min(n - done, COPY_CHUNK)]], offset + done)
            if k == 0:
                break  # the input shrank under us: stop where it ends, as cat does
            self.put(self._copy[:k])
            done += k
        return done

    # -- the verbs ------------------------------------------------------------------------------

    def zeros(self, n: int) -> None:
        self.write_zeros(n)

    def data(self, src: int, offset: int, n: int) -> int:
        """sendfile where the output takes it (/dev/null does, a terminal does not), else copy."""
        done, ended = self.fast_data("sendfile", "read+write", n, lambda d: syscalls.ops.sendfile(
            self.fd, src, offset + d, min(n - d, MAX_RW_COUNT)))
        return self.rest_by_copy(src, offset, n, done, ended)

    def finish(self) -> None:
        """Called once after the last byte (seekable outputs settle their file position)."""

    def close(self) -> None:
        """Release what the sink opened for itself (never the output fd)."""


class PipeSink(Sink):
    """A pipe: vmsplice the read-only zero folio (no SPLICE_F_GIFT: the reader gets references
    to pages that never change), splice data from the page cache."""

    kind = PIPE

    def __init__(self, fd: int, result: StreamResult, cancel: Cancel | None) -> None:
        super().__init__(fd, result, cancel)
        self.capacity = grow_pipe(fd)
        self.vbuf = zero_buffer_for(True)
        result.zero_buffer = describe_buffer(self.vbuf)
        # One vmsplice fills the pipe at most, so ask for one pipe's worth.
        self.chunk = self.capacity
        self._vfull = self.vbuf.iovecs(self.chunk, VMSPLICE_IOV)
        # vmsplice waits for room even on an O_NONBLOCK pipe unless told: a non-blocking
        # stdout gets EAGAIN and our poll, as write(2) would give it.
        self._vflags = SPLICE_F_NONBLOCK if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK else 0

    def zeros(self, n: int) -> None:
        left = n
        while left > 0 and self.usable("vmsplice"):
            want = min(left, self.chunk)
            iov = self._vfull if want == self.chunk else self.vbuf.iovecs(want, VMSPLICE_IOV)
            try:
                k = self.call(syscalls.ops.vmsplice, self.fd, iov, self._vflags)
            except OSError as err:
                if err.errno not in REFUSED:
                    raise
                self.refuse("vmsplice", err, "writev")
                break
            if k <= 0:
                raise OSError(errno.EIO, "vmsplice made no progress")
            self.result.record("vmsplice", k, zeros=True)
            left -= k
        if left:
            self.write_zeros(left)

    def data(self, src: int, offset: int, n: int) -> int:
        done, ended = self.fast_data("splice", "read+write", n, lambda d: syscalls.ops.splice(
            src, self.fd, min(n - d, MAX_RW_COUNT), offset + d))
        return self.rest_by_copy(src, offset, n, done, ended)


class SocketSink(Sink):
    """A socket: zeros vmspliced into a private pipe and spliced from it to the socket (the
    socket references the zero folio's pages), else vectored sends; data by sendfile."""

    kind = SOCKET

    def __init__(self, fd: int, result: StreamResult, cancel: Cancel | None) -> None:
        super().__init__(fd, result, cancel)
        self._pipe: tuple[int, int] | None = None
        self._capacity = 0
        self._sock: socket.socket | None = None
        self.vbuf = zero_buffer_for(True)
        result.zero_buffer = describe_buffer(self.vbuf)

    def _private_pipe(self) -> tuple[int, int]:
        if self._pipe is None:
            r, w = os.pipe2(os.O_CLOEXEC)
            self._pipe = (r, w)
            self._capacity = grow_pipe(w)
        return self._pipe

    def _drop_pipe(self) -> None:
        if self._pipe is not None:
            for end in self._pipe:
                os.close(end)
            self._pipe = None

    def zeros(self, n: int) -> None:
        left = n
        if self.usable("vmsplice") and self.usable("splice"):
            left = self._zeros_spliced(n)
        if left:
            self._send_zeros(left)

    def _zeros_spliced(self, n: int) -> int:
        """Returns how many of ``n`` zeros are still to send (non-zero only after a refusal)."""
        r, w = self._private_pipe()
        left, queued = n, 0
        while left > 0:
            if queued == 0:
                try:
                    # The pipe is empty and ours: NONBLOCK so a miscount can never hang us.
                    queued = self.call(syscalls.ops.vmsplice, w, self.vbuf.iovecs(min(left, self._capacity),
                                                                                  VMSPLICE_IOV),
                                       SPLICE_F_NONBLOCK, wait_fd=w)
                except OSError as err:
                    if err.errno not in REFUSED:
                        raise
                    self.refuse("vmsplice", err, "sendmsg")
                    self._drop_pipe()
                    return left
            try:
                k = self.call(syscalls.ops.splice, r, self.fd, queued, None, None,
                              SPLICE_F_MORE if left > queued else 0)
            except OSError as err:
                if err.errno not in REFUSED:
                    raise
                self.refuse("splice", err, "sendmsg")
                self._drop_pipe()  # what is queued is zeros: drop it, sendmsg sends them again
                return left
            if k <= 0:
                raise OSError(errno.EIO, "splice to the socket made no progress")
            self.result.record("vmsplice-splice", k, zeros=True)
            queued -= k
            left -= k
        return 0

    def _send_zeros(self, n: int) -> None:
        if self._sock is None:
            # A socket object over a duplicate, so closing it never closes the caller's fd.
            self._sock = socket.socket(fileno=os.dup(self.fd))
        buf = self._writev_buffer()
        left = n
        while left > 0:
            try:
                k = self.call(syscalls.ops.sendmsg, self._sock, buf.iovecs(min(left, SEND_CHUNK)))
            except OSError as err:
                if err.errno not in REFUSED:
                    raise
                self.refuse("sendmsg", err, "writev")
                self.write_zeros(left)
                return
            if k <= 0:
                raise OSError(errno.EIO, "sendmsg made no progress")
            self.result.record("sendmsg", k, zeros=True)
            left -= k

    def close(self) -> None:
        self._drop_pipe()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
