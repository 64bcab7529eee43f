"""What streams share about their system calls: flags and the errors that mean "refused"
(remembered, per file, in ``largezero.targets.refusals``, the one memory of refused calls).

The calls themselves go through the one seam, ``largezero.syscalls.ops`` (vmsplice, splice,
sendfile, copy_file_range, writev, sendmsg, poll), so a test installs one ``Syscalls``
subclass to inject short writes, EAGAIN or a refusal the machine cannot produce on demand.
"""

from __future__ import annotations

import errno
import select

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
