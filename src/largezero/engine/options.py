"""The one record of a zeroing job's options, and the options that contradict each other as one
table (util-linux's ``excl[]``).

``ZeroOptions`` is everything ``largezero zero`` accepts about how to zero; the command line
builds it once from argparse, the library takes it as is. The plan, the conflict check and the
resume command all derive from it. Checked once, before anything is opened.
"""

from __future__ import annotations

from .._record import record
from ..errors import UsageError, option

METHODS = ("auto", "offload", "large", "page")
BACKINGS = ("auto", "huge-zero-folio", "zero-page", "allocated")


@record(frozen=True)
class ZeroOptions:
    """How to zero. Defaults are ``largezero zero``'s defaults."""

    method: str = "auto"  # auto, offload, large, page
    direct: bool | None = None  # None: buffered, except auto's fallback on a block device
    overwrite: bool = False  # zeros over every byte with O_DIRECT: no offload, no unmap
    unmap: bool = False  # allow deallocation (punch holes, unmap)
    extend: bool = False  # allow growing a regular file
    sync: bool = False  # fdatasync / device flush before success
    force: bool = False  # zero a target in use or carrying a signature
    # Zero a device that carries a signature, still refusing one in use: the fleet adapters',
    # where erasing the last tenant's filesystems is the point but a mounted disk never is.
    force_signatures: bool = False
    create: bool = False  # create a missing regular file (implies extend)
    call_size: int | None = None  # bytes per pwritev call
    iov_len: int | None = None  # bytes of the zero buffer per iovec
    backing: str = "auto"  # LARGE_ZERO_PAGE backing
    large_page: bool | None = None  # False: never LARGE_ZERO_PAGE (like LARGEZERO_LARGE_PAGE=0)

    def given(self, *, dry_run: bool = False, verify: bool = False, checkpoint: float | None = None) -> set[str]:
        """The options of the job, named as in :data:`EXCLUSIVE` (plus the job's own flags)."""
        flags = {
            f"method {self.method}": True, "direct": bool(self.direct), "backing": self.backing != "auto",
            "large_page": self.large_page is False, "call_size": self.call_size is not None,
            "iov_len": self.iov_len is not None, "overwrite": self.overwrite, "unmap": self.unmap,
            "dry_run": dry_run, "verify": verify, "create": self.create, "sync": self.sync,
            "checkpoint": checkpoint is not None,
        }
        return {name for name, on in flags.items() if on}

    def check(self, *, dry_run: bool = False, verify: bool = False, checkpoint: float | None = None) -> None:
        """UsageError for an unknown value or a pair of options that cannot go together."""
        if self.method not in METHODS:
            raise UsageError(f"unknown method '{self.method}' (expected one of {', '.join(METHODS)})")
        if self.backing not in BACKINGS:
            raise UsageError(f"unknown zero buffer backing '{self.backing}' (expected one of {', '.join(BACKINGS)})")
        for name, what in (("call_size", "call size"), ("iov_len", "iovec size")):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UsageError(f"the {what} ({option(name)}) must be positive, not {value}")
        given = self.given(dry_run=dry_run, verify=verify, checkpoint=checkpoint)
        for a, b, why in EXCLUSIVE:
            if a in given and b in given:
                raise UsageError(f"{option(a)} and {option(b)} cannot be used together: {why}")

    def argv(self) -> list[str]:
        """The command-line flags that give these options (for the resume command)."""
        out: list[str] = []
        if self.method != "auto":
            out += ["-m", self.method]
        for flag in ("direct", "unmap", "extend", "sync", "force", "force_signatures", "overwrite"):
            if getattr(self, flag):
                out.append("--" + flag.replace("_", "-"))
        if self.create and not self.extend:
            out.append("--extend")  # the file exists once the job ran, and may be shorter than the range
        if self.backing != "auto":
            out += ["--backing", self.backing]
        if self.large_page is False:
            out.append("--no-large-page")
        if self.call_size is not None:
            out += ["--call-size", str(self.call_size)]
        if self.iov_len is not None:
            out += ["--iov-size", str(self.iov_len)]
        return out


# (option, option, why they cannot go together), named as the fields of ZeroOptions; the
# messages name them the caller's way (library: ``overwrite=True``; command line: ``--overwrite``).
EXCLUSIVE: tuple[tuple[str, str, str], ...] = (
    ("method offload", "direct", "direct I/O applies to the write methods (large, page); offload writes no data"),
    ("method offload", "call_size", "the call size applies to the write methods (large, page), not to offload"),
    ("method offload", "iov_len", "the iovec size applies to the write methods (large, page), not to offload"),
    ("method offload", "backing", "the backing is LARGE_ZERO_PAGE's; method offload does not use it"),
    ("method page", "backing", "the backing is LARGE_ZERO_PAGE's; method page does not use it"),
    ("large_page", "backing", "a backing asks for LARGE_ZERO_PAGE, which large_page=False turns off"),
    ("overwrite", "method offload", "overwrite writes zeros over every byte; offload writes none"),
    ("overwrite", "unmap", "overwrite writes zeros over every byte; unmap deallocates instead"),
    ("dry_run", "verify", "a dry run writes nothing, so there is nothing to verify"),
    ("dry_run", "create", "a dry run creates nothing"),
    ("dry_run", "sync", "a dry run writes nothing to sync"),
    ("dry_run", "checkpoint", "a dry run writes nothing to checkpoint"),
)
