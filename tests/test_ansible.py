"""The Ansible module largezero.storage.zero, run by a real ansible-playbook.

Three inventory hosts, all this machine (``ansible_connection=local``, the venv's interpreter,
forks 3), each zeroing its own loop device with overwrite and verify; one device is mounted.
Ansible's tree callback writes each host's task result to a JSON file (what the module returned,
less the ``failed`` flag), and the play recap says which hosts failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest

from largezero.scratch import fill_pattern, loop_device, make_image, memfs_mount

from .helpers import mounted, read_range, requires_root

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
SIZE = 16 << 20

pytestmark = pytest.mark.skipif(not os.path.exists(PLAYBOOK_BIN), reason="ansible-core is not installed in the venv")

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: zero this host's device
      largezero.storage.zero:
        target: "{{ device }}"
        overwrite: true
        verify: true
"""


def run_playbook(work: str, hosts: dict[str, str], check: bool, results: str,
                 interpreter: str = sys.executable) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, int]]]:
    """Each host's task result, and its recap counters (ok, changed, failed, ...)."""
    os.makedirs(results, exist_ok=True)
    inventory = os.path.join(work, "inventory.ini")
    with open(inventory, "w") as f:
        f.write("[all]\n")
        for host, device in hosts.items():
            f.write(f"{host} ansible_connection=local ansible_python_interpreter={interpreter} device={device}\n")
    playbook = os.path.join(work, "zero.yml")
    with open(playbook, "w") as f:
        f.write(PLAYBOOK)
    config = os.path.join(work, "ansible.cfg")  # an empty one: no user or system configuration
    open(config, "w").close()
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": REPO, "ANSIBLE_LOCAL_TEMP": os.path.join(work, "tmp"),
           "ANSIBLE_REMOTE_TEMP": os.path.join(work, "tmp"), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_CONFIG": config,
           "ANSIBLE_RETRY_FILES_ENABLED": "0",
           "ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.tree", "ANSIBLE_CALLBACK_TREE_DIR": results,
           "ANSIBLE_PIPELINING": "1", "ANSIBLE_PYTHON_INTERPRETER": interpreter}
    argv = [PLAYBOOK_BIN, "-i", inventory, "--forks", "3", playbook]
    if check:
        argv.append("--check")
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    recap = {}
    for line in done.stdout.split("PLAY RECAP", 1)[-1].splitlines():
        host, sep, counters = line.partition(" : ")
        if sep:
            recap[host.strip()] = {k: int(v) for k, v in (c.split("=") for c in counters.split())}
    assert set(recap) == set(hosts), done.stdout + done.stderr
    # ansible-playbook exits 2 when a host failed, 0 when none did.
    assert done.returncode == (2 if any(r["failed"] for r in recap.values()) else 0), done.stdout + done.stderr
    out = {}
    for host in hosts:
        with open(os.path.join(results, host)) as f:
            out[host] = json.load(f)
    return out, recap


@requires_root
def test_playbook_over_three_hosts_check_mode_then_real_run(tmp_path: os.PathLike[str]) -> None:
    work = os.fspath(tmp_path)
    with contextlib.ExitStack() as stack:
        mnt = stack.enter_context(memfs_mount("ramfs"))
        devs = []
        for i in range(3):
            image = make_image(os.path.join(mnt, f"host{i}.img"), SIZE)
            fill_pattern(image, 0, SIZE)
            devs.append(stack.enter_context(loop_device(image)))
        subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", devs[2]],
                       check=True, capture_output=True)
        where = stack.enter_context(mounted(devs[2]))
        with open(os.path.join(where, "tenant.txt"), "w") as f:
            f.write("still here\n")
        hosts = {"alpha": devs[0], "bravo": devs[1], "charlie": devs[2]}
        before = {d: read_range(d, 0, SIZE) for d in devs[:2]}

        checked, recap = run_playbook(work, hosts, check=True, results=os.path.join(work, "check"))
        assert {h: (c["changed"], c["failed"]) for h, c in recap.items()} == \
            {"alpha": (1, 0), "bravo": (1, 0), "charlie": (0, 1)}
        for host in ("alpha", "bravo"):
            r = checked[host]
            assert r["changed"] is True, r
            assert r["plan"]["dry_run"] is True and r["plan"]["plan"]["length"] == SIZE
            assert r["plan"]["plan"]["direct"] is True and "record" not in r
        assert checked["charlie"]["changed"] is False and "plan" not in checked["charlie"]
        assert f"mounted on {where}" in checked["charlie"]["msg"]
        assert "\n" not in checked["charlie"]["msg"]
        for d in devs[:2]:
            assert read_range(d, 0, SIZE) == before[d], "check mode wrote to a device"

        ran, recap = run_playbook(work, hosts, check=False, results=os.path.join(work, "run"))
        assert {h: (c["changed"], c["failed"]) for h, c in recap.items()} == \
            {"alpha": (1, 0), "bravo": (1, 0), "charlie": (0, 1)}
        for host, dev in (("alpha", devs[0]), ("bravo", devs[1])):
            r = ran[host]
            assert r["changed"] is True, r
            record = r["record"]
            assert record["target"] == dev and record["bytes_zeroed"] == SIZE
            assert record["medium_overwritten"] is True and record["synced"] is True
            assert record["verify"]["zero"] is True and record["verify"]["bytes_read"] == SIZE
            assert read_range(dev, 0, SIZE).count(0) == SIZE
        r = ran["charlie"]
        assert r["changed"] is False and "record" not in r
        assert f"mounted on {where}" in r["msg"]
        with open(os.path.join(where, "tenant.txt")) as f:
            assert f.read() == "still here\n"


def test_missing_largezero_on_the_managed_host(tmp_path: os.PathLike[str]) -> None:
    """A managed host whose Python has no largezero gets Ansible's missing_required_lib message."""
    bare = shutil.which("python3", path="/usr/bin:/bin")
    if bare is None or subprocess.run([bare, "-c", "import largezero"], capture_output=True).returncode == 0:
        pytest.skip("no system python3 without largezero")
    work = os.fspath(tmp_path)
    got, recap = run_playbook(work, {"delta": os.path.join(work, "never-made.img")}, check=False,
                              results=os.path.join(work, "run"), interpreter=bare)
    assert recap["delta"]["failed"] == 1
    assert "Failed to import the required Python library (largezero)" in got["delta"]["msg"]
