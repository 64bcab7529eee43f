"""The ironic-python-agent hardware manager, loaded and called by IPA itself.

IPA's ``hardware.get_managers()`` finds the manager through the package's entry point, and
``hardware.dispatch_to_managers('erase_block_device', ...)`` runs the call the way IPA's
``erase_devices`` step does for each device. Safety: the tests only ever pass devices they
attached; they never call a step that lists the machine's devices (erase_devices,
erase_devices_metadata, list_block_devices), and ``disk_wait_attempts = 0`` keeps IPA's
start-up from looking for a root disk. While IPA runs, PATH holds only the tools an erase uses:
IPA's start-up would otherwise assemble md arrays, load kernel modules and start multipathd,
global changes this shared machine must not get (without the tools IPA logs and goes on).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator

import pytest

from .helpers import mounted, requires_root

# The agent registers its options (ironic_python_agent.config) before it imports anything else.
pytest.importorskip("ironic_python_agent.config", reason="ironic-python-agent is not installed")
hardware = pytest.importorskip("ironic_python_agent.hardware", reason="ironic-python-agent is not installed")
ipa_errors = pytest.importorskip("ironic_python_agent.errors")

SIZE = 32 << 20
# What erase_block_device runs, on this machine: IPA's generic manager (hdparm, lsblk, shred)
# and largezero's firmware probes (hdparm, smartctl, nvme); readlink for IPA's NIC probes. Missing ones are skipped.
ERASE_TOOLS = ("hdparm", "lsblk", "blkid", "shred", "smartctl", "nvme", "udevadm", "readlink")


@contextlib.contextmanager
def ipa_path() -> Iterator[None]:
    """PATH = a directory of links to the erase tools only, for as long as IPA runs."""
    saved = os.environ.get("PATH", "")
    with tempfile.TemporaryDirectory(prefix="largezero-ipa-bin-") as bindir:
        for tool in ERASE_TOOLS:
            found = shutil.which(tool, path=saved)
            if found:
                os.symlink(found, os.path.join(bindir, tool))
        os.environ["PATH"] = bindir
        try:
            yield
        finally:
            os.environ["PATH"] = saved


@pytest.fixture
def ipa() -> Iterator[object]:
    """IPA's hardware module with its managers loaded afresh, the way the agent loads them."""
    from oslo_config import cfg

    cfg.CONF.set_override("disk_wait_attempts", 0)
    hardware._global_managers = None  # no managers left from another test
    try:
        with ipa_path():
            hardware.get_managers()
        yield hardware
    finally:
        hardware._global_managers = None
        cfg.CONF.clear_override("disk_wait_attempts")


@pytest.fixture
def ext4_loop(ramfs_loop: Callable[[int], str]) -> Callable[[], str]:
    """Factory: a loop device over a ramfs file full of data, with an ext4 filesystem holding a file."""

    def make() -> str:
        dev = ramfs_loop(SIZE)  # data everywhere, also outside the filesystem's blocks
        # No lazy init: nothing writes to the device after mkfs unless asked.
        subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", dev],
                       check=True, capture_output=True)
        with mounted(dev) as where, open(os.path.join(where, "tenant.txt"), "w") as f:
            f.write("the last tenant's data\n")
        return dev

    return make


def digest(dev: str) -> tuple[str, bool]:
    """(sha256 of the whole device, whether every byte is zero), read with O_DIRECT."""
    import mmap

    h = hashlib.sha256()
    zero = True
    buf = mmap.mmap(-1, 1 << 20)
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    try:
        pos = 0
        while (n := os.preadv(fd, [buf], pos)) > 0:
            h.update(buf[:n])
            zero = zero and buf[:n].count(0) == n
            pos += n
    finally:
        os.close(fd)
        buf.close()
    return h.hexdigest(), zero


def block_device(dev: str) -> object:
    return hardware.BlockDevice(dev, "loop", SIZE, False)


NODE = {"uuid": "5f0d6fa4-0000-4000-8000-00000000a1b2", "driver_info": {}, "properties": {},
        "driver_internal_info": {}}


@requires_root
def test_ipa_loads_largezero_before_the_generic_manager(ipa: object) -> None:
    names = [type(m).__name__ for m in hardware.get_managers()]
    assert "LargezeroHardwareManager" in names and "GenericHardwareManager" in names
    assert names.index("LargezeroHardwareManager") < names.index("GenericHardwareManager")


@requires_root
def test_erase_block_device_zeroes_the_whole_device_and_returns_the_record(
        ipa: object, ext4_loop: Callable[[], str]) -> None:
    dev = ext4_loop()
    assert not digest(dev)[1]
    with ipa_path():
        record = hardware.dispatch_to_managers("erase_block_device", NODE, block_device(dev))
    assert digest(dev)[1], "a non-zero byte is left on the device"
    assert record["target"] == dev
    assert record["offset"] == 0 and record["bytes_zeroed"] == SIZE
    assert record["direct"] is True and record["medium_overwritten"] is True and record["synced"] is True
    verify = record["verify"]
    assert isinstance(verify, dict)
    assert verify["zero"] is True and verify["bytes_read"] == SIZE and verify["direct"] is True
    blkid = subprocess.run(["blkid", "-p", dev], capture_output=True, text=True)
    assert blkid.returncode == 2, blkid.stdout  # no signature left


