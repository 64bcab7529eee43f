"""Signals from the first instruction, as real processes get them: SIGINT, SIGTERM and SIGHUP
sent 0-80 ms after the start of ``largezero zero`` and ``largezero cat`` (the installed
launcher, which execs the interpreter with the signals blocked until the one handler is in)
never print a traceback or "Fatal Python error": the process exits with 128 + the signal's
number, or dies by the signal before the interpreter runs. Also: a SIGHUP that nohup ignores
stays ignored, ``cat FIFO`` without a writer answers at once, and ``cat`` into a device or file
goes through the refusals of ``zero`` (a mounted loop device: exit 2, the filesystem intact)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from largezero.scratch import fill_pattern, loop_device, make_image

from .helpers import read_range, requires_root

LAUNCHER = os.path.join(os.path.dirname(sys.executable), "largezero")
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# 11 moments in the first 80 ms (start-up: exec, the interpreter, imports, parsing), and later
# ones that land in the job on a slow machine too: 13 runs per signal for zero (whose job must
# still run when the signal comes), 15 for cat (endless): 84 in all.
START_MS = tuple(range(0, 81, 8))
ZERO_DELAYS_MS = (*START_MS, 110, 150)
CAT_DELAYS_MS = (*START_MS, 110, 150, 200, 250)
# What a Python failure looks like on stderr: none of these may ever appear.
FAILURES = ("Traceback", "Fatal Python error", "Exception ignored", "internal error")


@pytest.fixture(scope="module")
def launcher() -> str:
    if not os.access(LAUNCHER, os.X_OK):
        pytest.skip(f"{LAUNCHER}: not installed (pip install -e . makes it)")
    with open(LAUNCHER, "rb") as f:
        assert f.readline().startswith(b"#!/bin/sh"), f"{LAUNCHER} is not the shell launcher: reinstall"
    return LAUNCHER


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """1 GiB of holes: zeroing it with 4 KiB calls (262144 of them) takes far longer than the
    150 ms of the last signal, and every run rewrites the same first pages."""
    path = os.fspath(tmp_path_factory.mktemp("signals") / "target.img")
    with open(path, "wb") as f:
        f.truncate(1 << 30)
    return path


def _verdict(proc: subprocess.Popen[bytes], signum: int, delay: int) -> str | None:
    """None when the run behaved, else what it did."""
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    code = proc.returncode
    if code == -signum:  # died by it before the interpreter ran (the shell part): silent
        ok = err == ""
    else:
        ok = code == 128 + signum and len(err.splitlines()) <= 2 and not any(f in err for f in FAILURES)
    return None if ok else f"{signal.Signals(signum).name} at {delay} ms: exit {code}: {err[-400:]!r}"


def _signal_runs(argv: list[str], signum: int, delays: tuple[int, ...], parallel: int = 3) -> list[str]:
    """One run per delay, ``parallel`` at a time (each timed from its own exec); returns what
    went wrong (empty: every run behaved). Stderr is read after exit: a few lines fit a pipe."""
    wrong: list[str] = []
    pending = list(delays)
    running: list[tuple[subprocess.Popen[bytes], float, int]] = []  # (process, when to signal, delay)
    sent: set[int] = set()
    with open(os.devnull, "wb") as sink:
        try:
            while pending or running:
                while pending and len(running) < parallel:
                    delay = pending.pop(0)
                    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.PIPE)
                    running.append((proc, time.monotonic() + delay / 1000, delay))
                now = time.monotonic()
                for proc, when, delay in list(running):
                    if proc.pid not in sent and now >= when:
                        proc.send_signal(signum)
                        sent.add(proc.pid)
                    elif proc.pid in sent and proc.poll() is not None:
                        running.remove((proc, when, delay))
                        verdict = _verdict(proc, signum, delay)
                        if verdict:
                            wrong.append(verdict)
                    elif proc.pid in sent and now > when + 20:
                        proc.kill()
                        proc.wait()
                        running.remove((proc, when, delay))
                        wrong.append(f"{signal.Signals(signum).name} at {delay} ms: still running 20 s later")
                time.sleep(0.001)
        finally:
            for proc, _, _ in running:
                proc.kill()
                proc.wait()
    return wrong


@pytest.mark.parametrize("signum", SIGNALS, ids=[s.name for s in SIGNALS])
def test_signals_at_start_of_zero_exit_quietly(launcher: str, big_file: str, signum: int) -> None:
    argv = [launcher, "zero", big_file, "-m", "page", "--call-size", "4K", "-l", "1G"]
    wrong = _signal_runs(argv, signum, ZERO_DELAYS_MS)
    assert wrong == [], f"{len(wrong)} of {len(ZERO_DELAYS_MS)} runs:\n" + "\n".join(wrong)


@pytest.mark.parametrize("signum", SIGNALS, ids=[s.name for s in SIGNALS])
def test_signals_at_start_of_cat_exit_quietly(launcher: str, signum: int) -> None:
    wrong = _signal_runs([launcher, "cat"], signum, CAT_DELAYS_MS)  # endless zeros into /dev/null
    assert wrong == [], f"{len(wrong)} of {len(CAT_DELAYS_MS)} runs:\n" + "\n".join(wrong)


def test_a_signal_ignored_at_start_stays_ignored(launcher: str) -> None:
    """nohup leaves SIGHUP ignored: it must not stop the job; SIGTERM still does (143)."""

    def ignore_hup() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    with open(os.devnull, "wb") as sink:
        proc = subprocess.Popen([launcher, "cat"], stdout=sink, stderr=subprocess.PIPE, preexec_fn=ignore_hup)
        try:
            time.sleep(0.3)
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.2)
            assert proc.poll() is None, proc.communicate()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 143, err
    assert err.decode().splitlines()[-1].startswith("largezero cat: interrupted after ")


def test_the_start_up_module_loads_nothing_before_the_handler() -> None:
    """What runs while the signals are still blocked: the package's lazy __init__ and cancel."""
    code = ("import sys\nbefore = set(sys.modules)\nimport largezero._start\n"
            "print(' '.join(sorted(set(sys.modules) - before)))")
    done = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, check=True)
    allowed = {"largezero", "largezero._version", "largezero._start", "largezero.cancel", "__future__"}
    assert set(done.stdout.split()) <= allowed, done.stdout


