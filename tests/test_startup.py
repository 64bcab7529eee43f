"""Start-up: what a command imports, checked in fresh interpreters (no timing here: the
benchmark reports the times, see largezero.bench.startup)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import pytest

import largezero
from largezero.cli import COMMANDS, available_commands, build_parser, chosen_command

HEAVY = ("largezero.bench", "matplotlib", "rich")
# Standard modules the start-up of zero, info and verify does without (each costs 0.5-15 ms:
# dataclasses brings inspect, ast and dis; argparse's help width brings shutil, bz2 and lzma).
STARTUP_FREE = ("dataclasses", "inspect", "threading", "contextlib", "json", "shutil", "shlex", "gzip",
                "typing", "importlib.util", "concurrent.futures")


def _modules_after(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it must leave ``result`` (an exit code) set. Returns
    that and the modules loaded at the end."""
    script = (code + "\nimport sys\nloaded = sorted(sys.modules)\nimport json\n"
              "print(json.dumps({'code': result, 'modules': loaded}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    out: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def test_importing_the_cli_loads_no_command_and_no_engine() -> None:
    out = _modules_after("import largezero.cli\nresult = 0")
    loaded = set(out["modules"])  # type: ignore[arg-type]
    ours = sorted(m for m in loaded if m.startswith("largezero"))
    assert ours == ["largezero", "largezero._version", "largezero.cli"], ours
    assert not loaded & {"argparse", "typing", "ctypes", "json", "threading"}


def test_top_level_help_imports_no_command_module() -> None:
    out = _modules_after("import contextlib, io\nfrom largezero.cli import main\n"
                         "with contextlib.redirect_stdout(io.StringIO()) as buf:\n    result = main(['--help'])\n"
                         "assert all(name in buf.getvalue() for name in " + repr(list(COMMANDS)) + ")")
    assert out["code"] == 0
    loaded = set(out["modules"])  # type: ignore[arg-type]
    assert not {f"largezero.cli.{name}" for name in COMMANDS} & loaded
    assert not {"largezero.engine", "largezero.model", "largezero.mm", "largezero.targets", "ctypes"} & loaded


def test_zero_on_a_small_file_loads_no_bench_rich_or_matplotlib(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(os.fspath(tmp_path), "small.img")
    with open(path, "wb") as f:
        f.write(b"\xff" * 65536)
    out = _modules_after(f"from largezero.cli import main\nresult = main(['zero', {path!r}, '-l', '4K'])")
    assert out["code"] == 0
    loaded = out["modules"]
    assert [m for m in loaded if m.split(".")[0] in ("matplotlib", "rich") or m.startswith(HEAVY[0])] == []  # type: ignore[union-attr]
    # libc by soname: ctypes.util.find_library would have run `ldconfig -p` in a subprocess.
    assert "ctypes.util" not in loaded  # type: ignore[operator]
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4096] == bytes(4096) and data[4096:] == b"\xff" * (65536 - 4096)


@pytest.mark.parametrize("argv", [["zero", "{path}", "-l", "4K"], ["info", "{path}"], ["verify", "{path}", "-l", "4K"]])
def test_timed_commands_load_none_of_the_costly_standard_modules(tmp_path: os.PathLike[str], argv: list[str]) -> None:
    path = os.path.join(os.fspath(tmp_path), "small.img")
    with open(path, "wb") as f:
        f.write(bytes(65536))
    words = [w.format(path=path) for w in argv]
    out = _modules_after(f"from largezero.cli import main\nresult = main({words!r})")
    assert out["code"] == 0
    assert sorted(set(out["modules"]) & set(STARTUP_FREE)) == []  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_chosen_command_imports_only_its_own_module(name: str) -> None:
    if name not in available_commands():
        pytest.skip(f"largezero.cli.{name} is not in this tree yet")
    out = _modules_after(f"from largezero.cli import build_parser\nbuild_parser([{name!r}])\nresult = 0")
    loaded = set(out["modules"])  # type: ignore[arg-type]
    others = {f"largezero.cli.{n}" for n in COMMANDS if n != name}
    # A command may use another's helpers (zero --verify uses cli.verify); never bench.
    assert f"largezero.cli.{name}" in loaded
    if name != "bench":
        assert "largezero.cli.bench" not in loaded and "largezero.bench" not in loaded
    assert len(others & loaded) <= 1, sorted(others & loaded)


def test_the_table_says_what_each_module_says() -> None:
    full = build_parser(available_commands())
    sub = next(a for a in full._actions if a.dest == "command")
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    for name in available_commands():
        assert helps[name] == COMMANDS[name], f"COMMANDS[{name!r}] differs from cli/{name}.py's help"


def test_chosen_command() -> None:
    assert chosen_command(["zero", "-l", "4K", "x"]) == "zero"
    assert chosen_command(["-V"]) is None
    assert chosen_command(["--", "info", "x"]) == "info"
    assert chosen_command(["frobnicate"]) is None
    assert chosen_command([]) is None


def test_every_public_name_is_importable_and_lazy() -> None:
    table = largezero._LAZY  # type: ignore[attr-defined]
    assert set(largezero.__all__) <= set(table)
    for name in largezero.__all__:
        assert getattr(largezero, name) is getattr(importlib.import_module(table[name]), name)
    # Names whose modules are still being written: importable once those modules have them.
    for name in set(table) - set(largezero.__all__):
        try:
            module = importlib.import_module(table[name])
        except ImportError:
            continue
        if hasattr(module, name):
            assert getattr(largezero, name) is getattr(module, name)
    with pytest.raises(AttributeError):
        _ = largezero.no_such_name  # type: ignore[attr-defined]


def test_star_import_works_in_a_fresh_interpreter() -> None:
    out = _modules_after("from largezero import *\nresult = int(callable(zero_range))")
    assert out["code"] == 1


def test_bench_cache_pattern_is_built_on_first_use_only() -> None:
    out = _modules_after("import largezero.bench.cache as c\nresult = int('pattern' in dir(c))\n"
                         "assert c.pattern.cache_info().currsize == 0\n"
                         "assert len(c.PATTERN) == c.PATTERN_CHUNK and 0 not in c.PATTERN[:4096]")
    assert out["code"] == 1
