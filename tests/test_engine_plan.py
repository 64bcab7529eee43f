"""One plan, one engine: the calls executed are exactly the plan's, and the plan is pure.

Every system call that writes is recorded through the syscall seam (nothing is faked: the
calls go to the kernel) and compared with ``ZeroPlan.syscalls()`` of the plan the job ran.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from largezero import syscalls
from largezero.engine.plan import (
    BLOCK,
    FILE,
    EdgeStep,
    OffloadStep,
    TargetFacts,
    WriteStep,
    ZeroOptions,
    plan_zero_range,
)
from largezero.engine.zeroout import zero_range
from largezero.targets import opened
from largezero.targets.facts import facts_of

from .faultinject import fallocate_name
from .helpers import pattern_bytes, read_range

SIZE = 4 << 20


class Recorder(syscalls.Syscalls):
    """The real calls, each one written down as (call, offset, length)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def pwritev(self, fd: int, buffers: Sequence[Any], offset: int) -> int:
        n = super().pwritev(fd, buffers, offset)
        direct = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT
        self.calls.append(("pwritev-direct" if direct else "pwritev", offset, sum(len(b) for b in buffers)))
        return n

    def fallocate(self, fd: int, mode: int, offset: int, length: int) -> None:
        self.calls.append((fallocate_name(mode), offset, length))
        super().fallocate(fd, mode, offset, length)

    def blkzeroout(self, fd: int, offset: int, length: int) -> None:
        self.calls.append(("BLKZEROOUT", offset, length))
        super().blkzeroout(fd, offset, length)

    def sync_file_range(self, fd: int, offset: int, length: int, flags: int = 7) -> None:
        if flags & syscalls.SYNC_FILE_RANGE_WRITE:  # a wait-only call writes nothing: not a plan step
            self.calls.append(("sync_file_range", offset, length))
        super().sync_file_range(fd, offset, length, flags)


jobs = st.tuples(
    st.integers(0, SIZE - 1), st.integers(1, SIZE),
    st.sampled_from(["auto", "large", "page"]), st.sampled_from([None, True]),
    st.sampled_from([None, 4096, 65536, 3 << 20]), st.sampled_from([None, 8192, 128 << 10]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(job=jobs)
def test_executed_calls_are_the_plans_calls(scratch_file: Callable[[int], str],
                                            job: tuple[int, int, str, bool | None, int | None, int | None]) -> None:
    offset, length, method, direct, call_size, iov_len = job
    length = min(length, SIZE - offset)
    path = scratch_file(SIZE)
    rec = Recorder()
    with syscalls.installed(rec):
        r = zero_range(path, offset, length,
                options=ZeroOptions(method=method, direct=direct, call_size=call_size, iov_len=iov_len))
    assert r.plan is not None
    assert rec.calls == list(r.plan.syscalls())
    data = read_range(path, 0, SIZE)
    expect = pattern_bytes(SIZE)
    assert data[:offset] == expect[:offset]
    assert data[offset:offset + length] == bytes(length)
    assert data[offset + length:] == expect[offset + length:]
    assert os.path.getsize(path) == SIZE


def test_plan_is_a_pure_function_of_facts_and_options() -> None:
    facts = TargetFacts("x", FILE, 1 << 30, dio_align=4096)
    opts = ZeroOptions("large", True, call_size=None)
    a = plan_zero_range(facts, 12345, 100 << 20, opts)
    assert a == plan_zero_range(facts, 12345, 100 << 20, opts)
    kinds = [type(s) for s in a.steps]
    assert kinds == [EdgeStep, WriteStep, EdgeStep]
    head, mid, tail = a.steps
    assert (head.offset, head.offset + head.length) == (12345, 16384)
    assert mid.offset == 16384 and (mid.offset + mid.length) % 4096 == 0
    assert tail.offset + tail.length == 12345 + (100 << 20)
    # run-length: a petabyte plans in a handful of objects
    huge = plan_zero_range(TargetFacts("x", FILE, 1 << 50, dio_align=512), 0, 1 << 50, opts)
    assert sum(len(s.runs) for s in huge.steps if isinstance(s, WriteStep)) <= 2


def test_only_bytes_below_the_dio_alignment_use_the_page_cache() -> None:
    # 64 KiB filesystem blocks, 512-byte DIO alignment: every aligned byte is O_DIRECT, so
    # another process's O_DIRECT write to the same page never meets a dirty page of ours.
    facts = TargetFacts("x", FILE, 1 << 30, dio_align=512, cache_granule=65536)
    plan = plan_zero_range(facts, 1000, 1 << 20, ZeroOptions("large", True))
    head, mid, tail = plan.steps
    assert isinstance(head, EdgeStep) and (head.offset, head.length) == (1000, 24)
    assert isinstance(mid, WriteStep) and mid.direct and (mid.offset, mid.offset + mid.length) == (1024, 1049088)
    assert isinstance(tail, EdgeStep) and (tail.offset, tail.offset + tail.length) == (1049088, 1000 + (1 << 20))
    # A sector-aligned range that is not page-aligned: no page-cache step at all.
    dev = TargetFacts("d", BLOCK, 1 << 30, dio_align=512)
    for method in ("large", "page", "auto"):
        aligned = plan_zero_range(dev, 4096512, 3584, ZeroOptions(method, True))
        assert [type(s) for s in aligned.steps] == [WriteStep], method
        assert [c for c, _, _ in aligned.syscalls()] == ["pwritev-direct"]


def test_auto_plans_offload_with_the_write_plan_as_fallback() -> None:
    facts = TargetFacts("x", FILE, 1 << 30)
    plan = plan_zero_range(facts, 0, 1 << 20, ZeroOptions("auto", True))
    assert [type(s) for s in plan.steps] == [OffloadStep]
    assert plan.fallback is not None and plan.fallback.direct and plan.fallback.method == "large"
    dev = TargetFacts("d", BLOCK, 1 << 30, write_zeroes=False, copies_data=True)
    direct = plan_zero_range(dev, 0, 1 << 30, ZeroOptions("auto"))
    assert direct.method == "large" and direct.direct and direct.iov_len == 128 << 10
    assert plan_zero_range(dev, 0, 1 << 20, ZeroOptions("offload")).steps == ()


def test_overwrite_never_offloads() -> None:
    facts = TargetFacts("x", FILE, 1 << 30)
    plan = plan_zero_range(facts, 0, 1 << 20, ZeroOptions("auto", overwrite=True))
    assert plan.direct and not any(isinstance(s, OffloadStep) for s in plan.steps) and plan.fallback is None


def test_facts_of_a_real_file(scratch_file: Callable[[int], str]) -> None:
    path = scratch_file(SIZE)
    with opened(path) as tgt:
        facts = facts_of(tgt)
    assert facts.kind == FILE and facts.size == SIZE and facts.dio_align >= 512
    assert facts.cache_granule >= os.sysconf("SC_PAGE_SIZE")