def test_the_launcher_runs_the_interpreter_beside_it_with_the_signals_blocked(launcher: str) -> None:
    """What _start sees before it unblocks: the three signals blocked (and, with
    LARGEZERO_BLOCK_SIGNALS=0, none), in the interpreter next to the launcher."""
    probe = "import signal, sys; print(sys.executable, sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])))"
    env = {**os.environ, "LARGEZERO_PYTHON": sys.executable}
    shown = subprocess.run(["sh", "-c", f"sed 's/^start=.*/start=\"{probe}\"/' '{launcher}' | sh -s"],
                           capture_output=True, text=True, env=env, check=False)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split(" ", 1)[1].strip() == str(sorted(SIGNALS)), shown.stdout
    env["LARGEZERO_BLOCK_SIGNALS"] = "0"
    shown = subprocess.run(["sh", "-c", f"sed 's/^start=.*/start=\"{probe}\"/' '{launcher}' | sh -s"],
                           capture_output=True, text=True, env=env, check=False)
    assert shown.stdout.split(" ", 1)[1].strip() == "[]", shown.stdout


def test_python_m_is_the_same_command(launcher: str) -> None:
    """``python -m largezero`` runs the same start-up module: SIGTERM in the job is 143 too."""
    with open(os.devnull, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "largezero", "cat"], stdout=sink, stderr=subprocess.PIPE)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 143 and b"interrupted after" in err and b"Traceback" not in err


def test_cat_fifo_without_a_writer_answers_at_once(launcher: str, tmp_path: os.PathLike[str]) -> None:
    fifo = os.path.join(os.fspath(tmp_path), "fifo")
    os.mkfifo(fifo)
    started = time.monotonic()
    done = subprocess.run([launcher, "cat", fifo], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=5,
                          check=False)
    assert time.monotonic() - started < 5
    assert done.returncode == 2, done.stderr
    assert done.stderr.decode() == f"largezero: {fifo}: not a regular file or block device\n"


def test_cat_into_a_closed_stdout_is_one_line_and_1(launcher: str) -> None:
    done = subprocess.run(["sh", "-c", f"'{launcher}' cat -l 1M >&-"], stderr=subprocess.PIPE, timeout=20,
                          check=False)
    assert done.returncode == 1
    assert done.stderr.decode().count("\n") == 1 and b"standard output is closed" in done.stderr


# --- cat into devices and files: the refusals of zero ---------------------------------------

SIZE = 16 << 20


@pytest.fixture
def ext4_loop(tmp_path: os.PathLike[str]) -> Iterator[tuple[str, str]]:
    """(device, image): a loop device over our own image holding an ext4 filesystem."""
    image = make_image(os.path.join(os.fspath(tmp_path), "fs.img"), SIZE)
    subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True, capture_output=True)
    with loop_device(image) as dev:
        yield dev, image


