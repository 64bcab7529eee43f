"""Shared fixtures: scratch files we create, and loop devices we attach to our own images."""

from __future__ import annotations

import os
import signal
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

# A suite started in the background of a script (`make test &`) inherits SIGINT and SIGQUIT
# ignored, and an ignored signal stays ignored across exec: the commands the tests interrupt
# would never see their Ctrl-C. A handler here is reset to the default in every child.
for _sig in (signal.SIGINT, signal.SIGQUIT):
    if signal.getsignal(_sig) == signal.SIG_IGN:
        signal.signal(_sig, signal.default_int_handler if _sig == signal.SIGINT else lambda *_: None)


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


@pytest.fixture
def long_read_device(tmp_path: os.PathLike[str]) -> Iterator[str]:
    """A 1 TiB loop device that takes minutes to read and costs nothing: a loop device over a
    loop device over a sparse file. Its backing is a block device, so verify has no holes to
    skip and reads every byte (at a few GiB/s): for signals and progress during a long read."""
    if not is_root():
        pytest.skip(NOT_ROOT)
    image = make_image(os.path.join(os.fspath(tmp_path), "sparse-1T.img"), 1 << 40, allocate=False)
    with loop_device(image) as inner, loop_device(inner) as outer:
        yield outer
