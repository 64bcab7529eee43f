"""largezero as ironic-python-agent's erase step (install ``largezero[ironic]`` into the ramdisk).

IPA loads hardware managers from the entry point group ``ironic_python_agent.hardware_managers``
(this one is ``largezero``) and dispatches each call to the manager with the highest support
level first; one that raises ``IncompatibleHardwareMethodError`` passes the call to the next.
This manager reports ``SERVICE_PROVIDER``, so it sees ``erase_block_device`` before IPA's
``GenericHardwareManager`` does, and for each device:

* passes the call on where the generic manager would use the device's own firmware erase (NVMe
  whose controller supports Format NVM, ATA with security erase supported and not frozen), and
  where the generic manager has a policy of its own (the virtual media device, read-only
  devices) or the node turns largezero off;
* everywhere else (virtual disks, loop devices, disks without firmware erase) zeroes the whole
  device with the library job: zeros over every byte with O_DIRECT from the large zero page,
  flushed, read back with O_DIRECT, and logs and returns the record (the object
  ``largezero zero --json`` prints), which IPA reports as the step's result for that device;
* refuses a device that is mounted, held (device mapper, md), active swap or backing a loop
  device, with an error that says which, and writes nothing to it. Signatures are no reason to
  refuse here: erasing the last tenant's filesystems is the point.

``erase_block_device_metadata(node, block_device)`` is the per-device metadata step: every
signature libblkid finds (both GPT headers and the protective MBR, md superblocks at the end,
LVM, LUKS, filesystems) zeroed at its own offset with the job and read back, nothing else written
(:mod:`largezero.job.metadata`). ``erase_devices_metadata``, the clean step, runs it over the
devices IPA would clean, partitions before their disks, as the generic step does.

Options come from the node, ``driver_info`` over ``properties``, named ``largezero_*``
(:data:`DEFAULTS`; docs/fleet.md). IPA's own ``agent_enable_nvme_secure_erase`` and
``agent_enable_ata_secure_erase`` (``driver_internal_info``) are honoured: where the operator
turned firmware erase off, largezero zeroes the device instead.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from typing import Any

# config first, as the agent does: it registers the options hardware reads at import.
from ironic_python_agent import config as _config  # noqa: F401
from ironic_python_agent import errors, hardware

from .._record import record
from ..sysfiles import read_int

LOG = logging.getLogger(__name__)

# OACS bit 1: the controller supports Format NVM (IPA's NVME_CLI_FORMAT_SUPPORTED_FLAG).
NVME_FORMAT_SUPPORTED = 0x2
# The label of the virtual media device Ironic attaches; the generic manager skips it.
VIRTUAL_MEDIA_LABEL = "/dev/disk/by-label/ir-vfd-dev"

# The node's options: name -> default. Unknown ``largezero_*`` names are refused (a typo must not
# quietly fall back to a default).
DEFAULTS: dict[str, object] = {
    "largezero_enabled": True,  # False: every device goes to the next manager (the generic one)
    "largezero_firmware_first": True,  # False: zero even where firmware erase exists
    "largezero_overwrite": True,  # False: offload allowed (the device reads as zero, not overwritten)
    "largezero_verify": True,  # read every byte back (O_DIRECT with overwrite)
    "largezero_method": "auto",  # auto, large, page (offload only without overwrite)
    "largezero_call_size": None,  # bytes per write call: an int or "32M"; None: the engine's choice
}


@record(frozen=True)
class NodeSettings:
    enabled: bool = True
    firmware_first: bool = True
    overwrite: bool = True
    verify: bool = True
    method: str = "auto"
    call_size: int | None = None


def _flag(name: str, value: object) -> bool:
    """Ironic stores what operators type: true/false as booleans or as strings."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise errors.InvalidCommandParamsError(f"node option {name}: expected true or false, not {value!r}")


