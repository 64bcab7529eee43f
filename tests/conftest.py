"""Shared fixtures: scratch files we create, and loop devices we attach to our own images."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from hypothesis import settings

from largezero.scratch import fill_pattern, is_root, loop_device, make_image, memfs_loop, memfs_mount

from .helpers import NOT_ROOT

# A run never inherits a failure from an earlier one: no example database (nothing is read from
# or written to .hypothesis/), and examples derived from each test's source, the same every run.
# HYPOTHESIS_PROFILE=explore searches with fresh random examples (and still stores nothing).
settings.register_profile("ci", database=None, derandomize=True, print_blob=True)
settings.register_profile("explore", database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def scratch_file(tmp_path: os.PathLike[str]) -> Callable[[int], str]:
    """Factory: a file of the given size filled with a non-zero pattern."""
    made: list[str] = []

    def make(size: int, name: str = "scratch.img") -> str:
        path = os.path.join(os.fspath(tmp_path), f"{len(made)}-{name}")
        make_image(path, size)
        fill_pattern(path, 0, size)
        made.append(path)
        return path

    return make


@pytest.fixture
def ramfs_loop() -> Iterator[Callable[[int], str]]:
    """Factory: a loop device over a filled ramfs file (write_zeroes_max_bytes = 0)."""
    if not is_root():
        pytest.skip(NOT_ROOT)
    import contextlib

    with contextlib.ExitStack() as stack:

        def make(size: int) -> str:
            return stack.enter_context(memfs_loop(size))

        yield make


@pytest.fixture
def file_loop(tmp_path: os.PathLike[str]) -> Iterator[Callable[[int], str]]:
    """Factory: a loop device over a filled file on the working filesystem (write-zeroes offload)."""
    if not is_root():
        pytest.skip(NOT_ROOT)
    import contextlib

    with contextlib.ExitStack() as stack:
        count = 0

        def make(size: int) -> str:
            nonlocal count
            count += 1
            image = make_image(os.path.join(os.fspath(tmp_path), f"loop{count}.img"), size)
            fill_pattern(image, 0, size)
            return stack.enter_context(loop_device(image))

        yield make


@pytest.fixture
def tmpfs_dir() -> Iterator[str]:
    if not is_root():
        pytest.skip(NOT_ROOT)
    with memfs_mount("tmpfs") as mnt:
        yield mnt
