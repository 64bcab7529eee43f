"""Injected faults through the syscall seam: EINTR at any call, short writes of every size,
EIO/ENOSPC after k bytes, EOPNOTSUPP/EINVAL/ENOTTY from every offload call.

For each: the final bytes are right (the zeroed part is zero, everything else untouched),
the reported progress is exact (equal to the zero prefix really on disk), and the error
names the target, the method and the byte where it stopped.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import largezero.targets
from largezero import Interrupted, Target, Unsupported, ZeroingError, ZeroOptions, open_target, syscalls, zero_range
from largezero.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE

from .faultinject import Injector, zero_prefix
from .helpers import pattern_bytes, requires_root

WRITE_MODES = [("large", False), ("page", False), ("large", True), ("page", True)]
MODE_IDS = ["large", "page", "large-direct", "page-direct"]

# The small job: every short-write size is tried on it.
SMALL_FILE, SMALL_OFF, SMALL_LEN, SMALL_CALL = 32 << 10, 777, 13843, 8192
# The medium job: errors after k bytes, with calls smaller than the job and edges under O_DIRECT.
MED_FILE, MED_OFF, MED_LEN, MED_CALL = 4 << 20, 777, (3 << 20) + 1234, 256 << 10


@pytest.fixture(autouse=True)
def _forget_unsupported() -> Iterator[None]:
    # "Unsupported" is remembered per (dev, inode); a new scratch file may reuse an inode.
    largezero.targets.refusals.forget()
    yield
    largezero.targets.refusals.forget()


class Scratch:
    """A pattern-filled file (no zero byte anywhere) kept open as one Target."""

    def __init__(self, path: str, size: int) -> None:
        self.path, self.size = path, size
        self.pattern = pattern_bytes(size)
        self.reset()
        self.target: Target = open_target(path)
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.target.close()

    def reset(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, self.pattern, 0)
            os.ftruncate(fd, self.size)
        finally:
            os.close(fd)

    def read(self) -> bytes:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            return os.pread(fd, self.size + 1, 0)
        finally:
            os.close(fd)

    def expected(self, offset: int, zeroed: int) -> bytes:
        return self.pattern[:offset] + bytes(zeroed) + self.pattern[offset + zeroed :]

    def assert_state(self, offset: int, length: int, zeroed: int) -> None:
        """[offset, offset+zeroed) zero; everything else, in and out of the range, untouched."""
        data = self.read()
        assert len(data) == self.size, "the file size changed"
        assert zero_prefix(data, offset, offset + length) == zeroed, "reported progress is not the zero prefix"
        assert data == self.expected(offset, zeroed)


@pytest.fixture
def scratch(tmp_path: os.PathLike[str]) -> Iterator[Callable[[int], Scratch]]:
    made: list[Scratch] = []

    def make(size: int) -> Scratch:
        s = Scratch(os.path.join(os.fspath(tmp_path), f"f{len(made)}"), size)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def _message_names_everything(err: ZeroingError, target: str, method: str) -> None:
    text = str(err)
    assert "\n" not in text
    assert target in text
    assert f"method {method}" in text
    assert f"byte {err.stopped_at}" in text


# --- short writes --------------------------------------------------------------------------


_SMALL_CAPS = {1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 200, 255}


@pytest.mark.parametrize(("method", "direct"), WRITE_MODES, ids=MODE_IDS)
def test_short_writes_of_every_size(scratch: Callable[[int], Scratch], method: str, direct: bool) -> None:
    """Every write capped at k bytes, for every k from 1 to the whole job: same final bytes.

    Under O_DIRECT the caps are sampled (every block boundary +-1, every 61st, the small ones).
    """
    s = scratch(SMALL_FILE)
    caps: list[int] = list(range(1, SMALL_LEN + 1))
    if direct:  # each O_DIRECT edge is a read-modify-write: sample, densely around the block sizes
        caps = [c for c in caps if c in _SMALL_CAPS or c % 61 == 0 or (c + 1) % 512 <= 2]
    for cap in caps:
        s.reset()
        inj = Injector(cap=cap)
        with syscalls.installed(inj):
            r = zero_range(s.target, SMALL_OFF, SMALL_LEN,
                    options=ZeroOptions(method=method, direct=direct, call_size=SMALL_CALL))
        assert r.bytes_zeroed == SMALL_LEN
        if not direct:  # O_DIRECT edges are read-modify-written: whole blocks go out
            assert inj.written == SMALL_LEN, f"cap {cap}: wrote {inj.written} bytes for a {SMALL_LEN}-byte job"
            assert r.calls == inj.writes
        if cap in (1, 511, 4097, SMALL_LEN - 1) or cap % 97 == 0:
            s.assert_state(SMALL_OFF, SMALL_LEN, SMALL_LEN)
        else:  # cheaper: only the range and its neighbours
            data = s.read()
            assert data[SMALL_OFF - 1] != 0 and data[SMALL_OFF + SMALL_LEN] != 0
            assert data[SMALL_OFF : SMALL_OFF + SMALL_LEN] == bytes(SMALL_LEN)


@pytest.mark.parametrize(("method", "direct"), WRITE_MODES, ids=MODE_IDS)
def test_one_short_write_of_every_size(scratch: Callable[[int], Scratch], method: str, direct: bool) -> None:
    """Only the first write is short, by every amount; progress is exact after each write."""
    s = scratch(SMALL_FILE)
    first_call = SMALL_CALL if not direct else 512 - SMALL_OFF % 512  # direct: the head edge comes first
    for cap in range(1, first_call):
        s.reset()
        seen: list[int] = []
        with syscalls.installed(Injector(cap=cap, cap_first=True)):
            r = zero_range(s.target, SMALL_OFF, SMALL_LEN,
                    options=ZeroOptions(method=method, direct=direct, call_size=SMALL_CALL), progress=seen.append)
        if not direct:
            assert seen[0] == cap
        assert seen == sorted(set(seen)) and seen[-1] == r.bytes_zeroed == SMALL_LEN
        s.assert_state(SMALL_OFF, SMALL_LEN, SMALL_LEN)


@pytest.mark.parametrize("cap", [1, 100, 512, 4095, 5000])
@pytest.mark.parametrize(("method", "direct"), WRITE_MODES, ids=MODE_IDS)
def test_reported_progress_is_the_zero_prefix_at_every_step(scratch: Callable[[int], Scratch], method: str,
                                                            direct: bool, cap: int) -> None:
    """At each progress report the file holds exactly that zero prefix and nothing more."""
    s = scratch(SMALL_FILE)
    checked = 0

    def check(done: int) -> None:
        nonlocal checked
        data = s.read()
        assert zero_prefix(data, SMALL_OFF, SMALL_OFF + SMALL_LEN) == done
        assert data[SMALL_OFF + done :] == s.pattern[SMALL_OFF + done :]
        assert data[:SMALL_OFF] == s.pattern[:SMALL_OFF]
        checked += 1

    with syscalls.installed(Injector(cap=cap)):
        zero_range(s.target, SMALL_OFF, SMALL_LEN,
                options=ZeroOptions(method=method, direct=direct, call_size=SMALL_CALL), progress=check)
    assert checked >= SMALL_LEN // max(cap, SMALL_CALL)


# --- EINTR ---------------------------------------------------------------------------------

EINTR_MODES = [*WRITE_MODES, ("auto", None)]


def _clean_calls(s: Scratch, method: str, direct: bool | None, sync: bool) -> list[str]:
    s.reset()
    inj = Injector()
    with syscalls.installed(inj):
        zero_range(s.target, MED_OFF, MED_LEN, options=ZeroOptions(method=method, direct=direct, call_size=None
                   if method == "auto" else MED_CALL, sync=sync))
    return inj.names()


@pytest.mark.parametrize("sync", [False, True])
@pytest.mark.parametrize(("method", "direct"), EINTR_MODES, ids=[*MODE_IDS, "auto"])
def test_eintr_at_any_call_is_retried(scratch: Callable[[int], Scratch], method: str, direct: bool | None,
                                      sync: bool) -> None:
    s = scratch(MED_FILE)
    clean = _clean_calls(s, method, direct, sync)
    assert len(clean) >= (1 if method == "auto" else 5)
    call_size = None if method == "auto" else MED_CALL
    for i in range(len(clean)):
        s.reset()
        inj = Injector(eintr_at=[i])
        with syscalls.installed(inj):
            r = zero_range(s.target, MED_OFF, MED_LEN,
                    options=ZeroOptions(method=method, direct=direct, call_size=call_size, sync=sync))
        assert r.bytes_zeroed == MED_LEN and r.synced == sync
        # The interrupted call is made again, and nothing else changes.
        assert inj.names() == clean[: i + 1] + clean[i:]
        s.assert_state(MED_OFF, MED_LEN, MED_LEN)


@pytest.mark.parametrize(("method", "direct"), EINTR_MODES, ids=[*MODE_IDS, "auto"])
def test_eintr_with_cancel_stops_at_that_call(scratch: Callable[[int], Scratch], method: str,
                                              direct: bool | None) -> None:
    """A signal that sets the cancel event and interrupts a call: stop right there, progress exact."""
    s = scratch(MED_FILE)
    clean = _clean_calls(s, method, direct, False)
    call_size = None if method == "auto" else MED_CALL
    for i in range(len(clean)):
        s.reset()
        cancel = threading.Event()
        inj = Injector(eintr_at=[i], cancel=cancel)
        try:
            with syscalls.installed(inj):
                zero_range(s.target, MED_OFF, MED_LEN,
                        options=ZeroOptions(method=method, direct=direct, call_size=call_size), cancel=cancel)
        except Interrupted as caught:
            err = caught
        else:
            # Only the direct writer's last block may finish the job after a cancel: no boundary is left.
            assert direct and clean[i:] == clean[-1:], f"call {i} of {len(clean)}: the cancel was ignored"
            s.assert_state(MED_OFF, MED_LEN, MED_LEN)
            continue
        assert err.exit_code == EXIT_INTERRUPTED
        s.assert_state(MED_OFF, MED_LEN, err.bytes_zeroed)
        if not direct:  # O_DIRECT edges rewrite whole blocks: more bytes go out than are zeroed
            assert err.bytes_zeroed == inj.written  # exactly what the calls before i wrote
            assert len(inj.calls) == i + 1, "a call was made after the cancel"
        else:  # the direct writer finishes the block it was writing, then the job stops
            assert len(inj.calls) <= i + 2
        assert f"resume with --offset {err.stopped_at} --length {MED_OFF + MED_LEN - err.stopped_at}" in str(err)
        # Resuming from the printed offset finishes the job.
        zero_range(s.target, err.stopped_at, MED_OFF + MED_LEN - err.stopped_at,
                options=ZeroOptions(method=method, direct=direct, call_size=call_size))
        s.assert_state(MED_OFF, MED_LEN, MED_LEN)


# --- EIO / ENOSPC after k bytes -----------------------------------------------------------

K_VALUES = [0, 1, 511, 512, 513, 4095, 4096, 4097, MED_CALL - 1, MED_CALL, MED_CALL + 1,
            (2 << 20) - 1, 2 << 20, MED_LEN - 1]


def _fail_after(s: Scratch, method: str, direct: bool, code: int, k: int, partial: bool,
                offset: int = MED_OFF, length: int = MED_LEN, call_size: int = MED_CALL) -> ZeroingError:
    s.reset()
    inj = Injector(fail_after=k, fail_errno=code, partial=partial)
    with syscalls.installed(inj), pytest.raises(ZeroingError) as info:
        zero_range(s.target, offset, length, options=ZeroOptions(method=method, direct=direct, call_size=call_size))
    err = info.value
    assert type(err) is ZeroingError and err.exit_code == EXIT_FAILURE
    assert err.errno == code
    # The oracle: what is on disk. The zero prefix is exactly what was reported, nothing after it
    # changed (assert_state); and without edges what was reported is what the calls wrote.
    s.assert_state(offset, length, err.bytes_zeroed)
    assert err.bytes_zeroed <= k
    if not direct:
        assert err.bytes_zeroed == inj.written
        if partial:
            assert err.bytes_zeroed == k  # the kernel's short write is counted to the byte
    _message_names_everything(err, s.path, method)
    assert os.strerror(code) in str(err)
    return err


@pytest.mark.parametrize("partial", [True, False], ids=["short-then-error", "error"])
@pytest.mark.parametrize("code", [errno.EIO, errno.ENOSPC], ids=["EIO", "ENOSPC"])
@pytest.mark.parametrize(("method", "direct"), WRITE_MODES, ids=MODE_IDS)
def test_error_after_k_bytes(scratch: Callable[[int], Scratch], method: str, direct: bool, code: int,
                             partial: bool) -> None:
    s = scratch(MED_FILE)
    for k in K_VALUES:
        err = _fail_after(s, method, direct, code, k, partial)
        # Resuming with the printed offset gives the bytes of one clean run.
        zero_range(s.target, err.stopped_at, MED_OFF + MED_LEN - err.stopped_at,
                options=ZeroOptions(method=method, direct=direct, call_size=MED_CALL))
        s.assert_state(MED_OFF, MED_LEN, MED_LEN)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mode=st.sampled_from(WRITE_MODES),
    offset=st.integers(0, 300_000),
    length=st.integers(1, 700_000),
    call_size=st.sampled_from([4096, 65536, 65536 + 512, 1 << 20]),
    k_frac=st.floats(0, 1),
    code=st.sampled_from([errno.EIO, errno.ENOSPC]),
    partial=st.booleans(),
)
def test_error_after_k_bytes_anywhere(scratch: Callable[[int], Scratch], mode: tuple[str, bool], offset: int,
                                      length: int, call_size: int, k_frac: float, code: int,
                                      partial: bool) -> None:
    method, direct = mode
    s = scratch(1 << 20)
    k = int(k_frac * (length - 1))
    _fail_after(s, method, direct, code, k, partial, offset, length, call_size)
    s.close()
    os.unlink(s.path)


# --- offload calls that do not apply ------------------------------------------------------

UNSUPPORTED = [errno.EOPNOTSUPP, errno.EINVAL, errno.ENOTTY]
FILE_OFFLOADS = ["ZERO_RANGE", "WRITE_ZEROES", "PUNCH_HOLE"]


@pytest.mark.parametrize("code", UNSUPPORTED, ids=["EOPNOTSUPP", "EINVAL", "ENOTTY"])
@pytest.mark.parametrize("mechanism", FILE_OFFLOADS)
def test_unsupported_offload_falls_back_and_is_remembered(scratch: Callable[[int], Scratch], mechanism: str,
                                                          code: int) -> None:
    s = scratch(MED_FILE)
    unmap = mechanism == "PUNCH_HOLE"
    # WRITE_ZEROES is only asked when ZERO_RANGE did not apply.
    errors = {mechanism: code, **({"ZERO_RANGE": errno.EOPNOTSUPP} if mechanism == "WRITE_ZEROES" else {})}
    inj = Injector(offload_errors=errors)
    with syscalls.installed(inj):
        r = zero_range(s.target, MED_OFF, MED_LEN, options=ZeroOptions(unmap=unmap))
    s.assert_state(MED_OFF, MED_LEN, MED_LEN)
    assert r.bytes_zeroed == MED_LEN
    assert mechanism in inj.names()
    assert mechanism not in r.mechanism
    assert any(f"{mechanism}: {os.strerror(code)}" in reason for reason in r.fallback)
    # Remembered for this target when the error proves the mode absent: the next job does not
    # ask again. EINVAL also means "bad range", so it is remembered only for WRITE_ZEROES,
    # where fallocate(2) documents it as "mode not supported"; elsewhere it is asked again.
    s.reset()
    again = Injector(offload_errors=errors)
    with syscalls.installed(again):
        r2 = zero_range(s.target, MED_OFF, MED_LEN, options=ZeroOptions(unmap=unmap))
    remembered = code != errno.EINVAL or mechanism == "WRITE_ZEROES"
    assert (mechanism not in again.names()) == remembered
    assert r2.mechanism == r.mechanism
    s.assert_state(MED_OFF, MED_LEN, MED_LEN)


@pytest.mark.parametrize("code", UNSUPPORTED, ids=["EOPNOTSUPP", "EINVAL", "ENOTTY"])
@pytest.mark.parametrize("unmap", [False, True])
def test_offload_only_refuses_with_nothing_written(scratch: Callable[[int], Scratch], code: int,
                                                   unmap: bool) -> None:
    s = scratch(MED_FILE)
    inj = Injector(offload_errors=dict.fromkeys(FILE_OFFLOADS, code))
    with syscalls.installed(inj), pytest.raises(Unsupported) as info:
        zero_range(s.target, MED_OFF, MED_LEN, options=ZeroOptions(method="offload", unmap=unmap))
    assert info.value.exit_code == EXIT_USAGE
    assert s.path in str(info.value) and "offload" in str(info.value)
    assert not [n for n in inj.names() if n in ("pwritev", "pwrite")]
    s.assert_state(MED_OFF, MED_LEN, 0)


@pytest.mark.parametrize("code", [errno.EIO, errno.ENOSPC], ids=["EIO", "ENOSPC"])
def test_real_offload_error_is_reported_not_fallen_back(scratch: Callable[[int], Scratch], code: int) -> None:
    s = scratch(MED_FILE)
    inj = Injector(offload_errors={"ZERO_RANGE": code})
    with syscalls.installed(inj), pytest.raises(ZeroingError) as info:
        zero_range(s.target, MED_OFF, MED_LEN)
    err = info.value
    assert err.bytes_zeroed == 0 and err.errno == code and err.method == "offload"
    _message_names_everything(err, s.path, "offload")
    assert "ZERO_RANGE" in str(err)
    assert not [n for n in inj.names() if n in ("pwritev", "pwrite")]
    assert "ZERO_RANGE" not in s.target.unsupported()
    s.assert_state(MED_OFF, MED_LEN, 0)


@pytest.mark.parametrize("code", [errno.EIO, errno.ENOSPC], ids=["EIO", "ENOSPC"])
def test_fdatasync_error_reports_nothing_durable(scratch: Callable[[int], Scratch], code: int) -> None:
    s = scratch(MED_FILE)
    with syscalls.installed(Injector(sync_errno=code)), pytest.raises(ZeroingError) as info:
        zero_range(s.target, MED_OFF, MED_LEN, options=ZeroOptions(method="large", sync=True))
    err = info.value
    assert err.bytes_zeroed == 0 and err.stopped_at == MED_OFF
    assert "fdatasync" in str(err) and s.path in str(err) and "method large" in str(err)
    assert f"--offset {MED_OFF}" in str(err)


def test_sync_calls_fdatasync_after_the_last_write(scratch: Callable[[int], Scratch]) -> None:
    s = scratch(MED_FILE)
    for sync in (False, True):
        inj = Injector()
        with syscalls.installed(inj):
            r = zero_range(s.target, MED_OFF, MED_LEN,
                    options=ZeroOptions(method="large", sync=sync, call_size=MED_CALL))
        assert r.synced is sync
        assert inj.names().count("fdatasync") == int(sync)
        if sync:
            assert inj.names()[-1] == "fdatasync"


# --- block devices: BLKZEROOUT and PUNCH_HOLE on a device --------------------------------


@requires_root
@pytest.mark.parametrize("code", UNSUPPORTED, ids=["EOPNOTSUPP", "EINVAL", "ENOTTY"])
def test_blkzeroout_unsupported_falls_back_to_direct_writes(file_loop: Callable[[int], str], code: int) -> None:
    dev = file_loop(4 << 20)
    off, length = 4096 + 100, (2 << 20) + 7
    tgt = open_target(dev)
    try:
        assert (tgt.queue_attr("write_zeroes_max_bytes") or 0) > 0, "a file-backed loop device offloads"
        inj = Injector(offload_errors={"BLKZEROOUT": code})
        with syscalls.installed(inj):
            r = zero_range(tgt, off, length)
        assert "BLKZEROOUT" in inj.names()
        assert r.method == "large" and r.direct and r.bytes_zeroed == length
        assert any(f"BLKZEROOUT: {os.strerror(code)}" in reason for reason in r.fallback)
        with syscalls.installed(Injector(offload_errors={"BLKZEROOUT": code})), pytest.raises(Unsupported):
            zero_range(tgt, off, length, options=ZeroOptions(method="offload"))
        fd = os.open(dev, os.O_RDONLY)
        try:
            data = os.pread(fd, 4 << 20, 0)
        finally:
            os.close(fd)
        expected = pattern_bytes(4 << 20)
        assert data == expected[:off] + bytes(length) + expected[off + length :]
    finally:
        tgt.close()


@requires_root
@pytest.mark.parametrize("method", ["auto", "large"])
def test_sync_on_a_block_device_flushes_after_the_last_write(file_loop: Callable[[int], str], method: str) -> None:
    """fdatasync on a block device (blkdev_fsync) writes back and sends a cache FLUSH: it must be
    the last call, made once, and only then is the job reported synced."""
    dev = file_loop(4 << 20)
    inj = Injector()
    with syscalls.installed(inj):
        r = zero_range(dev, 512, 1 << 20, options=ZeroOptions(method=method, sync=True))
    assert r.synced and inj.names()[-1] == "fdatasync" and inj.names().count("fdatasync") == 1
    with syscalls.installed(Injector(sync_errno=errno.EIO)), pytest.raises(ZeroingError) as info:
        zero_range(dev, 512, 1 << 20, options=ZeroOptions(method=method, sync=True))
    assert info.value.bytes_zeroed == 0 and "fdatasync" in str(info.value)


@requires_root
def test_an_interrupt_after_an_offloaded_middle_names_it(file_loop: Callable[[int], str]) -> None:
    """The middle is offloaded before the unaligned head (so a refused offload can fall back with
    nothing written). A Ctrl-C that lands on the head's write must still say the middle is
    zero: the prefix is empty, but the message names the middle and maybe_until bounds it (the
    soak found this: seed 469802347 of the long run)."""
    dev = file_loop(4 << 20)
    off, length = 3 * 4096 + 100, 3 * 4096
    cancel = threading.Event()
    inj = Injector(eintr_at=[1], cancel=cancel)  # call 0: BLKZEROOUT of the middle; 1: the head
    with syscalls.installed(inj), pytest.raises(Interrupted) as info:
        zero_range(dev, off, length, cancel=cancel)
    assert inj.names()[:2] == ["BLKZEROOUT", "pwritev"]
    middle_lo, middle_hi = inj.calls[0][1], inj.calls[0][1] + inj.calls[0][2]
    err = info.value
    assert err.bytes_zeroed == 0 and err.maybe_until == middle_hi
    assert f"and so are bytes {middle_lo}..{middle_hi}" in str(err)
    assert f"resume with --offset {off} --length {length}" in str(err)
    fd = os.open(dev, os.O_RDONLY)
    try:
        data = os.pread(fd, 4 << 20, 0)
    finally:
        os.close(fd)
    expected = bytearray(pattern_bytes(4 << 20))
    expected[middle_lo:middle_hi] = bytes(middle_hi - middle_lo)
    assert data == bytes(expected)
