"""Measuring one run: wall time, CPU, write system calls, peak RSS and device requests.

In-process runs are bracketed by snapshots of this process's counters; external tools
(dd, fallocate, blkdiscard) are spawned and reaped with ``wait4``, which gives their own CPU
time. Write system calls come from ``syscw`` in /proc/self/io for both: when a child is
reaped, the kernel adds its I/O counters to the parent's, so the difference around the
spawn is the child's count.

Peak RSS:

* in process, the growth of VmHWM over VmRSS at the start, after resetting VmHWM with
  ``echo 5 > /proc/self/clear_refs``;
* for a tool, ``wait4``'s ``ru_maxrss`` is useless (exec records the spawning Python's
  high-water mark into it), so it is taken once per tool from GNU time's ``%M``, whose own
  fork is small, when /usr/bin/time exists; otherwise it is left unmeasured.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator

from .._record import record
from ..sysfiles import read_fields, write_text
from ..targets.diskstat import DiskStat, read_stat


@record(frozen=True)
class Sample:
    """One measured run of one contender."""

    seconds: float
    user: float
    sys: float
    write_syscalls: int
    iovecs: int | None
    rss_peak: int | None  # bytes: in-process growth, or a tool's own peak
    device_writes: int | None  # write requests completed by the device
    device_write_bytes: int | None
    verified: bool
    detail: str = ""  # what actually ran, e.g. auto's resolved method


def read_proc_io() -> dict[str, int]:
    """/proc/self/io of the whole process, reaped children included."""
    return {key: int(value) for key, value in read_fields("/proc/self/io").items()}


def _status_kib(field: str) -> int | None:
    value = read_fields("/proc/self/status").get(field, "").removesuffix(" kB")
    return int(value) if value.isdigit() else None


def reset_peak_rss() -> int | None:
    """Reset VmHWM to the current RSS; return that RSS in bytes (None when unsupported)."""
    if not write_text("/proc/self/clear_refs", "5"):
        return None
    rss = _status_kib("VmRSS")
    return None if rss is None else rss * 1024


def peak_rss() -> int | None:
    hwm = _status_kib("VmHWM")
    return None if hwm is None else hwm * 1024


@record
class Counters:
    """What a run did, filled by :func:`measured_call` or :func:`measured_spawn`."""

    seconds: float = 0.0
    user: float = 0.0
    sys: float = 0.0
    write_syscalls: int = 0
    rss_peak: int | None = None
    device: DiskStat | None = None
    exit_code: int = 0
    stderr: str = ""


@contextlib.contextmanager
def _device_diff(device: str | None, into: Counters) -> Iterator[None]:
    before = read_stat(device) if device else None
    yield
    if device and before is not None:
        into.device = read_stat(device) - before


def measured_call(fn: Callable[[], object], device: str | None = None) -> tuple[object, Counters]:
    """Run ``fn`` in this process and measure it."""
    c = Counters()
    rss0 = reset_peak_rss()
    io0 = read_proc_io()["syscw"]
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    with _device_diff(device, c):
        t0 = time.perf_counter()
        value = fn()
        c.seconds = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    c.write_syscalls = read_proc_io()["syscw"] - io0
    hwm = peak_rss()
    c.user, c.sys = ru1.ru_utime - ru0.ru_utime, ru1.ru_stime - ru0.ru_stime
    if rss0 is not None and hwm is not None:
        c.rss_peak = max(0, hwm - rss0)
    return value, c


class Spawner:
    """Spawns a tool with stdout to /dev/null and stderr to a scratch file, and reaps it."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        # ``env``: the tools' environment (default: ours); LC_ALL=C is always added.
        self._env = dict(os.environ if env is None else env, LC_ALL="C")
        fd, self._errfile = tempfile.mkstemp(prefix="largezero-bench-", suffix=".err")
        os.close(fd)
        self.gnu_time = shutil.which("time", path="/usr/bin:/bin")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self._errfile)

    def _spawn(self, argv: list[str]) -> tuple[int, resource.struct_rusage]:
        exe = shutil.which(argv[0]) or argv[0]
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, self._errfile, os.O_WRONLY | os.O_TRUNC, 0),
        ]
        pid = os.posix_spawn(exe, argv, self._env, file_actions=actions)
        try:
            _, status, usage = os.wait4(pid, 0)
        except BaseException:
            # Interrupted: do not leave the tool writing to a target we are about to remove.
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            raise
        return os.waitstatus_to_exitcode(status), usage

    def run(self, argv: list[str], device: str | None = None, rss: bool = False) -> Counters:
        """Spawn and reap ``argv``; with ``rss``, under GNU time, to learn the tool's peak RSS."""
        c = Counters()
        out = None
        if rss and self.gnu_time:
            fd, out = tempfile.mkstemp(prefix="largezero-bench-", suffix=".rss")
            os.close(fd)
            argv = [self.gnu_time, "-f", "%M", "-o", out, *argv]
        try:
            io0 = read_proc_io()["syscw"]
            with _device_diff(device, c):
                t0 = time.perf_counter()
                c.exit_code, usage = self._spawn(argv)
                c.seconds = time.perf_counter() - t0
            c.write_syscalls = read_proc_io()["syscw"] - io0
            c.user, c.sys = usage.ru_utime, usage.ru_stime
            if c.exit_code:
                with open(self._errfile) as f:
                    c.stderr = f.read().strip()
            elif out is not None:
                with open(out) as f:
                    words = f.read().split()
                if words and words[-1].isdigit():
                    c.rss_peak = int(words[-1]) * 1024
        finally:
            if out is not None:
                os.unlink(out)
        return c
