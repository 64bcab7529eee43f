"""ZERO_PAGE and LARGE_ZERO_PAGE in user space.

The kernel's ``largest_zero_folio()`` returns the persistent huge zero folio when
``CONFIG_PERSISTENT_HUGE_ZERO_FOLIO`` is set, else ``ZERO_PAGE(0)``. Here:

* ZERO_PAGE is a read-only private anonymous mapping of one page; a read fault maps the
  kernel's shared zero page, so it costs no memory.
* LARGE_ZERO_PAGE is a read-only, PMD-aligned, PMD-sized private anonymous mapping with
  MADV_HUGEPAGE; a read fault maps the kernel's huge zero folio: physically contiguous,
  shared by every process, no memory of ours.

Both are created once per process under a lock and never unmapped, like the persistent folio.
Two more backings of a PMD-sized buffer exist for measurement and for systems without the
huge zero folio: ``zero-page`` (the 4 KiB zero page mapped PMD/PAGE times; it stays in L1,
which suits buffered copies) and ``allocated`` (private zero-filled THP memory: what the RFC's
static 2 MiB page costs).
"""

from __future__ import annotations

import _thread  # threading.Lock is _thread.allocate_lock; threading itself costs 1.5 ms of start-up
import ctypes
import enum
import mmap
import os

from .._record import field, record
from ..syscalls import buffer_address
from ..syscalls import libc as _libc
from ..sysfiles import read_text
from .pagemap import observe, resident_bytes

_THP = "/sys/kernel/mm/transparent_hugepage"
ENV_SWITCH = "LARGEZERO_LARGE_PAGE"


class Backing(enum.StrEnum):
    HUGE_ZERO_FOLIO = "huge-zero-folio"
    ZERO_PAGE = "zero-page"
    ALLOCATED = "allocated"
    UNKNOWN = "unknown"


@record(frozen=True)
class ZeroBuffer:
    """A read-only buffer of zeros and what backs it.

    ``view`` is a read-only memoryview; writing to it raises TypeError, and the mapping
    itself is PROT_READ, so not even C code can change it.
    """

    name: str  # ZERO_PAGE or LARGE_ZERO_PAGE
    view: memoryview = field(repr=False)
    size: int
    address: int
    requested: str  # the backing asked for
    backing: str  # the backing observed (Backing value), "unknown" without privileges
    contiguous_bytes: int  # physically contiguous run, 0 when it cannot be observed
    reason: str | None = None  # why this is not the huge zero folio, when it is not

    @property
    def rss_bytes(self) -> int:
        """Resident memory this mapping costs (smaps Rss), -1 when unreadable. Read when asked:
        walking smaps costs milliseconds, and a job that only offloads never needs it."""
        return resident_bytes(self.address, self.size)

    def iovecs(self, length: int, iov_len: int | None = None) -> list[memoryview]:
        """iovecs of ``length`` zero bytes, each the first ``iov_len`` bytes (default: all) of
        this buffer, the last one shorter: zeros are never copied, only pointed at."""
        step = min(iov_len or self.size, self.size)
        full, last = divmod(length, step)
        iov = [self.view[:step]] * full
        if last:
            iov.append(self.view[:last])
        return iov

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "size": self.size,
            "backing": self.backing,
            "requested": self.requested,
            "contiguous_bytes": self.contiguous_bytes,
            "rss_bytes": self.rss_bytes,
            "reason": self.reason,
        }


def page_size() -> int:
    return mmap.PAGESIZE


def pmd_size() -> int | None:
    """The THP PMD size from sysfs (2 MiB on x86-64 with 4 KiB pages); None without THP."""
    text = read_text(f"{_THP}/hpage_pmd_size")
    return int(text) if text and text.isdigit() else None


