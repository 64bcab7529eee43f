"""largezero.sysfiles: the one reader of /proc and /sys, and the one mount-table parser."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from largezero import sysfiles
from largezero.scratch import is_root


def test_readers_answer_none_for_what_cannot_be_read(tmp_path: Path) -> None:
    (tmp_path / "n").write_text("4096 extra\n")
    (tmp_path / "word").write_text("none\n")
    (tmp_path / "kv").write_text("Name:\tpython\nVmRSS:\t  1234 kB\nName:\tsecond\n")
    assert sysfiles.read_int(str(tmp_path / "n")) == 4096
    assert sysfiles.read_int(str(tmp_path / "word")) is None
    assert sysfiles.read_int(str(tmp_path / "missing")) is None
    assert sysfiles.read_text(str(tmp_path / "missing")) is None
    assert sysfiles.read_lines(str(tmp_path / "kv")) == ["Name:\tpython", "VmRSS:\t  1234 kB", "Name:\tsecond"]
    assert sysfiles.read_fields(str(tmp_path / "kv")) == {"Name": "python", "VmRSS": "1234 kB"}
    assert sysfiles.read_fields(str(tmp_path / "missing")) == {}
    assert not sysfiles.write_text(str(tmp_path / "no" / "such"), "5")
    (tmp_path / "words").write_bytes(b"".join(i.to_bytes(8, sys.byteorder) for i in range(10)))
    assert sysfiles.read_u64s(str(tmp_path / "words"), 3, 4) == (3, 4, 5, 6)
    assert sysfiles.read_u64s(str(tmp_path / "words"), 8, 4) is None  # short: past the end


def test_octal_escapes_and_undecodable_bytes_are_decoded_as_paths() -> None:
    assert sysfiles.unescape(b"/mnt/a\\040b\\011c\\012d\\134e") == "/mnt/a b\tc\nd\\e"
    odd = sysfiles.unescape(b"/mnt/\xff\\040x")
    assert os.fsencode(odd) == b"/mnt/\xff x"  # surrogateescape: the bytes come back unchanged


def test_the_mount_table_names_the_root_filesystem_by_its_device() -> None:
    st = os.stat("/")
    root = sysfiles.mount_of(st.st_dev)
    assert root is not None and root.point == "/" and root.fstype
    assert "/" in sysfiles.mount_points(st.st_dev)
    proc = sysfiles.mount_containing("/proc/self")
    assert proc is not None and proc.fstype == "proc"


@pytest.mark.skipif(not is_root(), reason="mounting a tmpfs needs root")
def test_a_mount_point_with_blanks_and_non_utf8_bytes_is_found(tmp_path: Path) -> None:
    point = os.path.join(os.fsencode(tmp_path), b"a dir\twith \xff")
    os.mkdir(point)
    subprocess.run([b"mount", b"-t", b"tmpfs", b"-o", b"size=1m", b"none", point], check=True)
    try:
        dev = os.stat(point).st_dev
        assert [os.fsencode(p) for p in sysfiles.mount_points(dev)] == [point]
        found = sysfiles.mount_containing(os.fsdecode(point) + "/x")
        assert found is not None and os.fsencode(found.point) == point and found.fstype == "tmpfs"
    finally:
        subprocess.run([b"umount", point], check=True)


def test_block_device_names_come_from_the_device_number() -> None:
    assert sysfiles.block_name(os.makedev(0, 0)) is None
    for name in os.listdir("/sys/block")[:3]:
        rdev = sysfiles.dev_of(f"/sys/block/{name}")
        assert rdev is not None and sysfiles.block_name(rdev) == name
        assert (sysfiles.queue_attr(rdev, "logical_block_size") or 0) >= 512
    assert sysfiles.queue_attr(os.makedev(0, 0), "logical_block_size") is None
