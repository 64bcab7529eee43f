"""The mm part: ZERO_PAGE, LARGE_ZERO_PAGE and largest_zero_buffer(), mirroring mm/huge_memory.c."""

from .zero_page import (
    Backing,
    ZeroBuffer,
    large_page_enabled,
    large_zero_page,
    largest_zero_buffer,
    page_size,
    pmd_size,
    thp_status,
    zero_buffer_for,
    zero_page,
)

__all__ = [
    "Backing",
    "ZeroBuffer",
    "large_page_enabled",
    "large_zero_page",
    "largest_zero_buffer",
    "page_size",
    "pmd_size",
    "thp_status",
    "zero_buffer_for",
    "zero_page",
]
