"""Stopping a job from outside: any object with ``is_set()``, a ``threading.Event`` or a
:class:`Flag`. Jobs poll it at every call boundary (like BLKDEV_ZERO_KILLABLE)."""

from __future__ import annotations

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from typing import Protocol

    class Cancel(Protocol):
        def is_set(self) -> bool: ...


class Flag:
    """A cancel flag for a signal handler to set: what the jobs need of threading.Event,
    without importing threading (1.5 ms of start-up) in a process that starts no thread.
    Setting one attribute is atomic, and readers only poll it."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set
