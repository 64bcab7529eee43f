"""The command line: JSON output, exit codes, one-line errors, python -m, the demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from largezero.cli import COMMANDS
from largezero.scratch import is_root

from .helpers import on_pty, pattern_bytes, read_range


def run_cli(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "largezero", *args], capture_output=True, text=True, check=check)


def test_zero_json_has_the_documented_fields(scratch_file: Callable[[int], str]) -> None:
    path = scratch_file(8 << 20)
    done = run_cli("zero", path, "-o", "1K", "-l", "3MiB", "-m", "large", "--direct", "--json", check=True)
    out = json.loads(done.stdout)
    for key in ("method", "offset", "length", "bytes_zeroed", "calls", "iovecs", "zero_buffer", "fallback",
                "seconds"):
        assert key in out
    assert out["method"] == "large"
    assert out["offset"] == 1024 and out["length"] == 3 << 20 and out["bytes_zeroed"] == 3 << 20
    assert out["zero_buffer"]["size"] >= 4096 and out["zero_buffer"]["backing"]
    assert read_range(path, 1024, 3 << 20) == bytes(3 << 20)
    assert done.stderr == ""


def test_zero_human_output_and_verbose(scratch_file: Callable[[int], str]) -> None:
    path = scratch_file(1 << 20)
    done = run_cli("zero", path, "-l", "64K", "-m", "page", "-v", check=True)
    assert "zeroed 64 KiB" in done.stdout and "page" in done.stdout


def test_info_json(scratch_file: Callable[[int], str]) -> None:
    path = scratch_file(1 << 20)
    out = json.loads(run_cli("info", path, "--json", check=True).stdout)
    assert out["kind"] == "file" and out["size"] == 1 << 20
    assert out["page_size"] == os.sysconf("SC_PAGE_SIZE")
    assert out["dio_offset_align"] > 0
    assert out["config_persistent_huge_zero_folio"] in ("y", "n", "unknown")
    assert out["zero_buffer"]["name"] in ("ZERO_PAGE", "LARGE_ZERO_PAGE")


def test_info_on_a_block_device_shows_queue_limits(ramfs_loop: Callable[[int], str]) -> None:
    dev = ramfs_loop(4 << 20)
    out = json.loads(run_cli("info", dev, "--json", check=True).stdout)
    assert out["kind"] == "block"
    assert out["queue_limits"]
    assert out["offload"]["available"] is False
    assert "write_zeroes_max_bytes" in out["offload"]["reason"]


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["zero", "{f}", "-l", "1X"], 2),
        (["zero", "{f}", "-l", "-1"], 2),
        (["zero", "{f}", "-o", "99999999999999999999"], 2),
        (["zero", "{f}", "-m", "nope"], 2),
        (["zero", "{f}", "-o", "2M", "-l", "1M"], 2),
        (["zero", "{d}"], 2),
        (["zero", "{d}/missing", "-l", "1"], 2),
        (["zero"], 2),
        (["frobnicate"], 2),
        (["info", "{d}/missing"], 2),
    ],
)
def test_bad_input_is_one_line_and_exit_code(scratch_file: Callable[[int], str], argv: list[str], code: int) -> None:
    path = scratch_file(1 << 20)
    folder = os.path.dirname(path)
    done = run_cli(*[a.format(f=path, d=folder) for a in argv])
    assert done.returncode == code
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines and lines[0].startswith("largezero")
    assert len(lines) <= 2  # the message, and at most argparse's "Try --help" hint
    assert read_range(path, 0, 1 << 20) == pattern_bytes(1 << 20)


def test_offload_refusal_on_tmpfs_is_exit_2_and_writes_nothing(tmpfs_dir: str) -> None:
    path = os.path.join(tmpfs_dir, "f")
    with open(path, "wb") as f:
        f.write(pattern_bytes(1 << 20))
    done = run_cli("zero", path, "-l", "64K", "-m", "offload")
    assert done.returncode == 2
    assert "ZERO_RANGE" in done.stderr
    assert read_range(path, 0, 1 << 20) == pattern_bytes(1 << 20)


def test_console_script_and_module_agree() -> None:
    exe = os.path.join(os.path.dirname(sys.executable), "largezero")
    if not os.path.exists(exe):
        pytest.skip("console script not installed in this environment")
    a = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    assert a == run_cli("--version", check=True).stdout


def test_demo_runs_verifies_and_cleans_up() -> None:
    loops_before = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout if is_root() else ""
    done = run_cli("demo", "--size", "16M", "--json", check=True)
    out = json.loads(done.stdout)
    assert out["verified"] is True
    labels = {(r["target"].startswith("/dev/"), r["label"]) for r in out["rows"]}
    assert (False, "large direct") in labels and (False, "page direct") in labels
    if is_root():
        device_rows = {r["label"]: r for r in out["rows"] if r["target"].startswith("/dev/")}
        assert device_rows["large direct"]["requests"] < device_rows["page direct"]["requests"]
        # Other developers attach and detach their own devices meanwhile: what must not appear
        # is a new device whose backing file is gone (the demo's ramfs is unmounted at its end).
        after = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
        new = set(after.splitlines()) - set(loops_before.splitlines())
        leaked = [line for line in new if not os.path.exists(line[line.rindex("(") + 1 : -1])]
        assert leaked == []


def _run_on_a_terminal(argv: list[str]) -> str:
    """Run the CLI with stdout and stderr on a pseudo-terminal; return what it drew."""
    code, drawn = on_pty([sys.executable, "-m", "largezero", *argv])
    assert code == 0
    return drawn


def test_progress_bar_on_a_terminal_only(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(os.fspath(tmp_path), "big.img")
    with open(path, "wb") as f:
        f.truncate(1 << 30)
    drawn = _run_on_a_terminal(["zero", path, "-m", "page", "--direct"])
    assert "zeroing" in drawn and "GiB" in drawn
    quiet = _run_on_a_terminal(["zero", path, "-m", "page", "--direct", "--json"])
    assert "zeroing" not in quiet
    assert json.loads(quiet[quiet.index("{"):])["bytes_zeroed"] == 1 << 30
    piped = run_cli("zero", path, "-m", "page", "--direct", check=True)
    assert "zeroing" not in piped.stderr


# --- no tracebacks, ever; messages never cost the job (issue 12 items 7 and 8) -------------

LZ = [sys.executable, "-m", "largezero"]


def _sh(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a shell line, with $LZ the command, so redirections like 2>&- are the shell's own."""
    lz = " ".join(LZ)
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, env={**os.environ, "LZ": lz, **env})


