"""The main job: zero the same range with each zero page and I/O mode, verify, and compare.

It works on a scratch file it creates and, as root, on a loop device over a ramfs file (no
write-zeroes offload, the kernel's own fallback path), reading the device's write requests
from /sys/block/<dev>/stat. Everything it creates is removed on the way out.
"""

from __future__ import annotations

import os
import subprocess
import time

from ._record import asdict, record
from .engine.options import ZeroOptions
from .engine.zeroout import zero_range
from .errors import LargezeroError
from .scratch import fill_pattern, is_root, make_image, memfs_loop, scratch_dir
from .targets.diskstat import read_stat
from .units import format_size
from .verify import first_nonzero

DEFAULT_SIZE = 256 << 20


@record
class DemoRow:
    target: str
    label: str
    length: int
    method: str
    direct: bool
    backing: str
    seconds: float
    calls: int
    iovecs: int
    requests: int | None
    verified: bool


# (label, method, direct, sync) for each run; sync makes buffered device writes reach the queue.
_RUNS = (
    ("page buffered", "page", False),
    ("large buffered", "large", False),
    ("page direct", "page", True),
    ("large direct", "large", True),
    ("auto", "auto", None),
)


def _sentinels_intact(path: str, offset: int, length: int) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        before = os.pread(fd, 4096, max(0, offset - 4096))
        after = os.pread(fd, 4096, offset + length)
    finally:
        os.close(fd)
    return 0 not in before and 0 not in after


def _one(target: str, label: str, method: str, direct: bool | None, offset: int, length: int,
         device: str | None) -> DemoRow:
    fill_pattern(target, 0, offset + length + (1 << 20))
    if device:
        os.sync()
        subprocess.run(["blockdev", "--flushbufs", device], check=False, capture_output=True)
    before = read_stat(device) if device else None
    r = zero_range(target, offset, length, options=ZeroOptions(method=method, direct=direct, sync=device is not None))
    requests = (read_stat(device) - before).write_ios if device and before else None
    fd = os.open(target, os.O_RDONLY)
    try:
        clean = first_nonzero(fd, offset, length) is None
    finally:
        os.close(fd)
    ok = clean and _sentinels_intact(target, offset, length)
    # For offload there is no zero buffer: say which call did the work instead.
    backing = r.mechanism
    if r.zero_buffer is not None and r.method != "offload":
        buf = r.zero_buffer
        kind = "zero-page alias" if buf.name == "LARGE_ZERO_PAGE" and buf.backing == "zero-page" else buf.backing
        backing = "ZERO_PAGE" if buf.name == "ZERO_PAGE" else f"{format_size(buf.size, 'exact')} {kind}"
    return DemoRow(target, label, length, r.method,
                   r.direct, backing, r.seconds, r.calls, r.iovecs, requests, ok)


def _kernel_fallback(device: str, offset: int, length: int) -> DemoRow:
    """blkdiscard -z: the kernel's own __blkdev_issue_zero_pages() from its 4 KiB ZERO_PAGE."""
    fill_pattern(device, 0, offset + length + (1 << 20))
    os.sync()
    before = read_stat(device)
    started = time.perf_counter()
    subprocess.run(["blkdiscard", "-z", "-o", str(offset), "-l", str(length), device], check=True,
                   capture_output=True)
    seconds = time.perf_counter() - started
    requests = (read_stat(device) - before).write_ios
    fd = os.open(device, os.O_RDONLY)
    try:
        ok = first_nonzero(fd, offset, length) is None and _sentinels_intact(device, offset, length)
    finally:
        os.close(fd)
    return DemoRow(device, "blkdiscard -z", length, "kernel", False, "ZERO_PAGE", seconds, 1, 0,
                   requests, ok)


def run_demo(size: int = DEFAULT_SIZE, with_device: bool | None = None) -> tuple[list[DemoRow], list[str]]:
    """Run every combination on a scratch file (and a ramfs loop device as root)."""
    rows: list[DemoRow] = []
    notes: list[str] = []
    offset, length = (1 << 20) + 512, size - (2 << 20)  # unaligned head: the edges get exercised
    with scratch_dir() as tmp:
        path = make_image(os.path.join(tmp, "scratch.img"), size)
        for label, method, direct in _RUNS:
            rows.append(_one(path, label, method, direct, offset, length, None))
    if with_device is None:
        with_device = is_root()
        if not with_device:
            notes.append("loop device part skipped: needs root")
    if with_device:
        dev_offset, dev_length = 1 << 20, size - (2 << 20)  # block-aligned, as blkdiscard needs
        try:
            with memfs_loop(size) as device:
                rows.append(_kernel_fallback(device, dev_offset, dev_length))
                for label, method, direct in _RUNS:
                    rows.append(_one(device, label, method, direct, dev_offset, dev_length, device))
        except (OSError, subprocess.CalledProcessError, LargezeroError) as err:
            notes.append(f"loop device part skipped: {err}")
    return rows, notes


def rows_as_dicts(rows: list[DemoRow]) -> list[dict[str, object]]:
    return [asdict(r) for r in rows]
