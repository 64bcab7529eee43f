"""zero_range on regular files: sentinels, sizes, differential checks against fallocate -z."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from largezero import UsageError, ZeroOptions, zero_range
from largezero.mm import pmd_size

from .helpers import pattern_bytes, read_range

PMD = pmd_size() or (2 << 20)
FILE_SIZE = 3 * PMD + 12345  # larger than one zero buffer; not a multiple of anything

WRITE_MODES = [("large", False), ("large", True), ("page", False), ("page", True)]
ALL_MODES = [*WRITE_MODES, ("auto", None), ("offload", None)]


def check_zeroed_exactly(path: str, size: int, offset: int, length: int) -> None:
    """The range reads back as zeros, every other byte is the original pattern, size unchanged."""
    assert os.path.getsize(path) == size
    data = read_range(path, 0, size)
    expected = pattern_bytes(size)
    assert data[:offset] == expected[:offset], "bytes before the range changed"
    assert data[offset : offset + length] == bytes(length), "range is not all zero"
    assert data[offset + length :] == expected[offset + length :], "bytes after the range changed"


@pytest.mark.parametrize(("method", "direct"), ALL_MODES)
def test_every_method_zeroes_exactly_the_range(scratch_file: Callable[[int], str], method: str,
                                               direct: bool | None) -> None:
    path = scratch_file(FILE_SIZE)
    offset, length = 1000, 2 * PMD + 777
    result = zero_range(path, offset, length, options=ZeroOptions(method=method, direct=direct))
    check_zeroed_exactly(path, FILE_SIZE, offset, length)
    assert result.bytes_zeroed == length
    if method in ("large", "page"):
        assert result.method == method
        assert result.calls >= 1 and result.iovecs >= result.calls


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    mode=st.sampled_from(WRITE_MODES),
    call_size=st.sampled_from([None, 4096, 12288, 65536, 1 << 20, 3 << 20]),
)
def test_sentinels_property(scratch_file: Callable[[int], str], data: st.DataObject, mode: tuple[str, bool],
                            call_size: int | None) -> None:
    """Random ranges, alignments and call sizes: the range is zero and nothing else changes."""
    size = data.draw(st.integers(min_value=1, max_value=FILE_SIZE), label="size")
    offset = data.draw(st.integers(min_value=0, max_value=size), label="offset")
    length = data.draw(st.integers(min_value=0, max_value=size - offset), label="length")
    path = scratch_file(size)
    method, direct = mode
    result = zero_range(path, offset, length, options=ZeroOptions(method=method, direct=direct, call_size=call_size))
    check_zeroed_exactly(path, size, offset, length)
    assert result.bytes_zeroed == length
    os.unlink(path)


def test_many_calls_when_call_size_is_small(scratch_file: Callable[[int], str]) -> None:
    path = scratch_file(FILE_SIZE)
    result = zero_range(path, 0, FILE_SIZE, options=ZeroOptions(method="large", call_size=64 << 10))
    assert result.calls == -(-FILE_SIZE // (64 << 10))
    check_zeroed_exactly(path, FILE_SIZE, 0, FILE_SIZE)


def test_default_calls_carry_iov_max_iovecs(scratch_file: Callable[[int], str]) -> None:
    size = 9 << 20
    path = scratch_file(size)
    result = zero_range(path, 0, size, options=ZeroOptions(method="page"))
    assert result.calls == 3  # 4 MiB per call: 1024 x 4 KiB
    assert result.iovecs == size // 4096
    path2 = scratch_file(size)
    result = zero_range(path2, 0, size, options=ZeroOptions(method="large"))
    assert result.calls == 1
    assert result.iovecs == -(-size // PMD)


def test_length_defaults_to_end_of_file(scratch_file: Callable[[int], str]) -> None:
    path = scratch_file(FILE_SIZE)
    result = zero_range(path, 4096, options=ZeroOptions(method="large"))
    assert result.length == FILE_SIZE - 4096
    check_zeroed_exactly(path, FILE_SIZE, 4096, FILE_SIZE - 4096)


def test_past_end_is_refused_unless_extend(scratch_file: Callable[[int], str]) -> None:
    path = scratch_file(1 << 20)
    with pytest.raises(UsageError, match="extend=True"):
        zero_range(path, (1 << 20) - 10, 100, options=ZeroOptions(method="large"))
    assert os.path.getsize(path) == 1 << 20
    assert read_range(path, 0, 1 << 20) == pattern_bytes(1 << 20)
    result = zero_range(path, (1 << 20) - 10, 100, options=ZeroOptions(method="large", extend=True))
    assert result.bytes_zeroed == 100
    assert os.path.getsize(path) == (1 << 20) + 90
    assert read_range(path, (1 << 20) - 10, 100) == bytes(100)


def test_extend_with_offload(scratch_file: Callable[[int], str]) -> None:
    path = scratch_file(1 << 20)
    zero_range(path, 1 << 20, 1 << 20, options=ZeroOptions(method="auto", extend=True))
    assert os.path.getsize(path) == 2 << 20
    assert read_range(path, 1 << 20, 1 << 20) == bytes(1 << 20)


def test_unmap_punches_holes_and_keeps_size(scratch_file: Callable[[int], str]) -> None:
    path = scratch_file(8 << 20)
    before = os.stat(path).st_blocks
    result = zero_range(path, 1 << 20, 4 << 20, options=ZeroOptions(method="offload", unmap=True))
    assert result.mechanism == "fallocate(PUNCH_HOLE)"
    assert os.stat(path).st_blocks < before
    check_zeroed_exactly(path, 8 << 20, 1 << 20, 4 << 20)


def test_nounmap_by_default_keeps_allocation(scratch_file: Callable[[int], str]) -> None:
    path = scratch_file(8 << 20)
    before = os.stat(path).st_blocks
    result = zero_range(path, 1 << 20, 4 << 20)
    assert result.method == "offload"
    assert os.stat(path).st_blocks == before


@pytest.mark.skipif(shutil.which("fallocate") is None, reason="util-linux fallocate not installed")
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), mode=st.sampled_from(ALL_MODES[:-1]))
def test_same_bytes_as_fallocate_z(scratch_file: Callable[[int], str], data: st.DataObject,
                                   mode: tuple[str, bool | None]) -> None:
    size = FILE_SIZE
    offset = data.draw(st.integers(min_value=0, max_value=size))
    length = data.draw(st.integers(min_value=0, max_value=size - offset))
    ours, theirs = scratch_file(size), scratch_file(size)
    zero_range(ours, offset, length, options=ZeroOptions(method=mode[0], direct=mode[1]))
    if length:
        subprocess.run(["fallocate", "-z", "-o", str(offset), "-l", str(length), theirs], check=True)
    assert read_range(ours, 0, size) == read_range(theirs, 0, size)
    os.unlink(ours)
    os.unlink(theirs)


def test_tmpfs_has_no_zero_range_auto_falls_back(tmpfs_dir: str) -> None:
    path = os.path.join(tmpfs_dir, "f.img")
    with open(path, "wb") as f:
        f.write(pattern_bytes(4 << 20))
    result = zero_range(path, 4096, 1 << 20)
    assert result.method == "large"
    assert any("ZERO_RANGE" in reason for reason in result.fallback)
    assert read_range(path, 4096, 1 << 20) == bytes(1 << 20)
    # Remembered per file: the second job does not try ZERO_RANGE again.
    again = zero_range(path, 4096, 4096)
    assert again.method == "large"
    assert not any("Operation not supported" in r for r in again.fallback)
