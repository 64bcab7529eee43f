"""largezero model: bios, bvecs, segments and requests for zeroing, per zero source.

Reads queue limits from sysfs (``--device``, never opened) or a preset, runs the block-layer
model (largezero.model.run) and prints a table, JSON, or a plot.
"""

from __future__ import annotations

import argparse
import os
import platform
from typing import Any

from ..errors import UsageError
from ..kconfig import persistent_huge_zero_folio
from ..mm import zero_buffer_for
from ..model.accounting import device_class
from ..model.iomap import DEFAULT_BLOCK_SIZE, EXTENTS, DioWrite
from ..model.limits import PRESETS, QueueLimits
from ..model.predict import model_plan
from ..model.run import PATHS, compare, model_kernel
from ..model.sources import (
    PAGE_SIZES,
    SOURCE_NAMES,
    ZeroSource,
    iomap_618_source,
    largest_zero_folio_source,
    live_iomap_source,
    make_source,
    source_for_buffer,
)
from ..model.write import compare_dio_write, model_write
from ..sysfiles import dev_of, mount_points
from ..units import format_size, parse_size
from .common import print_json, size_arg
from .model_facts import RealFile, direct_facts, real_file
from .model_show import plot, print_table

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..targets.facts import TargetFacts

EXAMPLES = """\
examples:
  largezero model --preset nvme-mdts128k                  every source, in-kernel zeroing of 1 GiB
  largezero model --device loop0 --path direct -l 1G      what `largezero zero loop0 -l 1G --direct` does
  largezero model --preset loop --path direct --call-size 128M --zero-source huge-zero-folio
  largezero model --preset virtio-blk --zero-source allocated:64K --json
  largezero model --path iomap --preset nvme-mdts2m       iomap_dio_zero() for 4 KiB..2 MiB blocks
  largezero model --path iomap --device loop0 --dio-write 4K:8K --file-size 4K --extent written
                                                          one O_DIRECT write on XFS: pads, data, EOF
  largezero model --preset nvme-mdts128k --plot model.png
"""

# The zero_range() method that uses each source, for --path direct.
ZERO_METHOD = {"zero-page": "page", "huge-zero-folio": "large", "rfc-static-2m": "large", "allocated": "large"}


def register(sub: Any) -> None:
    p = sub.add_parser("model", help="model bios, bvecs, segments and requests per zero source",
                       description="Predict what zeroing does to the block layer, for each zero source.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--device", metavar="DEV", help="read queue limits from /sys/block (never opened)")
    where.add_argument("--preset", choices=sorted(PRESETS), help="queue limits of a typical device "
                       "(default: kernel-default)")
    p.add_argument("--path", choices=PATHS, default="kernel",
                   help="kernel: blkdev_issue_zeroout(); direct: zero_range O_DIRECT pwritev; "
                        "iomap: iomap_dio_zero() (default: kernel)")
    p.add_argument("-l", "--length", type=size_arg("length"), default=None,
                   help="bytes to zero (default 1G; for iomap: the padding, default block size - 1 block)")
    p.add_argument("-o", "--offset", type=size_arg("offset"), default=0, help="first byte (default 0)")
    p.add_argument("--call-size", type=size_arg("call size"), default=None,
                   help="bytes per pwritev call for --path direct (default: what zero_range uses)")
    p.add_argument("--zero-source", action="append", metavar="SOURCE",
                   help=f"one of {', '.join(SOURCE_NAMES)}; allocated:SIZE sets its contiguity; "
                        "repeatable (default: all, side by side)")
    p.add_argument("--contiguity", type=size_arg("contiguity"), default=None,
                   help="physically contiguous run of the allocated source (default: its whole size)")
    p.add_argument("--page-size", type=size_arg("page size"), default=None,
                   help="kernel page size to model: 4K, 16K or 64K (default: this machine's)")
    p.add_argument("--max-sectors-kb", type=int, default=None, help="override max_sectors_kb")
    p.add_argument("--block-size", type=size_arg("block size"), action="append", default=None,
                   help="filesystem block size for --path iomap (repeatable; default 4K..2M)")
    p.add_argument("--dio-write", metavar="OFFSET:LENGTH", type=_dio_write_arg, default=None,
                   help="--path iomap: one O_DIRECT write (pads, data, EOF zeroing), not the padding table")
    p.add_argument("--file", metavar="FILE", help="--dio-write into this existing file: its size and its "
                   "mappings (FIEMAP: state, physical start) are read from it; limits from --device, else the "
                   "device under its filesystem")
    p.add_argument("--file-size", type=size_arg("file size"), default=0,
                   help="--dio-write: the file's size before the write (default 0, a fresh file)")
    p.add_argument("--extent", choices=EXTENTS, default="hole",
                   help="--dio-write: state of the blocks under the write (default hole)")
    p.add_argument("--nomerges", type=int, choices=(0, 1, 2), default=None,
                   help="override queue/nomerges (0 merge, 1 plug back-merges only, 2 no merges)")
    p.add_argument("--no-write-zeroes", action="store_true",
                   help="--path kernel: model the zero-page fallback even if the device has write-zeroes")
    p.add_argument("--write-zeroes-fails", action="store_true",
                   help="--path kernel: the device advertises write-zeroes but fails it, then the fallback")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="FILE.png", help="write a PNG of requests and bvecs against length "
                                                     "(1 MiB to 1 TiB; the kernel path for --path iomap) "
                                                     "and of memory cost per page size")
    p.set_defaults(func=run)


