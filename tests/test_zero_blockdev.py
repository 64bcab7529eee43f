"""zero_range on real loop devices: the kernel's fallback path (ramfs) and real offload (ext4 file)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from largezero import TargetError, Unsupported, ZeroOptions, zero_range
from largezero.cli import main
from largezero.scratch import fill_pattern
from largezero.targets.diskstat import read_stat

from .helpers import pattern_bytes, read_range

DEV_SIZE = 32 << 20
MODES = [("large", True), ("large", False), ("page", True), ("page", False), ("auto", None)]


def queue_attr(dev: str, name: str) -> int:
    with open(f"/sys/block/{os.path.basename(dev)}/queue/{name}") as f:
        return int(f.read())


def check_device(dev: str, size: int, offset: int, length: int) -> None:
    data = read_range(dev, 0, size)
    expected = pattern_bytes(size)
    assert data[:offset] == expected[:offset]
    assert data[offset : offset + length] == bytes(length)
    assert data[offset + length :] == expected[offset + length :]


def test_ramfs_loop_has_no_write_zeroes_and_auto_writes_large_direct(ramfs_loop: Callable[[int], str]) -> None:
    dev = ramfs_loop(DEV_SIZE)
    assert queue_attr(dev, "write_zeroes_max_bytes") == 0
    before = read_stat(dev)
    result = zero_range(dev, 1 << 20, 16 << 20)
    assert result.method == "large"
    assert result.direct is True
    assert result.zero_buffer is not None and result.zero_buffer.name == "LARGE_ZERO_PAGE"
    assert any("write_zeroes_max_bytes = 0" in r for r in result.fallback)
    assert (read_stat(dev) - before).write_ios > 0  # O_DIRECT: the requests reached the device
    check_device(dev, DEV_SIZE, 1 << 20, 16 << 20)


def test_offload_refuses_on_ramfs_loop_and_writes_nothing(ramfs_loop: Callable[[int], str]) -> None:
    dev = ramfs_loop(DEV_SIZE)
    before = read_stat(dev)
    with pytest.raises(Unsupported) as info:
        zero_range(dev, 0, 1 << 20, options=ZeroOptions(method="offload"))
    assert info.value.exit_code == 2
    assert (read_stat(dev) - before).write_ios == 0
    assert read_range(dev, 0, DEV_SIZE) == pattern_bytes(DEV_SIZE)
    assert main(["zero", dev, "-l", "1M", "-m", "offload"]) == 2


@pytest.mark.parametrize(("method", "direct"), MODES)
def test_every_mode_on_ramfs_loop(ramfs_loop: Callable[[int], str], method: str, direct: bool | None) -> None:
    dev = ramfs_loop(DEV_SIZE)
    offset, length = 3 * 4096 + 512, 9 << 20  # unaligned to the page, aligned to the sector
    zero_range(dev, offset, length, options=ZeroOptions(method=method, direct=direct, sync=True))
    check_device(dev, DEV_SIZE, offset, length)


def test_unaligned_direct_edges_on_device(ramfs_loop: Callable[[int], str]) -> None:
    dev = ramfs_loop(DEV_SIZE)
    offset, length = 12345, (5 << 20) + 321  # not sector aligned at either end
    result = zero_range(dev, offset, length, options=ZeroOptions(method="large", direct=True, sync=True))
    assert result.bytes_zeroed == length
    check_device(dev, DEV_SIZE, offset, length)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), mode=st.sampled_from(MODES))
def test_same_bytes_as_blkdiscard_z(ramfs_loop: Callable[[int], str], data: st.DataObject,
                                    mode: tuple[str, bool | None]) -> None:
    """Differential: our zeroing and the kernel's blkdiscard -z leave identical devices."""
    size = 8 << 20
    ours, theirs = ramfs_loop(size), ramfs_loop(size)
    offset = data.draw(st.integers(min_value=0, max_value=size // 512)) * 512
    length = data.draw(st.integers(min_value=0, max_value=(size - offset) // 512)) * 512
    zero_range(ours, offset, length, options=ZeroOptions(method=mode[0], direct=mode[1], sync=True))
    if length:
        subprocess.run(["blkdiscard", "-z", "-o", str(offset), "-l", str(length), theirs], check=True)
    assert read_range(ours, 0, size) == read_range(theirs, 0, size)


def test_file_backed_loop_offloads(file_loop: Callable[[int], str]) -> None:
    dev = file_loop(DEV_SIZE)
    if queue_attr(dev, "write_zeroes_max_bytes") == 0:
        pytest.skip("this kernel's loop driver gives no write-zeroes over this filesystem")
    result = zero_range(dev, 1 << 20, 8 << 20)
    assert result.method == "offload"
    assert result.mechanism == "BLKZEROOUT"
    check_device(dev, DEV_SIZE, 1 << 20, 8 << 20)


def test_offload_on_device_writes_unaligned_edges(file_loop: Callable[[int], str]) -> None:
    dev = file_loop(DEV_SIZE)
    if queue_attr(dev, "write_zeroes_max_bytes") == 0:
        pytest.skip("this kernel's loop driver gives no write-zeroes over this filesystem")
    result = zero_range(dev, 100, (2 << 20) + 50, options=ZeroOptions(method="offload"))
    assert result.bytes_zeroed == (2 << 20) + 50
    check_device(dev, DEV_SIZE, 100, (2 << 20) + 50)


def test_range_past_end_of_device_is_refused(ramfs_loop: Callable[[int], str]) -> None:
    dev = ramfs_loop(DEV_SIZE)
    assert main(["zero", dev, "-o", "31M", "-l", "2M"]) == 2
    assert main(["zero", dev, "-o", "31M", "-l", "2M", "--extend"]) == 2
    assert read_range(dev, 0, DEV_SIZE) == pattern_bytes(DEV_SIZE)


def test_mounted_device_is_refused_unless_forced(tmp_path: os.PathLike[str],
                                                 file_loop: Callable[[int], str]) -> None:
    dev = file_loop(DEV_SIZE)
    subprocess.run(["mkfs.ext4", "-q", "-F", dev], check=True, capture_output=True)
    mnt = os.path.join(os.fspath(tmp_path), "mnt")
    os.mkdir(mnt)
    subprocess.run(["mount", dev, mnt], check=True)
    try:
        with pytest.raises(TargetError, match="in use"):
            zero_range(dev, 0, 4096)
        assert main(["zero", dev, "-l", "4K"]) == 2
    finally:
        subprocess.run(["umount", mnt], check=True)
    # Unmounted, the same device is accepted again.
    fill_pattern(dev, 0, 4096)
    zero_range(dev, 0, 4096)
    assert read_range(dev, 0, 4096) == bytes(4096)
