"""Reads in flight while the caller checks the last one: a reader thread, else one at a time.

``verify`` reads with O_DIRECT and compares each chunk with the zero buffer. Done in turn, the
device idles while the CPU compares. With the next read already handed to a reader thread,
the two overlap: ``preadv`` releases the GIL, so the kernel fills one buffer while Python
checks the other. (Linux native AIO did the same without a thread, but its ``io_destroy``
waits for an RCU grace period: 30 ms of every run here, a tenth of a 2 GiB verify.) Every read
goes through the ``syscalls.ops`` seam.
"""

from __future__ import annotations

from . import syscalls

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor
    from typing import Any


def _pread(fd: int, view: Any, offset: int) -> int:
    while True:
        try:
            return syscalls.ops.preadv(fd, [view], offset)
        except InterruptedError:
            continue


class SyncReads:
    """One blocking ``preadv`` per read, done at ``wait``, oldest first."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._queue: list[tuple[int, Any, int]] = []

    def submit(self, tag: int, view: Any, address: int, offset: int) -> None:
        self._queue.append((tag, view, offset))

    def wait(self) -> tuple[int, int]:
        """(tag, bytes read) of the oldest read; OSError on a read error."""
        tag, view, offset = self._queue.pop(0)
        return tag, _pread(self.fd, view, offset)

    def close(self) -> None:
        self._queue.clear()


class ThreadReads:
    """The same interface, ``depth`` reads in flight at once, one reader thread each (a device
    may serve them in parallel, as a loop device's workers do), completed oldest first."""

    def __init__(self, fd: int, depth: int) -> None:
        from concurrent.futures import ThreadPoolExecutor  # here: only a long direct verify pays for it

        self.fd = fd
        self._pool: ThreadPoolExecutor = ThreadPoolExecutor(max_workers=depth, thread_name_prefix="largezero-read")
        self._queue: list[tuple[int, Future[int]]] = []

    def submit(self, tag: int, view: Any, address: int, offset: int) -> None:
        self._queue.append((tag, self._pool.submit(_pread, self.fd, view, offset)))

    def wait(self) -> tuple[int, int]:
        tag, done = self._queue.pop(0)
        return tag, done.result()

    def close(self) -> None:
        """Waits for reads still in flight, so that their buffers may go after."""
        for _, done in self._queue:
            done.cancel()
        self._queue.clear()
        self._pool.shutdown(wait=True)


def reads(fd: int, depth: int, direct: bool) -> ThreadReads | SyncReads:
    """A reader thread when reads are to overlap (``depth`` > 1), else one read at a time."""
    return ThreadReads(fd, depth) if direct and depth > 1 else SyncReads(fd)
