"""Stopping a job: the one cancel flag, and the one signal handler that sets it.

A job polls a cancel flag at every call boundary (like BLKDEV_ZERO_KILLABLE): any object with
``is_set()``, a ``threading.Event`` or a :class:`Flag`. The command line's flag is
:data:`STOP`, and SIGINT, SIGTERM and SIGHUP all go to one handler, :func:`_handler`, which
sets it and remembers the signal (the exit status is 128 + its number: 130, 143, 129).

What else the handler does depends on what the process is doing (innermost wins):

* start-up, parsing, shutdown (the default once :func:`install` ran): nothing needs undoing,
  so one line and ``os._exit(128 + signum)``, whatever instruction was running: never a
  traceback, never "Fatal Python error". The ``largezero`` launcher keeps the signals blocked
  from exec until :func:`install` (see ``largezero._start``).
* :func:`raising` (a command running): raise :class:`Stopped`, a KeyboardInterrupt, which
  unwinds the ``with`` blocks that detach loop devices and breaks a blocked call (a full pipe).
* :func:`on_signals` (a job polling the flag): only set the flag; the job stops at its next
  call boundary and says exactly what it did.

This module imports nothing at run time but the interpreter's own ``_signal`` and ``os``: it
is the first thing the command loads, while the signals are still blocked.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    import signal as _signal  # the same functions; typeshed has no stub for _signal
    from types import FrameType
    from typing import Any, Protocol

    class Cancel(Protocol):
        def is_set(self) -> bool: ...
else:
    import _signal  # the C module: signal.py would build three enums (about 0.6 ms)

SIGNALS = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP)
# What the one line says when a signal stops the process before a job could report.
_SAID: dict[int, str] = {_signal.SIGINT: "interrupted", _signal.SIGTERM: "terminated (SIGTERM)",
                         _signal.SIGHUP: "hung up (SIGHUP)"}
_EXIT, _RAISE, _POLL = 0, 1, 2


class Flag:
    """A cancel flag for a signal handler to set: what the jobs need of threading.Event,
    without importing threading (1.5 ms of start-up) in a process that starts no thread.
    Setting one attribute is atomic, and readers only poll it. ``signum`` is the signal that
    set it (0: none); ``wake``, inside ``on_signals(wake=True)``, an fd that turns readable
    when a signal arrives, for a job that waits in poll()."""

    __slots__ = ("_set", "signum", "wake")

    def __init__(self) -> None:
        self._set = False
        self.signum = 0
        self.wake: int | None = None

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set

    def clear(self) -> None:
        self._set = False
        self.signum = 0


STOP = Flag()  # the process's one cancel flag: set by the handler, polled by the jobs


class Stopped(KeyboardInterrupt):
    """Raised by the handler inside :func:`raising`: SIGINT, SIGTERM or SIGHUP (``signum``)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


# The handler's state: the modes pushed by the main thread (innermost last), the handlers that
# were there before install(), the main thread's id (others never change the mode).
_modes: list[int] = [_EXIT]
_previous: dict[int, Any] = {}
_main: list[int] = []
_unwinding: list[bool] = [False]


def status(default: int = 130) -> int:
    """The exit status of a process stopped by a signal: 128 + its number (``default`` when
    the stop came from elsewhere, a library caller's cancel event)."""
    return 128 + STOP.signum if STOP.signum else default


def message(signum: int) -> str:
    return f"largezero: {_SAID.get(signum, f'stopped by signal {signum}')}"


def _handler(signum: int, frame: FrameType | None) -> None:
    if not STOP.signum:
        STOP.signum = signum
    STOP.set()
    mode = _modes[-1]
    if mode == _POLL or _unwinding[0]:
        return  # the job stops at its next call boundary; a second signal while unwinding waits too
    if mode == _RAISE:
        code = frame.f_code if frame is not None else None
        if code is not None and code.co_filename.startswith("<frozen"):
            # Inside importlib (a module lock's callback): an exception raised there is printed
            # as "Exception ignored" with a traceback. Deliver it again after the next instruction.
            _signal.raise_signal(signum)
            return
        _unwinding[0] = True
        raise Stopped(signum)
    try:
        os.write(2, (message(signum) + "\n").encode())
    except OSError:
        pass
    os._exit(128 + signum)


def install() -> bool:
    """Give SIGINT, SIGTERM and SIGHUP to the one handler (a signal ignored when the process
    started, as nohup and ``cmd &`` in a script leave them, stays ignored), then unblock them:
    one that came while they were blocked is handled now. False off the main thread."""
    if _main:
        return True
    try:
        for s in SIGNALS:
            old = _signal.getsignal(s)
            if old == _signal.SIG_IGN:
                continue
            _signal.signal(s, _handler)
            _previous[s] = old
    except ValueError:  # not the main thread (an embedding program): signals are not ours
        return False
    import _thread

    _main.append(_thread.get_ident())
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, SIGNALS)
    return True


def installed() -> bool:
    return bool(_main)


def uninstall() -> None:
    """Put back the handlers install() replaced (a program that called ``main(argv)``)."""
    for s, old in _previous.items():
        _signal.signal(s, old)
    _previous.clear()
    _main.clear()
    del _modes[1:]
    _unwinding[0] = False


def reset() -> None:
    """A new command in this process: the flag clear, no mode but the default."""
    STOP.clear()
    del _modes[1:]
    _unwinding[0] = False


def _ours() -> bool:
    if not _main:
        return False
    import _thread

    return _thread.get_ident() == _main[0]


class _Mode:
    """A ``with`` block in which the handler acts in ``mode``; no-op off the main thread."""

    __slots__ = ("mode", "wake", "_pushed", "_pipe", "_old_wakeup")

    def __init__(self, mode: int, wake: bool = False) -> None:
        self.mode = mode
        self.wake = wake
        self._pushed = False
        self._pipe: tuple[int, int] | None = None
        self._old_wakeup = -1

    def __enter__(self) -> Flag:
        if not _ours():
            return STOP
        if self.wake:
            # The C handler writes the signal number to this pipe: a poll() on its read end
            # returns, where a blocked read would be restarted after the handler (PEP 475).
            self._pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._old_wakeup = _signal.set_wakeup_fd(self._pipe[1], warn_on_full_buffer=False)
            STOP.wake = self._pipe[0]
        _modes.append(self.mode)
        self._pushed = True
        return STOP

    def __exit__(self, *exc: object) -> None:
        if self._pushed:
            _modes.pop()
            self._pushed = False
        if self._pipe is not None:
            _signal.set_wakeup_fd(self._old_wakeup)
            STOP.wake = None
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None


def on_signals(wake: bool = False) -> _Mode:
    """``with on_signals() as stop:`` a job that polls ``stop`` (the one flag) at every call
    boundary runs inside; a signal only sets it. ``wake``: ``stop.wake`` is an fd that turns
    readable when a signal arrives (for a job waiting in poll())."""
    return _Mode(_POLL, wake)


def raising() -> _Mode:
    """``with raising():`` a signal raises :class:`Stopped` (a KeyboardInterrupt) where the
    code is, so ``with`` blocks unwind and a blocked call returns."""
    return _Mode(_RAISE)


__all__ = ["STOP", "Flag", "Stopped", "install", "installed", "message", "on_signals", "raising", "reset", "status",
           "uninstall"]