def _limits(args: argparse.Namespace) -> tuple[QueueLimits, str]:
    if args.device:
        try:
            lim = QueueLimits.from_sysfs(args.device)
        except (OSError, ValueError) as err:
            raise UsageError(f"{args.device}: cannot read queue limits from sysfs ({err})") from None
        where = f"device {args.device}"
    else:
        name = args.preset or "kernel-default"
        lim, where = PRESETS[name], f"preset {name}"
    if args.max_sectors_kb is not None:
        try:
            lim = lim.with_max_sectors_kb(args.max_sectors_kb)
        except ValueError as err:
            raise UsageError(str(err)) from None
    if args.nomerges is not None:
        lim = lim.with_nomerges(args.nomerges)
    return lim, where


def _dio_write_arg(text: str) -> tuple[int, int]:
    offset, sep, length = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"'{text}': expected OFFSET:LENGTH, e.g. 4K:8K")
    return size_arg("dio-write offset")(offset), size_arg("dio-write length")(length)


def mounted_block_size(device: str) -> int | None:
    """The block size of the filesystem mounted from ``device`` (statvfs), None if not mounted."""
    name = os.path.basename(os.path.realpath(device)) if device.startswith("/") else device
    rdev = dev_of(f"/sys/class/block/{name}")
    points = mount_points(rdev) if rdev is not None else []
    try:
        return os.statvfs(points[0]).f_bsize if points else None
    except OSError:
        return None


def _sources(args: argparse.Namespace, page: int) -> list[ZeroSource]:
    specs = args.zero_source or list(SOURCE_NAMES)
    out = []
    for spec in specs:
        name, _, size = spec.partition(":")
        contiguity = args.contiguity if name == "allocated" else None
        if size:
            if name != "allocated":
                raise UsageError(f"zero source '{spec}': only allocated takes a contiguity")
            contiguity = parse_size(size, what="contiguity")
        if name not in SOURCE_NAMES:
            raise UsageError(f"unknown zero source '{name}' (expected one of {', '.join(SOURCE_NAMES)})")
        try:
            out.append(make_source(name, page, contiguity))
        except ValueError as err:
            raise UsageError(f"zero source '{spec}': {err}") from None
    return out


def kernel_info() -> dict[str, object]:
    """What the running kernel's own zeroing would use."""
    persistent = persistent_huge_zero_folio()
    return {
        "release": platform.release(),
        "CONFIG_PERSISTENT_HUGE_ZERO_FOLIO": persistent,
        # largest_zero_folio(): the persistent folio if configured, else ZERO_PAGE(0).
        "largest_zero_folio": {"y": "huge-zero-folio", "n": "zero-page"}.get(persistent, "unknown"),
    }


