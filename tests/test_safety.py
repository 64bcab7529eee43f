"""Safety: devices that carry a partition table or filesystem are refused unless --force (every
libblkid signature: see test_signatures.py; in-use refusals: test_inuse.py); a symlink target
shows what it resolves to; nothing is created without --create."""

from __future__ import annotations

import errno
import json
import os
import struct
import subprocess
from collections.abc import Callable, Iterator

import pytest

from largezero import TargetError, ZeroOptions, zero_range
from largezero.cli import main
from largezero.errors import EXIT_OK, EXIT_USAGE
from largezero.scratch import fill_pattern, loop_device, make_image

from .faultinject import Injector
from .helpers import pattern_bytes, read_range, requires_root

SIZE = 8 << 20


# --- on real loop devices ----------------------------------------------------------------


@pytest.fixture
def image_loop(tmp_path: os.PathLike[str]) -> Iterator[Callable[[str, Callable[[str], None]], str]]:
    """Factory: a loop device over a pattern-filled image that ``prepare`` wrote a signature on."""
    if os.geteuid() != 0:
        pytest.skip("needs root: loop devices")
    import contextlib

    with contextlib.ExitStack() as stack:

        def make(name: str, prepare: Callable[[str], None]) -> str:
            image = make_image(os.path.join(os.fspath(tmp_path), f"{name}.img"), SIZE)
            fill_pattern(image, 0, SIZE)
            prepare(image)
            return stack.enter_context(loop_device(image))

        yield make


def _mkfs(*argv: str) -> Callable[[str], None]:
    def prepare(image: str) -> None:
        subprocess.run([*argv, image], check=True, capture_output=True)

    return prepare


def _write(at: int, data: bytes) -> Callable[[str], None]:
    def prepare(image: str) -> None:
        fd = os.open(image, os.O_WRONLY)
        try:
            os.pwrite(fd, data, at)
        finally:
            os.close(fd)

    return prepare


def _mbr(types: list[int]) -> bytes:
    """A DOS partition table written by hand: one 2 MiB partition per type, boot signature."""
    buf = bytearray(512)
    for i, t in enumerate(types):
        entry = struct.pack("<B3sB3sII", 0x80 if i == 0 else 0, b"\0\0\0", t, b"\0\0\0", 2048, 4096)
        buf[446 + 16 * i : 462 + 16 * i] = entry
    buf[510:512] = b"\x55\xaa"
    return bytes(buf)


REAL = [
    ("mkfs.ext4", _mkfs("mkfs.ext4", "-q", "-F"), "an ext4 signature at offset 0x438"),
    ("mkswap", _mkfs("mkswap"), "a swap signature at offset 0xff6"),
    ("mbr", _write(0, _mbr([0x83])), "a dos partition table at offset 0x1fe"),
]


@requires_root
@pytest.mark.parametrize(("prepare", "says"), [r[1:] for r in REAL], ids=[r[0] for r in REAL])
def test_device_with_a_signature_is_refused_unless_force(image_loop: Callable[[str, Callable[[str], None]], str],
                                                         capsys: pytest.CaptureFixture[str],
                                                         prepare: Callable[[str], None], says: str) -> None:
    dev = image_loop("signed", prepare)
    before = read_range(dev, 0, SIZE)
    with pytest.raises(TargetError) as info:
        zero_range(dev, SIZE - (1 << 20), 1 << 20)  # refused even far from the signature
    assert info.value.exit_code == EXIT_USAGE and says in str(info.value) and "force=True" in str(info.value)
    assert main(["zero", dev, "-l", "1M"]) == EXIT_USAGE
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and dev in err[0] and says in err[0]
    assert read_range(dev, 0, SIZE) == before
    # Read-only commands are not refused.
    assert main(["verify", dev, "-l", "4K"]) in (0, 3)
    capsys.readouterr()
    assert main(["zero", dev, "-l", "1M", "--force"]) == EXIT_OK
    after = read_range(dev, 0, SIZE)
    assert after[: 1 << 20] == bytes(1 << 20) and after[1 << 20 :] == before[1 << 20 :]
    # The signature is gone with the first MiB: no --force needed any more.
    assert main(["zero", dev, "-o", "1M", "-l", "1M"]) == EXIT_OK


