"""The zero pages: what backs them, what they cost, the switch and the fallback."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from largezero.mm import (
    Backing,
    large_zero_page,
    largest_zero_buffer,
    page_size,
    pmd_size,
    thp_status,
    zero_buffer_for,
    zero_page,
)
from largezero.syscalls import buffer_address

from .helpers import requires_root

THP_USABLE = pmd_size() is not None and thp_status()["enabled"] != "never" and thp_status()["use_zero_page"] == "1"


def test_zero_page_is_one_page_of_zeros_read_only() -> None:
    zp = zero_page()
    assert zp.size == page_size()
    assert zp.view.readonly
    assert bytes(zp.view) == bytes(zp.size)
    assert zp.address % page_size() == 0
    with pytest.raises(TypeError):
        zp.view[0] = 1  # type: ignore[index]


@pytest.mark.skipif(not THP_USABLE, reason="THP or its huge zero page is disabled on this machine")
def test_large_zero_page_is_pmd_sized_aligned_and_zero() -> None:
    buf = largest_zero_buffer()
    pmd = pmd_size()
    assert buf.name == "LARGE_ZERO_PAGE"
    assert buf.size == pmd
    assert pmd is not None and buf.address % pmd == 0
    assert buffer_address(buf.view) == buf.address
    assert buf.view.readonly
    assert bytes(buf.view) == bytes(buf.size)
    assert buf.reason is None


@requires_root
@pytest.mark.skipif(not THP_USABLE, reason="THP or its huge zero page is disabled on this machine")
def test_large_zero_page_is_the_huge_zero_folio_and_costs_no_memory() -> None:
    buf = largest_zero_buffer()
    assert buf.backing == Backing.HUGE_ZERO_FOLIO
    assert buf.contiguous_bytes == buf.size  # 512 consecutive PFNs
    assert buf.rss_bytes == 0


@requires_root
def test_backings_are_what_they_say() -> None:
    alias = large_zero_page("zero-page")
    assert alias is not None
    assert alias.backing == Backing.ZERO_PAGE
    assert alias.contiguous_bytes == page_size()  # every page is the same 4 KiB zero page
    assert alias.rss_bytes == 0
    allocated = large_zero_page("allocated")
    assert allocated is not None
    assert allocated.backing == Backing.ALLOCATED
    assert allocated.rss_bytes == allocated.size  # what the RFC's static page costs
    assert bytes(allocated.view) == bytes(allocated.size)
    assert zero_page().backing == Backing.ZERO_PAGE


def test_created_once_and_shared_between_threads() -> None:
    seen: list[int] = []

    def grab() -> None:
        seen.append(largest_zero_buffer().address)

    threads = [threading.Thread(target=grab) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 1


def test_switch_off_by_argument_falls_back_with_reason() -> None:
    buf = largest_zero_buffer(enabled=False)
    assert buf.name == "ZERO_PAGE"
    assert buf.size == page_size()
    assert buf.reason and "switched off" in buf.reason


def test_switch_off_by_environment() -> None:
    code = ("import largezero.mm as m; b = m.largest_zero_buffer(); "
            "print(b.name, b.size, b.reason)")
    env = {**os.environ, "LARGEZERO_LARGE_PAGE": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.startswith(f"ZERO_PAGE {page_size()} ")
    assert "LARGEZERO_LARGE_PAGE=0" in out


@pytest.mark.skipif(not THP_USABLE, reason="THP or its huge zero page is disabled on this machine")
def test_auto_backing_by_mode() -> None:
    assert zero_buffer_for(direct=True).requested == Backing.HUGE_ZERO_FOLIO
    assert zero_buffer_for(direct=False).size == pmd_size()
