"""Zeroed vs overwritten, said and done; messages that cannot be written never cost the job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from largezero.scratch import loop_device, make_image

from .helpers import pattern_bytes, read_range, requires_root

LZ = [sys.executable, "-m", "largezero"]
MARK = b"LARGEZERO-OLD-SECRET-"  # a pattern to look for in the image afterwards


@pytest.fixture
def ext4_image(tmp_path: os.PathLike[str]) -> Iterator[tuple[str, str]]:
    """(image path, mountpoint) of a fresh ext4 on a loop device over a file we made."""
    image = make_image(os.path.join(os.fspath(tmp_path), "fs.img"), 64 << 20)
    mnt = os.path.join(os.fspath(tmp_path), "mnt")
    os.mkdir(mnt)
    with loop_device(image) as dev:
        subprocess.run(["mkfs.ext4", "-q", "-F", dev], check=True, capture_output=True)
        subprocess.run(["mount", dev, mnt], check=True)
        try:
            yield image, mnt
        finally:
            subprocess.run(["umount", mnt], check=False)


def _secret_file(mnt: str, name: str) -> str:
    path = os.path.join(mnt, name)
    with open(path, "wb") as f:
        f.write(MARK * ((8 << 20) // len(MARK)))
        f.flush()
        os.fsync(f.fileno())
    return path


def _image_has_mark(image: str) -> bool:
    with open(image, "rb") as f:
        return MARK in f.read()


@requires_root
def test_results_say_whether_the_medium_was_overwritten(ext4_image: tuple[str, str]) -> None:
    _, mnt = ext4_image
    plain = _secret_file(mnt, "plain")
    out = json.loads(subprocess.run([*LZ, "zero", plain, "--json"], capture_output=True, text=True,
                                    check=True).stdout)
    assert out["method"] == "offload" and out["medium_overwritten"] is False
    wiped = _secret_file(mnt, "wiped")
    out = json.loads(subprocess.run([*LZ, "zero", wiped, "--overwrite", "--verify", "--json"], capture_output=True,
                                    text=True, check=True).stdout)
    assert out["medium_overwritten"] is True and out["direct"] is True and out["method"] == "large"
    assert out["synced"] is True  # flushed before the medium is claimed
    # --overwrite verifies with O_DIRECT: every byte read from stored data, none skipped.
    assert out["verify"]["zero"] is True and out["verify"]["bytes_read"] == os.path.getsize(wiped)
    assert out["verify"]["bytes_skipped"] == 0


@requires_root
def test_overwrite_alone_leaves_no_trace(ext4_image: tuple[str, str]) -> None:
    image, mnt = ext4_image
    path = _secret_file(mnt, "secret")
    subprocess.run([*LZ, "zero", path, "--overwrite"], check=True, capture_output=True)
    subprocess.run(["umount", mnt], check=True)
    try:
        assert not _image_has_mark(image), "the old pattern is still in the image after --overwrite"
    finally:
        subprocess.run(["mount", "-o", "loop", image, mnt], check=False)


@requires_root
def test_default_zeroing_leaves_the_old_bytes_and_says_so(ext4_image: tuple[str, str]) -> None:
    image, mnt = ext4_image
    path = _secret_file(mnt, "secret")
    done = subprocess.run([*LZ, "zero", path], check=True, capture_output=True, text=True)
    assert "old bytes may remain on the medium" in done.stdout
    subprocess.run(["umount", mnt], check=True)
    try:
        assert _image_has_mark(image)
    finally:
        subprocess.run(["mount", "-o", "loop", image, mnt], check=False)


@pytest.mark.parametrize("stderr", ["closed", "full", "broken"])
def test_unwritable_stderr_never_costs_the_job(scratch_file: Callable[[int], str], stderr: str) -> None:
    size = 64 << 20
    path = scratch_file(size)
    argv = [*LZ, "zero", path, "-o", "123", "-l", str(size - 246), "-m", "large", "--call-size", "64K",
            "--checkpoint", "0.00001", "--json"]
    if stderr == "closed":
        done = subprocess.run(argv, capture_output=False, stdout=subprocess.PIPE, stderr=None, text=True,
                              preexec_fn=lambda: os.close(2))
    elif stderr == "full":
        with open("/dev/full", "w") as full:
            done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=full, text=True)
    else:
        r, w = os.pipe()
        os.close(r)  # a reader that went away: every write to stderr is EPIPE
        try:
            done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=w, text=True)
        finally:
            os.close(w)
    assert done.returncode == 0
    out = json.loads(done.stdout)
    assert out["bytes_zeroed"] == size - 246
    data = read_range(path, 0, size)
    assert data[123:size - 123] == bytes(size - 246)
    assert data[:123] == pattern_bytes(size)[:123]