def _cat_into(launcher: str, dev: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``largezero cat -l 1M ARGS 1<>DEV``: the shell's read-write redirection of a device."""
    fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
    try:
        return subprocess.run([launcher, "cat", "-l", "1M", *args], stdout=fd, stderr=subprocess.PIPE, timeout=60,
                              check=False)
    finally:
        os.close(fd)


@requires_root
def test_cat_into_a_mounted_loop_device_is_refused(launcher: str, tmp_path: os.PathLike[str],
                                                   ext4_loop: tuple[str, str]) -> None:
    dev, _ = ext4_loop
    mnt = os.path.join(os.fspath(tmp_path), "mnt")
    os.mkdir(mnt)
    subprocess.run(["mount", dev, mnt], check=True, capture_output=True)
    try:
        with open(os.path.join(mnt, "kept"), "wb") as f:
            f.write(b"still here\n")
        before = read_range(dev, 0, 1 << 20)
        done = _cat_into(launcher, dev)
        err = done.stderr.decode()
        assert done.returncode == 2, err
        assert err.count("\n") == 1 and err.startswith(f"largezero: {dev}: device is in use (mounted on {mnt}"), err
        assert "--force" in err, err
        assert read_range(dev, 0, 1 << 20) == before
    finally:
        subprocess.run(["umount", mnt], check=True, capture_output=True)
    fsck = subprocess.run(["e2fsck", "-fn", dev], capture_output=True, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    subprocess.run(["mount", "-o", "ro", dev, mnt], check=True, capture_output=True)
    try:
        with open(os.path.join(mnt, "kept"), "rb") as f:
            assert f.read() == b"still here\n"
    finally:
        subprocess.run(["umount", mnt], check=True, capture_output=True)


@requires_root
def test_cat_into_a_device_with_a_signature_needs_force(launcher: str, ext4_loop: tuple[str, str]) -> None:
    dev, _ = ext4_loop
    done = _cat_into(launcher, dev)
    assert done.returncode == 2, done.stderr
    assert done.stderr.decode().startswith(f"largezero: {dev}: device carries an ext4 signature"), done.stderr
    done = _cat_into(launcher, dev, "--force")
    assert done.returncode == 0, done.stderr
    assert read_range(dev, 0, 1 << 20) == bytes(1 << 20)


@requires_root
def test_cat_into_a_loop_backing_file_is_refused(launcher: str, tmp_path: os.PathLike[str]) -> None:
    image = make_image(os.path.join(os.fspath(tmp_path), "backing.img"), SIZE)
    fill_pattern(image, 0, SIZE)
    with loop_device(image) as dev:
        fd = os.open(image, os.O_WRONLY | os.O_CLOEXEC)  # `> backing.img` without O_TRUNC
        try:
            done = subprocess.run([launcher, "cat", "-l", "1M"], stdout=fd, stderr=subprocess.PIPE, timeout=60,
                                  check=False)
        finally:
            os.close(fd)
        err = done.stderr.decode()
        assert done.returncode == 2, err
        assert err.count("\n") == 1 and image in err and f"backs {dev}" in err
        assert read_range(image, 0, 4096) != bytes(4096)


# --- the handler's three modes, in this process --------------------------------------------


@pytest.fixture
def handler() -> Iterator[None]:
    from largezero import cancel

    if cancel.installed():
        pytest.skip("the handler is already installed in this process")
    assert cancel.install()
    cancel.reset()
    try:
        yield
    finally:
        cancel.uninstall()
        cancel.reset()


def test_inside_a_polling_job_a_signal_only_sets_the_flag(handler: None) -> None:
    from largezero import cancel

    with cancel.on_signals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # the handler runs between two instructions
        assert stop is cancel.STOP and stop.is_set() and stop.signum == signal.SIGTERM
    assert cancel.status() == 143


def test_inside_a_command_a_signal_raises_stopped(handler: None) -> None:
    from largezero import cancel

    with pytest.raises(cancel.Stopped) as info, cancel.raising():
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(5)  # interrupted: the handler raises out of the sleep
    assert info.value.signum == signal.SIGHUP and isinstance(info.value, KeyboardInterrupt)
    assert cancel.status() == 129


def test_main_called_by_a_program_raises_instead_of_exiting(tmp_path: os.PathLike[str]) -> None:
    """main(argv) in this process: a signal while it parses is its return value, and the
    program's own handlers are back afterwards."""
    from largezero.cli import main

    before = signal.getsignal(signal.SIGTERM)
    target = os.path.join(os.fspath(tmp_path), "x")

    class Hook:
        def find_spec(self, name: str, path: object, target_: object = None) -> None:
            if name == "largezero.cli.info":
                os.kill(os.getpid(), signal.SIGTERM)
            return None

    loaded = sys.modules.pop("largezero.cli.info", None)
    sys.meta_path.insert(0, Hook())  # type: ignore[arg-type]
    try:
        assert main(["info", target]) == 143
    finally:
        sys.meta_path.pop(0)
        if loaded is not None:
            sys.modules["largezero.cli.info"] = loaded
    assert signal.getsignal(signal.SIGTERM) is before