def build_report(args: argparse.Namespace) -> dict[str, Any]:
    if args.file and not (args.dio_write and args.path == "iomap"):
        raise UsageError("--file applies to --path iomap --dio-write only")
    if args.file and (args.file_size or args.extent != "hole"):
        raise UsageError("--file reads the file's size and mappings; --file-size and --extent are for "
                         "hypothetical files")
    real = real_file(args) if args.file else None
    lim, where = _limits(args)
    page = args.page_size or os.sysconf("SC_PAGESIZE")
    if page not in PAGE_SIZES:
        raise UsageError(f"page size must be one of {', '.join(format_size(p) for p in PAGE_SIZES)}")
    sources = _sources(args, page)
    if args.path != "direct" and args.call_size is not None:
        raise UsageError("--call-size applies to --path direct only")
    if args.path != "iomap" and (args.block_size or args.dio_write):
        raise UsageError("--block-size and --dio-write apply to --path iomap only")
    if not args.dio_write and (args.file_size or args.extent != "hole"):
        raise UsageError("--file-size and --extent apply to --dio-write only")
    if args.path != "kernel" and (args.no_write_zeroes or args.write_zeroes_fails):
        raise UsageError("--no-write-zeroes and --write-zeroes-fails apply to --path kernel only")
    length = args.length
    if length is None:
        length = 0 if args.path == "iomap" else 1 << 30
    if args.path != "iomap" and length <= 0:
        raise UsageError("length must be positive")
    write_zeroes = False if args.no_write_zeroes else None
    if args.write_zeroes_fails and not lim.write_zeroes_max_bytes:
        raise UsageError("--write-zeroes-fails: the device has no write-zeroes")
    write = None
    facts = None
    try:
        if args.dio_write:
            if args.block_size and len(args.block_size) > 1:
                raise UsageError("--dio-write takes one --block-size")
            write = DioWrite(args.dio_write[0], args.dio_write[1], real.size if real else args.file_size,
                             args.extent, real.block_size if real else _block_size(args, lim))
            length = write.length
            if real:
                real.read_mappings(write)
                results = [real.model(lim, iomap_618_source(page), "6.18", page)]
                results += [real.model(lim, s, "6.19", page) for s in sources]
            else:
                results = compare_dio_write(lim, write, sources, page)
        elif args.path == "direct":
            facts = direct_facts(args, lim, length, page)
            results = [model_plan(facts, lim, length, s, args.offset, args.call_size) for s in sources]
        else:
            results = compare(args.path, lim, length, sources, offset=args.offset, call_size=args.call_size,
                              block_sizes=args.block_size or None, write_zeroes=write_zeroes,
                              write_zeroes_fails=args.write_zeroes_fails, page_size=page)
    except ValueError as err:
        raise UsageError(str(err)) from None
    entries = []
    for r in results:
        d = r.to_dict()
        if args.path == "direct":
            d["zero_method"] = ZERO_METHOD[r.source.name]
        entries.append(d)
    report: dict[str, Any] = {
        "path": args.path,
        "limits_from": where,
        "device": args.device,
        "preset": None if args.device else (args.preset or "kernel-default"),
        "length": length,
        "offset": write.offset if write else args.offset,
        "page_size": page,
        "limits": lim.to_dict(),
        "kernel": kernel_info(),
        "sources": entries,
    }
    if write:
        report["dio_write"] = entries[0]["dio_write"]
    report["device_class"] = device_class(lim)
    report["predicted_live"] = _predicted_live(args, lim, length, write, write_zeroes, facts, real)
    if args.path == "kernel":
        report["note"] = ("the running kernel's blkdev_issue_zeroout() zeroes from "
                          f"{report['kernel']['largest_zero_folio']}")  # type: ignore[index]
    return report


def _block_size(args: argparse.Namespace, lim: QueueLimits) -> int:
    """--block-size, else the mounted filesystem's, else 64 KiB (the LBS case)."""
    if args.block_size:
        return int(args.block_size[0])
    mounted = mounted_block_size(args.device) if args.device else None
    return mounted or DEFAULT_BLOCK_SIZE


def _predicted_live(args: argparse.Namespace, lim: QueueLimits, length: int, write: DioWrite | None,
                    write_zeroes: bool | None, facts: TargetFacts | None, real: RealFile | None = None
                    ) -> dict[str, Any]:
    """What this running kernel does: its largest_zero_folio(), its iomap zero page, and for
    --path direct the zero buffer `largezero zero --direct` gets in this process."""
    page = os.sysconf("SC_PAGESIZE")
    persistent = persistent_huge_zero_folio()
    rules = None
    try:
        if args.path == "kernel":
            src = largest_zero_folio_source(persistent, page)
            r = model_kernel(lim, length, src, args.offset, write_zeroes, args.write_zeroes_fails)
        elif args.path == "direct":
            buf = zero_buffer_for(direct=True)
            found = source_for_buffer(buf.size, buf.backing, buf.contiguous_bytes, page)
            if found is None:
                raise ValueError(f"zero buffer backing {buf.backing} cannot be observed (needs root)")
            src = found
            assert facts is not None
            # What `largezero zero D -m large --direct [--dry-run] --json` predicts: the same
            # facts, the same plan from the same zero buffer, the same price.
            r = model_plan(facts, lim, length, src, args.offset, args.call_size)
        else:
            rules, src = live_iomap_source(platform.release(), persistent, page)
            if write is None:  # the padding table: one logical block into a new block of a fresh file
                write = DioWrite(0, lim.logical_block_size, block_size=_block_size(args, lim))
            r = real.model(lim, src, rules, page) if real else model_write(lim, write, src, rules, page)
    except ValueError as err:
        return {"requests": None, "merges": None, "sectors": None, "source": None, "error": str(err)}
    c = r.counts
    if c is None and r.error:
        return {"requests": None, "merges": None, "sectors": None, "source": src.name, "error": r.error}
    out: dict[str, Any] = {"requests": c and c.requests, "merges": c and c.merges,
                           "sectors": c and r.extra.get("sectors"), "source": src.name, "contiguity": src.contiguity}
    if rules:
        out.update(iomap=rules, dio_write=r.extra["dio_write"])
    return out | ({"error": r.error} if r.error else {})


def run(args: argparse.Namespace) -> int:
    report = build_report(args)
    if args.plot:
        plot(args, report, _sources(args, report["page_size"]), args.plot)
        report["plot"] = args.plot
    if args.json:
        print_json(report)
    else:
        print_table(report)
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0

