"""Everything that zeroes the range, side by side: largezero, the tools people use, the limits.

Families:

* ``largezero``: ``zero_range`` itself, every method, buffered and ``--direct``, each backing;
* ``peer``: coreutils dd, util-linux fallocate -z / blkdiscard -z, PostgreSQL's
  ``pg_pwrite_zeros`` pattern, naive Python;
* ``limit``: the ceilings every method is shown as a fraction of;
* ``reference``: a bare ``pwritev`` loop on largezero's own buffer, to price the API.

On block devices every buffered contender ends with fdatasync inside the timed region, so
its writes reach the device (and its request counters); on files, buffered means "into the
page cache" and writeback happens outside the timed region, before the next round.
"""

from __future__ import annotations

import ctypes
import mmap
import os
from collections.abc import Callable

from .._record import record
from ..engine.options import ZeroOptions
from ..engine.plan import default_call_bytes
from ..engine.zeroout import zero_range
from ..mm import zero_buffer_for
from ..mm.zero_page import page_size, pmd_size
from ..units import format_size

LARGEZERO, PEER, LIMIT, REFERENCE = "largezero", "peer", "limit", "reference"
BUFFERED, DIRECT, OFFLOAD, AUTO = "buffered", "direct", "offload", "auto"
FILE, BLOCK = "file", "block"

BACKING_SHORT = {"huge-zero-folio": "hzf", "zero-page": "zp", "allocated": "alloc"}
PG_BLCKSZ = 8192
PG_IOV_MAX = 128  # PostgreSQL 17: PG_IOV_MAX = Min(IOV_MAX, 128)
DIRECT_CEILING_CAP = 1 << 30  # the contiguous buffer of the raw O_DIRECT ceiling, at most


@record(frozen=True)
class RunContext:
    path: str
    kind: str  # FILE or BLOCK
    offset: int
    length: int
    sync: bool  # buffered contenders fdatasync inside the timed region (block targets)


@record(frozen=True)
class Outcome:
    """What an in-process run knows about itself."""

    iovecs: int | None
    detail: str = ""
    mode: str | None = None  # the mode it resolved to (auto), when it differs


InProcess = Callable[[RunContext], Outcome]
Argv = Callable[[RunContext], list[str]]


@record(frozen=True)
class Contender:
    key: str
    label: str
    family: str
    mode: str  # BUFFERED, DIRECT, OFFLOAD or AUTO (resolved per run)
    kinds: frozenset[str]
    call: InProcess | None = None
    argv: Argv | None = None
    iovecs_per_write: int | None = None  # external tools: iovecs per write syscall

    @property
    def external(self) -> bool:
        return self.argv is not None

    def to_dict(self) -> dict[str, object]:
        return {"key": self.key, "label": self.label, "family": self.family, "mode": self.mode,
                "external": self.external}


BOTH = frozenset({FILE, BLOCK})


# --- largezero ------------------------------------------------------------------------------


def _lz(method: str, direct: bool | None, backing: str = "auto") -> InProcess:
    def run(ctx: RunContext) -> Outcome:
        buffered = not direct and not (direct is None and method == "auto" and ctx.kind == BLOCK)
        r = zero_range(ctx.path, ctx.offset, ctx.length,
                options=ZeroOptions(method=method, direct=direct, backing=backing, sync=ctx.sync and buffered))
        buf = r.zero_buffer
        what = r.mechanism if r.method == "offload" else (
            f"{r.method} {'direct' if r.direct else 'buffered'} from {buf.backing if buf else '?'}")
        resolved = OFFLOAD if r.method == "offload" else (DIRECT if r.direct else BUFFERED)
        return Outcome(r.iovecs, what, resolved)

    return run


def _lz_cli(ctx: RunContext) -> list[str]:
    """The command as people run it: a whole process, exec and start-up included."""
    from .startup import largezero_argv

    return [*largezero_argv(), "zero", ctx.path, "-o", str(ctx.offset), "-l", str(ctx.length)]


