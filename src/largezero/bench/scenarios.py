"""Three whole-process comparisons the issues ask for, each in one run against its peer:

* the ramfs-backed loop device (no write-zeroes) at ``max_sectors_kb`` 256 and 1280:
  ``largezero zero`` (auto) against ``blkdiscard -z``, speed ratio and request ratio;
* the cost of splitting calls for progress: 1 GiB O_DIRECT into a file, the default call size
  against one call of 2046 MiB (``--call-size 2046M``);
* several devices at once: ``largezero zero DEV1 DEV2`` against each device alone.

Queue settings persist on a loop device across detach and re-attach, so the one changed here
is always restored.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator

from ..scratch import is_root, set_queue_attr
from ..sysfiles import read_text
from ..units import format_size
from .measure import Spawner
from .process import GiB, Job, Measured, MiB, Progress, _lz, run_jobs, scratch_target
from .startup import bytecode_env, largezero_argv

LOOP_LIMITS = (256, 1280)


@contextlib.contextmanager
def _spawner() -> Iterator[Spawner]:
    with tempfile.TemporaryDirectory(prefix="largezero-pyc-") as pyc:
        spawner = Spawner(bytecode_env(pyc))
        try:
            yield spawner
        finally:
            spawner.close()


@contextlib.contextmanager
def queue_setting(device: str, name: str, value: int) -> Iterator[None]:
    """Set a queue attribute of a device we attached, and put the old value back."""
    old = read_text(f"/sys/block/{os.path.basename(device)}/queue/{name}")
    if old is None:
        raise OSError(f"{device}: no queue attribute {name}")
    set_queue_attr(device, name, value)
    try:
        yield
    finally:
        set_queue_attr(device, name, old)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _pair(m: list[Measured], length: int) -> dict[str, object]:
    ours, peer = m[0], m[1]
    return {"rows": [x.to_dict(length) for x in m],
            "speed_ratio": _ratio(peer.median, ours.median),  # > 1: ours is faster
            "request_ratio": _ratio(_median_requests(ours), _median_requests(peer))}


def _median_requests(m: Measured) -> float | None:
    import statistics

    return float(statistics.median(m.requests)) if m.requests else None


def loop_limits(length: int = 1 * GiB, rounds: int = 5, progress: Progress | None = None) -> dict[str, object]:
    """``auto`` against ``blkdiscard -z`` at each max_sectors_kb, on one ramfs-backed device."""
    if not is_root():
        return {"skipped": "needs root (loop devices)"}
    jobs = [Job("largezero zero (auto)", True, _lz()),
            Job("blkdiscard -z", False, lambda p, n: ["blkdiscard", "-z", "-l", str(n), p])]
    out: dict[str, object] = {"length": length, "limits": {}}
    with _spawner() as spawner, scratch_target("loop-nowz", length) as (dev, name):
        for kb in LOOP_LIMITS:
            if progress:
                progress(f"loop device at max_sectors_kb {kb}")
            with queue_setting(dev, "max_sectors_kb", kb):
                out["limits"][str(kb)] = _pair(run_jobs(dev, name, length, jobs, rounds, spawner), length)  # type: ignore[index]
    return out


def call_size_cost(length: int = 1 * GiB, rounds: int = 5, workdir: str | None = None,
                   progress: Progress | None = None) -> dict[str, object]:
    """The default call size (split for progress) against one big call, O_DIRECT into a file."""
    jobs = [Job("largezero zero --direct (default calls)", True, _lz("--direct", "-m", "large")),
            Job("largezero zero --direct --call-size 2046M", True,
                _lz("--direct", "-m", "large", "--call-size", "2046M"))]
    if progress:
        progress("call-size cost")
    with _spawner() as spawner, scratch_target("file", length, workdir) as (path, _):
        m = run_jobs(path, None, length, jobs, rounds, spawner)
    split, whole = m[0].median, m[1].median
    return {"length": length, "rows": [x.to_dict(length) for x in m],
            "cost": (split / whole - 1) if split and whole else None}  # > 0: splitting is slower


def several_devices(count: int = 2, length: int = 512 * MiB, rounds: int = 5,
                    progress: Progress | None = None) -> dict[str, object]:
    """``largezero zero D1 .. Dn`` together against the sum of each alone (ramfs-backed)."""
    if not is_root():
        return {"skipped": "needs root (loop devices)"}
    if progress:
        progress(f"{count} devices together")
    with contextlib.ExitStack() as stack, _spawner() as spawner:
        devs = [stack.enter_context(scratch_target("loop-nowz", length))[0] for _ in range(count)]

        def together(path: str, n: int) -> list[str]:
            return [*largezero_argv(), "zero", *devs, "-l", str(n)]

        alone = [Job(f"alone {d}", True, _one(d)) for d in devs]
        both = run_jobs(devs[0], None, length, [Job("together", True, together), *alone], rounds, spawner,
                        covers=[devs, *([d] for d in devs)])
    sum_alone = sum(m.median or 0 for m in both[1:]) or None
    return {"count": count, "length": length, "rows": [m.to_dict(length) for m in both],
            "together_over_sum_alone": _ratio(both[0].median, sum_alone)}


def _one(dev: str) -> Callable[[str, int], list[str]]:
    return lambda path, n: [*largezero_argv(), "zero", dev, "-l", str(n)]


def render_scenarios(limits: dict[str, object] | None, split: dict[str, object] | None,
                     several: dict[str, object] | None) -> str:
    lines: list[str] = []
    if limits is not None:
        if "skipped" in limits:
            lines.append(f"loop device rows: skipped ({limits['skipped']})")
        else:
            lines.append(f"ramfs-backed loop device, {format_size(int(limits['length']), 'exact')} "  # type: ignore[call-overload]
                         "(x speed: blkdiscard time / ours; x requests: ours / blkdiscard's):")
            for kb, pair in limits["limits"].items():  # type: ignore[attr-defined]
                rows = pair["rows"]
                speed, req = pair["speed_ratio"], pair["request_ratio"]
                fmt = [f"{r['label']} {r['median_s'] or 0:.4f} s {r['requests']} requests" for r in rows]
                lines.append(f"  max_sectors_kb {kb:>4}: {'; '.join(fmt)}; "
                             f"{'-' if speed is None else f'{speed:.2f}'}x speed, "
                             f"{'-' if req is None else f'{req:.2f}'}x requests")
    if split is not None:
        rows = split["rows"]
        cost = split["cost"]
        assert cost is None or isinstance(cost, float)
        size = f"{int(split['length']) >> 20} MiB"  # type: ignore[call-overload]
        timed = "; ".join(f"{r['label']} {r['median_s'] or 0:.4f} s" for r in rows)  # type: ignore[attr-defined]
        lines.append(f"calls split for progress, {size} O_DIRECT into a file: {timed}; "
                     f"cost {'-' if cost is None else f'{cost * 100:+.1f}%'}")
    if several is not None:
        if "skipped" in several:
            lines.append(f"several devices: skipped ({several['skipped']})")
        else:
            ratio = several["together_over_sum_alone"]
            lines.append(f"{several['count']} ramfs-backed devices of {format_size(int(several['length']), 'exact')}: "  # type: ignore[call-overload]
                         + "; ".join(f"{r['label']} {r['median_s'] or 0:.4f} s" for r in several["rows"])  # type: ignore[attr-defined]
                         + f"; together {'-' if ratio is None else f'{ratio:.2f}'}x the sum alone")
    return "\n".join(lines)
