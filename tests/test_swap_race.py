"""The in-use checks hold for the file that is opened, not only the path that was checked
(issue 20, point 3): real processes, a real mounted loop device.

strace holds largezero's openat() of the target path; meanwhile another process renames a
mounted loop's backing image over that path. The checks ran on the old file, the open gets the
image: largezero must see that the opened file is not the one it checked and refuse, exit 2,
with the filesystem untouched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from largezero.errors import EXIT_USAGE
from largezero.scratch import make_image

from .helpers import read_range, requires_root
from .test_inuse import _mounted_ext4

pytestmark = [requires_root, pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")]
RUNS = 4
OPENAT = 257  # x86-64


def _held_in_openat(strace_pid: int) -> None:
    """Wait until strace's child sits in a traced stop at openat() for 100 ms (the delay)."""
    deadline = time.monotonic() + 30
    since = None
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{strace_pid}/task/{strace_pid}/children") as f:
                child = int(f.read().split()[0])
            with open(f"/proc/{child}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open(f"/proc/{child}/syscall") as f:
                nr = f.read().split()[0]
        except (OSError, IndexError, ValueError):
            nr, state = "", ""
        if state == "t" and nr == str(OPENAT):
            since = since or time.monotonic()
            if time.monotonic() - since > 0.1:
                return
        else:
            since = None
        time.sleep(0.005)
    raise AssertionError("largezero never reached its openat()")


def test_a_path_swapped_for_a_mounted_loops_backing_image_is_refused(tmp_path: os.PathLike[str]) -> None:
    tmp = os.fspath(tmp_path)
    with _mounted_ext4(tmp) as (image, dev, mnt):
        with open(os.path.join(mnt, "kept"), "w") as f:
            f.write("still here")
        subprocess.run(["sync"], check=True)
        before = read_range(image, 0, 4 << 20)
        for run in range(RUNS):
            victim = make_image(os.path.join(tmp, f"victim{run}.img"), 8 << 20)
            argv = ["strace", "-f", "-qq", "-o", "/dev/null", "-P", victim, "-e", "trace=openat",
                    "-e", "inject=openat:delay_enter=700000", sys.executable, "-m", "largezero", "zero", victim,
                    "-l", "1M"]
            job = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            _held_in_openat(job.pid)  # it checked the victim and is held in its openat()
            os.rename(image, victim)  # another process swaps the path
            out, err = job.communicate(timeout=60)
            image = victim  # the loop's backing file lives here now
            assert job.returncode == EXIT_USAGE, (run, out, err)
            assert "was replaced by another file between the checks and the open" in err, err
            assert len(err.strip().splitlines()) == 1, err
        assert read_range(image, 0, 4 << 20) == before
        with open(os.path.join(mnt, "kept")) as f:
            assert f.read() == "still here"
        assert subprocess.run(["mountpoint", "-q", mnt]).returncode == 0