def largezero_contenders() -> list[Contender]:
    out = [
        Contender("lz-auto", "largezero auto", LARGEZERO, AUTO, BOTH, _lz("auto", None)),
        Contender("lz-cli", "largezero zero (whole process)", LARGEZERO, AUTO, BOTH, argv=_lz_cli,
                  iovecs_per_write=None),
        Contender("lz-auto-direct", "largezero auto --direct", LARGEZERO, AUTO, frozenset({FILE}),
                  _lz("auto", True)),
    ]
    for direct in (False, True):
        mode = DIRECT if direct else BUFFERED
        flag = " --direct" if direct else ""
        out.append(Contender(f"lz-large-{mode}", f"largezero large{flag}", LARGEZERO, mode, BOTH,
                             _lz("large", direct)))
        for backing, short in BACKING_SHORT.items():
            out.append(Contender(f"lz-large-{mode}-{short}", f"largezero large{flag} [{backing}]", LARGEZERO,
                                 mode, BOTH, _lz("large", direct, backing)))
        out.append(Contender(f"lz-page-{mode}", f"largezero page{flag}", LARGEZERO, mode, BOTH,
                             _lz("page", direct)))
    return out


# --- the tools people use -------------------------------------------------------------------


def _dd(bs: str, direct: bool) -> Argv:
    def argv(ctx: RunContext) -> list[str]:
        oflag = "seek_bytes,direct" if direct else "seek_bytes"
        conv = "notrunc,fdatasync" if ctx.sync and not direct else "notrunc"
        return ["dd", "if=/dev/zero", f"of={ctx.path}", f"bs={bs}", f"count={ctx.length}", "iflag=count_bytes",
                f"seek={ctx.offset}", f"oflag={oflag}", f"conv={conv}", "status=none"]

    return argv


def _fallocate_z(ctx: RunContext) -> list[str]:
    return ["fallocate", "-z", "-o", str(ctx.offset), "-l", str(ctx.length), ctx.path]


def _blkdiscard_z(ctx: RunContext) -> list[str]:
    return ["blkdiscard", "-z", "-o", str(ctx.offset), "-l", str(ctx.length), ctx.path]


def _open(ctx: RunContext, direct: bool) -> int:
    return os.open(ctx.path, os.O_RDWR | os.O_CLOEXEC | (os.O_DIRECT if direct else 0))


def _write_all(fd: int, unit: memoryview, per_call: int, offset: int, length: int) -> int:
    """pwritev calls of ``per_call`` iovecs, all ``unit``, until the range is written; iovecs used."""
    iov_len = len(unit)
    full_iov = [unit] * per_call
    call = per_call * iov_len
    pos, end, iovecs = offset, offset + length, 0
    while pos < end:
        want = end - pos
        if want >= call:
            iov = full_iov
        else:
            full, last = divmod(want, iov_len)
            iov = full_iov[:full] + ([unit[:last]] if last else [])
        n = os.pwritev(fd, iov, pos)
        if n <= 0:
            raise OSError("write made no progress")
        iovecs += len(iov)
        pos += n
    return iovecs


