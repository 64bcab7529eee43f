"""zero_stream() and stream_file() in process: exact bytes on real pipes, sockets and files,
holes and unwritten extents, partial writes, EAGAIN and refusals through the stream seam."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from largezero import syscalls
from largezero.scratch import is_root, loop_device, make_image, memfs_mount
from largezero.stream import StreamResult, layout, stream_file, zero_stream
from largezero.targets import refusals

from .helpers import NOT_ROOT

PAGE = os.sysconf("SC_PAGE_SIZE")
PMD = 2 << 20
EXT4_MAGIC = 0xEF53
# Around the page, the default pipe (64 KiB), the grown pipe (1 MiB) and the PMD (2 MiB).
LENGTHS = [0, 1, PAGE - 1, PAGE, PAGE + 1, (64 << 10) + 1, (1 << 20) - 1, 1 << 20, PMD - 1, PMD, PMD + 1,
           3 * PMD + 12345]


def zeros_sha(n: int) -> str:
    """The reference: what `head -c N /dev/zero` writes."""
    out = subprocess.run(["head", "-c", str(n), "/dev/zero"], check=True, capture_output=True).stdout
    return hashlib.sha256(out).hexdigest()


class Drain(threading.Thread):
    """Reads an fd to EOF in the background, hashing what it gets."""

    def __init__(self, fd: int, delay: float = 0.0, chunk: int = 1 << 20) -> None:
        super().__init__(daemon=True)
        self.fd, self.delay, self.chunk = fd, delay, chunk
        self.sha = hashlib.sha256()
        self.count = 0
        self.start()

    def run(self) -> None:
        while True:
            if self.delay:
                time.sleep(self.delay)
            try:
                data = os.read(self.fd, self.chunk)
            except OSError:
                break  # a pty master says EIO once the slave is closed: that is its EOF
            if not data:
                break
            self.count += len(data)
            self.sha.update(data)

    def result(self) -> tuple[int, str]:
        self.join(30)
        return self.count, self.sha.hexdigest()


@contextlib.contextmanager
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        yield r, w
    finally:
        for fd in (r, w):
            with contextlib.suppress(OSError):
                os.close(fd)


def through_pipe(write: Callable[[int], object], *, nonblock: bool = False,
                 delay: float = 0.0) -> tuple[int, str]:
    with pipe() as (r, w):
        if nonblock:
            fcntl.fcntl(w, fcntl.F_SETFL, fcntl.fcntl(w, fcntl.F_GETFL) | os.O_NONBLOCK)
        drain = Drain(r, delay)
        write(w)
        os.close(w)
        return drain.result()


def through_socket(write: Callable[[int], StreamResult]) -> tuple[tuple[int, str], StreamResult]:
    """Run ``write(fd)`` into one end of a socketpair: (bytes and sha256 the other end read, its result)."""
    a, b = socket.socketpair()
    with a, b:
        drain = Drain(b.fileno())
        r = write(a.fileno())
        a.shutdown(socket.SHUT_WR)
        return drain.result(), r


def fs_magic(path: str) -> int:
    buf = ctypes.create_string_buffer(256)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.statfs(os.fsencode(path), buf) != 0:
        return 0
    return ctypes.c_ulong.from_buffer(buf).value & 0xFFFFFFFF


@pytest.fixture
def ext4_dir(tmp_path: Any) -> Iterator[str]:
    """A directory on ext4 (unwritten extents are real there): tmp_path, else a fresh mount."""
    if fs_magic(os.fspath(tmp_path)) == EXT4_MAGIC:
        yield os.fspath(tmp_path)
        return
    if not is_root():
        pytest.skip(NOT_ROOT)
    with memfs_mount("tmpfs") as mnt:
        image = make_image(os.path.join(mnt, "ext4.img"), 256 << 20, allocate=False)
        subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True, capture_output=True)
        with loop_device(image) as dev:
            target = os.path.join(mnt, "fs")
            os.mkdir(target)
            subprocess.run(["mount", dev, target], check=True, capture_output=True)
            try:
                yield target
            finally:
                subprocess.run(["umount", target], check=False, capture_output=True)


def write_at(path: str, offset: int, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


def read_all(path: str, offset: int = 0, length: int | None = None) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read() if length is None else f.read(length)


@pytest.fixture
def mixed_file(ext4_dir: str) -> tuple[str, dict[str, tuple[int, int]]]:
    """16 MiB on ext4: hole, data, unwritten extent with a written page in it (still dirty in
    the page cache), hole, data at the end. Returns the path and where each part is."""
    path = os.path.join(ext4_dir, "mixed.img")
    size = 16 << 20
    make_image(path, size, allocate=False)
    parts = {"data1": (3 << 20, (1 << 20) + 4096), "unwritten": (6 << 20, 4 << 20),
             "inside": ((7 << 20) + 8192, 4096), "data2": (size - 12288, 12288)}
    write_at(path, parts["data1"][0], os.urandom(parts["data1"][1]))
    fd = os.open(path, os.O_WRONLY)
    try:
        os.posix_fallocate(fd, *parts["unwritten"])  # without -z: unwritten extents, reads are zeros
    finally:
        os.close(fd)
    write_at(path, parts["inside"][0], os.urandom(4096))  # dirty data inside the unwritten extent
    write_at(path, parts["data2"][0], os.urandom(parts["data2"][1]))
    return path, parts


@pytest.fixture(autouse=True)
def _fresh_refusals() -> Iterator[None]:
    refusals.forget()
    yield
    refusals.forget()


# --- zeros, exact bytes ----------------------------------------------------------------------


@pytest.mark.parametrize("n", LENGTHS)
def test_pipe_zeros_exact(n: int) -> None:
    results: list[StreamResult] = []
    got = through_pipe(lambda w: results.append(zero_stream(w, n)))
    assert got == (n, zeros_sha(n))
    r = results[0]
    assert r.kind == "pipe" and r.bytes == n and r.zero_bytes == n
    if n:
        assert r.mechanism == "vmsplice"  # no copy: the pipe references the zero folio


@pytest.mark.parametrize("n", [1, PAGE + 1, PMD + 1, (5 << 20) + 3])
def test_socketpair_zeros_exact(n: int) -> None:
    got, r = through_socket(lambda fd: zero_stream(fd, n))
    assert got == (n, zeros_sha(n))
    assert r.kind == "socket" and r.bytes == n
    assert r.mechanism in ("vmsplice-splice", "sendmsg")


def test_regular_file_output_is_a_hole(tmp_path: Any) -> None:
    path = os.path.join(os.fspath(tmp_path), "out")
    n = 3 * PMD + 7
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        r = zero_stream(fd, n)
        assert os.lseek(fd, 0, os.SEEK_CUR) == n  # the position is left after the last byte
    finally:
        os.close(fd)
    st = os.stat(path)
    assert st.st_size == n and st.st_blocks == 0
    assert hashlib.sha256(read_all(path)).hexdigest() == zeros_sha(n)
    assert r.mechanism == "ftruncate"


def test_regular_file_zeros_inside_go_through_the_engine(tmp_path: Any) -> None:
    path = os.path.join(os.fspath(tmp_path), "inplace")
    original = os.urandom(4 << 20)
    with open(path, "wb") as f:
        f.write(original)
    fd = os.open(path, os.O_WRONLY)
    try:
        os.lseek(fd, 4096, os.SEEK_SET)
        r = zero_stream(fd, (1 << 20) + 5)
    finally:
        os.close(fd)
    data = read_all(path)
    assert data[:4096] == original[:4096]
    assert data[4096:4096 + (1 << 20) + 5] == bytes((1 << 20) + 5)
    assert data[4096 + (1 << 20) + 5:] == original[4096 + (1 << 20) + 5:]  # never a byte outside
    assert r.mechanism not in ("ftruncate", "none")


def test_dev_null_and_endless_file_refused(tmp_path: Any) -> None:
    fd = os.open(os.devnull, os.O_WRONLY)
    try:
        r = zero_stream(fd, 5 << 30)
    finally:
        os.close(fd)
    assert r.kind == "other" and r.bytes == 5 << 30 and r.mechanism == "writev"
    fd = os.open(os.path.join(os.fspath(tmp_path), "f"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(ValueError, match="endless"):
            zero_stream(fd, None)
    finally:
        os.close(fd)


# --- files: holes, data, unwritten extents -----------------------------------------------------


def test_layout_serves_holes_and_unwritten_as_zeros(mixed_file: tuple[str, dict[str, tuple[int, int]]]) -> None:
    path, parts = mixed_file
    fd = os.open(path, os.O_RDONLY)
    try:
        segs = layout(fd, 0, os.fstat(fd).st_size)
    finally:
        os.close(fd)
    assert sum(n for _, n, _ in segs) == 16 << 20
    data = [(o, n) for o, n, zero in segs if not zero]
    covered = sum(n for _, n in data)
    # Only the written parts are data: the 4 MiB unwritten extent is not read.
    assert covered <= parts["data1"][1] + parts["data2"][1] + 4096 + 2 * 4096
    inside = parts["inside"][0]
    assert any(o <= inside < o + n for o, n in data), "dirty page inside the unwritten extent must be data"


@pytest.mark.parametrize("where", ["whole", "in-hole", "in-data", "in-unwritten", "across"])
def test_stream_file_exact_to_pipe(mixed_file: tuple[str, dict[str, tuple[int, int]]], where: str) -> None:
    path, parts = mixed_file
    ranges = {"whole": (0, None), "in-hole": (12345, 1 << 20), "in-data": (parts["data1"][0] + 77, 9999),
              "in-unwritten": (parts["unwritten"][0] + 3, PMD + 1), "across": ((2 << 20) + 1, 10 << 20)}
    offset, length = ranges[where]
    results: list[StreamResult] = []
    got = through_pipe(lambda w: results.append(stream_file(path, w, offset, length)))
    want = read_all(path, offset, length)
    assert got == (len(want), hashlib.sha256(want).hexdigest())
    if where == "whole":
        whole = subprocess.run(["cat", path], check=True, capture_output=True).stdout
        assert got[1] == hashlib.sha256(whole).hexdigest()
        assert results[0].zero_bytes >= parts["unwritten"][1] - 4096
        assert "splice" in results[0].mechanisms and "vmsplice" in results[0].mechanisms


def into_new_file(path: str, out: str) -> None:
    """stream_file(path) into a new regular file ``out``."""
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        stream_file(path, fd)
    finally:
        os.close(fd)


def test_stream_file_to_socket_and_sparse_file(mixed_file: tuple[str, dict[str, tuple[int, int]]],
                                               ext4_dir: str) -> None:
    path, _ = mixed_file
    want = read_all(path)
    got, r = through_socket(lambda fd: stream_file(path, fd))
    assert got == (len(want), hashlib.sha256(want).hexdigest())
    assert "sendfile" in r.mechanisms
    out = os.path.join(ext4_dir, "copy.img")
    into_new_file(path, out)
    assert read_all(out) == want
    assert os.stat(out).st_blocks * 512 < (2 << 20) + 64 * 1024  # du: the holes stayed holes


def test_input_is_output_refused(tmp_path: Any) -> None:
    path = os.path.join(os.fspath(tmp_path), "same")
    make_image(path, 1 << 20)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        with pytest.raises(ValueError, match="input file is output file"):
            stream_file(path, fd)
    finally:
        os.close(fd)


# --- the seam: partial writes, EAGAIN, refusals ------------------------------------------------


class Flaky(syscalls.Syscalls):
    """Caps every call at ``cap`` bytes, answers every ``eagain_every``-th with EAGAIN, and
    refuses the calls in ``refuse`` with the given errno."""

    def __init__(self, cap: int | None = None, eagain_every: int = 0, refuse: dict[str, int] | None = None) -> None:
        self.cap, self.eagain_every, self.refuse = cap, eagain_every, dict(refuse or {})
        self.log: list[str] = []

    def _gate(self, name: str) -> None:
        self.log.append(name)
        if name in self.refuse:
            raise OSError(self.refuse[name], os.strerror(self.refuse[name]))
        if self.eagain_every and len(self.log) % self.eagain_every == 0:
            raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))

    def _n(self, n: int) -> int:
        return n if self.cap is None else min(n, self.cap)

    def _trim(self, buffers: Sequence[Any]) -> list[Any]:
        out, left = [], self._n(sum(memoryview(b).nbytes for b in buffers))
        for b in buffers:
            if left <= 0:
                break
            view = memoryview(b)[:left]
            out.append(view)
            left -= view.nbytes
        return out

    def vmsplice(self, fd: int, buffers: Sequence[Any], flags: int = 0) -> int:
        self._gate("vmsplice")
        return super().vmsplice(fd, self._trim(buffers), flags)

    def splice(self, src: int, dst: int, count: int, offset_src: int | None = None,
               offset_dst: int | None = None, flags: int = 0) -> int:
        self._gate("splice")
        return super().splice(src, dst, self._n(count), offset_src, offset_dst, flags)

    def writev(self, fd: int, buffers: Sequence[Any]) -> int:
        self._gate("writev")
        return super().writev(fd, self._trim(buffers))

    def sendmsg(self, sock: socket.socket, buffers: Sequence[Any], flags: int = 0) -> int:
        self._gate("sendmsg")
        return super().sendmsg(sock, self._trim(buffers), flags)

    def sendfile(self, out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        self._gate("sendfile")
        return super().sendfile(out_fd, in_fd, offset, self._n(count))

    def copy_file_range(self, src: int, dst: int, count: int, offset_src: int | None = None,
                        offset_dst: int | None = None) -> int:
        self._gate("copy_file_range")
        return super().copy_file_range(src, dst, self._n(count), offset_src, offset_dst)

    def write(self, fd: int, data: Any) -> int:
        self._gate("write")
        return super().write(fd, memoryview(data)[: self._n(len(data))])

    def pwrite(self, fd: int, data: Any, offset: int) -> int:
        self._gate("pwrite")
        return super().pwrite(fd, memoryview(data)[: self._n(len(data))], offset)

    def poll(self, fd: int, events: int, timeout_ms: int | None = None) -> int:
        self.log.append("poll")
        return super().poll(fd, events, timeout_ms)


def test_partial_vmsplice_and_eagain_to_pipe() -> None:
    n = PMD + 4097
    with syscalls.installed(Flaky(cap=10000, eagain_every=3)) as flaky:
        got = through_pipe(lambda w: zero_stream(w, n))
    assert got == (n, zeros_sha(n))
    assert flaky.log.count("poll") >= 1 and flaky.log.count("vmsplice") > n // 10000


def test_partial_and_eagain_through_socket_and_files(mixed_file: tuple[str, dict[str, tuple[int, int]]],
                                                     ext4_dir: str) -> None:
    path, _ = mixed_file
    want = read_all(path)
    with syscalls.installed(Flaky(cap=300000, eagain_every=4)) as flaky:
        got, _ = through_socket(lambda fd: stream_file(path, fd))
        assert got == (len(want), hashlib.sha256(want).hexdigest())
        out = os.path.join(ext4_dir, "partial.img")
        into_new_file(path, out)
    assert read_all(out) == want
    assert {"splice", "sendfile", "copy_file_range", "poll"} <= set(flaky.log)


def test_refused_vmsplice_falls_back_to_writev_once_per_fd() -> None:
    n = 3 * PMD + 1
    with syscalls.installed(Flaky(refuse={"vmsplice": errno.EINVAL})) as flaky, pipe() as (r, w):
        drain = Drain(r)
        first = zero_stream(w, n)
        second = zero_stream(w, n)
        os.close(w)
        assert drain.result() == (2 * n, zeros_sha(2 * n))
    assert flaky.log.count("vmsplice") == 1  # remembered for that fd: the second stream never asks
    assert first.mechanism == "writev" and second.mechanism == "writev"
    assert any("vmsplice refused" in why for why in first.fallback)


@pytest.mark.parametrize("refused", ["splice", "vmsplice"])
def test_refused_socket_splice_falls_back_to_sendmsg(refused: str) -> None:
    n = (3 << 20) + 11
    with syscalls.installed(Flaky(refuse={refused: errno.EOPNOTSUPP})):
        got, r = through_socket(lambda fd: zero_stream(fd, n))
    assert got == (n, zeros_sha(n))
    assert r.mechanism == "sendmsg"


def test_real_eagain_on_nonblocking_pipe_waits_with_poll() -> None:
    n = 4 << 20
    counting = Flaky()
    with syscalls.installed(counting):
        got = through_pipe(lambda w: zero_stream(w, n), nonblock=True, delay=0.002)
    assert got == (n, zeros_sha(n))
    assert "poll" in counting.log  # the kernel said EAGAIN for real and we waited


def test_terminal_output_exact(mixed_file: tuple[str, dict[str, tuple[int, int]]]) -> None:
    path, parts = mixed_file
    offset, length = parts["data1"][0] - 5000, 64 << 10  # a hole's tail, then data
    master, slave = os.openpty()
    try:
        import tty

        tty.setraw(slave)  # no newline translation, so the bytes come back as written
        drain = Drain(master)
        r = stream_file(path, slave, offset, length)
        deadline = time.monotonic() + 10
        while drain.count < length and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        os.close(slave)
    drain.join(10)
    os.close(master)
    want = read_all(path, offset, length)
    assert (drain.count, drain.sha.hexdigest()) == (length, hashlib.sha256(want).hexdigest())
    assert r.kind == "tty" and "writev" in r.mechanisms


def test_block_device_output_real_refusal(mixed_file: tuple[str, dict[str, tuple[int, int]]],
                                          ramfs_loop: Callable[[int], str]) -> None:
    """copy_file_range into a block device is refused by the kernel (EINVAL): remembered, then
    sendfile; zero runs go to the zeroing engine (no write-zeroes here: O_DIRECT writes)."""
    path, _ = mixed_file
    want = read_all(path)
    dev = ramfs_loop(len(want) + (1 << 20))
    before_tail = read_all(dev, len(want), 1 << 20)
    fd = os.open(dev, os.O_WRONLY)
    try:
        r = stream_file(path, fd)
        assert os.lseek(fd, 0, os.SEEK_CUR) == len(want)
        os.fsync(fd)
    finally:
        os.close(fd)
    assert read_all(dev, 0, len(want)) == want
    assert read_all(dev, len(want), 1 << 20) == before_tail  # not a byte past the stream
    assert r.kind == "block" and "sendfile" in r.mechanisms
    assert any("copy_file_range refused" in why for why in r.fallback)
    assert "ftruncate" not in r.mechanisms and r.zero_bytes >= 8 << 20


class NoSeekHole(syscalls.Syscalls):
    """A filesystem without SEEK_DATA/SEEK_HOLE (EINVAL): only FIEMAP tells the extents."""

    def lseek(self, fd: int, offset: int, whence: int) -> int:
        if whence in (os.SEEK_DATA, os.SEEK_HOLE):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return super().lseek(fd, offset, whence)


def test_fiemap_alone_finds_unwritten_extents(mixed_file: tuple[str, dict[str, tuple[int, int]]]) -> None:
    path, parts = mixed_file
    with syscalls.installed(NoSeekHole()):
        fd = os.open(path, os.O_RDONLY)
        try:
            segs = layout(fd, 0, 16 << 20)
        finally:
            os.close(fd)
        results: list[StreamResult] = []
        got = through_pipe(lambda w: results.append(stream_file(path, w)))
    want = read_all(path)
    assert got == (len(want), hashlib.sha256(want).hexdigest())
    start, length = parts["unwritten"]
    inside = parts["inside"][0]
    zero = [(o, n) for o, n, z in segs if z]
    # Without SEEK_HOLE the holes are data, but FIEMAP (after its sync) still marks the
    # unwritten extent as zeros around the page written into it.
    assert any(o <= start and inside <= o + n for o, n in zero) or any(
        o <= inside + 4096 and start + length <= o + n for o, n in zero)
    assert results[0].zero_bytes >= length - 4096
