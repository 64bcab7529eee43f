"""The system calls a stream makes, behind one seam, and the per-fd memory of refused calls.

Production code calls ``calls.ops.<name>(...)`` at call time, so a test can install a subclass
(:func:`installed`) that injects short writes, EAGAIN or a refusal the machine cannot produce
on demand. The methods do the real call and nothing else: no retry, no fallback. They raise
``OSError`` (``BlockingIOError`` for EAGAIN, ``BrokenPipeError`` for EPIPE) like ``os`` does.

This mirrors ``largezero.syscalls``; it lives here because that module belongs to the zeroing
engine and the stream calls (vmsplice, splice, sendfile) are the stream's alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import select
import socket
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from ..mm.zero_page import buffer_address
from ..syscalls import libc

# <fcntl.h> / <bits/fcntl-linux.h>
SPLICE_F_MOVE = 0x01
SPLICE_F_NONBLOCK = 0x02
SPLICE_F_MORE = 0x04
SPLICE_F_GIFT = 0x08  # never used: the zero folio is not ours to give
F_SETPIPE_SZ = 1031
F_GETPIPE_SZ = 1032

# Errors that mean "this call does not apply to this fd", as opposed to a real I/O error.
# EXDEV is copy_file_range across filesystems of different types (CPython shutil falls back too).
REFUSED = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV})


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


libc.vmsplice.argtypes = [ctypes.c_int, ctypes.POINTER(_Iovec), ctypes.c_size_t, ctypes.c_uint]
libc.vmsplice.restype = ctypes.c_ssize_t
_check_signals = ctypes.pythonapi.PyErr_CheckSignals
_check_signals.argtypes = []
_check_signals.restype = ctypes.c_int


def _iovecs(buffers: Sequence[Any]) -> tuple[Any, int]:
    """A ctypes iovec array over buffer-protocol objects (read-only ones included)."""
    array = (_Iovec * len(buffers))()
    for i, b in enumerate(buffers):
        view = memoryview(b)
        array[i].iov_base = buffer_address(view)
        array[i].iov_len = view.nbytes
    return array, len(buffers)


class StreamCalls:
    """The real system calls. Subclass and override to inject faults."""

    def vmsplice(self, fd: int, buffers: Sequence[Any], flags: int = 0) -> int:
        """vmsplice(2) of user memory into a pipe: the pipe references the pages, no copy."""
        array, count = _iovecs(buffers)
        while True:
            n = libc.vmsplice(fd, array, count, flags)
            if n >= 0:
                return int(n)
            code = ctypes.get_errno()
            if code != errno.EINTR:
                raise OSError(code, os.strerror(code))
            # PEP 475, as os.* does it: run the Python signal handlers (Ctrl-C raises
            # KeyboardInterrupt from here), then retry.
            if _check_signals() != 0:
                raise KeyboardInterrupt

    def splice(self, src: int, dst: int, count: int, offset_src: int | None = None,
               offset_dst: int | None = None, flags: int = 0) -> int:
        return os.splice(src, dst, count, offset_src, offset_dst, flags)

    def writev(self, fd: int, buffers: Sequence[Any]) -> int:
        return os.writev(fd, buffers)

    def sendmsg(self, sock: socket.socket, buffers: Sequence[Any], flags: int = 0) -> int:
        return sock.sendmsg(buffers, [], flags)

    def copy_file_range(self, src: int, dst: int, count: int, offset_src: int | None = None,
                        offset_dst: int | None = None) -> int:
        return os.copy_file_range(src, dst, count, offset_src, offset_dst)

    def sendfile(self, out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        return os.sendfile(out_fd, in_fd, offset, count)

    def preadv(self, fd: int, buffers: Sequence[Any], offset: int) -> int:
        return os.preadv(fd, buffers, offset)

    def pwrite(self, fd: int, data: Any, offset: int) -> int:
        return os.pwrite(fd, data, offset)

    def write(self, fd: int, data: Any) -> int:
        return os.write(fd, data)

    def poll(self, fd: int, events: int, timeout_ms: int | None = None) -> int:
        """Wait until ``fd`` is ready; returns the revents (POLLERR/POLLHUP included)."""
        p = select.poll()
        p.register(fd, events)
        ready = p.poll(timeout_ms)
        return ready[0][1] if ready else 0


ops: StreamCalls = StreamCalls()


@contextlib.contextmanager
def installed(replacement: StreamCalls) -> Iterator[StreamCalls]:
    """Route every stream system call through ``replacement`` for the duration of the block."""
    global ops
    previous = ops
    ops = replacement
    try:
        yield replacement
    finally:
        ops = previous


def wait_writable(fd: int) -> None:
    """EAGAIN on a non-blocking output: wait for room with poll, as coreutils cat does.

    POLLERR/POLLHUP return too: the retried call then reports EPIPE or the real error.
    """
    ops.poll(fd, select.POLLOUT)


# --- what each output said it does not support ---------------------------------------------
# Keyed by the fd and the identity of the open file behind it, so a reused fd number that now
# names something else is not held to another file's refusals.
_refused: dict[tuple[int, int, int, int], set[str]] = {}
_refused_lock = threading.Lock()


def fd_key(fd: int) -> tuple[int, int, int, int]:
    st = os.fstat(fd)
    return (fd, st.st_dev, st.st_ino, st.st_rdev)


def is_refused(key: tuple[int, int, int, int], call: str) -> bool:
    with _refused_lock:
        return call in _refused.get(key, set())


def remember_refusal(key: tuple[int, int, int, int], call: str) -> None:
    with _refused_lock:
        _refused.setdefault(key, set()).add(call)


def forget_refusals() -> None:
    """For tests: start again with no remembered refusals."""
    with _refused_lock:
        _refused.clear()
