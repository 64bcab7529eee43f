"""One memory of refused calls, keyed by the file behind a descriptor (targets/refusals.py):
what the zeroing engine learnt about a file, a stream to the same file knows, and back."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from largezero.targets import open_target, refusals


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    refusals.forget()
    yield
    refusals.forget()


def test_a_target_and_a_stream_fd_on_the_same_file_share_refusals(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 4096)
    tgt = open_target(str(path), writable=True)
    other = os.open(path, os.O_RDONLY)
    try:
        assert tgt.key == refusals.key_of(other)
        tgt.mark_unsupported("FALLOC_FL_ZERO_RANGE")
        refusals.remember(refusals.key_of(other), "copy_file_range")
        assert tgt.unsupported() == {"FALLOC_FL_ZERO_RANGE", "copy_file_range"}
    finally:
        os.close(other)
        tgt.close()


def test_a_reused_fd_number_is_not_held_to_another_files_refusals(tmp_path: Path) -> None:
    r, w = os.pipe()
    refusals.remember(refusals.key_of(w), "vmsplice")
    os.close(r)
    os.close(w)
    (tmp_path / "g").write_bytes(b"")
    fd = os.open(tmp_path / "g", os.O_WRONLY)
    try:
        assert refusals.refused(refusals.key_of(fd)) == frozenset()
    finally:
        os.close(fd)
