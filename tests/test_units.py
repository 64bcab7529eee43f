"""Sizes like util-linux's strtosize(), and the LARGEZERO_LARGE_PAGE switch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from largezero.errors import EXIT_USAGE, UsageError
from largezero.mm import large_page_enabled
from largezero.units import MAX_SIZE, format_size, parse_size


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("4096", 4096), ("4K", 4096), ("4k", 4096), ("4KiB", 4096), ("2M", 2 << 20), ("2MiB", 2 << 20),
     ("1G", 1 << 30), ("1GiB", 1 << 30), ("1T", 1 << 40), ("4KB", 4000), ("1MB", 10**6), ("0x1000", 4096),
     ("512B", 512), (" 8M ", 8 << 20),
     # util-linux accepts fractions with a suffix (strtosize's decimal point)
     ("1.5G", 3 << 29), ("0.5MiB", 512 << 10), ("0.5MB", 500_000), ("1.25K", 1280), ("0.001KB", 1),
     ("2.0M", 2 << 20),
     # a leading zero is decimal here (util-linux would read octal)
     ("0100", 100), ("007K", 7 << 10), ("7E", 7 << 60)],
)
def test_parse_size_accepts_util_linux_forms(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize(("text", "says"), [
    ("", "expected a number"), ("-1", "negative"), ("1X", "unknown suffix"), ("G", "expected a number"),
    ("1 G B", "expected a number"), ("1KiBB", "unknown suffix"), ("abc", "expected a number"),
    ("9223372036854775808", "2^63-1"), ("8E", "2^63-1"), ("16EiB", "2^63-1"), ("0x", "unknown suffix"),
    ("1e9", "expected a number"), ("\u0663\u0662", "ASCII digits"), ("\uff11\uff12K", "ASCII digits"),
    ("1.5", "needs a suffix"), ("0.3K", "not a whole number"), ("1.G", "digits after the decimal point"),
    ("1.5.5G", "expected a number"), ("0x1.8G", "expected a number"), ("1,5G", "expected a number"),
    ("9" * 5000, "2^63-1"), ("1." + "5" * 5000 + "K", "not a whole number"),  # past int()'s 4300 digits
])
def test_parse_size_rejects_with_one_line(text: str, says: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_size(text, what="length")
    assert "\n" not in str(info.value) and len(str(info.value)) < 200
    assert str(info.value).startswith("invalid length") and says in str(info.value)


@given(st.integers(min_value=0, max_value=MAX_SIZE))
def test_parse_size_round_trips_plain_numbers(n: int) -> None:
    assert parse_size(str(n)) == n


@given(st.integers(min_value=0, max_value=1 << 40), st.sampled_from(["K", "M", "G"]))
def test_fractions_are_exact(units: int, suffix: str) -> None:
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[suffix]
    whole, frac = divmod(units, 1024)
    text = f"{whole}.{frac * 1_000_000_000_000 // 1024:012d}"  # frac/1024 exactly, as a decimal
    assert parse_size(text.rstrip("0").rstrip(".") + suffix) * 1024 == units * scale


def test_unicode_digits_are_refused_by_the_command_line(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(os.fspath(tmp_path), "f")
    with open(path, "wb") as f:
        f.write(b"\x01" * 64)
    done = subprocess.run([sys.executable, "-m", "largezero", "zero", path, "-l", "\u0663\u0662"],
                          capture_output=True, text=True)
    assert done.returncode == EXIT_USAGE and len(done.stderr.strip().splitlines()) == 1, done.stderr
    with open(path, "rb") as f:
        assert f.read() == b"\x01" * 64


def test_format_size() -> None:
    assert format_size(512) == "512 B"
    assert format_size(2 << 20) == "2 MiB"
    assert format_size(1536 << 20) == "1.5 GiB"


@pytest.mark.parametrize(("word", "on"), [("0", False), ("no", False), ("OFF", False), ("False", False),
                                          (" off ", False), ("1", True), ("YES", True), ("On", True),
                                          ("true", True), ("", True)])
def test_large_page_switch_words(monkeypatch: pytest.MonkeyPatch, word: str, on: bool) -> None:
    monkeypatch.setenv("LARGEZERO_LARGE_PAGE", word)
    assert large_page_enabled()[0] is on


@pytest.mark.parametrize("word", ["00", "n", "disabled", "2", "y", "offf", "nein"])
def test_large_page_switch_refuses_other_words(monkeypatch: pytest.MonkeyPatch, word: str) -> None:
    monkeypatch.setenv("LARGEZERO_LARGE_PAGE", word)
    with pytest.raises(UsageError) as info:
        large_page_enabled()
    assert "LARGEZERO_LARGE_PAGE" in str(info.value) and "\n" not in str(info.value)
    assert info.value.exit_code == EXIT_USAGE
    assert large_page_enabled(False)[0] is False  # an explicit argument never reads the variable


def test_large_page_switch_refusal_is_one_line_exit_2() -> None:
    done = subprocess.run([sys.executable, "-m", "largezero", "info", "/proc/self/exe"],
                          env={**os.environ, "LARGEZERO_LARGE_PAGE": "disabled"}, capture_output=True, text=True)
    assert done.returncode == EXIT_USAGE, done.stderr
    assert done.stderr.count("\n") == 1 and "LARGEZERO_LARGE_PAGE" in done.stderr


def test_format_size_styles() -> None:
    # steady: three significant digits, for bars and rates; exact: the largest unit dividing n.
    assert [format_size(n, "steady") for n in (512, 3 << 29, 12.34 * 2**30, 100 << 30)] == \
        ["512 B", "1.50 GiB", "12.3 GiB", "100 GiB"]
    assert [format_size(n, "exact") for n in (0, 4097, 1536 << 10, 2 << 20, 1 << 30)] == \
        ["0 B", "4097 B", "1536 KiB", "2 MiB", "1 GiB"]
