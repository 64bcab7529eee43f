"""What streams share about their system calls: flags, the errors that mean "refused", and
the per-fd memory of refused calls.

The calls themselves go through the one seam, ``largezero.syscalls.ops`` (vmsplice, splice,
sendfile, copy_file_range, writev, sendmsg, poll), so a test installs one ``Syscalls``
subclass to inject short writes, EAGAIN or a refusal the machine cannot produce on demand.
"""

from __future__ import annotations

import errno
import os
import select
import threading

from .. import syscalls

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


def wait_writable(fd: int) -> None:
    """EAGAIN on a non-blocking output: wait for room with poll, as coreutils cat does.

    POLLERR/POLLHUP return too: the retried call then reports EPIPE or the real error.
    """
    syscalls.ops.poll(fd, select.POLLOUT)


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
