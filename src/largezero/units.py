"""Sizes as util-linux's ``strtosize()`` (lib/strutils.c) reads them, and as largezero prints them.

Accepted: ``4096``, ``0x1000``, ``4K``/``4k``/``4KiB`` (2^10), ``4KB`` (10^3), up to E/EiB/EB,
and decimal fractions with a suffix: ``1.5G``, ``0.5MiB`` (= 524288), ``0.5MB`` (= 500000).
Where we differ from util-linux, on purpose:

* only ASCII digits: Python's ``int()`` also takes Arabic-Indic or full-width digits, and a
  size typed in one is a mistake, not a number;
* a leading zero does not mean octal (util-linux's ``strtoumax(..., 0)`` reads ``0100`` as 64):
  nobody types a length in octal, so ``0100`` is 100;
* a fraction must come to a whole number of bytes (``0.3K`` = 307.2 is refused, where
  util-linux silently truncates): a zeroing range that is not what was typed is refused;
* ``512B`` (plain bytes) is accepted.
"""

from __future__ import annotations

import re

from .errors import UsageError

_POWERS = "KMGTPE"
# re.ASCII: [0-9] and \s mean what they say, never Unicode digits or spaces.
_SIZE = re.compile(r"\s*(?:0[xX](?P<hex>[0-9a-fA-F]+)|(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]*))?)"
                   r"\s*(?P<suffix>[A-Za-z]*)\s*", re.ASCII)
# Offsets and lengths travel as off_t / loff_t: a signed 64-bit value.
MAX_SIZE = (1 << 63) - 1


def _scale(suffix: str) -> int | None:
    """Bytes per unit for a suffix: K/k, KiB/Kib (binary), KB/Kb (decimal), B or nothing (bytes)."""
    if suffix in ("", "B", "b"):
        return 1
    power = _POWERS.find(suffix[0].upper())
    if power < 0:
        return None
    rest = suffix[1:]
    if rest in ("", "iB", "ib"):
        return 1 << (10 * (power + 1))
    if rest in ("B", "b"):
        return int(1000 ** (power + 1))
    return None


def parse_size(text: str, *, what: str = "size") -> int:
    """Parse a byte count; raises UsageError with one line naming ``what`` for anything else."""
    match = _SIZE.fullmatch(text)
    shown = text if len(text) <= 40 else text[:20] + "..." + text[-8:]  # the message stays one short line
    if not match:
        if any(ch.isdigit() and not ch.isascii() for ch in text):
            raise UsageError(f"invalid {what} '{shown}': only the ASCII digits 0-9 are accepted")
        if text.strip().startswith("-"):
            raise UsageError(f"invalid {what} '{shown}': must not be negative")
        raise UsageError(f"invalid {what} '{shown}': expected a number with an optional K/M/G/T suffix")
    suffix = match["suffix"]
    scale = _scale(suffix)
    if scale is None:
        raise UsageError(f"invalid {what} '{shown}': unknown suffix '{suffix}' (use K, M, G, T, P, E, KiB.. or KB..)")
    # Exact integer arithmetic: the size is num / den bytes (no float, and no fractions import
    # at start-up).
    den = 1
    if match["hex"] is not None:
        num = int(match["hex"], 16)
    else:
        # Beyond 2^63 long before Python's 4300-digit limit on int(): refused without converting.
        if len(match["int"].lstrip("0")) > 40:
            raise UsageError(f"invalid {what} '{shown}': larger than 2^63-1 bytes")
        if len((match["frac"] or "").rstrip("0")) > 40:
            raise UsageError(f"invalid {what} '{shown}': not a whole number of bytes")
        # int(..., 10): a leading zero is decimal, not octal.
        num = int(match["int"], 10)
        frac = match["frac"]
        if frac is not None:
            if not frac:
                raise UsageError(f"invalid {what} '{shown}': expected digits after the decimal point")
            if scale == 1:
                raise UsageError(f"invalid {what} '{shown}': a fraction needs a suffix (like 1.5G)")
            den = 10 ** len(frac)
            num = num * den + int(frac, 10)
    total, rest = divmod(num * scale, den)
    if rest:
        raise UsageError(f"invalid {what} '{shown}': is {num * scale / den:.1f} bytes, not a whole number of bytes")
    if total > MAX_SIZE:
        raise UsageError(f"invalid {what} '{shown}': larger than 2^63-1 bytes")
    return total


_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def format_size(n: float, style: str = "short") -> str:
    """Bytes in binary units, the one formatter of sizes and rates (append "/s").

    ``short`` (messages): whole or one decimal, 2 MiB, 1.5 GiB, 512 B. ``steady`` (progress
    bars, tables of rates): three significant digits, so widths hold still as numbers grow:
    1.50 GiB, 12.3 GiB, 100 GiB. ``exact`` (labels of sizes chosen by hand): the largest unit
    that divides n, never a fraction: 2 MiB, 1536 KiB, 4097 B.
    """
    if style == "exact":
        n = int(n)
        power = 0
        while power < len(_UNITS) - 1 and n and n % (1 << (10 * (power + 1))) == 0:
            power += 1
        return f"{n >> (10 * power)} {_UNITS[power]}"
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{int(value)} B"
            if style == "steady":
                figures = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
                return f"{value:.{figures}f} {unit}"
            return f"{int(value)} {unit}" if value == int(value) else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
