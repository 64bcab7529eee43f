"""Options of a zeroing job that contradict each other, as one table (util-linux's ``excl[]``).

Checked once, before anything is opened, by the API and the command line alike.
"""

from __future__ import annotations

from ..errors import UsageError

# (option, option, why they cannot go together). An option is named as on the command line.
EXCLUSIVE: tuple[tuple[str, str, str], ...] = (
    ("--method offload", "--direct", "--direct applies to the write methods (large, page); offload writes no data"),
    ("--method offload", "--call-size", "--call-size applies to the write methods (large, page), not to offload"),
    ("--method offload", "--iov-size", "--iov-size applies to the write methods (large, page), not to offload"),
    ("--method offload", "--backing", "--backing chooses the LARGE_ZERO_PAGE backing; method offload does not use it"),
    ("--method page", "--backing", "--backing chooses the LARGE_ZERO_PAGE backing; method page does not use it"),
    ("--no-large-page", "--backing", "--backing asks for LARGE_ZERO_PAGE, which --no-large-page turns off"),
    ("--overwrite", "--method offload", "--overwrite writes zeros over every byte; offload writes none"),
    ("--overwrite", "--unmap", "--overwrite writes zeros over every byte; --unmap deallocates instead"),
    ("--dry-run", "--verify", "--dry-run writes nothing, so there is nothing to verify"),
    ("--dry-run", "--create", "--dry-run creates nothing"),
    ("--dry-run", "--sync", "--dry-run writes nothing to sync"),
    ("--dry-run", "--checkpoint", "--dry-run writes nothing to checkpoint"),
)


def given_options(method: str, *, direct: bool | None = None, backing: str = "auto",
                  large_page: bool | None = None, call_size: int | None = None, iov_len: int | None = None,
                  overwrite: bool = False, unmap: bool = False, dry_run: bool = False, verify: bool = False,
                  create: bool = False, sync: bool = False, checkpoint: float | None = None) -> set[str]:
    """The options of a job, named as in :data:`EXCLUSIVE`."""
    flags = {
        f"--method {method}": True, "--direct": bool(direct), "--backing": backing != "auto",
        "--no-large-page": large_page is False, "--call-size": call_size is not None,
        "--iov-size": iov_len is not None, "--overwrite": overwrite, "--unmap": unmap, "--dry-run": dry_run,
        "--verify": verify, "--create": create, "--sync": sync, "--checkpoint": checkpoint is not None,
    }
    return {name for name, on in flags.items() if on}


def check_exclusive(given: set[str]) -> None:
    """UsageError naming the first pair of the table that is given together."""
    for a, b, why in EXCLUSIVE:
        if a in given and b in given:
            raise UsageError(f"{a} and {b} cannot be used together: {why}")

