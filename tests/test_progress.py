"""Progress on a pseudo-terminal: one line per job plus a total, binary units, speed and ETA
from the first update, erased at the end and on Ctrl-C."""

from __future__ import annotations

import os
import re
import sys
import textwrap

import pytest

from largezero.cli.progress import LONG_JOB_BYTES, eta, progress_display, status
from largezero.units import format_size

from .helpers import on_pty

CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

# Jobs of 1 GiB each, moved in 8 steps from worker threads, then one marker line.
SHOW = textwrap.dedent("""\
    import sys, threading, time
    from largezero.cli.progress import progress_display
    n = int(sys.argv[1])
    jobs = [(f"job{i}", 1 << 30) for i in range(n)]
    with progress_display(jobs, True) as display:
        assert display.shown
        def work(i):
            update = display.updater(i)
            for k in range(1, 9):
                time.sleep(0.03)
                update(k << 27)
        threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    print("AFTER", file=sys.stderr)
""")


def _frames(drawn: str) -> list[str]:
    return [CSI.sub("", line).strip() for line in drawn.replace("\r", "\n").split("\n")]


def test_units_are_binary_and_speed_shows_from_the_first_update() -> None:
    steady = [format_size(n, "steady") for n in (512, 3 << 29, 100 << 30, 12.34 * 2**30)]
    assert steady == ["512 B", "1.50 GiB", "100 GiB", "12.3 GiB"]
    first = status(64 << 20, 1 << 30, 0.05)  # one update, 50 ms in
    assert "64.0 MiB / 1.00 GiB" in first and "1.25 GiB/s" in first and "ETA 0:01" in first
    assert "GB" not in first and "?" not in first
    assert eta(3725) == "1:02:05" and eta(None) == "-:--"


def test_nothing_is_drawn_off_a_terminal_or_for_small_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_display([("a", 1 << 40)], True) as display:
        assert not display.shown and display.updater(0) is None  # stderr is captured: not a terminal
        display.update(0, 1 << 30)
        display.phase(0, "verifying a", 1 << 40)
        display.clear()
    with progress_display([("a", LONG_JOB_BYTES - 1)], True) as display:
        assert not display.shown
    assert capsys.readouterr().err == ""


# A zeroing phase, then the same line as "verifying", then cleared before a message.
PHASES = textwrap.dedent("""\
    import sys, time
    from largezero.cli.progress import progress_display
    with progress_display([("zeroing t", 1 << 30)], True) as display:
        display.update(0, 1 << 29)
        time.sleep(0.3)
        display.phase(0, "verifying t", 1 << 29)
        display.update(0, 1 << 28)
        time.sleep(0.3)
        display.clear()
        print("MESSAGE", file=sys.stderr)
        display.update(0, 1 << 29)  # after clear(): nothing drawn
        time.sleep(0.2)
    print("AFTER", file=sys.stderr)
""")


def test_a_phase_restarts_the_line_and_clear_erases_it_before_a_message() -> None:
    code, drawn = on_pty([sys.executable, "-c", PHASES])
    assert code == 0, drawn
    frames = _frames(drawn[: drawn.index("MESSAGE")])
    assert any(f.startswith("zeroing t") and "512 MiB / 1.00 GiB" in f for f in frames)
    assert any(f.startswith("verifying t") and "256 MiB / 512 MiB" in f for f in frames)
    between = drawn[drawn.index("MESSAGE") :]
    assert [f for f in _frames(between) if f] == ["MESSAGE", "AFTER"]


@pytest.mark.parametrize("jobs", [1, 3])
def test_one_line_per_job_a_total_for_several_and_erased_at_the_end(jobs: int) -> None:
    code, drawn = on_pty([sys.executable, "-c", SHOW, str(jobs)])
    assert code == 0
    frames = _frames(drawn)
    for i in range(jobs):
        assert any(f.startswith(f"job{i}") and "GiB/s" in f and "ETA" in f for f in frames)
    assert any(f.startswith("total") and "/ 3.00 GiB" in f for f in frames) == (jobs > 1)
    assert "GB/s" not in drawn and " ? " not in drawn
    # Everything between the last frame and the marker is cursor movement and erasing.
    tail = drawn[drawn.rindex("ETA") :]
    between = tail[tail.index("\n") : tail.index("AFTER")] if "\n" in tail else ""
    assert CSI.sub("", between).strip() == ""
    assert "\x1b[2K" in between


def test_ctrl_c_clears_the_bar_and_leaves_the_summary_and_the_resume_command(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(os.fspath(tmp_path), "big.img")
    with open(path, "wb") as f:
        f.truncate(8 << 30)
    try:
        code, drawn = on_pty([sys.executable, "-m", "largezero", "zero", path, "-m", "page", "--direct"],
                              interrupt_when="iB/s")
    finally:
        os.unlink(path)
    assert code == 130, drawn
    assert "Traceback" not in drawn
    after = drawn[drawn.rindex("iB/s") :]
    lines = [f for f in _frames(after[after.index("\n") :] if "\n" in after else "") if f]
    assert lines, drawn
    assert all(line.startswith("largezero") for line in lines), lines
    assert any("resume with" in line and "largezero zero" in line for line in lines), lines
