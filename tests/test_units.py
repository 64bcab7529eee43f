from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from largezero.errors import UsageError
from largezero.units import MAX_SIZE, format_size, parse_size


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("4096", 4096), ("4K", 4096), ("4k", 4096), ("4KiB", 4096), ("2M", 2 << 20), ("2MiB", 2 << 20),
     ("1G", 1 << 30), ("1GiB", 1 << 30), ("1T", 1 << 40), ("4KB", 4000), ("1MB", 10**6), ("0x1000", 4096),
     ("512B", 512), (" 8M ", 8 << 20)],
)
def test_parse_size_accepts_util_linux_forms(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "-1", "1X", "1.5G", "G", "1 G B", "1KiBB", "abc", "9223372036854775808",
                                  "8E", "16EiB", "0x", "1e9"])
def test_parse_size_rejects_with_one_line(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_size(text, what="length")
    assert "\n" not in str(info.value)
    assert "length" in str(info.value)


@given(st.integers(min_value=0, max_value=MAX_SIZE))
def test_parse_size_round_trips_plain_numbers(n: int) -> None:
    assert parse_size(str(n)) == n


def test_format_size() -> None:
    assert format_size(512) == "512 B"
    assert format_size(2 << 20) == "2 MiB"
    assert format_size(1536 << 20) == "1.5 GiB"
