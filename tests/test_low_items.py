"""Issue 20, point 6: the low items, each on the real thing where it runs here.

A refusal is one line and exit 2; the kernel's own refusals (EFBIG under RLIMIT_FSIZE, ETXTBSY
on an active swapfile, EBUSY from BLKZEROOUT, EPERM, EROFS) with nothing written say "the
kernel refused" and print no resume command that would fail the same way.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable

import pytest

import largezero
from largezero import ZeroOptions, syscalls, zero_range
from largezero.errors import EXIT_FAILURE, EXIT_USAGE, KernelRefused, ZeroingError
from largezero.scratch import fill_pattern, loop_device, make_image

from .faultinject import Injector
from .helpers import requires_root

LZ = [sys.executable, "-m", "largezero"]
MiB = 1 << 20


def _lz(*argv: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LZ, *argv], capture_output=True, text=True, **kw)  # type: ignore[call-overload, no-any-return]


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_a_5000_digit_size_is_one_short_line(tmp_path: os.PathLike[str]) -> None:
    path = make_image(os.path.join(os.fspath(tmp_path), "f.img"), MiB)
    done = _lz("zero", path, "-l", "9" * 5000)
    assert done.returncode == EXIT_USAGE
    line = _one_line(done)
    assert "2^63-1" in line and "4300" not in line and len(line) < 200


@requires_root
def test_verify_and_info_of_an_unreadable_file_say_reading(tmp_path: os.PathLike[str]) -> None:
    path = make_image(os.path.join(tempfile.mkdtemp(prefix="largezero-unreadable-"), "f.img"), MiB)
    os.chmod(os.path.dirname(path), 0o755)
    os.chmod(path, 0)

    def as_nobody() -> None:
        os.setgid(65534)
        os.setuid(65534)

    # The venv may sit where nobody cannot go: the system's python with our source on its path.
    src = os.path.dirname(os.path.dirname(largezero.__file__))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": src}
    python = ["/usr/bin/python3", "-m", "largezero"]
    try:
        probe = subprocess.run([*python, "--help"], capture_output=True, preexec_fn=as_nobody, cwd="/", env=env)
    except OSError as err:
        probe = None
        why = str(err)
    if probe is None or probe.returncode != 0:
        os.unlink(path)
        os.rmdir(os.path.dirname(path))
        pytest.skip(f"the system python cannot run largezero as nobody here ({why if probe is None else 'import'})")
    try:
        for cmd in ("verify", "info"):
            done = subprocess.run([*python, cmd, path], capture_output=True, text=True, preexec_fn=as_nobody,
                                  cwd="/", env=env)
            assert done.returncode == EXIT_USAGE, done.stderr
            line = _one_line(done)
            assert "cannot open for reading" in line and "writing" not in line, line
    finally:
        os.unlink(path)
        os.rmdir(os.path.dirname(path))


def test_thp_disabled_for_the_process_names_the_reason(tmp_path: os.PathLike[str]) -> None:
    path = make_image(os.path.join(os.fspath(tmp_path), "f.img"), 8 * MiB)
    libc = ctypes.CDLL(None, use_errno=True)

    def thp_off() -> None:
        assert libc.prctl(41, 1, 0, 0, 0) == 0  # PR_SET_THP_DISABLE, inherited across exec

    done = subprocess.run([*LZ, "zero", path, "-m", "large", "--backing", "huge-zero-folio", "--json"],
                          capture_output=True, text=True, preexec_fn=thp_off)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert any("PR_SET_THP_DISABLE" in note for note in out["fallback"]), out["fallback"]


@pytest.mark.parametrize("method", [["-m", "large"], ["-m", "large", "--direct"], ["-m", "page"]])
def test_rlimit_fsize_is_the_kernel_refusing(tmp_path: os.PathLike[str], method: list[str]) -> None:
    path = make_image(os.path.join(os.fspath(tmp_path), "f.img"), 4 * MiB)

    def small_limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (MiB, MiB))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    done = subprocess.run([*LZ, "zero", path, "-o", "2M", "-l", "1M", *method], capture_output=True, text=True,
                          preexec_fn=small_limit)
    assert done.returncode == EXIT_USAGE, done.stderr
    line = _one_line(done)  # no resume line: it would fail the same way
    assert "the kernel refused pwritev: File too large" in line and "RLIMIT_FSIZE" in line
    assert "nothing was written" in line
    # Part written, then refused: that is a stop part way (exit 1) with its resume command.
    done = subprocess.run([*LZ, "zero", path, "-o", "512K", "-l", "1M", *method], capture_output=True, text=True,
                          preexec_fn=small_limit)
    assert done.returncode == EXIT_FAILURE and "resume with" in done.stderr


@pytest.mark.parametrize(("code", "says"), [(errno.EBUSY, "mounted or held"), (errno.EPERM, "immutable"),
                                            (errno.EROFS, "read-only")])
def test_blkzeroout_and_write_refusals_are_refusals(tmp_path: os.PathLike[str], code: int, says: str) -> None:
    path = make_image(os.path.join(os.fspath(tmp_path), "f.img"), 4 * MiB)
    fault = Injector(fail_after=0, fail_errno=code)
    with syscalls.installed(fault), pytest.raises(ZeroingError) as info:
        zero_range(path, 0, MiB, ZeroOptions(method="large"))
    assert isinstance(info.value, KernelRefused) and info.value.exit_code == EXIT_USAGE
    assert says in str(info.value) and info.value.bytes_zeroed == 0


@requires_root
def test_an_active_swapfile_with_force_is_the_kernel_refusing(tmp_path: os.PathLike[str]) -> None:
    swap = os.path.join(os.fspath(tmp_path), "swap")
    subprocess.run(["fallocate", "-l", "8M", swap], check=True)
    os.chmod(swap, 0o600)
    subprocess.run(["mkswap", "-q", swap], check=True, capture_output=True)
    if subprocess.run(["swapon", swap], capture_output=True).returncode != 0:
        pytest.skip("swapon refused a swapfile here")
    try:
        for method in ([], ["-m", "large"]):
            done = _lz("zero", swap, "-l", "1M", "--force", *method)
            assert done.returncode == EXIT_USAGE, done.stderr
            line = _one_line(done)
            assert "the kernel refused" in line and "Text file busy" in line and "swapfile" in line
    finally:
        subprocess.run(["swapoff", swap], check=True)


@requires_root
@pytest.mark.parametrize("method", [[], ["-m", "large"], ["-m", "large", "--direct"]],
                         ids=["auto", "large", "direct"])
def test_enospc_with_extend_leaves_the_file_no_larger_than_stopped_at(tmp_path: os.PathLike[str],
                                                                       method: list[str]) -> None:
    tmp = os.fspath(tmp_path)
    image = make_image(os.path.join(tmp, "fs.img"), 32 * MiB, allocate=False)
    subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True, capture_output=True)
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    with loop_device(image) as dev:
        subprocess.run(["mount", dev, mnt], check=True, capture_output=True)
        try:
            path = make_image(os.path.join(mnt, "f"), MiB)
            fill_pattern(path, 0, MiB)
            done = _lz("zero", path, "-o", "1M", "-l", "100M", "--extend", "--json", *method)
            assert done.returncode == EXIT_FAILURE, done.stderr
            out = json.loads(done.stdout)
            report = out[0] if isinstance(out, list) else out
            stopped_at = report["stopped_at"]
            assert "No space left on device" in done.stderr
            assert MiB <= os.path.getsize(path) <= max(MiB, stopped_at), (os.path.getsize(path), stopped_at)
        finally:
            subprocess.run(["umount", mnt], check=True, capture_output=True)


@requires_root
def test_blkzeroout_ebusy_is_the_kernel_refusing_a_mounted_device(file_loop: Callable[[int], str]) -> None:
    """BLKZEROOUT fails EBUSY on a device the kernel will not zero (a mounted one, --force):
    nothing was written, so no "bytes 0..N may also be zero" and no resume command."""
    dev = file_loop(16 * MiB)
    with open(f"/sys/block/{os.path.basename(dev)}/queue/write_zeroes_max_bytes") as f:
        if int(f.read()) == 0:
            pytest.skip("this loop device has no write-zeroes: BLKZEROOUT is not planned")
    fault = Injector(offload_errors={"BLKZEROOUT": errno.EBUSY})
    with syscalls.installed(fault), pytest.raises(KernelRefused) as info:
        zero_range(dev, 0, MiB, ZeroOptions(method="auto", force=True))
    err = info.value
    assert err.exit_code == EXIT_USAGE and err.bytes_zeroed == 0 and err.maybe_until is None
    assert "the kernel refused BLKZEROOUT" in str(err) and "mounted or held" in str(err)
    assert "may also be zero" not in str(err) and "resume" not in str(err)