def node_settings(node: dict[str, Any]) -> NodeSettings:
    """The node's ``largezero_*`` options, ``driver_info`` over ``properties``, with defaults."""
    merged: dict[str, object] = {}
    for source in (node.get("properties") or {}, node.get("driver_info") or {}):
        merged.update((k, v) for k, v in source.items() if k.startswith("largezero_"))
    unknown = sorted(set(merged) - set(DEFAULTS))
    if unknown:
        raise errors.InvalidCommandParamsError(f"unknown node option {', '.join(unknown)} "
                                               f"(known: {', '.join(DEFAULTS)})")
    got = {**DEFAULTS, **merged}
    call_size = got["largezero_call_size"]
    if call_size is not None and not isinstance(call_size, int):
        from ..errors import UsageError
        from ..units import parse_size

        try:
            call_size = parse_size(str(call_size), what="largezero_call_size")
        except UsageError as err:
            raise errors.InvalidCommandParamsError(f"node option {err}") from None
    return NodeSettings(
        enabled=_flag("largezero_enabled", got["largezero_enabled"]),
        firmware_first=_flag("largezero_firmware_first", got["largezero_firmware_first"]),
        overwrite=_flag("largezero_overwrite", got["largezero_overwrite"]),
        verify=_flag("largezero_verify", got["largezero_verify"]),
        method=str(got["largezero_method"]),
        call_size=call_size,
    )


def _output(argv: list[str]) -> str | None:
    """A probe's standard output, or None when the tool is missing or fails."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def ata_security_lines(hdparm_identify: str) -> list[str]:
    """The lines of the ``Security:`` section of ``hdparm -I``, parsed as IPA parses them."""
    if "\nSecurity: \n" not in hdparm_identify:
        return []
    lines = []
    for line in hdparm_identify.split("\nSecurity: \n", 1)[1].split("\n"):
        if not line.startswith("\t"):
            break
        lines.append(line.strip().replace("\t", " "))
    return lines


def _smartctl_allows_ata(name: str) -> bool:
    """IPA's smartctl check: no smartctl is no objection; a failure or 'Unavailable' is one."""
    try:
        done = subprocess.run(["smartctl", "-d", "ata", name, "-g", "security"], capture_output=True, text=True,
                              timeout=120, check=False)
    except FileNotFoundError:
        return True
    except (OSError, subprocess.SubprocessError):
        return False
    if done.returncode not in (0, 127):
        return False
    return "Unavailable" not in done.stdout


def firmware_erase(name: str, internal_info: dict[str, Any]) -> str | None:
    """The firmware erase IPA's generic manager would run on ``name``, or None where it has none."""
    if name.startswith("/dev/nvme"):
        if not internal_info.get("agent_enable_nvme_secure_erase", True):
            return None
        out = _output(["nvme", "id-ctrl", name, "-o", "json"])
        try:
            oacs = int(json.loads(out)["oacs"]) if out else 0
        except (ValueError, KeyError, TypeError):
            return None
        return "NVMe format" if oacs & NVME_FORMAT_SUPPORTED else None
    if not internal_info.get("agent_enable_ata_secure_erase", True):
        return None
    lines = ata_security_lines(_output(["hdparm", "-I", name]) or "")
    # A frozen drive cannot be erased this boot: the generic manager would fail it or shred it.
    if "supported" in lines and "not frozen" in lines and _smartctl_allows_ata(name):
        return "ATA security erase"
    return None


def _read_only(name: str) -> bool:
    return read_int(f"/sys/class/block/{os.path.basename(os.path.realpath(name))}/ro") == 1


def _virtual_media(name: str) -> bool:
    return os.path.exists(VIRTUAL_MEDIA_LABEL) and os.path.realpath(VIRTUAL_MEDIA_LABEL) == os.path.realpath(name)


def reason(err: BaseException) -> str:
    """The library's one-line refusal without its hint to use ``force`` (not offered here)."""
    return str(err).split("; use force", 1)[0]