def _hooked(hook: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run main(argv) in a fresh interpreter with ``hook`` firing when the chosen command's
    module is imported (inside main, as a Ctrl-C or a failure would)."""
    code = (
        "import os, signal, sys\n"
        "class Hook:\n"
        "    def find_spec(self, name, path, target=None):\n"
        f"        if name == 'largezero.cli.{argv[0]}':\n"
        f"            {hook}\n"
        "        return None\n"
        "sys.meta_path.insert(0, Hook())\n"
        "from largezero.cli import main\n"
        f"sys.argv = ['largezero', *{argv!r}]\n"
        "sys.exit(main())\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


@pytest.mark.parametrize(
    ("hook", "code", "line"),
    [
        ("os.kill(os.getpid(), signal.SIGINT)", 130, "largezero: interrupted"),
        ("raise MemoryError()", 1, "largezero: out of memory"),
        ("raise RuntimeError('boom')", 1, "largezero: internal error: RuntimeError: boom"),
    ],
)
def test_a_signal_or_failure_while_starting_is_one_line(scratch_file: Callable[[int], str], hook: str, code: int,
                                                         line: str) -> None:
    path = scratch_file(1 << 20)
    done = _hooked(hook, ["info", path])
    assert (done.returncode, done.stderr, done.stdout) == (code, line + "\n", "")


def test_ctrl_c_at_any_moment_of_start_up_never_shows_our_traceback(scratch_file: Callable[[int], str]) -> None:
    """``python -m largezero``: SIGINT at 0-60 ms, and a few later moments that reach our handler
    on a loaded machine too: exit 130 (or death by the signal before Python starts). The window
    left is before __main__ can block the signals: the interpreter's own initialisation and
    runpy's import of the package. A traceback from there never names a frame of ours
    (largezero/cli/..., largezero/__main__). The launcher has no such window: test_signals.py."""
    import signal
    import time

    path = scratch_file(1 << 20)
    codes = set()
    for delay in [i * 0.0015 for i in range(40)] + [0.15, 0.25, 0.4, 0.6]:
        proc = subprocess.Popen([*LZ, "info", path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate()
        codes.add(proc.returncode)
        if "Traceback" in err or "Fatal Python error" in err:
            # The interpreter's own start (its init_sys_streams, its imports): no frame of ours.
            assert "largezero/cli" not in err and "largezero/__main__" not in err, err
        else:
            assert len(err.splitlines()) <= 1, err
            assert proc.returncode in (0, 130, -signal.SIGINT), (proc.returncode, err)
    assert 130 in codes


def test_closed_stderr_keeps_messages_out_of_stdout_and_targets(scratch_file: Callable[[int], str]) -> None:
    path = scratch_file(1 << 20)
    done = _sh(f'$LZ info "{path}.missing" 2>&-')
    assert done.returncode == 2 and done.stdout == ""
    done = _sh(f'$LZ zero "{path}" -o 4K -l 8K --json 2>&-')
    assert done.returncode == 0 and json.loads(done.stdout)["bytes_zeroed"] == 8192
    assert read_range(path, 0, 4096) == pattern_bytes(1 << 20)[:4096]
    assert read_range(path, 12288, 4096) == pattern_bytes(1 << 20)[12288:16384]


def test_full_stderr_changes_nothing_but_the_message(scratch_file: Callable[[int], str]) -> None:
    path = scratch_file(1 << 20)
    assert _sh(f'$LZ info "{path}.missing" 2>/dev/full').returncode == 2
    done = _sh(f'$LZ zero "{path}" -l 64K --json 2>/dev/full')
    assert done.returncode == 0 and json.loads(done.stdout)["bytes_zeroed"] == 65536


def test_broken_stdout_after_success_exits_0_quietly(scratch_file: Callable[[int], str]) -> None:
    path = scratch_file(1 << 20)
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads: every write to stdout is EPIPE
    try:
        done = subprocess.run([*LZ, "info", path, "--json"], stdout=write_end, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")


def test_full_stdout_is_one_line_and_exit_1(scratch_file: Callable[[int], str]) -> None:
    path = scratch_file(1 << 20)
    done = _sh(f'$LZ info "{path}" --json >/dev/full')
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["largezero: write error: stdout: No space left on device"]


def test_unknown_command_lists_the_commands() -> None:
    done = run_cli("frobnicate")
    assert done.returncode == 2 and "zero" in done.stderr and "bench" in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_a_bare_largezero_lists_the_commands_and_exits_2() -> None:
    """No command: one short usage line and the command list (util-linux: exit 2), no traceback,
    nothing on stdout; --help still prints the whole help and exits 0."""
    done = run_cli()
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[0] == "usage: largezero [-h] [-V] COMMAND ..."
    listed = [line.split()[0] for line in lines if line.startswith("  ")]
    assert listed == list(COMMANDS)
    assert all(COMMANDS[name] in done.stderr for name in COMMANDS)
    assert len(lines) < len(COMMANDS) + 8 and "Traceback" not in done.stderr
    helped = run_cli("--help")
    assert helped.returncode == 0 and "commands:" in helped.stdout


@pytest.mark.parametrize(("argv", "says"), [
    (["zreo"], "largezero: unknown command 'zreo'; did you mean 'zero'?"),
    (["verfy", "x"], "largezero: unknown command 'verfy'; did you mean 'verify'?"),
    (["zero", "x", "--overwirte"], "largezero zero: unknown option '--overwirte'; did you mean '--overwrite'?"),
    (["model", "--devcie", "loop0"], "largezero model: unknown option '--devcie'; did you mean '--device'?"),
    (["--verison"], "largezero: unknown option '--verison'; did you mean '--version'?"),
])
def test_a_typo_gets_the_nearest_command_or_option_in_one_line(argv: list[str], says: str) -> None:
    done = run_cli(*argv)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [says]
