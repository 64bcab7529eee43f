"""Progress and Ctrl-C where a job takes time (issue 19): a bar for verify, the offload of a device
in steps of 1 GiB that the bar follows and Ctrl-C stops at the next one with the exact resume
command, and the bar cleared before the message. On a pseudo-terminal, with real signals."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable

from largezero.engine.plan import OFFLOAD_CALL_BYTES
from largezero.scratch import loop_device, make_image

from .helpers import on_pty, requires_root

CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
GiB = 1 << 30


def _frames(drawn: str) -> list[str]:
    return [CSI.sub("", line).strip() for line in drawn.replace("\r", "\n").split("\n")]


def _after_the_bar(drawn: str) -> list[str]:
    """The lines left once the last frame of the bar was drawn (and erased)."""
    tail = drawn[drawn.rindex("ETA") :]
    return [f for f in _frames(tail[tail.index("\n") :] if "\n" in tail else "") if f]


def test_verify_shows_a_bar_and_ctrl_c_clears_it_before_the_resume_command(long_read_device: str) -> None:
    code, drawn = on_pty([sys.executable, "-m", "largezero", "verify", long_read_device, "--direct"],
                         interrupt_when="iB/s")
    assert code == 130, drawn
    frames = _frames(drawn)
    assert any(f.startswith("verifying") and "/ 1.00 TiB" in f and "ETA" in f for f in frames), drawn
    lines = _after_the_bar(drawn)
    assert len(lines) == 2 and all(line.startswith("largezero: ") for line in lines), lines
    assert "interrupted at byte" in lines[0]
    stopped = int(lines[0].split("interrupted at byte ")[1].split(":")[0])
    assert lines[1] == (f"largezero: resume with: largezero verify -o {stopped} -l {(1 << 40) - stopped} "
                        f"--direct -- {long_read_device}")


# The real BLKZEROOUT, each call slowed down so the job lasts long enough to watch and interrupt.
SLOW_OFFLOAD = textwrap.dedent("""\
    import sys, time
    from largezero import syscalls
    from largezero.cli import main

    class Slow(syscalls.Syscalls):
        def blkzeroout(self, fd, offset, length):
            time.sleep(0.25)
            super().blkzeroout(fd, offset, length)

    syscalls.ops = Slow()
    sys.exit(main(sys.argv[1:]))
""")


@requires_root
def test_offload_of_a_device_goes_in_steps_the_bar_follows_and_ctrl_c_stops_at_the_next(
        tmp_path: os.PathLike[str]) -> None:
    size = 4 * GiB + (1 << 20)  # a sparse file: BLKZEROOUT makes unwritten extents, no data written
    image = make_image(os.path.join(os.fspath(tmp_path), "big.img"), size, allocate=False)
    with loop_device(image) as dev:
        out = json.loads(subprocess.run([sys.executable, "-m", "largezero", "zero", dev, "--json"],
                                        capture_output=True, text=True, check=True).stdout)
        step = out["plan"]["steps"][0] if "plan" in out else None
        calls = -(-size // OFFLOAD_CALL_BYTES)
        assert out["method"] == "offload" and out["mechanism"] == "BLKZEROOUT" and out["calls"] == calls, out
        # The model prices the same steps: one BLKZEROOUT per GiB, as the device counted them.
        pred, meas = out["predicted"], out["measured"]
        assert [pred[k] for k in ("requests", "merges", "sectors")] == \
            [meas[k] for k in ("requests", "merges", "sectors")], (pred, meas, step)
        code, drawn = on_pty([sys.executable, "-c", SLOW_OFFLOAD, "zero", dev, "--force"],
                             interrupt_when="iB/s")
    assert code == 130, drawn
    frames = _frames(drawn)
    assert any(f.startswith("zeroing") and "GiB /" in f and "ETA" in f for f in frames), drawn
    lines = _after_the_bar(drawn)
    assert lines and all(line.startswith("largezero: ") for line in lines), lines
    resume = [line for line in lines if "resume with:" in line]
    assert len(resume) == 1, lines
    got = re.search(r"largezero zero -o (\d+) -l (\d+) --force -- (\S+)$", resume[0])
    assert got is not None, resume
    stopped, left = int(got[1]), int(got[2])
    assert 0 < stopped < size and stopped % OFFLOAD_CALL_BYTES == 0 and stopped + left == size and got[3] == dev


# Writes and read-back slowed down (the real calls still run) so both phases can be watched.
SLOW_JOB = textwrap.dedent("""\
    import sys, time
    from largezero import inflight, syscalls, verify
    from largezero.cli import main

    class Slow(syscalls.Syscalls):
        def pwritev(self, fd, buffers, offset):
            time.sleep(0.03)
            return super().pwritev(fd, buffers, offset)

        def preadv(self, fd, buffers, offset):
            time.sleep(0.1)
            return super().preadv(fd, buffers, offset)

    syscalls.ops = Slow()
    verify.reads = lambda fd, depth, direct: inflight.SyncReads(fd)  # reads through the seam
    sys.exit(main(sys.argv[1:]))
""")


def test_zero_verify_reads_back_in_a_verifying_phase(ramfs_loop: Callable[[int], str]) -> None:
    dev = ramfs_loop(256 << 20)
    code, drawn = on_pty([sys.executable, "-c", SLOW_JOB, "zero", dev, "--overwrite", "--verify", "--force"],
                         interrupt_when="verifying")
    assert code == 130, drawn
    frames = _frames(drawn)
    assert any(f.startswith("zeroing") for f in frames) and any(f.startswith("verifying") for f in frames)
    # The zeroing line does not sit at 100% during the read-back: the verifying line starts from zero.
    verifying = [m[1] for f in frames if (m := re.match(r"verifying \S+ \S+ (.+?) / 256 MiB", f))]
    assert verifying and verifying[0] == "0 B", frames
    lines = _after_the_bar(drawn)
    assert lines and all(line.startswith("largezero: ") for line in lines), lines
    stopped = [int(m[1]) for line in lines if (m := re.search(r"verify interrupted at byte (\d+)", line))]
    assert len(stopped) == 1, lines
    assert lines[-1] == (f"largezero: the zeros are written; resume the verification with: largezero verify "
                         f"-o {stopped[0]} -l {(256 << 20) - stopped[0]} --direct -- {dev}"), lines