class _Block:
    """A private anonymous, page-aligned buffer of zeros whose pages are really allocated."""

    def __init__(self, size: int, huge: bool = False) -> None:
        align = (pmd_size() or page_size()) if huge else page_size()
        self._map = mmap.mmap(-1, size + align, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        from ..syscalls import buffer_address

        skip = (-buffer_address(self._map)) % align
        if huge:
            self._map.madvise(mmap.MADV_HUGEPAGE, skip, size)
        window = memoryview(self._map)[skip : skip + size]
        for i in range(0, size, page_size()):
            window[i] = 0  # a write fault allocates (a THP per PMD where possible)
        self.view = window.toreadonly()
        self.size = size


def _pg_pwrite_zeros(direct: bool) -> InProcess:
    """src/common/file_utils.c pg_pwrite_zeros(): one 8 KiB zero block, up to PG_IOV_MAX iovecs a call."""
    state: dict[str, _Block] = {}

    def run(ctx: RunContext) -> Outcome:
        if "z" not in state:
            state["z"] = _Block(PG_BLCKSZ)
        z = state["z"].view
        fd = _open(ctx, direct)
        try:
            iovecs = _write_all(fd, z, PG_IOV_MAX, ctx.offset, ctx.length)
            if ctx.sync and not direct:
                os.fdatasync(fd)
        finally:
            os.close(fd)
        return Outcome(iovecs, f"{PG_IOV_MAX} x 8 KiB per pwritev")

    return run


def _py_write_bytes(ctx: RunContext) -> Outcome:
    with open(ctx.path, "r+b") as f:
        f.seek(ctx.offset)
        f.write(bytes(ctx.length))
        f.flush()
        if ctx.sync:
            os.fdatasync(f.fileno())
    return Outcome(None, "open(r+b); f.write(bytes(n))")


def _py_write_bytearray(ctx: RunContext) -> Outcome:
    with open(ctx.path, "r+b") as f:
        f.seek(ctx.offset)
        f.write(bytearray(ctx.length))
        f.flush()
        if ctx.sync:
            os.fdatasync(f.fileno())
    return Outcome(None, "open(r+b); f.write(bytearray(n))")


def _py_write_4k(ctx: RunContext) -> Outcome:
    block = bytes(4096)
    full, rest = divmod(ctx.length, 4096)
    with open(ctx.path, "r+b", buffering=0) as f:
        f.seek(ctx.offset)
        for _ in range(full):
            f.write(block)
        if rest:
            f.write(block[:rest])
        if ctx.sync:
            os.fdatasync(f.fileno())
    return Outcome(full + (1 if rest else 0), "4 KiB f.write() loop, unbuffered")


def peer_contenders() -> list[Contender]:
    out: list[Contender] = []
    for bs in ("4K", "2M"):
        for direct in (False, True):
            mode = DIRECT if direct else BUFFERED
            flag = " oflag=direct" if direct else ""
            out.append(Contender(f"dd-{bs.lower()}-{mode}", f"dd bs={bs}{flag}", PEER, mode, BOTH,
                                 argv=_dd(bs, direct), iovecs_per_write=1))
    out += [
        Contender("fallocate-z", "fallocate -z", PEER, OFFLOAD, frozenset({FILE}), argv=_fallocate_z,
                  iovecs_per_write=0),
        Contender("blkdiscard-z", "blkdiscard -z", PEER, OFFLOAD, frozenset({BLOCK}), argv=_blkdiscard_z,
                  iovecs_per_write=0),
        Contender("pg-buffered", "pg_pwrite_zeros pattern", PEER, BUFFERED, BOTH, _pg_pwrite_zeros(False)),
        Contender("pg-direct", "pg_pwrite_zeros pattern O_DIRECT", PEER, DIRECT, BOTH, _pg_pwrite_zeros(True)),
        Contender("py-write-bytes", "python f.write(bytes(n))", PEER, BUFFERED, BOTH, _py_write_bytes),
        Contender("py-write-bytearray", "python f.write(bytearray(n))", PEER, BUFFERED, BOTH, _py_write_bytearray),
        Contender("py-write-4k", "python 4 KiB write loop", PEER, BUFFERED, BOTH, _py_write_4k),
    ]
    return out


# --- the limits and the reference ----------------------------------------------------------


class _AliasedPage:
    """A PMD-sized read-only window in which one written 4 KiB memfd page is mapped PMD/PAGE
    times: a zero source that stays in L1, built without the kernel's zero page."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                              ctypes.c_long]
        page, size = page_size(), pmd_size() or (2 << 20)
        fd = os.memfd_create("largezero-bench-zero", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, page)
            os.pwrite(fd, bytes(page), 0)  # a real, written page (not the zero page)
            base = libc.mmap(None, size + size, 0, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
            if base in (None, ctypes.c_void_p(-1).value):
                raise OSError(ctypes.get_errno(), "mmap failed")
            start = base + (-base) % size
            for i in range(0, size, page):
                got = libc.mmap(start + i, page, mmap.PROT_READ, mmap.MAP_SHARED | 0x10, fd, 0)  # MAP_FIXED
                if got != start + i:
                    raise OSError(ctypes.get_errno(), "mmap MAP_FIXED failed")
        finally:
            os.close(fd)
        self.view = memoryview((ctypes.c_char * size).from_address(start)).cast("B").toreadonly()
        self.size = size


def _ceiling_direct() -> InProcess:
    """One large pwritev per call from a contiguous (THP-backed, allocated) buffer of zeros."""
    state: dict[str, _Block] = {}

    def run(ctx: RunContext) -> Outcome:
        want = min(ctx.length, DIRECT_CEILING_CAP)
        want -= want % page_size()
        if state.get("b") is None or state["b"].size < want:
            state.pop("b", None)
            state["b"] = _Block(max(want, page_size()), huge=True)
        b = state["b"]
        fd = _open(ctx, True)
        try:
            iovecs = _write_all(fd, b.view, 1, ctx.offset, ctx.length)
        finally:
            os.close(fd)
        return Outcome(iovecs, f"1 iovec of {format_size(b.size, 'exact')} per pwritev")

    return run


def _ceiling_buffered() -> InProcess:
    """Copy into the cached file from a cache-resident source: an aliased 4 KiB page, 2 MiB iovecs."""
    state: dict[str, _AliasedPage] = {}

    def run(ctx: RunContext) -> Outcome:
        if "a" not in state:
            state["a"] = _AliasedPage()
        a = state["a"]
        per_call = default_call_bytes(a.size) // a.size
        fd = _open(ctx, False)
        try:
            iovecs = _write_all(fd, a.view, per_call, ctx.offset, ctx.length)
            if ctx.sync:
                os.fdatasync(fd)
        finally:
            os.close(fd)
        return Outcome(iovecs, f"{per_call} x 2 MiB aliased 4 KiB page per pwritev")

    return run


def _bare_pwritev(direct: bool) -> InProcess:
    """What zero_range does with the same buffer and call size, minus everything else."""

    def run(ctx: RunContext) -> Outcome:
        buf = zero_buffer_for(direct)
        per_call = default_call_bytes(buf.size) // buf.size
        fd = _open(ctx, direct)
        try:
            iovecs = _write_all(fd, buf.view, per_call, ctx.offset, ctx.length)
            if ctx.sync and not direct:
                os.fdatasync(fd)
        finally:
            os.close(fd)
        return Outcome(iovecs, f"{per_call} x {format_size(buf.size, 'exact')} {buf.backing} per pwritev")

    return run


def limit_contenders() -> list[Contender]:
    return [
        Contender("limit-direct", "ceiling O_DIRECT (contiguous buffer)", LIMIT, DIRECT, BOTH, _ceiling_direct()),
        Contender("limit-buffered", "ceiling buffered (cache-resident source)", LIMIT, BUFFERED, BOTH,
                  _ceiling_buffered()),
        Contender("ref-pwritev-buffered", "bare pwritev loop, same buffer", REFERENCE, BUFFERED, BOTH,
                  _bare_pwritev(False)),
        Contender("ref-pwritev-direct", "bare pwritev loop O_DIRECT, same buffer", REFERENCE, DIRECT, BOTH,
                  _bare_pwritev(True)),
    ]


def all_contenders() -> list[Contender]:
    return largezero_contenders() + peer_contenders() + limit_contenders()


def _matches(key: str, wanted: str) -> bool:
    """``wanted`` is a key or a key prefix (``lz-large`` takes every variant); ``KEY$`` is that one only."""
    if wanted.endswith("$"):
        return key == wanted[:-1]
    return key == wanted or key.startswith(wanted.rstrip("*"))


def select(keys: list[str] | None) -> list[Contender]:
    """All contenders, or those whose key matches one of ``keys`` (see :func:`_matches`)."""
    every = all_contenders()
    if not keys:
        return every
    chosen = [c for c in every if any(_matches(c.key, k) for k in keys)]
    unknown = [k for k in keys if not any(_matches(c.key, k) for c in every)]
    if unknown:
        raise ValueError(f"unknown contender(s) {', '.join(unknown)}; known: {', '.join(c.key for c in every)}")
    return chosen
