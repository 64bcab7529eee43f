"""Zero sources: where the zeros in a bio come from, how they are laid out physically, and
what they cost in memory.

========================  ==========================================  ==================
source                    physical layout                             memory cost
========================  ==========================================  ==================
``zero-page``             ZERO_PAGE(0): one page                      PAGE_SIZE
``huge-zero-folio``       the huge zero folio (mm/huge_memory.c):     PMD size: 2 MiB,
                          one PMD-sized folio                         32 MiB, 512 MiB
``rfc-static-2m``         RFC v1 LARGE_ZERO_PAGE: 2 MiB in x86 BSS    2 MiB
``allocated``             a private buffer, physically contiguous     its size
                          in runs of ``contiguity`` bytes
========================  ==========================================  ==================

The huge zero folio is PMD-sized: PAGE_SIZE * PTRS_PER_PMD, and a PMD table holds
PAGE_SIZE / 8 entries, so 2 MiB for 4 KiB pages, 32 MiB for 16 KiB and 512 MiB for 64 KiB.
"""

from __future__ import annotations

import mmap

from .._record import record

SOURCE_NAMES = ("zero-page", "huge-zero-folio", "rfc-static-2m", "allocated")
RFC_STATIC_SIZE = 2 << 20
PAGE_SIZES = (4096, 16384, 65536)


def pmd_size_for(page_size: int) -> int:
    """PMD size for a page size: PAGE_SIZE * (PAGE_SIZE / sizeof(pmd_t))."""
    return page_size * (page_size // 8)


@record(frozen=True)
class ZeroSource:
    """One zero source as the model sees it.

    ``buffer_size`` is what one iovec of ``zero_range`` covers (and the folio size the kernel
    adds per bvec); ``contiguity`` is the physically contiguous run inside it (it divides
    ``buffer_size``). ``same_page`` means every run is the same physical page (ZERO_PAGE).
    """

    name: str
    buffer_size: int
    contiguity: int
    memory_cost: int
    page_size: int
    same_page: bool = False
    note: str = ""

    def __post_init__(self) -> None:
        if self.name not in SOURCE_NAMES:
            raise ValueError(f"unknown zero source '{self.name}' (expected one of {', '.join(SOURCE_NAMES)})")
        if self.contiguity <= 0 or self.buffer_size % self.contiguity:
            raise ValueError("contiguity must divide the buffer size")
        if self.contiguity % self.page_size:
            raise ValueError("contiguity must be a whole number of pages")

    @property
    def folio_size(self) -> int:
        """Bytes the kernel adds per bvec when it zeroes from this source (one folio)."""
        return self.contiguity

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.name,
            "buffer_size": self.buffer_size,
            "contiguity": self.contiguity,
            "memory_cost": self.memory_cost,
            "page_size": self.page_size,
            "note": self.note,
        }


def make_source(name: str, page_size: int | None = None, contiguity: int | None = None,
                buffer_size: int | None = None) -> ZeroSource:
    """The zero source ``name`` on a kernel with ``page_size`` pages (default: this machine's).

    ``contiguity`` and ``buffer_size`` only apply to ``allocated`` (defaults: one PMD-sized,
    fully contiguous THP buffer, what ``zero_range``'s ``allocated`` backing maps).
    """
    page = page_size or mmap.PAGESIZE
    if page & (page - 1) or page < 4096:
        raise ValueError("page size must be a power of two of at least 4096")
    pmd = pmd_size_for(page)
    if name != "allocated" and (contiguity is not None or buffer_size is not None):
        raise ValueError("contiguity and buffer size only apply to the allocated source")
    if name == "zero-page":
        return ZeroSource(name, page, page, page, page, same_page=True,
                          note="ZERO_PAGE(0); never merges with itself in a bvec")
    if name == "huge-zero-folio":
        return ZeroSource(name, pmd, pmd, pmd, page,
                          note="persistent with CONFIG_PERSISTENT_HUGE_ZERO_FOLIO (6.18), else on demand")
    if name == "rfc-static-2m":
        return ZeroSource(name, RFC_STATIC_SIZE, RFC_STATIC_SIZE, RFC_STATIC_SIZE, page,
                          note="RFC v1 LARGE_ZERO_PAGE, static in BSS")
    if name == "allocated":
        size = buffer_size or pmd
        cont = contiguity or size
        if size % cont:
            raise ValueError(f"contiguity {cont} does not divide the buffer size {size}")
        return ZeroSource(name, size, cont, size, page,
                          note=f"private buffer, contiguous in runs of {cont} bytes")
    raise ValueError(f"unknown zero source '{name}' (expected one of {', '.join(SOURCE_NAMES)})")


