"""A truncation by another process is never undone silently (issue 20, point 2): real processes.

strace holds largezero's last pwritev call for a second before it enters the kernel; another
process truncates the file in that second. The held call then grows the file back to its own
end: without --extend the job must exit 1 and say that another process truncated the file,
whether the call ends below the file's end (the size tells) or at it (the size is back to what
it was; the hole the truncation left before the call tells).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from largezero.scratch import fill_pattern, make_image

MiB = 1 << 20
SIZE = 8 * MiB
CALL = MiB
needs_strace = pytest.mark.skipif(shutil.which("strace") is None,
                                  reason="strace is not installed (make test installs it as root with apt)")


def _held_last_call(path: str, length: int, truncate_to: int, extra: list[str]) -> tuple[int, str]:
    calls = -(-length // CALL)
    argv = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=pwritev,pwritev2",
            "-e", f"inject=pwritev,pwritev2:delay_enter=1000000:when={calls}",
            sys.executable, "-m", "largezero", "zero", path, "-l", str(length), "--call-size", str(CALL),
            "--checkpoint", "0.000001", *extra]
    job = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert job.stderr is not None
    lines = [job.stderr.readline() for _ in range(calls - 1)]  # a checkpoint after each call
    assert all("checkpoint" in line for line in lines), lines
    time.sleep(0.3)  # past the size check: the last call is held by strace
    subprocess.run(["truncate", "-s", str(truncate_to), path], check=True)  # another process
    err = "".join(lines) + job.stderr.read()
    return job.wait(timeout=60), err


@needs_strace
@pytest.mark.parametrize("extra", [["-m", "large"], ["-m", "page"], ["-m", "large", "--direct"]],
                         ids=["buffered-large", "buffered-page", "direct"])
@pytest.mark.parametrize(("length", "truncate_to"), [(SIZE, 3 * MiB), (SIZE - 4096, SIZE - MiB // 2)],
                         ids=["to-the-end", "below-the-end"])
def test_a_truncation_during_the_last_call_is_told(tmp_path: os.PathLike[str], extra: list[str], length: int,
                                                  truncate_to: int) -> None:
    path = make_image(os.path.join(os.fspath(tmp_path), "held.img"), SIZE)
    fill_pattern(path, 0, SIZE)
    rc, err = _held_last_call(path, length, truncate_to, extra)
    size = os.path.getsize(path)
    assert rc == 1, err
    assert "another process truncated the file during the job" in err, err
    assert f"it has {size} bytes now" in err, err
    assert size != SIZE or "grew it back" in err, err
