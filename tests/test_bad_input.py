"""Bad input, table-driven: malformed command lines and API calls.

Each command line gives exactly one line on stderr, starting with ``largezero``, the documented
exit code, and never a traceback; each API call raises a LargezeroError with a one-line message
and that exit code. Nothing is written: the pattern file used by every case is unchanged.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from largezero import ZeroOptions, zero_range
from largezero.cli import main
from largezero.errors import EXIT_USAGE, LargezeroError
from largezero.scratch import fill_pattern, make_image
from largezero.targets import open_target
from largezero.verify import check_zero

from .helpers import pattern_bytes, requires_root

SIZE = 1 << 20


@dataclass
class Sandbox:
    root: str

    def __call__(self, name: str) -> str:
        return os.path.join(self.root, name)


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    root = os.fspath(tmp_path_factory.mktemp("bad-input"))
    sb = Sandbox(root)
    make_image(sb("f"), SIZE)
    fill_pattern(sb("f"), 0, SIZE)
    os.symlink(sb("f"), sb("link"))
    os.symlink(sb("missing"), sb("dangling"))
    os.mkdir(sb("d"))
    os.mkfifo(sb("fifo"))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(sb("sock"))
    try:
        yield sb
    finally:
        sock.close()
    with open(sb("f"), "rb") as f:
        assert f.read() == pattern_bytes(SIZE), "a bad-input case wrote to the file"


# (id, argv with {x} placeholders resolved against the sandbox, expected exit code, stderr must contain)
CLI_CASES: list[tuple[str, list[str], int, str]] = [
    # sizes
    ("suffix-X", ["zero", "{f}", "-o", "1X"], 2, "unknown suffix"),
    ("suffix-KiBB", ["zero", "{f}", "-o", "1KiBB"], 2, "unknown suffix"),
    ("suffix-Q", ["zero", "{f}", "-l", "4Q"], 2, "unknown suffix"),
    ("suffix-lower-kib-ok-but-past-end", ["zero", "{f}", "-l", "2mib"], 2, "past the end"),
    ("decimal-point", ["zero", "{f}", "-o", "0.3K"], 2, "-o/--offset: '0.3K'"),
    ("exponent", ["zero", "{f}", "-l", "1e6"], 2, "-l/--length: '1e6'"),
    ("empty-length", ["zero", "{f}", "-l", ""], 2, "-l/--length"),
    ("empty-offset-eq", ["zero", "{f}", "--offset="], 2, "-o/--offset"),
    ("non-numeric", ["zero", "{f}", "-o", "abc"], 2, "expected a number"),
    ("bad-hex", ["zero", "{f}", "-o", "0x"], 2, "-o/--offset: '0x'"),
    ("bad-hex-digits", ["zero", "{f}", "-o", "0xZZ"], 2, "-o/--offset: '0xZZ'"),
    ("negative-offset", ["zero", "{f}", "-o", "-1"], 2, "-o/--offset: '-1'"),
    ("negative-length", ["zero", "{f}", "-l", "-4096"], 2, "-l/--length: '-4096'"),
    ("negative-suffixed", ["zero", "{f}", "-l", "-1M"], 2, "-l/--length: expected one argument"),
    ("offset-2^63", ["zero", "{f}", "-o", "9223372036854775808"], 2, "2^63"),
    ("length-8E", ["zero", "{f}", "-l", "8E"], 2, "2^63"),
    ("length-16EiB", ["zero", "{f}", "-l", "16EiB"], 2, "2^63"),
    ("length-huge", ["zero", "{f}", "-l", "99999999999999999999999"], 2, "2^63"),
    ("offset-plus-length-overflow", ["zero", "{f}", "-o", "4E", "-l", "4E"], 2, "2^63"),
    ("max-length-from-1", ["zero", "{f}", "-o", "1", "-l", "9223372036854775807"], 2, "2^63"),
    ("call-size-zero", ["zero", "{f}", "-l", "4K", "-m", "large", "--call-size", "0"], 2, "call size"),
    ("call-size-negative", ["zero", "{f}", "--call-size", "-1"], 2, "--call-size: '-1'"),
    ("call-size-bad-suffix", ["zero", "{f}", "--call-size", "4X"], 2, "unknown suffix"),
    ("past-the-end", ["zero", "{f}", "-o", "2M"], 2, "past the end"),
    ("range-past-the-end", ["zero", "{f}", "-o", "512K", "-l", "1M"], 2, "--extend"),
    # methods and flags
    ("unknown-method", ["zero", "{f}", "-m", "bogus"], 2, "invalid choice"),
    ("empty-method", ["zero", "{f}", "-m", ""], 2, "invalid choice"),
    ("method-case", ["zero", "{f}", "-m", "LARGE"], 2, "invalid choice"),
    ("unknown-backing", ["zero", "{f}", "--backing", "hugetlb"], 2, "invalid choice"),
    ("offload-direct", ["zero", "{f}", "-m", "offload", "--direct"], 2, "--direct"),
    ("offload-call-size", ["zero", "{f}", "-m", "offload", "--call-size", "1M"], 2, "--call-size"),
    ("offload-backing", ["zero", "{f}", "-m", "offload", "--backing", "allocated"], 2, "--backing"),
    ("page-backing", ["zero", "{f}", "-m", "page", "--backing", "huge-zero-folio"], 2, "--backing"),
    ("no-large-page-backing", ["zero", "{f}", "--no-large-page", "--backing", "allocated"], 2,
     "--no-large-page"),
    ("direct-call-size-unaligned", ["zero", "{f}", "-m", "large", "--direct", "--call-size", "100", "-l", "8K"],
     2, "alignment"),
    ("checkpoint-zero", ["zero", "{f}", "--checkpoint", "0"], 2, "--checkpoint"),
    ("checkpoint-negative", ["zero", "{f}", "--checkpoint", "-1"], 2, "--checkpoint"),
    ("checkpoint-nan", ["zero", "{f}", "--checkpoint", "nan"], 2, "--checkpoint"),
    ("checkpoint-word", ["zero", "{f}", "--checkpoint", "soon"], 2, "invalid float"),
    ("create-without-length", ["zero", "{missing}", "--create"], 2, "--create needs --length"),
    ("unknown-option", ["zero", "{f}", "--bogus"], 2, "unknown option '--bogus'"),
    ("mistyped-option", ["zero", "{f}", "--lenght", "4K"], 2, "unknown option '--lenght'; did you mean '--length'?"),
    ("mistyped-option-value", ["zero", "{f}", "--dryrun"], 2, "did you mean '--dry-run'?"),
    ("stray-argument", ["info", "{f}", "{f}"], 2, "unexpected argument"),
    ("missing-value", ["zero", "{f}", "-o"], 2, "expected one argument"),
    ("no-target", ["zero"], 2, "required: TARGET"),
    ("unknown-command", ["bogus"], 2, "unknown command 'bogus' (commands: zero, info"),
    ("mistyped-command", ["zreo", "{f}"], 2, "largezero: unknown command 'zreo'; did you mean 'zero'?"),
    ("mistyped-top-option", ["--hlep"], 2, "largezero: unknown option '--hlep'; did you mean '--help'?"),
    ("same-target-twice", ["zero", "{f}", "{f}", "-l", "4K"], 2, "given twice"),
    ("same-target-via-symlink", ["zero", "{f}", "{link}", "-l", "4K"], 2, "given twice"),
    ("empty-target", ["zero", ""], 2, "empty target"),
    # targets
    ("missing-path", ["zero", "{missing}", "-l", "4K"], 2, "no such file"),
    ("dangling-symlink", ["zero", "{dangling}", "-l", "4K"], 2, "no such file"),
    ("directory", ["zero", "{d}", "-l", "4K"], 2, "is a directory"),
    ("fifo", ["zero", "{fifo}", "-l", "4K"], 2, "not a regular file or block device"),
    ("socket", ["zero", "{sock}", "-l", "4K"], 2, "not a regular file or block device"),
    ("char-dev-null", ["zero", "/dev/null", "-l", "4K"], 2, "not a regular file or block device"),
    ("char-dev-zero", ["zero", "/dev/zero"], 2, "not a regular file or block device"),
    ("not-a-directory", ["zero", "{f}/x", "-l", "4K"], 2, "Not a directory"),
    ("name-too-long", ["zero", "{long}", "-l", "4K"], 2, "too long"),
    ("create-under-dev", ["zero", "/dev/largezero-no-such-disk", "--create", "-l", "1M"], 2, "under /dev"),
    ("procfs", ["zero", "/proc/self/status", "-l", "1"], 2, "pseudo-filesystem"),
    ("sysfs", ["zero", "/sys/kernel/mm/transparent_hugepage/enabled", "-l", "1"], 2, "pseudo-filesystem"),
    ("json-missing", ["zero", "{missing}", "--json"], 2, "no such file"),
    # verify
    ("verify-bad-suffix", ["verify", "{f}", "-o", "1X"], 2, "unknown suffix"),
    ("verify-negative", ["verify", "{f}", "-l", "-1"], 2, "-l/--length: '-1'"),
    ("verify-past-end", ["verify", "{f}", "-o", "2M"], 2, "past the end"),
    ("verify-range-past-end", ["verify", "{f}", "-o", "1K", "-l", "1M"], 2, "past the end"),
    ("verify-missing", ["verify", "{missing}"], 2, "no such file"),
    ("verify-directory", ["verify", "{d}"], 2, "is a directory"),
    ("verify-fifo", ["verify", "{fifo}"], 2, "not a regular file or block device"),
    ("verify-dev-null", ["verify", "/dev/null"], 2, "not a regular file or block device"),
    ("verify-no-target", ["verify"], 2, "required: TARGET"),
]


def _argv(box: Sandbox, argv: list[str]) -> list[str]:
    names = {n: box(n) for n in ("f", "link", "dangling", "missing", "d", "fifo", "sock")}
    names["long"] = box("x" * 300)
    return [a.format(**names) for a in argv]


def _run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("argv", "code", "says"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_command_line(box: Sandbox, capsys: pytest.CaptureFixture[str], argv: list[str], code: int,
                      says: str) -> None:
    got, out, err = _run_main(_argv(box, argv), capsys)
    lines = err.splitlines()
    assert got == code, err
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    assert lines[0].startswith("largezero"), lines[0]
    assert says in lines[0]
    assert "Traceback" not in err
    if "--json" not in argv:
        assert out == ""


def test_at_least_sixty_cases() -> None:
    assert len(CLI_CASES) + len(API_CASES) >= 60
    assert len({c[0] for c in CLI_CASES}) == len(CLI_CASES)


@pytest.mark.parametrize("case", ["suffix-X", "negative-offset", "fifo", "char-dev-null", "offload-direct",
                                  "unknown-command", "mistyped-option"])
def test_command_line_in_a_real_process(box: Sandbox, case: str) -> None:
    """The same through the interpreter: the one line is all the user sees."""
    _, argv, code, says = next(c for c in CLI_CASES if c[0] == case)
    done = subprocess.run([sys.executable, "-m", "largezero", *_argv(box, argv)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == code
    assert len(done.stderr.splitlines()) == 1 and says in done.stderr and "Traceback" not in done.stderr


# --- API calls ----------------------------------------------------------------------------


@contextlib.contextmanager
def _fd(path: str, flags: int) -> Iterator[int]:
    fd = os.open(path, flags)
    try:
        yield fd
    finally:
        os.close(fd)


def _closed_fd() -> int:
    fd = os.open("/dev/null", os.O_RDONLY)
    os.close(fd)
    return fd


ApiCall = Callable[[Sandbox], Any]

API_CASES: list[tuple[str, ApiCall, str]] = [
    ("negative-offset", lambda b: zero_range(b("f"), -1, 10), "negative"),
    ("negative-length", lambda b: zero_range(b("f"), 0, -10), "negative"),
    ("offset-2^63", lambda b: zero_range(b("f"), 1 << 63, 1), "2^63"),
    ("length-overflow", lambda b: zero_range(b("f"), 1, (1 << 63) - 1), "2^63"),
    ("past-the-end", lambda b: zero_range(b("f"), SIZE, 1), "past the end"),
    ("offset-past-end-no-length", lambda b: zero_range(b("f"), SIZE + 1), "past the end"),
    ("unknown-method", lambda b: zero_range(b("f"), 0, 1, options=ZeroOptions(method="fast")), "unknown method"),
    ("unknown-backing", lambda b: zero_range(b("f"), 0, 1, options=ZeroOptions(backing="hugetlb")), "backing"),
    ("call-size-zero", lambda b: zero_range(b("f"), 0, 1, options=ZeroOptions(call_size=0)), "call size"),
    ("call-size-negative", lambda b: zero_range(b("f"), 0, 1, options=ZeroOptions(call_size=-4096)), "call size"),
    ("offload-direct", lambda b: zero_range(b("f"), 0, 1,
            options=ZeroOptions(method="offload", direct=True)), "direct=True"),
    ("page-backing", lambda b: zero_range(b("f"), 0, 1,
            options=ZeroOptions(method="page", backing="allocated")), "backing"),
    ("no-large-page-backing", lambda b: zero_range(b("f"), 0, 1,
            options=ZeroOptions(large_page=False, backing="allocated")),
     "large_page=False"),
    ("direct-call-size", lambda b: zero_range(b("f"), 0, 8192,
            options=ZeroOptions(method="large", direct=True, call_size=100)),
     "alignment"),
    ("empty-path", lambda b: zero_range("", 0, 1), "no target"),
    ("missing", lambda b: zero_range(b("missing"), 0, 1), "no such file"),
    ("directory", lambda b: zero_range(b("d"), 0, 1), "is a directory"),
    ("fifo", lambda b: zero_range(b("fifo"), 0, 1), "not a regular file"),
    ("dev-null", lambda b: zero_range("/dev/null", 0, 1), "not a regular file"),
    ("closed-fd", lambda b: zero_range(_closed_fd(), 0, 1), "Bad file descriptor"),
    ("open-target-procfs", lambda b: open_target("/proc/self/status"), "pseudo-filesystem"),
    ("check-options", lambda b: ZeroOptions("offload", call_size=4096).check(), "call_size"),
]


def _fd_case(b: Sandbox, path: str, flags: int) -> Any:
    with _fd(path, flags) as fd:
        return zero_range(fd, 0, 1)


API_CASES += [
    ("read-only-fd", lambda b: _fd_case(b, b("f"), os.O_RDONLY), "not open for writing"),
    ("directory-fd", lambda b: _fd_case(b, b("d"), os.O_RDONLY), "not a regular file"),
    ("pipe-fd", lambda b: zero_range(os.pipe()[1], 0, 1), "not a regular file"),
]


@pytest.mark.parametrize(("call", "says"), [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_api_call(box: Sandbox, call: ApiCall, says: str) -> None:
    with pytest.raises(LargezeroError) as info:
        call(box)
    err = info.value
    assert err.exit_code == EXIT_USAGE
    assert "\n" not in str(err) and says in str(err)


def test_verify_api_rejects_negative_ranges(box: Sandbox) -> None:
    with _fd(box("f"), os.O_RDONLY) as fd, pytest.raises(ValueError):
        check_zero(fd, -1, 10)


def _as_nobody(argv: list[str]) -> tuple[int, str]:
    """Run main(argv) in a forked child that dropped to uid/gid 65534 (the interpreter may live
    where 'nobody' cannot execute it, so no exec); returns (exit code, stderr)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 99
        try:
            os.dup2(write_end, 2)
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            code = main(argv)
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        err = f.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err


@requires_root
def test_unreadable_target_as_an_unprivileged_user(tmp_path_factory: pytest.TempPathFactory) -> None:
    """chmod 000 stops nobody but root: run the command line as 'nobody' to see EACCES."""
    root = os.fspath(tmp_path_factory.mktemp("unreadable"))
    os.chmod(root, 0o755)
    os.chmod(os.path.dirname(root), 0o755)
    path = make_image(os.path.join(root, "secret.img"), SIZE)
    fill_pattern(path, 0, SIZE)
    os.chmod(path, 0o000)
    inner = os.path.join(root, "closed")
    os.mkdir(inner, 0o700)
    hidden = make_image(os.path.join(inner, "x.img"), SIZE)
    cases = [(["zero", path, "-l", "4K"], "Permission denied"), (["verify", path], "Permission denied"),
             (["zero", hidden, "-l", "4K"], "Permission denied")]
    for argv, says in cases:
        code, err = _as_nobody(argv)
        assert code == EXIT_USAGE, err
        assert len(err.splitlines()) == 1 and says in err, err
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    with open(path, "rb") as f:
        assert f.read() == pattern_bytes(SIZE)
