"""largezero info: what a target is, and what zeroing it can use."""

from __future__ import annotations

import argparse
import os

from ..engine.zeroout import offload_mechanisms
from ..errors import TargetError
from ..kconfig import persistent_huge_zero_folio
from ..mm import largest_zero_buffer, page_size, pmd_size, thp_status, zero_buffer_for
from ..sysfiles import block_dir, mount_containing, mount_points
from ..targets import BLOCK, Target, opened
from ..targets.inuse import loops_over_file
from ..units import format_size
from .common import print_json

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from typing import Any

# Filesystems whose fallocate(FALLOC_FL_ZERO_RANGE) is known to exist (fs/*/ sources).
_ZERO_RANGE_FILESYSTEMS = {"ext4", "xfs", "btrfs", "f2fs", "gfs2", "ocfs2", "bcachefs"}


def register(sub: Any) -> None:
    p = sub.add_parser("info", help="show a target's sizes, alignments, limits and zero buffer",
                       description="Show what a target is and what zeroing it can use.")
    p.add_argument("target", metavar="TARGET")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _fs_type(path: str | None) -> str | None:
    mount = mount_containing(path) if path is not None else None
    return mount.fstype if mount else None


def _queue_limits(tgt: Target) -> dict[str, object] | None:
    if tgt.kind != BLOCK:
        return None
    from ..model.limits import QueueLimits  # only for a block device: info on a file never loads the model

    try:
        return QueueLimits.from_sysfs(tgt.block_name or "").to_dict()
    except (OSError, ValueError):  # sysfs without the device's queue: what the target itself answers
        names = ("logical_block_size", "physical_block_size", "max_sectors_kb", "max_hw_sectors_kb",
                 "max_segments", "max_segment_size", "write_zeroes_max_bytes", "discard_max_bytes")
        return {n: tgt.queue_attr(n) for n in names}


def _offload(tgt: Target) -> dict[str, object]:
    mechanisms, why = offload_mechanisms(tgt, unmap=False, extending=False)
    if tgt.kind == BLOCK:
        return {"available": bool(mechanisms), "mechanisms": list(mechanisms), "reason": why,
                "write_zeroes_max_bytes": tgt.queue_attr("write_zeroes_max_bytes")}
    fstype = _fs_type(tgt.path)
    known = fstype in _ZERO_RANGE_FILESYSTEMS
    return {"available": known if mechanisms else False, "mechanisms": list(mechanisms), "filesystem": fstype,
            "reason": why or (None if known else f"fallocate(ZERO_RANGE) not known on {fstype}; tried on first use")}


def _safety(tgt: Target) -> dict[str, object]:
    """What zero would refuse and why: mounts, holders, swap, loop backing, signatures."""
    out: dict[str, object] = {"in_use": tgt.in_use()}
    if tgt.kind == BLOCK:
        out["mounted_on"] = mount_points(tgt.rdev)
        try:
            holders = sorted(os.listdir(f"{block_dir(tgt.rdev)}/holders"))
        except OSError:
            holders = []
        out["holders"] = holders
        try:
            out["signatures"] = [s.to_dict() for s in tgt.signatures()]
        except TargetError as err:
            out["signatures"] = None
            out["signatures_error"] = str(err)
    else:
        out["backs_loop_devices"] = [f"/dev/{name}" for name, _ in loops_over_file(*tgt.dev_ino)]
        out["max_file_size"] = tgt.max_file_size
    out["copy_on_write"] = tgt.copy_on_write
    return out


def collect(tgt: Target) -> dict[str, object]:
    large = largest_zero_buffer()
    return {
        **tgt.describe(),
        "identity": tgt.identity(),
        "safety": _safety(tgt),
        "page_size": page_size(),
        "pmd_size": pmd_size(),
        "dio_align": tgt.dio_align,
        "queue_limits": _queue_limits(tgt),
        "offload": _offload(tgt),
        "zero_buffer": large.describe(),
        "zero_buffer_auto": {"direct": zero_buffer_for(True).backing, "buffered": zero_buffer_for(False).backing},
        "thp": thp_status(),
        "config_persistent_huge_zero_folio": persistent_huge_zero_folio(),
    }


def _print_human(info: dict[str, Any]) -> None:
    rows: list[tuple[str, str]] = [
        ("target", info["target"] + (f" -> {info['path']}" if info["path"] not in (None, info["target"]) else "")),
        ("kind", f"{info['kind']}" + (f" ({info['block_device']})" if info["block_device"] else "")),
        ("size", f"{info['size']} ({format_size(info['size'])})"),
        ("page size / PMD size", f"{info['page_size']} / {info['pmd_size']}"),
        ("logical / physical block", f"{info['logical_block_size']} / {info['physical_block_size']}"),
        ("DIO alignment (mem / offset)", f"{info['dio_mem_align']} / {info['dio_offset_align']}"),
    ]
    safe = info["safety"]
    rows.append(("in use", safe["in_use"] or "no"))
    if "signatures" in safe:
        sigs = safe["signatures"]
        rows.append(("signatures", safe.get("signatures_error") if sigs is None else
                     ", ".join(f"{s['type']} at 0x{s['offset']:x}" if s["offset"] is not None else s["type"]
                               for s in sigs) or "none"))
        rows.append(("mounted on", ", ".join(safe["mounted_on"]) or "no"))
        rows.append(("holders", ", ".join(safe["holders"]) or "none"))
    if "backs_loop_devices" in safe:
        rows.append(("backs loop devices", ", ".join(safe["backs_loop_devices"]) or "none"))
        rows.append(("max file size", str(safe["max_file_size"])))
    rows.append(("overwrites in place", "yes" if safe["copy_on_write"] is None else f"no ({safe['copy_on_write']})"))
    ident = {k: v for k, v in info["identity"].items() if k in ("model", "serial", "wwn", "filesystem",
                                                               "mount_point") and v}
    if ident:
        rows.append(("identity", ", ".join(f"{k} {v}" for k, v in ident.items())))
    if info["queue_limits"]:
        rows += [(f"queue {k}", str(v)) for k, v in info["queue_limits"].items()]
    off = info["offload"]
    rows.append(("offload", ("yes: " + ", ".join(off["mechanisms"])) if off["available"] else f"no ({off['reason']})"))
    zb = info["zero_buffer"]
    rows.append(("zero buffer", f"{zb['name']} {format_size(zb['size'])}, backing {zb['backing']}, "
                 f"RSS {zb['rss_bytes']} bytes" + (f" ({zb['reason']})" if zb["reason"] else "")))
    auto = info["zero_buffer_auto"]
    rows.append(("auto backing", f"direct: {auto['direct']}, buffered: {auto['buffered']}"))
    rows.append(("THP", f"enabled={info['thp']['enabled']}, use_zero_page={info['thp']['use_zero_page']}"))
    rows.append(("CONFIG_PERSISTENT_HUGE_ZERO_FOLIO", info["config_persistent_huge_zero_folio"] +
                 ("" if info["config_persistent_huge_zero_folio"] == "y" else
                  " (kernel zeroout falls back to the 4 KiB ZERO_PAGE)")))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


def run(args: argparse.Namespace) -> int:
    with opened(args.target, writable=False) as tgt:
        if tgt.path and os.path.islink(args.target):
            tgt.name = args.target
        info = collect(tgt)
    if args.json:
        print_json(info)
    else:
        _print_human(info)
    return 0
