"""Start-up: the whole process of a small largezero command against the tools people use.

A C tool starts in about 1.5 ms and a bare Python in about 9; whatever largezero adds on top
is what a person pays on every small job. Every command runs ``rounds`` times, interleaved, and
the median is reported; ``import_costs`` says which imports the time goes to
(``python -X importtime``), so the owners of the modules know what to defer.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from .._record import record

SMALL = 4096


@record(frozen=True)
class StartupRow:
    label: str
    argv: tuple[str, ...]
    family: str  # "largezero" or "peer"
    median_ms: float
    min_ms: float
    rounds: int
    exit_code: int
    instructions: int | None = None  # user-space instructions under callgrind, when counted

    def to_dict(self) -> dict[str, object]:
        return {"label": self.label, "argv": list(self.argv), "family": self.family,
                "median_ms": round(self.median_ms, 2), "min_ms": round(self.min_ms, 2),
                "rounds": self.rounds, "exit_code": self.exit_code, "instructions": self.instructions}


def largezero_argv() -> list[str]:
    """How a person runs the command: the console script next to this interpreter."""
    exe = os.path.join(os.path.dirname(sys.executable), "largezero")
    return [exe] if os.access(exe, os.X_OK) else [sys.executable, "-m", "largezero"]


def commands(path: str) -> list[tuple[str, str, list[str]]]:
    """(label, family, argv) of every start-up row, on the scratch file ``path``."""
    lz = largezero_argv()
    out: list[tuple[str, str, list[str]]] = [
        ("largezero --help", "largezero", [*lz, "--help"]),
        ("largezero info FILE", "largezero", [*lz, "info", path]),
        ("largezero zero FILE -l 4K", "largezero", [*lz, "zero", path, "-l", "4K"]),
        ("largezero verify FILE -l 4K", "largezero", [*lz, "verify", path, "-l", "4K"]),
        ("python -c pass (this venv)", "peer", [sys.executable, "-c", "pass"]),
    ]
    if shutil.which("fallocate"):
        out.append(("fallocate -z -l 4K FILE", "peer", ["fallocate", "-z", "-l", "4K", path]))
    if shutil.which("dd"):
        out.append(("dd bs=4K count=1 (4 KiB)", "peer", ["dd", "if=/dev/zero", f"of={path}", "bs=4K", "count=1",
                                                      "conv=notrunc", "status=none"]))
    return out


def bytecode_env(prefix: str) -> dict[str, str]:
    """The environment of an installed package: bytecode cached (pip compiles at install).

    PYTHONDONTWRITEBYTECODE=1 (set in some shells and CI) makes every run compile our modules
    from source, about half of the start-up; the cache goes to a private prefix, so the
    working tree gets no __pycache__ directories.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = prefix
    return env


def _time_once(argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    t0 = time.perf_counter()
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          check=False, env=env)
    return time.perf_counter() - t0, done.returncode


def count_instructions(argv: Sequence[str], env: dict[str, str] | None = None) -> int | None:
    """Instructions the command executes, from valgrind's callgrind: the same count on every run
    whatever else the machine does, where wall time on a shared machine drifts by 2x in an hour.
    None without valgrind."""
    if not shutil.which("valgrind"):
        return None
    # --trace-children: the largezero command is a shell launcher that execs env, then python;
    # callgrind reports the last image (the few hundred thousand of sh and env are not counted).
    done = subprocess.run(["valgrind", "--tool=callgrind", "--trace-children=yes", "--callgrind-out-file=/dev/null",
                           *argv],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          check=False, env=env)
    for line in done.stderr.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1].strip())
    return None


def measure_startup(rounds: int = 15, workdir: str | None = None, bytecode: bool = True,
                    instructions: bool = False) -> list[StartupRow]:
    """Median whole-process time of every command, rounds interleaved so drift hits all alike.

    ``bytecode``: as an installed package runs (see :func:`bytecode_env`); False: with this
    process's environment as it is. ``instructions``: also count each Python command's
    instructions once under callgrind (about 3 s each).
    """
    with tempfile.TemporaryDirectory(prefix="largezero-startup-", dir=workdir) as tmp:
        path = os.path.join(tmp, "small.img")
        with open(path, "wb") as f:
            f.truncate(1 << 20)
        env = bytecode_env(os.path.join(tmp, "pycache")) if bytecode else None
        cmds = commands(path)
        times: list[list[float]] = [[] for _ in cmds]
        codes = [0] * len(cmds)
        for _ in range(2):  # warm-up: page cache, the bytecode cache
            for argv in (c[2] for c in cmds):
                _time_once(argv, env)
        for _ in range(rounds):
            for i, (_, _, argv) in enumerate(cmds):
                seconds, codes[i] = _time_once(argv, env)
                times[i].append(seconds)
        counts = [count_instructions(argv, env) if instructions and (family == "largezero" or "python" in label)
                  else None for label, family, argv in cmds]
    return [StartupRow(label, tuple(argv), family, statistics.median(t) * 1000, min(t) * 1000, rounds, code, n)
            for (label, family, argv), t, code, n in zip(cmds, times, codes, counts, strict=True)]


def import_costs(argv_tail: Sequence[str], top: int = 12) -> list[tuple[str, float]]:
    """The modules whose own import time (self, not cumulative) is largest, in ms, for
    ``largezero <argv_tail>`` under ``python -X importtime``, bytecode cached (second run)."""
    with tempfile.TemporaryDirectory(prefix="largezero-importtime-") as tmp:
        argv = [sys.executable, "-X", "importtime", "-m", "largezero", *argv_tail]
        env = bytecode_env(tmp)
        for _ in range(2):  # the first run fills the bytecode cache
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True, check=False, env=env)
    costs: list[tuple[str, float]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[0].strip().isdigit():
            costs.append((parts[2].strip(), int(parts[0]) / 1000))
    return sorted(costs, key=lambda c: -c[1])[:top]


def render_startup(rows: Sequence[StartupRow], bytecode: bool = True) -> str:
    bare = next((r for r in rows if r.label.startswith("python -c")), None)
    base = bare.median_ms if bare else None
    how = "bytecode cached, as installed" if bytecode else "this environment as it is"
    lines = [f"start-up, whole process ({how}; median ms; x = times bare python -c pass)"]
    counted = bare is not None and bare.instructions is not None
    if counted:
        lines.append("  (instr: callgrind's count, the same on every run whatever the machine's load; ix: that\n"
                     "   count over bare python's, so a command takes about ix times what python -c pass takes)")
    for r in rows:
        ratio = f"{r.median_ms / base:5.1f}x" if base else "   - "
        bad = "" if r.exit_code == 0 else f"  (exit {r.exit_code})"
        extra = ""
        if counted and r.instructions is not None and bare is not None and bare.instructions:
            extra = f"  instr {r.instructions / 1e6:6.1f} M  {r.instructions / bare.instructions:4.2f}ix"
        lines.append(f"  {r.label:34} {r.median_ms:7.1f} ms  (min {r.min_ms:6.1f})  {ratio}{extra}{bad}")
    return "\n".join(lines)
