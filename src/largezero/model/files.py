"""The price of a file's job on the device under its filesystem.

Imported by the job for every file on a block device, so the model itself is imported only
once the plan is one this prices (O_DIRECT writes): a fallocate job stays light.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..engine.plan import ZeroPlan
    from ..mm import ZeroBuffer
    from ..targets import Target


def predict_file(plan: ZeroPlan, tgt: Target, buf: ZeroBuffer | None) -> dict[str, object] | None:
    """A file's job priced on the device under its filesystem: its O_DIRECT calls over the file's
    mappings (FIEMAP), as an overwrite in place of written blocks. Anything else (offload,
    page-cache edges, buffered writes, holes and unwritten blocks) is said, not guessed."""
    from ..engine.plan import WriteStep
    from ..targets.diskstat import disk_under

    disk = disk_under(tgt.dev_ino[0]) if tgt.dev_ino[0] else None
    if disk is None:
        return None
    if not plan.steps or not all(isinstance(s, WriteStep) and s.direct for s in plan.steps):
        # Said before the model is imported: most file jobs (fallocate) end here, and light.
        return {"requests": None, "device": disk, "notes": [
            "only whole-block O_DIRECT writes of a file are priced (no offload, edges or buffered writes)"]}
    from .accounting import unknown_accounting
    from .limits import QueueLimits
    from .mapped import file_mappings, overwrite_calls
    from .run import Counts
    from .sources import source_for_buffer

    why: str | None = None
    got: tuple[Counts, int] | str = ""
    source = None if buf is None else source_for_buffer(buf.size, buf.backing, buf.contiguous_bytes)
    if why is None and source is None:
        why = "the layout of the zero buffer cannot be observed here (needs root)"
    try:
        lim = QueueLimits.from_sysfs(disk)
        unknown = unknown_accounting(lim)
        if why is None and unknown:
            why = unknown
        if why is None:
            assert source is not None
            mappings = file_mappings(tgt.fd, plan.offset, plan.length)
            runs = [r for s in plan.steps if isinstance(s, WriteStep) for r in s.runs]
            got = overwrite_calls(runs, mappings, lim, source)
            if isinstance(got, str):
                why = got
    except (OSError, ValueError) as err:
        why = f"cannot read the device's limits or the file's mappings: {err}"
    if why is not None:
        return {"requests": None, "device": disk, "notes": [why]}
    assert not isinstance(got, str)
    counts, sectors = got
    return {"requests": counts.requests, "merges": counts.merges, "sectors": sectors, "bios": counts.bios,
            "bvecs": counts.bvecs, "source": source.name if source else None, "device": disk,
            "notes": [f"priced on {disk}, the device under the file's filesystem, over the file's mappings"]}
