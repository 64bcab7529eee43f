"""Zero a device's metadata: every signature libblkid finds, at its own offset, and nothing else.

What ``wipefs --all`` does, through the job: each signature's magic string (a filesystem's
superblock magic, a partition table's, an md or LVM label, LUKS, swap) is zeroed where libblkid
found it with ``overwrite`` (O_DIRECT, exact to the byte: the edges go through the page cache),
flushed and read back. Then the device is probed again, because some signatures only show once
another is gone (libblkid reports the backup GPT header at the device's end when the primary one
is invalid, then the protective MBR), until none is found. A device in use is refused before
anything is written, as by ``zero_job``; signatures are never a reason to refuse here.
"""

from __future__ import annotations

import os

from ..engine.options import ZeroOptions
from ..errors import LargezeroError, TargetError
from ..targets import opened, refuse_as_writer
from . import zero_job

# Enough for every layout libblkid reports one at a time (primary GPT, backup GPT, PMBR, the
# superblocks of nested or stale filesystems); a signature that survives is an error below.
MAX_ROUNDS = 16


def zero_metadata(target: str | os.PathLike[str], *, verify: bool = True) -> list[dict[str, object]]:
    """Zero every signature on ``target``; one entry per signature: ``signature`` (type, offset,
    size, kind) and ``record`` (the job's ``to_json()``). Raises TargetError for a device in use
    (nothing written) and LargezeroError when a signature cannot be placed or survives."""
    name = os.fspath(target)
    options = ZeroOptions(overwrite=True, sync=True, force_signatures=True)
    zeroed: list[dict[str, object]] = []
    seen: set[tuple[str, int]] = set()
    for _ in range(MAX_ROUNDS):
        with opened(name, writable=False) as ro:
            refuse_as_writer(ro, force_signatures=True)  # in use: refused before the first write
            found = ro.signatures()
        if not found:
            return zeroed
        for sig in found:
            if sig.offset is None or not sig.size:
                raise TargetError(f"{name}: cannot tell where {sig.describe()} lies (libblkid is not loaded); "
                                  "nothing of it was zeroed")
            key = (sig.type, sig.offset)
            if key in seen:
                raise LargezeroError(f"{name}: {sig.describe()} is still found after its magic was zeroed")
            seen.add(key)
            result = zero_job(name, sig.offset, sig.size, options=options, verify=verify)
            if not result.ok:
                raise LargezeroError(f"{name}: {sig.describe()} does not read back as zero after zeroing")
            zeroed.append({"signature": sig.to_dict(), "record": result.to_json()})
    raise LargezeroError(f"{name}: signatures still found after {MAX_ROUNDS} rounds of zeroing them")
