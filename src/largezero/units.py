"""Sizes as util-linux writes them: 4096, 4K, 4KiB, 1M, 2MiB, 1G, 0x1000; also 4KB (decimal)."""

from __future__ import annotations

import re

from .errors import UsageError

_BINARY = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50, "E": 1 << 60}
_DECIMAL = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "PB": 10**15, "EB": 10**18}
_SIZE = re.compile(r"^\s*(0x[0-9a-fA-F]+|\d+)\s*([a-zA-Z]*)\s*$")
# Offsets and lengths travel as off_t / loff_t: a signed 64-bit value.
MAX_SIZE = (1 << 63) - 1


def parse_size(text: str, *, what: str = "size") -> int:
    """Parse a byte count with an optional K/M/G/T/P/E, KiB.. or KB.. suffix."""
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"invalid {what} '{text}': expected a number with an optional K/M/G/T suffix")
    number = int(match.group(1), 0)
    suffix = match.group(2).upper()
    if suffix in _DECIMAL:
        scale = _DECIMAL[suffix]
    else:
        stem = suffix[:-2] if suffix.endswith("IB") else suffix.removesuffix("B") if suffix != "B" else ""
        if stem not in _BINARY:
            raise UsageError(f"invalid {what} '{text}': unknown suffix '{match.group(2)}'")
        scale = _BINARY[stem]
    value = number * scale
    if value > MAX_SIZE:
        raise UsageError(f"invalid {what} '{text}': larger than 2^63-1 bytes")
    return value


def format_size(n: int | float) -> str:
    """Human size with binary units, e.g. 2 MiB, 1.5 GiB, 512 B."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            if unit == "B" or value == int(value):
                return f"{int(value)} {unit}"
            return f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
