"""largezero cat as a real process: every stdout kind, the coreutils-cat edges (141, 130,
a closed stdout, a terminal), --json, sparse output and peak memory."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Callable
from typing import Any

import pytest

from . import test_cat_api as api
from .test_cat_api import PMD, Drain, read_all, zeros_sha

# The fixtures of the in-process tests, shared (pytest finds fixtures by module attribute).
ext4_dir = api.ext4_dir
mixed_file = api.mixed_file

CAT = [sys.executable, "-m", "largezero", "cat"]
MIB = 1 << 20
Mixed = tuple[str, dict[str, tuple[int, int]]]


def cat(*args: str, **kw: Any) -> subprocess.CompletedProcess[bytes]:
    kw.setdefault("capture_output", "stdout" not in kw and "stderr" not in kw)
    return subprocess.run([*CAT, *args], timeout=60, check=False, **kw)


def last_json(stderr: bytes) -> dict[str, Any]:
    line = [x for x in stderr.decode().splitlines() if x.startswith("{")][-1]
    obj: dict[str, Any] = json.loads(line)
    return obj


@pytest.mark.parametrize("length", ["0", "4095", "4097", str(PMD - 1), str(PMD + 1), "1M", "3MiB"])
def test_zeros_to_pipe_match_head(length: str) -> None:
    done = cat("-l", length)
    n = {"1M": MIB, "3MiB": 3 * MIB}.get(length, int(length) if length.isdigit() else -1)
    assert done.returncode == 0 and done.stderr == b""
    assert (len(done.stdout), hashlib.sha256(done.stdout).hexdigest()) == (n, zeros_sha(n))


def test_file_matches_cat_and_ranges(mixed_file: Mixed) -> None:
    path, parts = mixed_file
    whole = subprocess.run(["cat", path], check=True, capture_output=True).stdout
    done = cat(path, "-v")
    assert done.returncode == 0
    assert hashlib.sha256(done.stdout).hexdigest() == hashlib.sha256(whole).hexdigest()
    assert b"vmsplice" in done.stderr and b"splice" in done.stderr  # -v says which mechanism ran
    done = cat(path, "-o", "3M", "-l", "1MiB")  # util-linux suffixes; starts at data1
    assert done.stdout == whole[3 * MIB: 4 * MIB]
    start = parts["unwritten"][0] - 100
    done = cat(path, "-o", str(start), "-l", "3M")
    assert done.stdout == whole[start: start + 3 * MIB]


def test_tcp_socket_stdout() -> None:
    n = 64 * MIB + 3
    with socket.create_server(("127.0.0.1", 0)) as srv:
        srv.settimeout(30)
        with socket.create_connection(srv.getsockname(), timeout=30) as conn:
            peer, _ = srv.accept()
            with peer:
                proc = subprocess.Popen([*CAT, "-l", str(n), "--json"], stdout=conn.fileno(), stderr=subprocess.PIPE)
                conn.close()
                drain = Drain(peer.fileno())
                _, err = proc.communicate(timeout=60)
                assert drain.result() == (n, zeros_sha(n))
    assert proc.returncode == 0
    info = last_json(err)
    assert info["kind"] == "socket" and info["bytes"] == n and info["mechanism"] == "vmsplice-splice"


def test_sparse_input_stays_sparse_on_a_file(mixed_file: Mixed, ext4_dir: str) -> None:
    path, _ = mixed_file
    out = os.path.join(ext4_dir, "out.img")
    with open(out, "wb") as f:
        done = cat(path, stdout=f, stderr=subprocess.PIPE)
    assert done.returncode == 0, done.stderr
    assert read_all(out) == read_all(path)
    du = int(subprocess.run(["du", "-k", out], check=True, capture_output=True, text=True).stdout.split()[0])
    assert du <= 2 * 1024 + 64, f"du says {du} KiB for 2 MiB of data in 16 MiB"
    with open(out, "ab") as f:  # >>: appended, holes again
        assert cat("-l", "5M", stdout=f).returncode == 0
    assert os.path.getsize(out) == (16 + 5) * MIB
    du2 = int(subprocess.run(["du", "-k", out], check=True, capture_output=True, text=True).stdout.split()[0])
    assert du2 == du


def test_block_device_stdout(ramfs_loop: Callable[[int], str]) -> None:
    dev = ramfs_loop(8 * MIB)
    n = 3 * MIB + 5  # an unaligned tail: the engine writes it without touching byte n
    before = read_all(dev, 0, 8 * MIB)
    with open(dev, "wb") as f:
        done = cat("-l", str(n), "--json", stdout=f, stderr=subprocess.PIPE)
    assert done.returncode == 0, done.stderr
    after = read_all(dev, 0, 8 * MIB)
    assert after[:n] == bytes(n) and after[n:] == before[n:]
    assert last_json(done.stderr)["kind"] == "block"


def test_dev_null_json() -> None:
    with open(os.devnull, "wb") as f:
        done = cat("-l", "10G", "--json", stdout=f, stderr=subprocess.PIPE)
    assert done.returncode == 0
    info = last_json(done.stderr)
    assert info["bytes"] == 10 << 30 and info["kind"] == "other" and info["mechanism"] == "writev"
    assert info["calls"] >= 1 and isinstance(info["seconds"], float)


def test_terminal_refused_unless_forced() -> None:
    master, slave = os.openpty()
    try:
        tty.setraw(slave)
        done = cat("-l", "4K", stdout=slave, stderr=subprocess.PIPE)
        assert done.returncode == 2
        assert done.stderr.count(b"\n") == 1 and b"terminal" in done.stderr
        drain = Drain(master)
        done = cat("-l", "4K", "--force", stdout=slave, stderr=subprocess.PIPE)
        assert done.returncode == 0
        deadline = time.monotonic() + 10
        while drain.count < 4096 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert drain.count == 4096
    finally:
        os.close(slave)
    drain.join(10)
    os.close(master)


@pytest.mark.parametrize("with_file", [False, True])
def test_reader_gone_is_quiet_141(with_file: bool, mixed_file: Mixed) -> None:
    args = [mixed_file[0]] if with_file else []
    proc = subprocess.Popen([*CAT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert len(proc.stdout.read(100)) == 100
    proc.stdout.close()  # the reader goes away, as `| head -c 100` does
    err = proc.stderr.read()
    assert proc.wait(timeout=30) == 141
    assert err == b""  # no message, no traceback


@pytest.mark.parametrize("reading", [True, False])
def test_ctrl_c_exits_130(reading: bool) -> None:
    proc = subprocess.Popen(CAT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert len(proc.stdout.read(1 << 16)) == 1 << 16  # it is streaming
    stop = threading.Event()
    if reading:
        def read() -> None:
            while not stop.is_set() and proc.stdout is not None and proc.stdout.read(1 << 20):
                pass
        threading.Thread(target=read, daemon=True).start()
    else:
        time.sleep(0.2)  # let it fill the pipe and block in vmsplice
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    code = proc.wait(timeout=30)
    stop.set()
    with contextlib.suppress(OSError):
        proc.stdout.close()
    assert code == 130
    assert b"Traceback" not in err and err.count(b"\n") == 1 and b"interrupted" in err


def test_stdout_closed_one_line_exit_1() -> None:
    done = subprocess.run([*CAT, "-l", "1M"], capture_output=False, stderr=subprocess.PIPE, timeout=30,
                          preexec_fn=lambda: os.close(1), check=False)
    assert done.returncode == 1
    assert done.stderr.count(b"\n") == 1 and b"standard output" in done.stderr


def test_bad_input_exit_2(tmp_path: Any) -> None:
    assert cat("-l", "12Q").returncode == 2
    assert cat("-o", "5").returncode == 2  # an offset needs a FILE
    assert cat(os.path.join(os.fspath(tmp_path), "missing")).returncode == 2
    with open(os.path.join(os.fspath(tmp_path), "f"), "wb") as f:
        done = cat(stdout=f, stderr=subprocess.PIPE)  # endless zeros into a regular file
    assert done.returncode == 2 and done.stderr.count(b"\n") == 1


def test_peak_rss_growth_is_small(mixed_file: Mixed) -> None:
    """Peak RSS growth < 8 MiB however long: nothing is buffered in user space."""
    line = f"{' '.join(CAT)} -l 4G --json | dd of=/dev/null bs=1M status=none"
    done = subprocess.run(["sh", "-c", line], capture_output=True, timeout=60, check=False)
    assert done.returncode == 0
    info = last_json(done.stderr)
    assert info["bytes"] == 4 << 30
    assert info["rss_growth_bytes"] is not None and info["rss_growth_bytes"] < 8 * MIB
    with open(os.devnull, "wb") as f:
        done = cat(mixed_file[0], "--json", stdout=f, stderr=subprocess.PIPE)
    assert last_json(done.stderr)["rss_growth_bytes"] < 8 * MIB


def test_without_large_zero_page_still_exact() -> None:
    """LARGEZERO_LARGE_PAGE=0 (the config switch off): vmsplice of the 4 KiB ZERO_PAGE instead."""
    n = PMD + 4097
    done = cat("-l", str(n), "-v", env={**os.environ, "LARGEZERO_LARGE_PAGE": "0"})
    assert done.returncode == 0
    assert hashlib.sha256(done.stdout).hexdigest() == zeros_sha(n)
    assert b"ZERO_PAGE" in done.stderr and b"LARGE_ZERO_PAGE" not in done.stderr
