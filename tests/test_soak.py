"""A bounded soak: random jobs against loop devices with random interrupts and injected faults,
every byte of the device checked against a model after every job.

Seconds in the default run; minutes with ``-m long``. The seed is printed and can be replayed
with ``LARGEZERO_SOAK_SEED``.
"""

from __future__ import annotations

import errno
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

import largezero.targets
from largezero import Interrupted, ZeroingError, ZeroOptions, syscalls, zero_range
from largezero.verify import check_zero

from .faultinject import Injector
from .helpers import requires_root

pytestmark = requires_root

METHODS = ["auto", "offload", "large", "page"]


@dataclass
class Stats:
    jobs: int = 0
    done: int = 0
    interrupted: int = 0
    failed: int = 0
    unsupported: int = 0
    resumed: int = 0
    bytes_zeroed: int = 0


def _read_all(dev: str, size: int) -> bytes:
    fd = os.open(dev, os.O_RDONLY)
    try:
        out = bytearray()
        while len(out) < size:
            chunk = os.pread(fd, min(size - len(out), 16 << 20), len(out))
            assert chunk
            out += chunk
        return bytes(out)
    finally:
        os.close(fd)


def _scribble(dev: str, model: bytearray, rng: random.Random) -> None:
    """Put fresh non-zero data somewhere, so later jobs have something to zero."""
    size = len(model)
    off = rng.randrange(size)
    n = min(size - off, rng.choice([1, 511, 4096, 65536 + 3, 1 << 20, 4 << 20]))
    blob = bytes(rng.randrange(1, 256) for _ in range(min(n, 4096)))
    data = (blob * (n // len(blob) + 1))[:n]
    fd = os.open(dev, os.O_WRONLY)
    try:
        os.pwrite(fd, data, off)
    finally:
        os.close(fd)
    model[off : off + n] = data


def _one_job(dev: str, model: bytearray, rng: random.Random, stats: Stats) -> str:
    size = len(model)
    align = rng.choice([1, 1, 512, 4096])
    off = rng.randrange(0, size) // align * align
    length = rng.randrange(0, min(size - off, rng.choice([4096, 1 << 20, 16 << 20, size])) + 1)
    method = rng.choice(METHODS)
    direct = None if method in ("auto", "offload") else rng.random() < 0.5
    unmap = rng.random() < 0.2
    call_size = None if method in ("auto", "offload") or rng.random() < 0.3 else rng.choice([4096, 65536, 1 << 20])
    cancel = threading.Event()
    injector = None
    fault = rng.random()
    if fault < 0.25:  # a timed interrupt, like a signal arriving at a random moment
        timer = threading.Timer(rng.random() * 0.004, cancel.set)
        timer.start()
    elif fault < 0.45:  # a cancel that lands on a random call, with EINTR
        injector = Injector(eintr_at=[rng.randrange(0, 8)], cancel=cancel)
    elif fault < 0.6:  # an I/O error after a random number of bytes
        injector = Injector(fail_after=rng.randrange(0, max(1, length)), fail_errno=rng.choice([errno.EIO,
                                                                                                  errno.ENOSPC]))
    elif fault < 0.7:  # short writes all along
        injector = Injector(cap=rng.choice([1000, 4096, 65537]))
    elif fault < 0.75:  # an offload that does not apply
        injector = Injector(offload_errors={"BLKZEROOUT": errno.EOPNOTSUPP, "PUNCH_HOLE": errno.EOPNOTSUPP})
    what = (f"zero_range({dev}, {off}, {length}, method={method}, direct={direct}, unmap={unmap}, "
            f"call_size={call_size}) fault={fault:.2f}")
    opts = ZeroOptions(method=method, direct=direct, unmap=unmap, call_size=call_size, force=True)
    stats.jobs += 1
    zeroed = 0
    try:
        if injector is not None:
            with syscalls.installed(injector):
                r = zero_range(dev, off, length, opts, cancel=cancel)
        else:
            r = zero_range(dev, off, length, opts, cancel=cancel)
        zeroed = r.bytes_zeroed
        assert zeroed == length, what
        stats.done += 1
    except ZeroingError as err:  # Interrupted included
        zeroed = err.bytes_zeroed
        if isinstance(err, Interrupted):
            stats.interrupted += 1
            # Stopped at a boundary: only steps that finished out of order (an offloaded middle
            # before its head) are zero past the prefix, and maybe_until bounds them.
            reach = err.maybe_until or off + zeroed
        else:
            stats.failed += 1
            # After an I/O error the bytes past the reported prefix are unknown *within the
            # range*: each is its old value or zero.
            reach = off + length
        now = _read_all(dev, len(model))
        step = 1 << 20
        for lo in range(off + zeroed, reach, step):
            hi = min(lo + step, reach)
            if now[lo:hi] == model[lo:hi]:
                continue
            for i in range(lo, hi):
                if now[i] != model[i]:
                    assert now[i] == 0, f"{what}: byte {i} changed to {now[i]} after {type(err).__name__}"
                    model[i] = 0
    except largezero.Unsupported:
        stats.unsupported += 1
    finally:
        largezero.targets.refusals.forget()  # injected "unsupported" must not outlive the job
    model[off : off + zeroed] = bytes(zeroed)
    stats.bytes_zeroed += zeroed
    if zeroed < length and rng.random() < 0.5:  # resume the rest, as the printed command would
        rest = length - zeroed
        r = zero_range(dev, off + zeroed, rest,
                options=ZeroOptions(method=rng.choice(["auto", "large", "page"]), force=True))
        assert r.bytes_zeroed == rest
        model[off + zeroed : off + length] = bytes(rest)
        stats.resumed += 1
    return what


def _soak(dev: str, size: int, seed: int, seconds: float, max_jobs: int) -> Stats:
    rng = random.Random(seed)
    model = bytearray(_read_all(dev, size))
    stats = Stats()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and stats.jobs < max_jobs:
        if rng.random() < 0.5:
            _scribble(dev, model, rng)
        what = _one_job(dev, model, rng, stats)
        now = _read_all(dev, size)
        if now != model:
            first = next(i for i in range(size) if now[i] != model[i])
            raise AssertionError(f"seed {seed}, job {stats.jobs}: {what}: byte {first} is {now[first]}, "
                                 f"expected {model[first]}")
    # The same through the verifier, on every run of zeros the model has.
    fd = os.open(dev, os.O_RDONLY)
    try:
        start = model.find(b"\0" * 4096)
        if start >= 0:
            end = start
            while end < size and model[end] == 0:
                end += 1
            assert check_zero(fd, start, end - start).ok
    finally:
        os.close(fd)
    return stats


def _seed() -> int:
    return int(os.environ.get("LARGEZERO_SOAK_SEED", time.time_ns() % 1_000_000_007))


def _report(name: str, seed: int, stats: Stats) -> None:
    print(f"\n{name}: seed {seed}: {stats}")


def test_soak_short(file_loop: Callable[[int], str], ramfs_loop: Callable[[int], str]) -> None:
    """Seconds: one device with write-zeroes offload (ext4 file), one without (ramfs file)."""
    seed = _seed()
    for name, dev in (("offload", file_loop(16 << 20)), ("no-offload", ramfs_loop(16 << 20))):
        stats = _soak(dev, 16 << 20, seed, seconds=3, max_jobs=60)
        _report(name, seed, stats)
        assert stats.jobs >= 10


@pytest.mark.long
def test_soak_long(file_loop: Callable[[int], str], ramfs_loop: Callable[[int], str]) -> None:
    seed = _seed()
    for name, dev in (("offload", file_loop(128 << 20)), ("no-offload", ramfs_loop(128 << 20))):
        stats = _soak(dev, 128 << 20, seed, seconds=90, max_jobs=100_000)
        _report(name, seed, stats)
        assert stats.interrupted and stats.failed and stats.done