def thp_status() -> dict[str, str | None]:
    """THP 'enabled' mode (the bracketed word) and 'use_zero_page'."""
    enabled = read_text(f"{_THP}/enabled")
    mode = None
    if enabled:
        mode = next((w.strip("[]") for w in enabled.split() if w.startswith("[")), enabled)
    return {"enabled": mode, "use_zero_page": read_text(f"{_THP}/use_zero_page")}


def large_page_enabled(enabled: bool | None = None) -> tuple[bool, str | None]:
    """The Kconfig-like switch: an explicit argument wins, then LARGEZERO_LARGE_PAGE.

    The variable takes 0/1, yes/no, on/off, true/false in any case (empty counts as unset);
    anything else is a UsageError, because a misspelt "off" that leaves the page on is a
    silent wrong answer.
    """
    from ..errors import UsageError  # here, so this function is the only part of the module it touches

    if enabled is False:
        return False, "switched off by the caller"
    if enabled is None:
        raw = os.environ.get(ENV_SWITCH, "")
        word = raw.strip().lower()
        if word in ("0", "no", "off", "false"):
            return False, f"switched off ({ENV_SWITCH}={raw.strip()})"
        if word not in ("", "1", "yes", "on", "true"):
            raise UsageError(f"{ENV_SWITCH}={raw!r}: expected 0/1, yes/no, on/off or true/false")
    return True, None


_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def _aligned_mapping(size: int, align: int, writable: bool) -> tuple[mmap.mmap, int, int]:
    """Map size+align bytes private and anonymous, return (map, offset of aligned start, address).

    Python cannot ask mmap for an address, so over-map and use the aligned window; the
    slack is never touched and costs nothing. MAP_PRIVATE matters: the default MAP_SHARED
    is shmem, and reading it allocates real pages.
    """
    prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
    span = size + (align if align > mmap.PAGESIZE else 0)
    mapping = mmap.mmap(-1, span, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, prot=prot)
    base = buffer_address(mapping)
    skip = (-base) % align
    return mapping, skip, base + skip


def _fault_in(view: memoryview, page: int) -> None:
    # One read per page maps the zero page (or the huge zero folio) into every PTE/PMD; the
    # strided copy reads the first byte of each page in C (a Python loop over 512 pages cost
    # half a millisecond of every start).
    if any(view[::page].tobytes()):
        raise RuntimeError("anonymous mapping read non-zero")


# Keep every mapping alive for the life of the process: nothing may unmap a buffer whose
# memoryview a concurrent writer still holds.
_mappings: list[mmap.mmap] = []
_lock = _thread.allocate_lock()
_zero_page: ZeroBuffer | None = None
_large: dict[str, ZeroBuffer] = {}
_large_failures: dict[str, str] = {}


def _make_zero_page() -> ZeroBuffer:
    page = page_size()
    mapping, skip, address = _aligned_mapping(page, page, writable=False)
    _mappings.append(mapping)
    view = memoryview(mapping)[skip : skip + page].toreadonly()
    _fault_in(view, page)
    seen = observe(address, page, page, with_rss=False)
    return ZeroBuffer("ZERO_PAGE", view, page, address, Backing.ZERO_PAGE, seen.backing, seen.contiguous_bytes)


def _make_large(backing: str, size: int) -> ZeroBuffer:
    page = page_size()
    writable = backing == Backing.ALLOCATED
    mapping, skip, address = _aligned_mapping(size, size, writable=writable)
    _mappings.append(mapping)
    advice = mmap.MADV_NOHUGEPAGE if backing == Backing.ZERO_PAGE else mmap.MADV_HUGEPAGE
    mapping.madvise(advice, skip, size)
    window = memoryview(mapping)[skip : skip + size]
    if writable:
        # A write fault per PMD allocates a zeroed THP; then seal it read-only.
        for i in range(0, size, page):
            window[i] = 0
        if _libc.mprotect(ctypes.c_void_p(address), size, mmap.PROT_READ) != 0:
            raise OSError(ctypes.get_errno(), "mprotect failed")
    view = window.toreadonly()
    _fault_in(view, page)
    seen = observe(address, size, page, with_rss=False)
    reason = None
    if backing == Backing.HUGE_ZERO_FOLIO and seen.backing not in (Backing.HUGE_ZERO_FOLIO, Backing.UNKNOWN):
        reason = f"huge zero folio not obtained, mapping is backed by {seen.backing}"
    return ZeroBuffer("LARGE_ZERO_PAGE", view, size, address, backing, seen.backing, seen.contiguous_bytes, reason)


