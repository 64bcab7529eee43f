"""Signatures made by the real tools are found by libblkid and refuse the device unless --force.

Each case builds a signature on an image file with the tool that makes it (mkfs.*, mkswap,
sfdisk, cryptsetup), attaches a loop device to it, and checks: refused by ``open_target`` and by
``largezero zero`` (exit 2, one line naming type and offset like wipefs, bytes unchanged), then
zeroed with ``--force``. A tool that is not installed skips its case with the package to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable

import pytest

from largezero.errors import EXIT_OK, EXIT_USAGE, TargetError
from largezero.scratch import loop_device, make_image
from largezero.targets import open_target
from largezero.targets.blkid import probe

from .helpers import read_range, requires_root

SIZE = 32 << 20  # LUKS2 wants 16 MiB of header room; the rest is room for the others


def _tool(argv: list[str], stdin: str | None = None) -> Callable[[str, str], None]:
    def make(image: str, tmp: str) -> None:
        subprocess.run([a.replace("IMG", image) for a in argv], input=stdin, check=True, capture_output=True,
                       text=True)

    return make


def _from_dir(argv: list[str]) -> Callable[[str, str], None]:
    """Tools that build an image from a directory into a new file: built beside, copied in."""

    def make(image: str, tmp: str) -> None:
        src = os.path.join(tmp, "src")
        os.makedirs(src, exist_ok=True)
        with open(os.path.join(src, "a"), "w") as f:
            f.write("largezero\n")
        built = os.path.join(tmp, "built.img")
        subprocess.run([a.replace("OUT", built).replace("SRC", src) for a in argv], check=True, capture_output=True)
        with open(built, "rb") as f, open(image, "r+b") as g:
            g.write(f.read())

    return make


def _luks(image: str, tmp: str) -> None:
    key = os.path.join(tmp, "key")
    with open(key, "wb") as f:
        f.write(b"largezero-test-key")
    subprocess.run(["cryptsetup", "luksFormat", "-q", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2",
                    "--pbkdf-force-iterations", "1000", "--key-file", key, image], check=True, capture_output=True)


# (id, tool, Debian package, maker, libblkid type expected in the message)
CASES: list[tuple[str, str, str, Callable[[str, str], None], str]] = [
    ("ext4", "mkfs.ext4", "e2fsprogs", _tool(["mkfs.ext4", "-q", "-F", "IMG"]), "ext4"),
    ("vfat", "mkfs.vfat", "dosfstools", _tool(["mkfs.vfat", "IMG"]), "vfat"),
    ("swap", "mkswap", "util-linux", _tool(["mkswap", "IMG"]), "swap"),
    ("dos-empty", "sfdisk", "fdisk", _tool(["sfdisk", "-q", "IMG"], "label: dos\n"), "dos"),
    ("gpt", "sfdisk", "fdisk", _tool(["sfdisk", "-q", "IMG"], "label: gpt\n"), "gpt"),
    ("sun", "sfdisk", "fdisk", _tool(["sfdisk", "-q", "IMG"], "label: sun\n"), "sun"),
    ("sgi", "sfdisk", "fdisk", _tool(["sfdisk", "-q", "IMG"], "label: sgi\n"), "sgi"),
    ("minix", "mkfs.minix", "util-linux", _tool(["mkfs.minix", "IMG"]), "minix"),
    ("bfs", "mkfs.bfs", "util-linux", _tool(["mkfs.bfs", "IMG"]), "bfs"),
    ("cramfs", "mkfs.cramfs", "util-linux-extra", _from_dir(["mkfs.cramfs", "SRC", "OUT"]), "cramfs"),
    ("exfat", "mkfs.exfat", "exfatprogs", _tool(["mkfs.exfat", "IMG"]), "exfat"),
    ("erofs", "mkfs.erofs", "erofs-utils", _from_dir(["mkfs.erofs", "OUT", "SRC"]), "erofs"),
    ("luks2", "cryptsetup", "cryptsetup-bin", _luks, "crypto_LUKS"),
]


def _image(tmp: str, make: Callable[[str, str], None]) -> str:
    image = make_image(os.path.join(tmp, "signed.img"), SIZE, allocate=False)
    make(image, tmp)
    return image


@pytest.mark.parametrize(("tool", "package", "make", "kind"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_libblkid_names_the_signature_on_an_image(tmp_path: os.PathLike[str], tool: str, package: str,
                                                  make: Callable[[str, str], None], kind: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed (Debian package {package})")
    image = _image(os.fspath(tmp_path), make)
    fd = os.open(image, os.O_RDONLY)
    try:
        found = probe(fd, SIZE)
        assert kind.lower() in [s.type.lower() for s in found], found
        assert all(s.offset is not None and 0 <= s.offset < SIZE for s in found)
        # The command-line fallback (used only without libblkid) sees the same first type.
        fallback = probe(fd, SIZE, use_library=False)
        assert fallback and fallback[0].type.lower() in [s.type.lower() for s in found]
    finally:
        os.close(fd)


@requires_root
@pytest.mark.parametrize(("tool", "package", "make", "kind"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_device_with_a_real_signature_is_refused_unless_force(tmp_path: os.PathLike[str], tool: str, package: str,
                                                              make: Callable[[str, str], None], kind: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed (Debian package {package})")
    image = _image(os.fspath(tmp_path), make)
    with loop_device(image) as dev:
        before = read_range(dev, 0, 2 << 20)
        with pytest.raises(TargetError) as info:
            open_target(dev)
        msg = str(info.value)
        assert info.value.exit_code == EXIT_USAGE and kind in msg and "at offset 0x" in msg and "force=True" in msg
        cli = [sys.executable, "-m", "largezero", "zero", dev, "-o", "1M", "-l", "1M"]
        done = subprocess.run(cli, capture_output=True, text=True)
        err = done.stderr.strip().splitlines()
        assert done.returncode == EXIT_USAGE and len(err) == 1 and kind in err[0] and dev in err[0], done.stderr
        assert read_range(dev, 0, 2 << 20) == before
        done = subprocess.run([*cli, "--force"], capture_output=True, text=True)
        assert done.returncode == EXIT_OK, done.stderr
        after = read_range(dev, 0, 2 << 20)
        assert after[: 1 << 20] == before[: 1 << 20] and after[1 << 20 :] == bytes(1 << 20)


@requires_root
def test_blank_device_has_no_signature(tmp_path: os.PathLike[str]) -> None:
    image = make_image(os.path.join(os.fspath(tmp_path), "blank.img"), SIZE, allocate=False)
    with loop_device(image) as dev:
        tgt = open_target(dev)
        try:
            assert tgt.signatures() == []
        finally:
            tgt.close()