@requires_root
def test_erase_block_device_refuses_a_mounted_device_and_writes_nothing(
        ipa: object, ext4_loop: Callable[[], str]) -> None:
    dev = ext4_loop()
    with mounted(dev) as where:
        before = digest(dev)[0]
        with ipa_path(), pytest.raises(ipa_errors.BlockDeviceEraseError) as caught:
            hardware.dispatch_to_managers("erase_block_device", NODE, block_device(dev))
        message = str(caught.value)
        assert "mounted on " + where in message and "nothing written" in message
        assert "force" not in message  # IPA has no way to force it, so the hint is not given
        with open(os.path.join(where, "tenant.txt")) as f:
            assert f.read() == "the last tenant's data\n"
        assert digest(dev)[0] == before


@requires_root
def test_node_can_turn_largezero_off_for_the_generic_manager(ipa: object) -> None:
    manager = next(m for m in hardware.get_managers() if type(m).__name__ == "LargezeroHardwareManager")
    node = {**NODE, "driver_info": {"largezero_enabled": "false"}}
    with pytest.raises(ipa_errors.IncompatibleHardwareMethodError, match="largezero_enabled is false"):
        manager.erase_block_device(node, hardware.BlockDevice("/dev/loop-never-opened", "loop", SIZE, False))


def test_node_settings_defaults_overrides_and_typos() -> None:
    from largezero.integrations.ironic import NodeSettings, node_settings

    assert node_settings({}) == NodeSettings()
    got = node_settings({"properties": {"largezero_verify": "no", "largezero_call_size": "8M"},
                         "driver_info": {"largezero_verify": True, "largezero_overwrite": "false"}})
    assert got == NodeSettings(verify=True, overwrite=False, call_size=8 << 20)
    with pytest.raises(ipa_errors.InvalidCommandParamsError, match="largezero_verfy"):
        node_settings({"driver_info": {"largezero_verfy": False}})
    with pytest.raises(ipa_errors.InvalidCommandParamsError, match="expected true or false"):
        node_settings({"driver_info": {"largezero_verify": "maybe"}})


HDPARM_SECURITY = """
/dev/sda:
Security: \n\tMaster password revision code = 65534
\t\tsupported
\tnot\tenabled
\tnot\tlocked
\t%s
\tnot\texpired: security count
\t\tsupported: enhanced erase
Logical Unit WWN Device Identifier: 5000c500a1b2c3d4
"""


def test_ata_security_lines_parse_as_ipa_parses_them() -> None:
    from largezero.integrations.ironic import ata_security_lines

    lines = ata_security_lines(HDPARM_SECURITY % "not\tfrozen")
    assert "supported" in lines and "not frozen" in lines and "not locked" in lines
    assert "frozen" in ata_security_lines(HDPARM_SECURITY % "\tfrozen")
    assert ata_security_lines("\n/dev/loop0:\n") == []  # hdparm -I on a loop device prints nothing


def changed_bytes(before: bytes, after: bytes) -> set[int]:
    """Offsets of the bytes that differ (compared 64 KiB at a time, then byte by byte)."""
    step = 1 << 16
    return {i for block in range(0, len(before), step) if before[block:block + step] != after[block:block + step]
            for i in range(block, min(block + step, len(before))) if before[i] != after[i]}


def whole(dev: str) -> bytes:
    fd = os.open(dev, os.O_RDONLY)
    try:
        return os.pread(fd, SIZE, 0)
    finally:
        os.close(fd)


@requires_root
def test_metadata_step_zeroes_every_signature_at_its_offset_and_nothing_else(
        ipa: object, ramfs_loop: Callable[[int], str], ext4_loop: Callable[[], str]) -> None:
    gpt = ramfs_loop(SIZE)
    subprocess.run(["sfdisk", "-q", "--no-reread", gpt], input="label: gpt\n,8M\n,8M\n", text=True,
                   check=True, capture_output=True)
    fs = ext4_loop()
    before = {d: whole(d) for d in (gpt, fs)}
    with ipa_path():
        got = {d: hardware.dispatch_to_managers("erase_block_device_metadata", NODE, block_device(d))
               for d in (gpt, fs)}
    # The PMBR's boot signature, the primary GPT header's magic, then the backup header's, found
    # only once the primary is gone; on the ext4 device the superblock magic.
    assert [(z["signature"]["type"], z["signature"]["offset"]) for z in got[gpt]] == \
        [("gpt", 512), ("gpt", SIZE - 512), ("PMBR", 510)]
    assert [(z["signature"]["type"], z["signature"]["offset"]) for z in got[fs]] == [("ext4", 0x438)]
    assert all(z["record"]["verify"]["zero"] is True for z in got[gpt] + got[fs])
    assert changed_bytes(before[gpt], whole(gpt)) == {510, 511, *range(512, 520), *range(SIZE - 512, SIZE - 504)}
    assert changed_bytes(before[fs], whole(fs)) == {0x438, 0x439}
    for d in (gpt, fs):
        left = subprocess.run(["wipefs", "--no-act", "--all", d], capture_output=True, text=True)
        assert left.stdout == "", left.stdout


@requires_root
def test_metadata_step_refuses_a_mounted_device(ipa: object, ext4_loop: Callable[[], str]) -> None:
    dev = ext4_loop()
    with mounted(dev) as where:
        before = digest(dev)[0]
        with ipa_path(), pytest.raises(ipa_errors.BlockDeviceEraseError, match=f"mounted on {where}"):
            hardware.dispatch_to_managers("erase_block_device_metadata", NODE, block_device(dev))
        assert digest(dev)[0] == before