def zero_page() -> ZeroBuffer:
    """ZERO_PAGE: one page of zeros backed by the kernel's shared zero page."""
    global _zero_page
    with _lock:
        if _zero_page is None:
            _zero_page = _make_zero_page()
        return _zero_page


def _large_unavailable(backing: str) -> str | None:
    size = pmd_size()
    if size is None:
        return "no transparent huge page support (hpage_pmd_size unreadable)"
    if backing == Backing.ZERO_PAGE:
        return None
    status = thp_status()
    if status["enabled"] == "never":
        return "THP disabled (transparent_hugepage/enabled = never)"
    if backing == Backing.HUGE_ZERO_FOLIO and status["use_zero_page"] == "0":
        return "huge zero folio disabled (transparent_hugepage/use_zero_page = 0)"
    if _thp_disabled_for_process():
        return "THP disabled for this process (prctl PR_SET_THP_DISABLE, inherited from its parent)"
    return None


def _thp_disabled_for_process() -> bool:
    """prctl(PR_SET_THP_DISABLE) on this process: no huge page, the huge zero folio included."""
    try:
        with open("/proc/self/status") as f:
            return any(line.split() == ["THP_enabled:", "0"] for line in f)
    except OSError:
        return False


def large_zero_page(backing: str = Backing.HUGE_ZERO_FOLIO) -> ZeroBuffer | None:
    """The PMD-sized zero buffer with the given backing, or None when it cannot be had.

    The reason for None is given by :func:`largest_zero_buffer`.
    """
    backing = Backing(backing)
    if backing == Backing.UNKNOWN:
        raise ValueError("unknown is not a backing one can ask for")
    with _lock:
        if backing in _large:
            return _large[backing]
        if backing in _large_failures:
            return None
        why = _large_unavailable(backing)
        if why is None:
            try:
                _large[backing] = _make_large(backing, pmd_size() or 0)
                return _large[backing]
            except (OSError, ValueError, RuntimeError) as err:
                why = f"mapping failed: {err}"
        _large_failures[backing] = why
        return None


def largest_zero_buffer(enabled: bool | None = None, backing: str = Backing.HUGE_ZERO_FOLIO) -> ZeroBuffer:
    """LARGE_ZERO_PAGE when enabled and available, else ZERO_PAGE with the reason set.

    Mirrors largest_zero_folio(): callers use whatever size it returns.
    """
    on, why = large_page_enabled(enabled)
    if on:
        large = large_zero_page(backing)
        if large is not None:
            return large
        why = _large_failures.get(Backing(backing), "unavailable")
    small = zero_page()
    return ZeroBuffer(small.name, small.view, small.size, small.address, small.requested, small.backing,
                      small.contiguous_bytes, why)


def zero_buffer_for(direct: bool, backing: str = "auto", enabled: bool | None = None) -> ZeroBuffer:
    """The zero buffer a write path should use, choosing the backing by I/O mode under ``auto``.

    O_DIRECT DMAs from the source pages, so physical contiguity wins: the huge zero folio
    gives few, large bvecs. A buffered write copies from the source with the CPU, where a
    PMD-sized alias of the 4 KiB zero page is as good or better: its 4 KiB stay in L1.
    """
    if backing == "auto":
        backing = Backing.HUGE_ZERO_FOLIO if direct else Backing.ZERO_PAGE
    return largest_zero_buffer(enabled, backing)
