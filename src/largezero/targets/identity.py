"""What a target is, for an erasure record: sysfs identity of a device, inode of a file, and
whether writes to it overwrite the medium in place."""

from __future__ import annotations

import os

from ..sysfiles import block_dir, mount_of, read_int, read_text
from .fsinfo import copy_on_write, fs_magic, fs_name
from .inuse import loop_devices

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from . import Target


def _read(path: str) -> str | None:
    # Serial numbers and models go into a record: undecodable bytes become U+FFFD, not an error.
    return read_text(path, errors="replace") or None


def _disk_dir(rdev: int) -> str | None:
    """The sysfs directory of the whole disk (a partition's parent), resolved."""
    base = os.path.realpath(block_dir(rdev))
    if not os.path.isdir(base):
        return None
    return os.path.dirname(base) if os.path.exists(os.path.join(base, "partition")) else base


def loop_backing(rdev: int) -> dict[str, object] | None:
    """Backing file, offset and size limit of a loop device, from sysfs; None if not a loop."""
    for name, loop_rdev, backing in loop_devices():
        if loop_rdev == rdev:
            base = f"/sys/block/{name}/loop"
            return {"device": f"/dev/{name}", "backing_file": backing, "offset": read_int(f"{base}/offset"),
                    "sizelimit": read_int(f"{base}/sizelimit"), "direct_io": _read(f"{base}/dio") == "1"}
    return None


def block_identity(tgt: Target) -> dict[str, object]:
    disk = _disk_dir(tgt.rdev)
    dev = os.path.join(disk, "device") if disk else None

    def attr(*names: str) -> str | None:
        # NVMe keeps serial/model on the controller (device/), SCSI/ATA on the device; wwid
        # sits on the disk (nvme) or the device (SCSI "wwid", ATA "wwid" as "t10.ATA ...").
        for name in names:
            for where in (disk, dev):
                if where:
                    value = _read(os.path.join(where, name))
                    if value:
                        return value
        return None

    return {
        "kind": tgt.kind,
        "device": tgt.path,
        "name": tgt.block_name,
        "dev": f"{os.major(tgt.rdev)}:{os.minor(tgt.rdev)}",
        "model": attr("model"),
        "vendor": attr("vendor"),
        "serial": attr("serial", "vpd_pg80"),
        "wwn": attr("wwid", "wwn"),
        "firmware": attr("firmware_rev", "rev"),
        "size": tgt.size,
        "logical_block_size": tgt.logical_block_size,
        "physical_block_size": tgt.physical_block_size,
        "rotational": (_read(os.path.join(disk, "queue", "rotational")) == "1") if disk else None,
        "removable": (_read(os.path.join(disk, "removable")) == "1") if disk else None,
        "diskseq": read_int(os.path.join(disk, "diskseq")) if disk else None,
        "loop": loop_backing(tgt.rdev),
    }


def file_identity(tgt: Target) -> dict[str, object]:
    dev, ino = tgt.dev_ino
    mount = mount_of(dev)
    return {
        "kind": tgt.kind,
        "path": tgt.path,
        "dev": f"{os.major(dev)}:{os.minor(dev)}",
        "ino": ino,
        "size": tgt.size,
        "filesystem": (mount.fstype if mount else None) or fs_name(fs_magic(tgt.fd)),
        "mount_point": mount.point if mount else None,
        "fs_source": mount.source if mount else None,
    }


def target_copy_on_write(tgt: Target) -> str | None:
    """None when writes overwrite the medium in place, else why not (see fsinfo.copy_on_write)."""
    if tgt.kind != "block":
        return copy_on_write(tgt.fd)
    loop = loop_backing(tgt.rdev)
    if loop is None:
        return None
    backing = str(loop["backing_file"])
    # Only a regular file is opened (read-only, for statfs and FS_IOC_GETFLAGS): a loop over a
    # block device is that device's business, and we never open a device we did not attach.
    fd = None
    try:
        if os.path.isfile(backing):
            fd = os.open(backing, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        pass
    if fd is None:
        return None
    try:
        if not os.path.isfile(f"/proc/self/fd/{fd}"):
            return None  # replaced by something else between the check and the open
        why = copy_on_write(fd)
    finally:
        os.close(fd)
    if why is None:
        return None
    fs = why.split(" ", 1)[0]
    return f"a loop device over a file on {fs}" + (f" ({why})" if why != fs else "")
