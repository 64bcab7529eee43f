"""Regular files and block devices as stream outputs: zeros through the zeroing engine.

The output's file position is where the stream starts (``cat img > out`` starts at 0, ``>>``
at the end), and it is left after the last byte on exit, as a write(2) stream would leave it.

* Zero runs inside the output go to ``zero_range()``: offload where real (fallocate, BLKZEROOUT),
  else large writes from the zero buffer.
* Zero runs past the output's end of file extend it with ``ftruncate``: the file grows by a hole,
  which is what keeps a sparse input sparse (``fallocate(ZERO_RANGE)`` would allocate unwritten
  extents, which ``du`` counts).
* Data goes through ``copy_file_range`` (in-kernel, reflink where the filesystem can), else
  ``sendfile``, else a bounded read-and-write.

Before the first byte the output goes through the refusals of ``largezero zero`` (unless
``force``): a mounted or held device, a signature, a file that backs a loop device or is an
active swapfile. A device is opened again, O_EXCL as ``zero`` holds it, for the checks (its
signatures are read through it: the shell may have opened fd 1 write-only) and for the
zeroing engine; a file is checked by its fd. Messages name the path behind the fd.
"""

from __future__ import annotations

import fcntl
import os
import stat

from .. import syscalls
from ..cancel import STOP, on_signals
from ..engine.plan import MAX_RW_COUNT
from ..errors import TargetError, ZeroingError
from .result import StreamResult, check_cancel
from .sinks import BLOCK, FILE, Sink

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from ..cancel import Cancel
    from ..targets import Target


def fd_path(fd: int) -> str:
    """What the fd is open on, for messages: its path (``/dev/loop3``), else ``fd N``."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"fd {fd}"


def output_target(fd: int, *, force: bool = False, name: str | None = None) -> Target:
    """The output ``fd`` (a file or block device) as a Target for the zeroing engine, through
    the refusals of ``zero`` unless ``force`` (TargetError, exit 2, nothing written)."""
    from ..targets import BLOCK as TARGET_BLOCK
    from ..targets import open_target

    path = fd_path(fd)
    name = name or path
    st = os.fstat(fd)
    if not stat.S_ISBLK(st.st_mode):
        # A file is checked by its fd (dev and inode); a refusal says "fd 1 (/path)".
        tgt = open_target(fd, force=force)
        tgt.name = name
        return tgt
    # The device by its path: zero's checks and its O_EXCL claim, on a descriptor of our own.
    dev = open_target(path, force=force)
    dev.name = name
    if dev.kind != TARGET_BLOCK or dev.rdev != st.st_rdev:
        dev.close()
        raise TargetError(f"{name}: that path no longer names the device standard output is open on")
    return dev


class SeekableSink(Sink):
    """Shared by files and block devices: explicit offsets, the position settled at the end."""

    kind = BLOCK

    def __init__(self, fd: int, result: StreamResult, cancel: Cancel | None, force: bool = False) -> None:
        super().__init__(fd, result, cancel)
        self.target = output_target(fd, force=force)
        self.append = bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND)
        self.pos = os.fstat(fd).st_size if self.append else os.lseek(fd, 0, os.SEEK_CUR)
        # O_APPEND: copy_file_range refuses it (EBADF) and every write lands at the end anyway.
        self._positional = not self.append

    def zero_in_place(self, offset: int, n: int) -> None:
        """The zeroing engine on [offset, offset+n) of the output."""
        # Imported here: a stream into a pipe or socket never loads the engine (faster start).
        from ..engine.options import ZeroOptions
        from ..engine.zeroout import zero_range

        # The output was checked when the sink was made (output_target): the engine gets it open.
        options = ZeroOptions(method="auto", extend=True, force=True)
        try:
            if self.cancel is STOP:
                with on_signals():  # a signal sets the flag; the engine stops at a call boundary
                    r = zero_range(self.target, offset, n, options=options, cancel=self.cancel)
            else:
                r = zero_range(self.target, offset, n, options=options, cancel=self.cancel)
        except ZeroingError as err:
            if err.bytes_zeroed:
                self.result.record("zero_range", err.bytes_zeroed, zeros=True)
            raise
        self.result.record(r.mechanism or "zero_range", n, zeros=True, calls=max(r.calls, 1))
        for why in r.fallback:
            self.result.note(f"zero_range: {why}")

    def zeros(self, n: int) -> None:
        check_cancel(self.cancel, self.result)
        self.zero_in_place(self.pos, n)
        self.pos += n

    def write_some(self, data: memoryview) -> int:
        """At the stream's own position (pwrite), or at the end under O_APPEND."""
        k = syscalls.ops.pwrite(self.fd, data, self.pos) if self._positional else syscalls.ops.write(self.fd, data)
        self.pos += max(k, 0)
        return k

    def data(self, src: int, offset: int, n: int) -> int:
        """copy_file_range, else sendfile, at explicit offsets; else the bounded copy."""
        if not self._positional:
            return self.copy_data(src, offset, n)
        start = self.pos
        done, ended = self.fast_data("copy_file_range", "sendfile", n, lambda d: syscalls.ops.copy_file_range(
            src, self.fd, min(n - d, MAX_RW_COUNT), offset + d, start + d))
        if not ended and done < n:
            first = done

            def send(d: int) -> int:
                os.lseek(self.fd, start + first + d, os.SEEK_SET)  # sendfile writes at the output's position
                return syscalls.ops.sendfile(self.fd, src, offset + first + d, min(n - first - d, MAX_RW_COUNT))

            more, ended = self.fast_data("sendfile", "read+write", n - first, send)
            done += more
        self.pos = start + done
        return self.rest_by_copy(src, offset, n, done, ended)

    def finish(self) -> None:
        if not self.append:
            os.lseek(self.fd, self.pos, os.SEEK_SET)

    def close(self) -> None:
        self.target.close()  # our own descriptor of a device, never the output fd


class FileSink(SeekableSink):
    kind = FILE

    def zeros(self, n: int) -> None:
        check_cancel(self.cancel, self.result)
        size = os.fstat(self.fd).st_size
        inside = 0 if self.append else max(0, min(n, size - self.pos))
        if inside:
            self.zero_in_place(self.pos, inside)
        if n > inside:
            # Past the end of file zeros cost nothing: grow the file by a hole.
            syscalls.ops.ftruncate(self.fd, max(size, self.pos) + n - inside)
            self.result.record("ftruncate", n - inside, zeros=True)
        self.pos += n
