"""Running the benchmark: every contender on the same range of the same target, interleaved.

For each target and cache state (a *scenario*), round after round, every contender runs
once, in an order rotated by one each round, so slow drift of the machine (another job, the
host, thermal state) hits every contender alike. Before every single run the target is
refilled with a pattern and put into the scenario's cache state; after it, the range must
read back as zeros and the bytes around it must still be the pattern.

A warm-up round runs first and is discarded: it faults in the zero buffers, the ceilings'
buffers and the guest's memory, learns which contenders do not apply (``fallocate -z`` on
tmpfs) and takes each external tool's peak RSS under GNU time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable

from .._record import field, record
from ..errors import LargezeroError
from ..sysfiles import read_text
from ..units import format_size
from ..verify import first_nonzero
from . import cache, targets
from .contenders import BLOCK, Contender, Outcome, RunContext, select
from .measure import Counters, Sample, Spawner, measured_call
from .startup import bytecode_env

SENTINEL = 4096
PROBE_CHECK = 16 << 20
# --quick, under a minute on a shared 2-CPU machine, where refilling and syncing the target
# before each run is most of the time: one cache state; the targets without a second copy on
# ext4 (a file, tmpfs and the ramfs-backed loop device; `-t loop` adds the ext4-backed one);
# the contenders the headline goals are made of (auto; large buffered and direct; the 4 KiB
# page path direct; dd bs=2M; the offload tools; the best buffered peer; the O_DIRECT ceiling).
QUICK_SIZE = 16 << 20
QUICK_CACHE = ("cold",)
QUICK_TARGETS = ("file", "tmpfs", "loop-nowz")
QUICK_CONTENDERS = tuple(f"{key}$" for key in (  # $: that key only, not the [backing] variants
    "lz-auto", "lz-large-buffered", "lz-large-direct", "lz-page-direct", "dd-2m-buffered", "dd-2m-direct",
    "fallocate-z", "blkdiscard-z", "pg-buffered", "limit-direct"))
QUICK_PROBE = 1 << 30
Progress = Callable[[str], None]


@record
class BenchConfig:
    targets: tuple[str, ...] = targets.TARGETS
    size: int = 1 << 30
    rounds: int = 5
    cache: tuple[str, ...] = ("cold", "warm")
    contenders: list[str] | None = None  # keys or key prefixes; None for all
    warmup: bool = True
    verify: bool = True
    workdir: str | None = None  # where files and loop images go; None: the temporary directory
    rss_probe: int | None = 4 << 30  # length of the peak-RSS job; None to skip
    quick: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "targets": list(self.targets), "size": self.size, "rounds": self.rounds, "cache": list(self.cache),
            "contenders": self.contenders, "warmup": self.warmup, "verify": self.verify,
            "workdir": self.workdir, "rss_probe": self.rss_probe, "quick": self.quick,
        }


@record
class ContenderRun:
    contender: Contender
    samples: list[Sample] = field(default_factory=list)
    failed: str | None = None  # why it does not apply here (or broke), when it does not
    rss_tool: int | None = None  # an external tool's own peak RSS, from the warm-up
    resolved_mode: str | None = None
    detail: str = ""


@record
class Scenario:
    target: targets.BenchTarget
    state: str
    observed: cache.CacheObservation | None
    runs: list[ContenderRun]
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.target.name}/{self.state}"


@record
class ProbeResult:
    label: str
    length: int
    seconds: float
    rss_growth: int | None
    verified: bool


@record
class BenchRun:
    config: BenchConfig
    scenarios: list[Scenario]
    skipped: dict[str, str]
    probe: list[ProbeResult]
    seconds: float
    load: tuple[str, str] = ("?", "?")  # /proc/loadavg at the start and at the end


def verify_range(path: str, offset: int, length: int) -> bool:
    """The range reads back as zeros and the sentinels on both sides are still the pattern."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if first_nonzero(fd, offset, length) is not None:
            return False
        lo = max(0, offset - SENTINEL)
        if os.pread(fd, offset - lo, lo) != cache.pattern_at(lo, offset - lo):
            return False
        end = offset + length
        return os.pread(fd, SENTINEL, end) == cache.pattern_at(end, SENTINEL)
    finally:
        os.close(fd)


def _run_one(c: Contender, ctx: RunContext, device: str | None, spawner: Spawner,
             rss_run: bool) -> tuple[Counters, Outcome | None, int | None]:
    """Run a contender once; (counters, in-process outcome, tool RSS)."""
    if c.argv is not None:
        argv = c.argv(ctx)
        if rss_run and spawner.gnu_time:
            counters = spawner.run(argv, device, rss=True)
            return counters, None, counters.rss_peak
        return spawner.run(argv, device), None, None
    assert c.call is not None
    call = c.call
    value, counters = measured_call(lambda: call(ctx), device)
    assert isinstance(value, Outcome)
    return counters, value, None


def run_scenario(tgt: targets.BenchTarget, state: str, contenders: list[Contender], config: BenchConfig,
                 spawner: Spawner, progress: Progress | None = None) -> Scenario:
    started = time.perf_counter()
    ctx = RunContext(tgt.path, tgt.kind, tgt.offset, tgt.length, sync=tgt.kind == BLOCK)
    runs = [ContenderRun(c) for c in contenders if tgt.kind in c.kinds]
    observed: cache.CacheObservation | None = None
    first = -1 if config.warmup else 0
    # The last close of a block device writes back and drops its page cache; holding it open
    # keeps the cache state we set between the preparation and the run.
    keeper = os.open(tgt.path, os.O_RDONLY | os.O_CLOEXEC) if tgt.kind == BLOCK else None
    try:
        observed = _rounds(tgt, state, runs, ctx, config, spawner, progress, first)
    finally:
        if keeper is not None:
            os.close(keeper)
    return Scenario(tgt, state, observed, runs, time.perf_counter() - started)


