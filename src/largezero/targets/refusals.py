"""What a file or device said it does not support, remembered for the life of the process, as
CPython's shutil remembers per file that a fast copy failed: the offload calls a target refused
(``Target.mark_unsupported``), FIEMAP, and the fast calls a stream's output refused (vmsplice,
splice, sendmsg, copy_file_range).

One memory, keyed by the identity of the file behind a descriptor, never by the fd number or a
path: a second fd on the same pipe or file shares what the first learnt, and a reused fd number
that now names something else is not held to another file's refusals.
"""

from __future__ import annotations

import _thread  # threading.Lock is _thread.allocate_lock; threading itself costs 1.5 ms of start-up
import os
import stat

from .. import sysfiles

Key = tuple[str, int, int]

_refused: dict[Key, set[str]] = {}
_lock = _thread.allocate_lock()


def block_key(rdev: int) -> Key:
    # diskseq changes whenever a device number gets new media (a loop re-attached), so what
    # one attachment refused is not held against the next.
    return ("block", rdev, sysfiles.read_int(f"{sysfiles.block_dir(rdev)}/diskseq") or 0)


def file_key(st_dev: int, st_ino: int) -> Key:
    return ("file", st_dev, st_ino)


def key_of(fd: int) -> Key:
    """The identity of what ``fd`` is open on: a block device by number and media, a character
    device by number, anything else (files, pipes, sockets) by st_dev and inode."""
    st = os.fstat(fd)
    if stat.S_ISBLK(st.st_mode):
        return block_key(st.st_rdev)
    if stat.S_ISCHR(st.st_mode):
        return ("char", st.st_rdev, 0)
    return file_key(st.st_dev, st.st_ino)


def refused(key: Key) -> frozenset[str]:
    with _lock:
        return frozenset(_refused.get(key, ()))


def remember(key: Key, call: str) -> None:
    with _lock:
        _refused.setdefault(key, set()).add(call)


def forget() -> None:
    """Start again with nothing remembered (tests, and faults injected on purpose)."""
    with _lock:
        _refused.clear()
