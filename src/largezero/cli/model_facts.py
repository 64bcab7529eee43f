"""Where ``largezero model`` takes its facts from: a device opened read-only (the engine's own
facts, for ``--path direct``) or a real file (``--file``: size, block size, mappings)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..errors import UsageError
from ..model.iomap import DioWrite
from ..model.limits import QueueLimits
from ..model.predict import model_facts
from ..model.sources import ZeroSource

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..targets.facts import TargetFacts


class RealFile:
    """The file of ``--file``: its size and block size now, its mappings under the write."""

    def __init__(self, path: str, size: int, block_size: int, st_dev: int) -> None:
        self.path, self.size, self.block_size, self.st_dev = path, size, block_size, st_dev
        self.mappings: list[Any] = []
        self.write: DioWrite | None = None

    def read_mappings(self, write: DioWrite) -> None:
        from ..model.mapped import file_mappings, free_space, place_holes

        bs = self.block_size
        # The whole file: a hole's neighbours on the disk tell where it will be allocated.
        first, last = 0, max(-(-write.end // bs) * bs, self.size)
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            found = file_mappings(fd, first, last - first)
            self.mappings = place_holes(found, write.offset, write.length, self.block_size, free_space(fd))
        except OSError as err:
            raise UsageError(f"{self.path}: cannot read its mappings (FIEMAP: {err.strerror})") from None
        finally:
            os.close(fd)
        self.write = write

    def model(self, lim: QueueLimits, zero: ZeroSource, kernel: str, page: int) -> Any:
        from ..model.mapped import model_file_write

        w = self.write
        assert w is not None
        return model_file_write(lim, self.mappings, w.offset, w.length, self.size, self.block_size, zero,
                                kernel, page)


def real_file(args: argparse.Namespace) -> RealFile:
    """--file: stat it, and take the limits of the device under it unless --device/--preset say."""
    try:
        st = os.stat(args.file)
        bsize = os.statvfs(args.file).f_bsize
    except OSError as err:
        raise UsageError(f"{args.file}: {err.strerror}") from None
    if not os.path.isfile(args.file):
        raise UsageError(f"{args.file}: not a regular file")
    if not args.device and not args.preset:
        from ..targets.diskstat import disk_under

        args.device = disk_under(st.st_dev)
        if args.device is None:
            raise UsageError(f"{args.file}: its filesystem is on no block device; give --device or --preset")
    block = int(args.block_size[0]) if args.block_size else bsize
    return RealFile(args.file, st.st_size, block, st.st_dev)


def direct_facts(args: argparse.Namespace, lim: QueueLimits, length: int, page: int) -> TargetFacts:
    """The facts the engine plans from: read from the device itself (opened read-only, never
    claimed), or for a preset what a device of those limits would show."""
    if not args.device:
        # Loop and zram drivers copy each byte with the CPU: the plan then uses small iovecs.
        return model_facts(lim, args.offset + length, copies_data=args.preset in ("loop", "zram"), page_size=page)
    from ..errors import LargezeroError
    from ..targets import BLOCK, open_target
    from ..targets.facts import facts_of

    path = args.device if args.device.startswith("/") else f"/dev/{args.device}"
    try:
        with open_target(path, writable=False) as tgt:
            if tgt.kind != BLOCK:
                raise UsageError(f"{args.device}: not a block device")
            return facts_of(tgt)
    except (OSError, LargezeroError) as err:
        raise UsageError(f"{args.device}: cannot open to read its facts ({err})") from None
