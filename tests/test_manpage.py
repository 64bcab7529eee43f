"""The man page and the shell completions: built from the one parser by the Makefile's own
commands, they name every subcommand and every option of ``zero``, the man page has EXIT STATUS,
ENVIRONMENT, EXAMPLES and SEE ALSO, and the checked-in copies are current (run
``make man completion`` after changing an option)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from largezero.cli import available_commands, build_parser
from largezero.cli.completion import COMPLETIONS, MAN_PAGE
from largezero.cli.manual import ENVIRONMENT, EXAMPLES, EXIT_STATUS, SEE_ALSO
from largezero.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, EXIT_VERIFY_MISMATCH

ROOT = os.path.join(os.path.dirname(__file__), "..")
PACKAGE = os.path.join(ROOT, "src", "largezero")
BIN = os.path.dirname(sys.executable)


def _tool(name: str) -> str:
    path = os.path.join(BIN, name)
    if not os.path.exists(path):
        path = shutil.which(name) or ""
    if not path:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return path


def _makefile() -> str:
    with open(os.path.join(ROOT, "Makefile")) as f:
        return f.read()


def _recipe(target: str) -> list[list[str]]:
    """The Makefile's commands for ``target``, as argv lists (continuations joined, $(BIN)/ dropped,
    the output redirection left off)."""
    text = _makefile().replace("\\\n", " ")
    body = text.split(f"\n{target}:", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    import shlex

    out = []
    for line in body:
        words = shlex.split(line.strip())
        words = [w.replace("$(BIN)/", "") for w in words]
        if ">" in words:
            words = words[: words.index(">")]
        out.append(words)
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Run the Makefile's `man` and `completion` commands with the outputs redirected."""
    tmp = os.fspath(tmp_path_factory.mktemp("man"))
    (man_cmd,) = _recipe("man")
    man_cmd = [_tool(man_cmd[0]), *man_cmd[1:]]
    at = man_cmd.index("--version")
    man_cmd[at + 1] = "0"  # only the .TH line carries it
    man_cmd[man_cmd.index("--output") + 1] = os.path.join(tmp, "largezero.1")
    subprocess.run(man_cmd, check=True, capture_output=True, cwd=ROOT)
    with open(os.path.join(tmp, "largezero.1")) as f:
        out = {"man": f.read()}
    for cmd in _recipe("completion"):
        shell = next(w.split("=", 1)[1] for w in cmd if w.startswith("--shell="))
        done = subprocess.run([_tool(cmd[0]), *cmd[1:]], check=True, capture_output=True, text=True, cwd=ROOT)
        out[shell] = done.stdout
    return out


def _zero_options() -> list[str]:
    parser = build_parser(["zero"])
    sub = next(a for a in parser._actions if a.dest == "command")
    zero = sub.choices["zero"]  # type: ignore[index]
    return [o for a in zero._actions for o in a.option_strings if o.startswith("--") and o != "--help"]


def test_every_subcommand_and_every_zero_option_is_documented_and_completed(built: dict[str, str]) -> None:
    options = _zero_options()
    assert "--length" in options and "--direct" in options
    for name in available_commands():
        assert f"'largezero {name}'" in built["man"], name
        assert name in built["bash"] and name in built["zsh"], name
    for opt in options:
        assert opt.replace("-", "\\-") in built["man"], opt
        assert opt in built["bash"] and opt in built["zsh"], opt


def _section(man: str, heading: str) -> str:
    match = re.search(rf"^\.SH {heading}\n(.*?)(?=^\.SH |\Z)", man, re.S | re.M)
    assert match, f"no {heading} section"
    return match.group(1)


def _plain(roff: str) -> str:
    return re.sub(r"\\f[BIR]|\\&", "", roff).replace("\\-", "-").replace("\\\\", "\\")


def test_the_man_page_has_exit_status_environment_examples_and_see_also(built: dict[str, str]) -> None:
    man = built["man"]
    status = _plain(_section(man, "EXIT STATUS"))
    codes = [int(c) for c in re.findall(r"^\.TP\n(\d+)$", status, re.M)]
    assert codes == [EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_VERIFY_MISMATCH, EXIT_INTERRUPTED, 143, 129] == [
        c for c, _ in EXIT_STATUS]
    env = _plain(_section(man, "ENVIRONMENT"))
    for name, _ in ENVIRONMENT:
        assert f".TP\n{name}\n" in env, name
    examples = _plain(_section(man, "EXAMPLES"))
    for command, comment in EXAMPLES:
        assert f".TP\n{command}\n{comment}\n" in examples + "\n", command
    see_also = _section(man, "SEE ALSO")
    assert [f"{n}({s})" for n, s in SEE_ALSO] == [
        f"{n}({s})" for n, s in re.findall(r"^\.BR (\S+) \((\d)\)", see_also, re.M)]
    assert {"wipefs", "blkdiscard", "fallocate", "shred", "dd"} <= {n for n, _ in SEE_ALSO}


def test_every_largezero_variable_the_code_reads_is_documented() -> None:
    """A new LARGEZERO_* variable in src/ or the launcher must reach the ENVIRONMENT section."""
    read: set[str] = set()
    for folder, _, files in [*os.walk(PACKAGE), *os.walk(os.path.join(ROOT, "scripts"))]:
        for name in files:
            if name.endswith(".py") or folder.endswith("scripts"):
                with open(os.path.join(folder, name)) as f:
                    read |= set(re.findall(r"\b(LARGEZERO_[A-Z_]+)\b", f.read()))
    assert {"LARGEZERO_LARGE_PAGE", "LARGEZERO_PYTHON"} <= read
    assert read <= {name for name, _ in ENVIRONMENT}, read - {name for name, _ in ENVIRONMENT}


def test_the_examples_are_the_readmes() -> None:
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    block = readme.split("## Command line", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    pairs = []
    for line in block.splitlines():
        command, _, comment = line.partition(" # ")
        pairs.append((command.strip(), comment.strip()))
    assert pairs == EXAMPLES


def test_makefile_builds_them_from_the_documented_parser() -> None:
    text = _makefile()
    assert "argparse-manpage --module largezero.cli.manual --function documented_parser" in text
    assert text.count("shtab --shell=") == 2 and "largezero.cli.manual.documented_parser" in text
    assert any(line.startswith("DEBIAN_TEST_PACKAGES :=") for line in text.splitlines())


@pytest.mark.parametrize(("kind", "rel"), [("man", MAN_PAGE), *sorted(COMPLETIONS.items())])
def test_checked_in_copies_are_current(built: dict[str, str], kind: str, rel: str) -> None:
    with open(os.path.join(PACKAGE, rel)) as f:
        kept = f.read()

    def body(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith(".TH ")]  # the date and version

    assert body(kept) == body(built[kind]), f"{rel} is stale: run `make man completion`"
