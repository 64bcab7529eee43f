"""Helpers for tests: expected contents, reading ranges back, the root marker."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from largezero.cli import main
from largezero.scratch import is_root

NOT_ROOT = "needs root: loop devices, mounts and /proc/self/pagemap PFNs"
requires_root = pytest.mark.skipif(not is_root(), reason=NOT_ROOT)


def pattern_bytes(length: int, seed: int = 0x5A) -> bytes:
    """The same non-zero pattern fill_pattern() writes, for building expected contents."""
    chunk = bytes((seed + i) % 255 + 1 for i in range(1 << 16)) * 16
    reps, rest = divmod(length, len(chunk))
    return chunk * reps + chunk[:rest]



def read_range(path: str, offset: int, length: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        out = bytearray()
        while len(out) < length:
            chunk = os.pread(fd, min(length - len(out), 64 << 20), offset + len(out))
            if not chunk:
                break
            out += chunk
        return bytes(out)
    finally:
        os.close(fd)


def on_pty(argv: list[str], interrupt_when: str | None = None) -> tuple[int, str]:
    """Run argv with stdout and stderr on a pseudo-terminal; optionally send SIGINT once the
    output contains ``interrupt_when``. Returns (exit code, everything drawn)."""
    import pty
    import signal
    import subprocess

    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL)
    os.close(follower)
    out = b""
    sent = False
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO once the child has closed its side
            break
        if not chunk:
            break
        out += chunk
        if interrupt_when and not sent and interrupt_when.encode() in out:
            proc.send_signal(signal.SIGINT)
            sent = True
    os.close(leader)
    return proc.wait(), out.decode(errors="replace")


@contextlib.contextmanager
def mounted(device: str, *options: str) -> Iterator[str]:
    """``device`` mounted (with mount ``options``) on a new directory, unmounted and removed after."""
    where = tempfile.mkdtemp(prefix="largezero-test-mnt-")
    try:
        subprocess.run(["mount", *options, device, where], check=True, capture_output=True)
        try:
            yield where
        finally:
            subprocess.run(["umount", where], check=True, capture_output=True)
    finally:
        os.rmdir(where)


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, object]:
    """``largezero ARGV`` in this process, which must succeed; its JSON (the first object of a list)."""
    capsys.readouterr()
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    got: dict[str, object] = out[0] if isinstance(out, list) else out
    return got


def triple(d: object) -> tuple[object, object, object]:
    """(requests, merges, sectors) of a predicted or measured object."""
    assert isinstance(d, dict), d
    return d["requests"], d["merges"], d["sectors"]
