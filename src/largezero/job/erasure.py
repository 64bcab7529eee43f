"""The erasure record of a job: what was erased, how, when, by what, and what that is worth.

Every claim is one the job can back: ``nist_sp800_88`` is ``"Clear"`` only when zeros were
written with O_DIRECT over every byte of a whole block device, flushed from its cache, and read
back as zero from the medium with O_DIRECT (none of it holes made up by a filesystem); otherwise
it is null and ``nist_sp800_88_reason`` says why. NIST SP 800-88 sanitizes media, so a file,
or part of a device, is never called Clear. The device-class caveat says where overwriting
stops short of Purge, and names the device's own purge route where its transport is known.
"""

from __future__ import annotations

import os

from .._version import __version__
from ..targets.identity import is_virtual

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from ..verify import VerifyResult
    from . import JobResult

# The purge route of a device, by transport (IEEE 2883 / NIST SP 800-88 Purge: the device's own
# sanitize or cryptographic erase; overwriting through the interface misses remapped blocks).
PURGE_ROUTES = {
    "nvme": "the drive's own sanitize: `nvme sanitize` (block erase or crypto erase), or "
            "`nvme format --ses=1` (user data erase) / `--ses=2` (crypto erase)",
    "ata": "the drive's own ATA SANITIZE (block erase, crypto scramble or overwrite) or SECURITY ERASE UNIT "
           "(`hdparm --sanitize-block-erase`, `hdparm --security-erase`)",
    "sas": "the drive's own SCSI SANITIZE (`sg_sanitize --block`, `--crypto` or `--overwrite`)",
    "scsi": "the drive's own SCSI SANITIZE (`sg_sanitize --block`, `--crypto` or `--overwrite`)",
    "usb": "USB bridges seldom pass sanitize commands: attach the drive directly (SATA, SAS or NVMe) "
           "and use its own sanitize command",
    "mmc": "the card's own sanitize (`mmc sanitize` on eMMC)",
    "virtio": "the data lives in the host's storage: sanitize it there, or destroy the volume's encryption key",
    "xen": "the data lives in the host's storage: sanitize it there, or destroy the volume's encryption key",
    "hyperv": "the data lives in the host's storage: sanitize it there, or destroy the volume's encryption key",
}
_OTHER_ROUTE = "the device's own sanitize or cryptographic erase command"


def utc_now() -> str:
    """ISO 8601 UTC to the second, as '2026-12-05T07:01:02Z' (no datetime import on the zero path)."""
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def purge_route(ident: dict[str, object]) -> str:
    loop = ident.get("loop")
    if isinstance(loop, dict):
        return (f"a loop device stores its blocks in {loop.get('backing_file')}: purge the device that holds "
                "that file, with its own sanitize command")
    return PURGE_ROUTES.get(str(ident.get("transport")), _OTHER_ROUTE)


def caveat(ident: dict[str, object]) -> str | None:
    """What overwriting is worth on this class of device, and the route to Purge; None for a file."""
    if ident.get("kind") != "block":
        return None
    route = purge_route(ident)
    if is_virtual(ident):
        return ("virtual device: overwriting it is NIST SP 800-88 Clear at most, not Purge: its blocks are "
                f"stored by something beneath it, which may keep copies. Purge: {route}.")
    if ident.get("rotational") is False:
        return ("non-rotational device: overwriting it is NIST SP 800-88 Clear at most, not Purge: flash "
                "remaps writes, so old data may remain in spare and remapped blocks. Purge: "
                f"{route}.")
    return ("hard disk: overwriting every addressable sector is NIST SP 800-88 Clear; sectors the drive has "
            f"reallocated keep their data. Purge: {route}.")


def nist_category(res: JobResult) -> tuple[str | None, str]:
    """("Clear", why) when the job earned it, else (None, the first reason it did not)."""
    z, v, ident = res.zeroed, res.verified, res.identity or {}
    assert z is not None
    if z.kind != "block":
        return None, ("a file is not a medium: earlier copies of its data may remain elsewhere on the "
                      "filesystem's device (NIST SP 800-88 sanitizes media, not files)")
    if z.method == "offload":
        return None, ("offload: the device or filesystem may only mark the range as zero (unmapped or "
                      "unwritten blocks); the old data may remain on the medium")
    if not z.direct:
        return None, "zeros were written through the page cache, not with O_DIRECT over every byte"
    if z.bytes_zeroed != z.length:
        return None, f"only {z.bytes_zeroed} of {z.length} bytes were overwritten"
    if not z.synced or z.medium_overwritten is not True:
        return None, "the zeros were not flushed from the device's volatile cache (fdatasync)"
    size = ident.get("size")
    if z.offset != 0 or z.length != size:
        return None, f"only bytes {z.offset}..{z.offset + z.length} of the {size}-byte device were overwritten"
    if v is None:
        return None, "not verified: the zeros were not read back from the medium"
    if not v.ok:
        return None, f"verification found a non-zero byte at offset {v.first_nonzero}"
    if not v.direct or v.bytes_read != z.length:
        return None, (f"verification read {v.bytes_read} of {z.length} bytes from the medium with O_DIRECT "
                      f"({v.bytes_skipped} not read: holes or unwritten extents)")
    return "Clear", ("zeros written with O_DIRECT over every byte of the device, flushed from its cache, and "
                     "every byte read back as zero from the medium with O_DIRECT")


def verification(res: JobResult) -> dict[str, object]:
    v = res.verified
    return {"performed": False, "result": None} if v is None else _verification_of(v)


def _verification_of(v: VerifyResult) -> dict[str, object]:
    return {"performed": True, "result": "zero" if v.ok else "non-zero", "method": "read back with O_DIRECT"
            if v.direct else "read back buffered (the page cache may have answered)", "bytes_read": v.bytes_read,
            "bytes_read_from_medium": v.bytes_read if v.direct else 0,
            "bytes_skipped": v.bytes_skipped, "first_nonzero": v.first_nonzero, "data_map": v.mapped,
            "seconds": round(v.seconds, 6)}


def erasure_record(res: JobResult) -> dict[str, object]:
    """The ``erasure`` object of a job's ``--json`` (see the module docstring)."""
    z = res.zeroed
    assert z is not None
    ident = dict(res.identity or {})
    ident.setdefault("path", ident.get("device") or z.target)
    category, reason = nist_category(res)
    uname = os.uname()
    return {
        "device": ident,
        "range": {"offset": z.offset, "length": z.length},
        "host": uname.nodename,
        "tool": f"largezero {__version__}",
        "kernel": f"Linux {uname.release} {uname.machine}",
        "started": res.started,
        "finished": res.finished,
        "method": z.method,
        "mechanism": z.mechanism + (" O_DIRECT" if z.direct else ""),
        "bytes_zeroed": z.bytes_zeroed,
        "synced": z.synced,
        "medium_overwritten": z.medium_overwritten,
        "medium": z.medium_note,
        "verification": verification(res),
        "nist_sp800_88": category,
        "nist_sp800_88_reason": reason,
        "device_caveat": caveat(ident),
    }


def verification_record(target: str, identity: dict[str, object], v: VerifyResult, started: str,
                        finished: str) -> dict[str, object]:
    """The record of a verification alone (``verify --report``): what was read, from where, when."""
    uname = os.uname()
    return {"target": target, "identity": identity, "offset": v.offset, "length": v.length,
            "verification": _verification_of(v), "started": started, "finished": finished,
            "host": uname.nodename, "tool": f"largezero {__version__}",
            "kernel": f"Linux {uname.release} {uname.machine}"}
