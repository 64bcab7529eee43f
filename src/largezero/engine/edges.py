"""Where a range's edges end: the one cut shared by the zeroing plan and the direct writer.

``[offset, a)`` is the head, ``[a, b)`` the middle made of whole ``granule``-sized units that
O_DIRECT can write without sharing a unit with bytes outside the range, ``[b, end)`` the tail.
A range with no whole unit inside is all head (``a == b == end``).
"""

from __future__ import annotations


def cut(offset: int, end: int, granule: int) -> tuple[int, int]:
    """(a, b) with offset <= a <= b <= end, a and b on ``granule`` boundaries unless they are end."""
    a = min(end, -(-offset // granule) * granule)
    return a, max(a, end - end % granule)
