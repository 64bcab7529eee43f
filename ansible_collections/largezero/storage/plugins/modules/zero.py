#!/usr/bin/python
# Copyright: largezero developers
# MIT License (see the largezero repository's LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: zero
short_description: Zero a range of a file or block device with largezero
version_added: "0.1.0"
description:
  - Zeroes O(offset) to O(offset)+O(length) of a regular file or block device on the managed host
    with the largezero library job, the same job C(largezero zero --json) runs, and returns its
    record.
  - A target that is in use (mounted, held by device mapper or md, active swap, backing a loop
    device) or that carries a partition table or filesystem signature is refused with a one-line
    C(msg) naming the reason, and nothing is written, unless O(force=true).
  - Check mode is the dry run. Nothing is written; the result has C(changed=true) when the run
    would write and the plan in RV(plan). A target that the run would refuse fails in check mode too.
requirements:
  - largezero (the Python package, on the managed host)
  - Linux
options:
  target:
    description: The regular file or block device to zero.
    type: path
    required: true
  offset:
    description:
      - First byte to zero, as the command line takes sizes (V(4096), V(0x1000), V(1M), V(1MiB), V(1MB)).
    type: raw
    default: 0
  length:
    description:
      - Bytes to zero from O(offset), in the same forms. Omitted, to the end of the target.
    type: raw
  method:
    description:
      - V(auto) offloads where the device or filesystem really zeroes (write-zeroes, BLKZEROOUT,
        fallocate) and otherwise writes from the large zero page; V(offload), V(large) and V(page)
        force one way.
    type: str
    choices: [auto, offload, large, page]
    default: auto
  overwrite:
    description:
      - Write zeros over every byte with O_DIRECT (no offload, no unmap), so the medium is
        overwritten rather than only reading as zero.
    type: bool
    default: false
  verify:
    description:
      - Read the range back after zeroing (with O_DIRECT when O(overwrite=true)); a non-zero byte
        fails the task and RV(record.verify) says where.
    type: bool
    default: false
  sync:
    description: Flush the data to the device (fdatasync, device cache flush) before reporting success.
    type: bool
    default: true
  force:
    description:
      - Zero a target that is in use or carries a signature. Without it such a target is refused.
    type: bool
    default: false
notes:
  - Supports check mode (the dry run); no diff mode.
  - The module calls the largezero library, not the command; install largezero on each managed host
    (C(pip install largezero)).
author:
  - largezero developers
"""

EXAMPLES = r"""
- name: Zero a released data disk, overwriting every byte and reading it back
  largezero.storage.zero:
    target: /dev/vdb
    overwrite: true
    verify: true
  register: zeroed

- name: Zero the first 64 MiB of an image file
  largezero.storage.zero:
    target: /srv/images/disk.img
    length: 64M

- name: What would be written (check mode is the dry run)
  largezero.storage.zero:
    target: /dev/vdb
    overwrite: true
  check_mode: true
  register: plan
"""

RETURN = r"""
record:
  description:
    - The job's record, exactly the object C(largezero zero --json) prints for the target, with
      method, mechanism, C(direct), C(offset), C(length), C(bytes_zeroed), C(medium_overwritten),
      C(synced), C(seconds), the device's measured and the model's predicted requests, the target's
      identity and, with O(verify), C(verify) (C(zero), C(first_nonzero), C(bytes_read)).
    - On a failure part way, the error object instead (C(error), C(bytes_zeroed), C(stopped_at)).
  returned: when the job ran or failed part way (not in check mode)
  type: dict
plan:
  description:
    - The dry run's object (C(largezero zero --dry-run --json)) - C(dry_run), C(plan) (method, calls, why),
      C(zero_buffer) and, on a block device, C(predicted).
  returned: in check mode
  type: dict
bytes_zeroed:
  description: Bytes zeroed (in check mode, the bytes the run would zero).
  returned: unless refused
  type: int
msg:
  description: One line saying what was done or, on failure, why (for example that the device is mounted).
  returned: always
  type: str
"""

# Ansible reads the documentation above without importing the module: imports come after it.
import traceback  # noqa: E402

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402

try:
    import largezero
    from largezero.units import parse_size
except ImportError:
    LARGEZERO_IMPORT_ERROR = traceback.format_exc()
else:
    LARGEZERO_IMPORT_ERROR = None


def _size(module, name):
    value = module.params[name]
    if value is None:
        return None
    if isinstance(value, bool):  # YAML's yes/no is no size
        module.fail_json(msg=f"{name}: expected a size, not {value!r}")
    try:
        return parse_size(str(value), what=name)
    except largezero.UsageError as err:
        module.fail_json(msg=str(err))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            target=dict(type="path", required=True),
            offset=dict(type="raw", default=0),
            length=dict(type="raw"),
            method=dict(type="str", choices=["auto", "offload", "large", "page"], default="auto"),
            overwrite=dict(type="bool", default=False),
            verify=dict(type="bool", default=False),
            sync=dict(type="bool", default=True),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    if LARGEZERO_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("largezero"), exception=LARGEZERO_IMPORT_ERROR)

    p = module.params
    target = p["target"]
    offset = _size(module, "offset")
    length = _size(module, "length")
    dry_run = module.check_mode
    options = largezero.ZeroOptions(method=p["method"], overwrite=p["overwrite"], force=p["force"],
                                    sync=p["sync"] and not dry_run)  # a dry run writes nothing to sync
    try:
        result = largezero.zero_job(target, offset, length, options=options,
                                    verify=p["verify"] and not dry_run, dry_run=dry_run)
    except largezero.ZeroingError as err:
        from largezero.job import error_json

        module.fail_json(msg=str(err), changed=err.bytes_zeroed > 0, record=error_json(target, err))
    except largezero.LargezeroError as err:
        # Refused before anything was written: in use, a signature, a bad range or option.
        module.fail_json(msg=str(err), changed=False)
    out = result.to_json()
    if dry_run:
        planned = out["plan"]["length"]
        module.exit_json(changed=planned > 0, plan=out, bytes_zeroed=planned,
                         msg=f"check mode: would zero {planned} bytes of {target} ({out['plan']['method']})")
    zeroed = out["bytes_zeroed"]
    if not result.ok:
        module.fail_json(msg=f"{target}: zeroed {zeroed} bytes, but reading them back found a non-zero byte "
                             f"at {result.verified.first_nonzero}", changed=zeroed > 0, record=out,
                         bytes_zeroed=zeroed)
    checked = ", read back as zero" if result.verified is not None else ""
    module.exit_json(changed=zeroed > 0, record=out, bytes_zeroed=zeroed,
                     msg=f"zeroed {zeroed} bytes of {target} ({out['mechanism']}){checked}")


if __name__ == "__main__":
    main()