def all_sources(page_size: int | None = None, contiguity: int | None = None) -> list[ZeroSource]:
    return [make_source(n, page_size, contiguity if n == "allocated" else None) for n in SOURCE_NAMES]


# --- what the running kernel uses ------------------------------------------------------------

# fs/iomap/direct-io.c 6.12-6.18: IOMAP_ZERO_PAGE_SIZE, an order-4 page allocated at boot.
IOMAP_ZERO_PAGE_SIZE = 64 << 10


def iomap_618_source(page_size: int | None = None) -> ZeroSource:
    """The private 64 KiB zero page of 6.12-6.18 iomap, as an allocated 64 KiB buffer."""
    return make_source("allocated", page_size, contiguity=IOMAP_ZERO_PAGE_SIZE, buffer_size=IOMAP_ZERO_PAGE_SIZE)


def kernel_version(release: str) -> tuple[int, int]:
    """(major, minor) of a release string such as '6.18.44-fc'; (0, 0) when unreadable."""
    parts = release.split("-")[0].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return 0, 0


def largest_zero_folio_source(persistent: str, page_size: int | None = None) -> ZeroSource:
    """largest_zero_folio(): the huge zero folio with CONFIG_PERSISTENT_HUGE_ZERO_FOLIO=y,
    else ZERO_PAGE(0)'s folio (also when the config cannot be read: the default is n)."""
    return make_source("huge-zero-folio" if persistent == "y" else "zero-page", page_size)


# The iomap_dio_zero() rules the model assumes when not told: upstream's since 6.19
# (largest_zero_folio()), the RFC's subject. The one default; everything else passes its rules.
DEFAULT_RULES = "6.19"


def iomap_rules_for(release: str) -> str:
    """Which iomap_dio_zero() the running kernel has: '6.19' (largest_zero_folio()) or '6.18'
    (the private 64 KiB page, 6.12-6.18; older kernels are reported as 6.18 too)."""
    return "6.19" if kernel_version(release) >= (6, 19) else "6.18"


def live_iomap_source(release: str, persistent: str, page_size: int | None = None) -> tuple[str, ZeroSource]:
    """(rules, zero source) of the running kernel's iomap_dio_zero()."""
    rules = iomap_rules_for(release)
    if rules == "6.18":
        return rules, iomap_618_source(page_size)
    return rules, largest_zero_folio_source(persistent, page_size)


def source_for_buffer(size: int, backing: str, contiguous_bytes: int, page_size: int | None = None
                      ) -> ZeroSource | None:
    """The model's source for a user-space zero buffer (``largezero.mm.ZeroBuffer`` fields);
    None when its physical layout was not observable (no PFNs without root)."""
    page = page_size or mmap.PAGESIZE
    if size == page:
        return make_source("zero-page", page)
    if backing == "huge-zero-folio":
        return make_source("huge-zero-folio", page)
    if backing == "zero-page":  # a PMD-sized alias of ZERO_PAGE: one bvec per page
        return make_source("allocated", page, contiguity=page, buffer_size=size)
    if backing == "allocated" and contiguous_bytes and size % contiguous_bytes == 0:
        return make_source("allocated", page, contiguity=contiguous_bytes, buffer_size=size)
    return None
