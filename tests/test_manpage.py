"""The man page and the shell completions: built from the argparse definitions by the Makefile's
own commands, they name every subcommand and every option of ``zero``, and the checked-in
copies are current (run ``make man completion`` after changing an option)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from largezero.cli import available_commands, build_parser

ROOT = os.path.join(os.path.dirname(__file__), "..")
BIN = os.path.dirname(sys.executable)


def _tool(name: str) -> str:
    path = os.path.join(BIN, name)
    if not os.path.exists(path):
        path = shutil.which(name) or ""
    if not path:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return path


def _build(tmp: str) -> dict[str, str]:
    """Run `make man completion` with the outputs redirected into ``tmp``."""
    man = os.path.join(tmp, "largezero.1")
    subprocess.run([_tool("argparse-manpage"), "--module", "largezero.cli", "--function", "build_parser",
                    "--prog", "largezero", "--project-name", "largezero", "--version", "0",
                    "--description", "zero large ranges of files and block devices",
                    "--manual-title", "largezero manual", "--output", man], check=True, capture_output=True)
    with open(man) as f:
        out = {"man": f.read()}
    for shell in ("bash", "zsh"):
        done = subprocess.run([_tool("shtab"), f"--shell={shell}", "--prog", "largezero", "largezero.cli.build_parser"],
                              check=True, capture_output=True, text=True)
        out[shell] = done.stdout
    return out


def _zero_options() -> list[str]:
    parser = build_parser(["zero"])
    sub = next(a for a in parser._actions if a.dest == "command")
    zero = sub.choices["zero"]  # type: ignore[index]
    return [o for a in zero._actions for o in a.option_strings if o.startswith("--") and o != "--help"]


def test_every_subcommand_and_every_zero_option_is_documented_and_completed(tmp_path: os.PathLike[str]) -> None:
    built = _build(os.fspath(tmp_path))
    options = _zero_options()
    assert "--length" in options and "--direct" in options
    for name in available_commands():
        assert f"'largezero {name}'" in built["man"], name
        assert name in built["bash"] and name in built["zsh"], name
    for opt in options:
        assert opt.replace("-", "\\-") in built["man"], opt
        assert opt in built["bash"] and opt in built["zsh"], opt


def test_makefile_builds_them_with_the_same_tools() -> None:
    with open(os.path.join(ROOT, "Makefile")) as f:
        text = f.read()
    assert "argparse-manpage --module largezero.cli --function build_parser" in text
    assert "shtab --shell=bash" in text and "shtab --shell=zsh" in text
    assert any(line.startswith("DEBIAN_TEST_PACKAGES :=") for line in text.splitlines())


@pytest.mark.parametrize(("kind", "path"), [("man", "docs/man/largezero.1"), ("bash", "docs/completion/largezero.bash"),
                                            ("zsh", "docs/completion/_largezero")])
def test_checked_in_copies_are_current(tmp_path: os.PathLike[str], kind: str, path: str) -> None:
    built = _build(os.fspath(tmp_path))[kind]
    with open(os.path.join(ROOT, path)) as f:
        kept = f.read()

    def body(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith(".TH ")]  # the date and version

    assert body(kept) == body(built), f"{path} is stale: run `make man completion`"
