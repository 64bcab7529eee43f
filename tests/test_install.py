"""A plain `pip install` brings the man page and the shell completions: the wheel is built from a
copy of this tree (no network: this venv's setuptools, no build isolation) and installed into a
new venv, where the files must sit below the prefix and `largezero completion bash|zsh` prints
them; bash, with the installed script sourced, completes a file and a loop device for TARGET."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from largezero.cli.completion import COMPLETIONS, MAN_PAGE

ROOT = os.path.join(os.path.dirname(__file__), "..")
INSTALLED = {"man": MAN_PAGE, **COMPLETIONS}  # below largezero/ and below the prefix alike


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    top = os.fspath(tmp_path_factory.mktemp("install"))
    tree = os.path.join(top, "tree")
    os.makedirs(tree)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(os.path.join(ROOT, name), tree)
    for folder in ("src", "scripts"):
        shutil.copytree(os.path.join(ROOT, folder), os.path.join(tree, folder),
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    from importlib.metadata import version

    if int(version("setuptools").split(".")[0]) < 77:  # the SPDX license string
        pytest.skip(f"setuptools {version('setuptools')} cannot build the wheel: pip install -e '.[dev]'")
    wheels = os.path.join(top, "wheels")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "--no-index", "-w", wheels, tree], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    env = os.path.join(top, "venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", env], check=True, timeout=120)
    python = os.path.join(env, "bin", "python")
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index",
                    *glob.glob(os.path.join(wheels, "largezero-*.whl"))], check=True, capture_output=True,
                   timeout=300)
    yield env


def test_the_files_are_installed_below_the_prefix(venv: str) -> None:
    for kind, rel in INSTALLED.items():
        path = os.path.join(venv, rel)
        with open(path) as f, open(os.path.join(ROOT, "src", "largezero", rel)) as ours:
            assert f.read() == ours.read(), kind
    with open(os.path.join(venv, MAN_PAGE)) as f:
        assert ".SH EXIT STATUS" in f.read()


@pytest.mark.parametrize("shell", sorted(COMPLETIONS))
def test_largezero_completion_prints_the_installed_script(venv: str, shell: str) -> None:
    done = subprocess.run([os.path.join(venv, "bin", "largezero"), "completion", shell], capture_output=True,
                          text=True, timeout=60, cwd=venv)
    assert done.returncode == 0, done.stderr
    with open(os.path.join(venv, COMPLETIONS[shell])) as f:
        assert done.stdout == f.read()
    assert "_largezero_" in done.stdout and "files_and_block_devices" in done.stdout


def bash_complete(script: str, words: list[str], cwd: str) -> list[str]:
    """What bash offers for the last word, with ``script`` sourced: COMPREPLY, one per line."""
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    program = (f"source {script!r}\n"
               f"COMP_WORDS=({quoted}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))\n"
               'COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}\n'
               "complete -p largezero >/dev/null\n"  # the script registered its function
               "_shtab_largezero\n"
               'printf "%s\\n" "${COMPREPLY[@]}"\n')
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    done = subprocess.run([bash, "--norc", "--noprofile", "-c", program], capture_output=True, text=True,
                          timeout=60, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]


def test_bash_completes_files_for_target(venv: str, tmp_path: os.PathLike[str]) -> None:
    here = os.fspath(tmp_path)
    for name in ("disk-one.img", "disk-two.img", "other.txt"):
        open(os.path.join(here, name), "w").close()
    script = os.path.join(venv, COMPLETIONS["bash"])
    assert sorted(bash_complete(script, ["largezero", "zero", "disk-"], here)) == ["disk-one.img", "disk-two.img"]
    assert bash_complete(script, ["largezero", "verify", "oth"], here) == ["other.txt"]
    assert bash_complete(script, ["largezero", "zero", "--le"], here) == ["--length"]
    assert bash_complete(script, ["largezero", "zer"], here) == ["zero"]


def test_bash_completes_a_loop_device_for_target(venv: str, ramfs_loop: object, tmp_path: os.PathLike[str]) -> None:
    dev = ramfs_loop(1 << 20)  # type: ignore[operator]
    script = os.path.join(venv, COMPLETIONS["bash"])
    here = os.fspath(tmp_path)
    offered = bash_complete(script, ["largezero", "zero", dev[:-1]], here)
    assert dev in offered
    assert all(os.path.exists(p) for p in offered)
    # Nothing typed yet: the files here and the block devices, ours among them.
    open(os.path.join(here, "disk.img"), "w").close()
    offered = bash_complete(script, ["largezero", "info", ""], here)
    assert "disk.img" in offered and dev in offered
    # Under /dev only block devices and folders: /dev/null is refused as a target, so not offered.
    offered = bash_complete(script, ["largezero", "zero", "/dev/nu"], here)
    assert "/dev/null" not in offered


# zsh completes only in its line editor: a pty (zpty) runs an interactive zsh with the installed
# function on $fpath, types the words and a Tab, and compadd records what it was offered.
ZSH_DRIVER = r"""
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PROMPT=; RPROMPT=; fpath=(${(q)1} \$fpath); autoload -Uz compinit; compinit -u -D; cd ${(q)2}"
zpty -w z 'compadd () { local -a hits; builtin compadd -O hits "$@"; print -rl -- $hits >> hits; builtin compadd "$@" }'
zpty -w z 'print RE""ADY'
zpty -r z line '*READY*'
zpty -wn z "$3"$'\t'
zpty -wn z $'\C-u'
zpty -w z 'print DO""NE'
zpty -r z line '*DONE*'
zpty -d z
"""


def zsh_complete(function_dir: str, line: str, cwd: str) -> set[str]:
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.skip("zsh is not installed")
    offered = os.path.join(cwd, "hits")
    if os.path.exists(offered):
        os.unlink(offered)
    subprocess.run([zsh, "-f", "-c", ZSH_DRIVER, "zsh", function_dir, cwd, line], check=True, timeout=60,
                   capture_output=True)
    with open(offered) as f:
        return {w for w in f.read().splitlines() if w}


def test_zsh_completes_files_and_a_loop_device_for_target(venv: str, ramfs_loop: object,
                                                          tmp_path: os.PathLike[str]) -> None:
    dev = ramfs_loop(1 << 20)  # type: ignore[operator]
    here = os.fspath(tmp_path)
    for name in ("disk-one.img", "disk-two.img"):
        open(os.path.join(here, name), "w").close()
    functions = os.path.dirname(os.path.join(venv, COMPLETIONS["zsh"]))
    assert {"disk-one.img", "disk-two.img"} <= zsh_complete(functions, "largezero zero disk-", here)
    assert dev in zsh_complete(functions, "largezero info ", here)