@requires_root
def test_blank_device_needs_no_force(image_loop: Callable[[str, Callable[[str], None]], str]) -> None:
    dev = image_loop("blank", lambda image: None)
    assert zero_range(dev, 0, 1 << 20).bytes_zeroed == 1 << 20


@requires_root
def test_mounted_device_is_refused(tmp_path: os.PathLike[str],
                                   image_loop: Callable[[str, Callable[[str], None]], str]) -> None:
    dev = image_loop("mounted", _mkfs("mkfs.ext4", "-q", "-F"))
    mnt = os.path.join(os.fspath(tmp_path), "mnt")
    os.mkdir(mnt)
    subprocess.run(["mount", dev, mnt], check=True, capture_output=True)
    try:
        with pytest.raises(TargetError) as info:
            zero_range(dev, 0, 4096, options=ZeroOptions(force=False))
        assert "mounted on" in str(info.value)
    finally:
        subprocess.run(["umount", mnt], check=True, capture_output=True)


# --- symlinks ----------------------------------------------------------------------------


def test_symlink_target_prints_the_resolved_path(tmp_path: os.PathLike[str],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    tmp = os.fspath(tmp_path)
    real = make_image(os.path.join(tmp, "real.img"), 1 << 20)
    fill_pattern(real, 0, 1 << 20)
    link = os.path.join(tmp, "by-id-link")
    os.symlink("real.img", link)  # relative, like /dev/disk/by-id/* -> ../../sdb
    assert main(["zero", link, "-l", "4K"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith(f"{link} -> {real}: zeroed 4 KiB")
    assert main(["zero", link, "-l", "4K", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["resolved"] == real
    assert main(["zero", real, "-l", "4K", "--json"]) == EXIT_OK
    assert "resolved" not in json.loads(capsys.readouterr().out)


@requires_root
def test_symlink_to_a_device_prints_the_device(tmp_path: os.PathLike[str],
                                               image_loop: Callable[[str, Callable[[str], None]], str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    dev = image_loop("linked", lambda image: None)
    link = os.path.join(os.fspath(tmp_path), "disk-link")
    os.symlink(dev, link)
    assert main(["zero", link, "-l", "64K"]) == EXIT_OK
    assert capsys.readouterr().out.startswith(f"{link} -> {dev}: zeroed 64 KiB")


# --- --create ----------------------------------------------------------------------------


def test_nothing_is_created_without_create(tmp_path: os.PathLike[str], capsys: pytest.CaptureFixture[str]) -> None:
    path = os.path.join(os.fspath(tmp_path), "new.img")
    for method in ("auto", "large", "page", "offload"):
        assert main(["zero", path, "-l", "1M", "-m", method, "--extend"]) == EXIT_USAGE
        assert not os.path.lexists(path)
    assert "--create" in capsys.readouterr().err
    with pytest.raises(TargetError):
        zero_range(path, 0, 4096, options=ZeroOptions(extend=True))
    assert not os.path.lexists(path)


def test_create_makes_a_zeroed_file_of_the_range(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(os.fspath(tmp_path), "new.img")
    assert main(["zero", path, "-o", "4K", "-l", "1M", "--create", "--verify"]) == EXIT_OK
    assert os.path.getsize(path) == 4096 + (1 << 20)
    assert read_range(path, 0, 4096 + (1 << 20)) == bytes(4096 + (1 << 20))
    # An existing file is used as it is, --create or not.
    fill_pattern(path, 0, 4096)
    assert main(["zero", path, "-o", "4K", "-l", "4K", "--create"]) == EXIT_OK
    assert read_range(path, 0, 4096) == pattern_bytes(4096)


def test_create_leaves_nothing_behind_when_refused(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(os.fspath(tmp_path), "new.img")
    unsupported = dict.fromkeys(("ZERO_RANGE", "WRITE_ZEROES", "PUNCH_HOLE"), errno.EOPNOTSUPP)
    from largezero import syscalls

    with syscalls.installed(Injector(offload_errors=unsupported)):
        assert main(["zero", path, "-l", "1M", "-m", "offload", "--create"]) == EXIT_USAGE
    assert not os.path.lexists(path)


def test_create_never_makes_files_under_dev(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zero", "/dev/largezero-typo", "-l", "1M", "--create"]) == EXIT_USAGE
    assert not os.path.lexists("/dev/largezero-typo")
    assert "under /dev" in capsys.readouterr().err
