"""Cleaning three devices through ironic-python-agent: largezero's manager against the generic
manager's shred fallback, on the same loop devices, sequentially and three at a time.

Each device is a loop device over a file on a fresh ramfs (no firmware erase, no write-zeroes),
filled with a non-zero pattern before every run (not timed). A run is what IPA's
``erase_devices`` step does: ``hardware.dispatch_to_managers('erase_block_device', node, dev)``
per device, one after the other or in a ThreadPool of ``disk_erasure_concurrency`` = 3.

* ``largezero``: the manager zeroes each device (O_DIRECT zeros over every byte, synced, then
  read back with O_DIRECT).
* ``shred``: the node sets ``largezero_enabled: false`` so the call goes on to IPA's
  GenericHardwareManager; ``hdparm -I`` finds no ATA security on a loop device, so it runs
  ``shred --force --zero --verbose --iterations 1`` (a random pass, then zeros; no verify).
  ``agent_continue_if_secure_erase_failed`` is set as a cleaning operator would set it.

Every device is checked to read back as zero after every run (O_DIRECT, not timed). PATH holds
only the erase tools while IPA runs (see tests/test_ironic.py). Root only. Run:
``python benchmarks/bench_ipa_erase.py [--size 1G] [--repeat 1] [--json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import mmap
import os
import sys
import time
from multiprocessing.pool import ThreadPool

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from ironic_python_agent import config as _config  # noqa: E402,F401  # registers IPA's options
from ironic_python_agent import hardware  # noqa: E402
from oslo_config import cfg  # noqa: E402
from tests.test_ironic import ipa_path  # noqa: E402

from largezero.scratch import fill_pattern, loop_device, make_image, memfs_mount  # noqa: E402
from largezero.units import parse_size  # noqa: E402

NODES = {
    "largezero": {"uuid": "bench", "driver_info": {}, "properties": {}, "driver_internal_info": {}},
    "shred": {"uuid": "bench", "driver_info": {"largezero_enabled": False}, "properties": {},
              "driver_internal_info": {"agent_continue_if_secure_erase_failed": True}},
}


def all_zero(dev: str) -> bool:
    buf = mmap.mmap(-1, 4 << 20)
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    try:
        pos = 0
        while (n := os.preadv(fd, [buf], pos)) > 0:
            if buf[:n].count(0) != n:
                return False
            pos += n
        return True
    finally:
        os.close(fd)
        buf.close()


def clean(devs: list[str], size: int, node: dict[str, object], workers: int) -> float:
    def one(dev: str) -> object:
        return hardware.dispatch_to_managers("erase_block_device", node, hardware.BlockDevice(dev, "loop", size, False))

    start = time.monotonic()
    with ipa_path():
        if workers == 1:
            for dev in devs:
                one(dev)
        else:
            with ThreadPool(workers) as pool:  # as erase_devices does with disk_erasure_concurrency
                pool.map(one, devs)
    return time.monotonic() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="1G")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    size = parse_size(args.size)
    cfg.CONF.set_override("disk_wait_attempts", 0)
    with ipa_path():
        hardware.get_managers()
    rows = []
    with contextlib.ExitStack() as stack:
        devs = []
        for i in range(3):
            mnt = stack.enter_context(memfs_mount("ramfs"))
            image = make_image(os.path.join(mnt, f"disk{i}.img"), size)
            devs.append(stack.enter_context(loop_device(image)))
        for _ in range(args.repeat):
            for workers in (1, 3):
                for name in ("largezero", "shred"):
                    for dev in devs:
                        fill_pattern(dev, 0, size)
                        os.sync()
                    seconds = clean(devs, size, NODES[name], workers)
                    ok = all(all_zero(d) for d in devs)
                    rows.append({"manager": name, "concurrency": workers, "devices": len(devs), "size": size,
                                 "seconds": round(seconds, 3), "all_zero": ok,
                                 "MiB_per_s": round(3 * size / seconds / (1 << 20), 1)})
                    if not args.json:
                        print(f"{name:9} concurrency {workers}: {seconds:7.2f} s for 3 x {args.size} "
                              f"({rows[-1]['MiB_per_s']} MiB/s), all zero: {ok}", flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