def _rounds(tgt: targets.BenchTarget, state: str, runs: list[ContenderRun], ctx: RunContext,
            config: BenchConfig, spawner: Spawner, progress: Progress | None,
            first: int) -> cache.CacheObservation | None:
    observed: cache.CacheObservation | None = None
    for rnd in range(first, config.rounds):
        shift = rnd % len(runs) if runs else 0
        order = runs[shift:] + runs[:shift]
        if progress:
            progress(f"{tgt.name}/{state}: {'warm-up' if rnd < 0 else f'round {rnd + 1}/{config.rounds}'}")
        for run in order:
            if run.failed:
                continue
            cache.prepare(tgt.path, tgt.size, state, block=tgt.kind == BLOCK, memfs=tgt.memfs)
            if observed is None:
                observed = cache.observe(tgt.path, tgt.offset, tgt.length, state)
            c = run.contender
            try:
                counters, outcome, rss_tool = _run_one(c, ctx, tgt.device, spawner, rss_run=rnd == first)
            except (LargezeroError, OSError) as err:
                run.failed = f"{type(err).__name__}: {err}"
                continue
            if counters.exit_code:
                run.failed = f"exit {counters.exit_code}: {counters.stderr or 'no message'}"
                continue
            if rss_tool is not None:
                run.rss_tool = rss_tool
            verified = verify_range(tgt.path, tgt.offset, tgt.length) if config.verify else True
            iovecs: int | None
            if outcome is not None:
                iovecs = outcome.iovecs if outcome.iovecs is not None else counters.write_syscalls
                run.resolved_mode = outcome.mode
                run.detail = outcome.detail
            else:
                iovecs = counters.write_syscalls * (c.iovecs_per_write or 0)
            rss = counters.rss_peak if outcome is not None else run.rss_tool
            dev = counters.device
            sample = Sample(
                seconds=counters.seconds, user=counters.user, sys=counters.sys,
                write_syscalls=counters.write_syscalls, iovecs=iovecs, rss_peak=rss,
                device_writes=dev.write_ios if dev else None,
                device_write_bytes=dev.write_sectors * 512 if dev else None,
                verified=verified, detail=run.detail,
            )
            if rnd >= 0 or not verified:
                run.samples.append(sample)  # a bad warm-up is kept as evidence
    return observed


def rss_probe(length: int, workdir: str | None, buffered: bool = True) -> list[ProbeResult]:
    """Peak RSS growth of large jobs on a sparse file: constant memory whatever the length.

    The buffered job dirties ``length`` bytes of page cache and is throttled to the disk's
    writeback speed once past the dirty limits; ``buffered=False`` leaves it out (--quick).
    """
    from ..engine.options import ZeroOptions
    from ..engine.zeroout import zero_range

    jobs: list[tuple[str, str, bool | None]] = [("largezero large --direct", "large", True)]
    if buffered:
        jobs.append(("largezero large", "large", False))
    jobs.append(("largezero auto", "auto", None))
    out: list[ProbeResult] = []
    with targets.build_sparse(length, workdir) as path:
        for label, method, direct in jobs:
            def job(m: str = method, d: bool | None = direct) -> object:
                return zero_range(path, 0, length, options=ZeroOptions(method=m, direct=d))

            _, c = measured_call(job)
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                # Spot checks (head, middle, tail): the scenarios verify every byte they zero.
                piece = min(length, PROBE_CHECK)
                ok = all(first_nonzero(fd, at, piece) is None
                         for at in {0, (length - piece) // 2 // 4096 * 4096, length - piece})
            finally:
                os.close(fd)
            out.append(ProbeResult(label, length, c.seconds, c.rss_peak, ok))
    return out


def loadavg() -> str:
    text = read_text("/proc/loadavg")
    return " ".join(text.split()[:3]) if text else "?"


def run_bench(config: BenchConfig, progress: Progress | None = None) -> BenchRun:
    """Build each target, run every scenario on it, tear it down; then the RSS probe."""
    if config.rounds < 1:
        raise ValueError("at least one round")
    # SIGTERM and SIGHUP unwind like Ctrl-C (the command runs in cancel.raising()), so loop
    # devices and mounts are undone.
    return _run_bench(config, progress)


def _run_bench(config: BenchConfig, progress: Progress | None) -> BenchRun:
    started = time.perf_counter()
    load_before = loadavg()
    contenders = select(config.contenders)
    scenarios: list[Scenario] = []
    skipped: dict[str, str] = {}
    # Tools run as installed: the CLI with its bytecode cached (see startup.bytecode_env).
    pyc = tempfile.mkdtemp(prefix="largezero-pyc-")
    spawner = Spawner(bytecode_env(pyc))
    try:
        for name in config.targets:
            why = targets.unavailable(name)
            if why:
                skipped[name] = why
                continue
            try:
                with targets.build(name, config.size, config.workdir) as tgt:
                    for state in tgt.cache_states(config.cache):
                        scenarios.append(run_scenario(tgt, state, contenders, config, spawner, progress))
            except (OSError, RuntimeError, subprocess.SubprocessError) as err:
                skipped[name] = f"{type(err).__name__}: {err}"
        probe: list[ProbeResult] = []
        if config.rss_probe:
            if progress:
                progress(f"peak RSS probe: {format_size(config.rss_probe, 'exact')} jobs")
            with contextlib.suppress(OSError):
                probe = rss_probe(config.rss_probe, config.workdir, buffered=not config.quick)
    finally:
        spawner.close()
        shutil.rmtree(pyc, ignore_errors=True)
    return BenchRun(config, scenarios, skipped, probe, time.perf_counter() - started, (load_before, loadavg()))