class LargezeroHardwareManager(hardware.HardwareManager):  # type: ignore[misc]  # IPA is untyped
    HARDWARE_MANAGER_NAME = "largezero"
    HARDWARE_MANAGER_VERSION = "1.0"

    def evaluate_hardware_support(self) -> int:
        # Above the generic manager (GENERIC) and the mainline ones, so that it is asked first.
        return int(hardware.HardwareSupport.SERVICE_PROVIDER)

    def passes_on(self, node: dict[str, Any], name: str, settings: NodeSettings) -> str | None:
        """Why the next manager should handle ``name``, or None when largezero zeroes it."""
        if not settings.enabled:
            return "largezero_enabled is false for this node"
        if _virtual_media(name):
            return "it is the virtual media device"
        if _read_only(name):
            return "it is read-only (the generic manager applies agent_erase_skip_read_only)"
        if settings.firmware_first:
            firmware = firmware_erase(name, node.get("driver_internal_info") or {})
            if firmware:
                return f"it has {firmware}, which runs first"
        return None

    def erase_block_device(self, node: dict[str, Any], block_device: Any) -> dict[str, object]:
        """Zero the whole device with the library job and return its record (see the module)."""
        name = block_device.name
        settings = node_settings(node)
        why = self.passes_on(node, name, settings)
        if why:
            LOG.info("largezero: leaving %s to the next hardware manager: %s", name, why)
            raise errors.IncompatibleHardwareMethodError(f"largezero leaves {name} to the next manager: {why}")
        from ..engine.options import ZeroOptions
        from ..errors import LargezeroError, ZeroingError
        from ..job import zero_job

        opts = ZeroOptions(method=settings.method, overwrite=settings.overwrite, sync=True, force_signatures=True,
                           call_size=settings.call_size)
        LOG.info("largezero: zeroing all of %s (%s, verify %s)", name,
                 "zeros over every byte with O_DIRECT" if settings.overwrite else "offload allowed", settings.verify)
        try:
            result = zero_job(name, options=opts, verify=settings.verify)
        except ZeroingError as err:
            raise errors.BlockDeviceEraseError(f"largezero failed part way on {name}: {reason(err)}") from None
        except LargezeroError as err:
            raise errors.BlockDeviceEraseError(f"largezero did not erase {name} (nothing written): "
                                               f"{reason(err)}") from None
        out = result.to_json()
        if not result.ok:
            assert result.verified is not None  # not ok means verified and found a non-zero byte
            raise errors.BlockDeviceEraseError(f"largezero zeroed {name}, but reading it back found a non-zero "
                                               f"byte at {result.verified.first_nonzero}")
        LOG.info("largezero: erased %s: %s", name, json.dumps(out, sort_keys=True))
        return out

    def erase_block_device_metadata(self, node: dict[str, Any], block_device: Any) -> list[dict[str, object]]:
        """Zero every signature on one device (see the module); refuses a device in use."""
        name = block_device.name
        settings = node_settings(node)
        if not settings.enabled:
            raise errors.IncompatibleHardwareMethodError("largezero_enabled is false for this node")
        from ..errors import LargezeroError
        from ..job.metadata import zero_metadata

        try:
            zeroed = zero_metadata(name, verify=settings.verify)
        except LargezeroError as err:
            raise errors.BlockDeviceEraseError(f"largezero did not clear the metadata of {name}: {reason(err)}") \
                from None
        LOG.info("largezero: zeroed %d signature(s) on %s: %s", len(zeroed), name,
                 json.dumps([z["signature"] for z in zeroed], sort_keys=True))
        return zeroed

    def erase_devices_metadata(self, node: dict[str, Any], ports: Any) -> dict[str, object]:
        """The clean step: the metadata step on every device IPA would clean (never called by tests)."""
        if not node_settings(node).enabled:
            raise errors.IncompatibleHardwareMethodError("largezero_enabled is false for this node")
        devices = hardware.dispatch_to_managers("list_block_devices_check_skip_list", node,
                                                include_partitions=True, include_wipe=True)
        # Partitions first (sda1 before sda): they vanish once the disk's partition table is gone.
        devices.sort(key=lambda dev: dev.name, reverse=True)
        done: dict[str, object] = {}
        failed: dict[str, str] = {}
        for dev in devices:
            skip = _skip_for_metadata(dev.name)
            if skip:
                LOG.info("largezero: not clearing the metadata of %s: %s", dev.name, skip)
                continue
            hardware.safety_check_block_device(node, dev.name)
            try:
                done[dev.name] = self.erase_block_device_metadata(node, dev)
            except errors.BlockDeviceEraseError as err:
                failed[dev.name] = str(err.details)
        if failed:
            raise errors.BlockDeviceEraseError("; ".join(f"{k}: {v}" for k, v in failed.items()))
        return done


def _skip_for_metadata(name: str) -> str | None:
    """Devices the generic step skips too; an assembled array's member is cleaned as the array."""
    if _virtual_media(name):
        return "it is the virtual media device"
    if _read_only(name):
        return "it is read-only"
    try:
        holders = os.listdir(f"/sys/class/block/{os.path.basename(os.path.realpath(name))}/holders")
    except OSError:
        holders = []
    if any(h.startswith("md") for h in holders):
        return f"it is a member of the assembled array {', '.join(holders)}, which is cleaned instead"
    return None
