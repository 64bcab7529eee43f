"""The model's prediction for a zeroing plan: the same plan that execution performs.

Each step is priced by the rule of the kernel path it takes::

    OffloadStep BLKZEROOUT   blkdev_issue_zeroout(): write-zeroes bios, else the kernel's zero pages
    WriteStep O_DIRECT       __blkdev_direct_IO() per pwritev call (nothing merges across calls:
                             each call completes before the next is issued)
    EdgeStep                 a page-cache write written back by sync_file_range(): one bio per
                             dirty buffer head (BLKBSZGET bytes), back-merged under the plug
    WriteStep buffered       not predicted: the flusher writes it back when it chooses
"""

from __future__ import annotations

from .._record import field, record
from ..engine.options import ZeroOptions
from ..engine.plan import BLOCK, EdgeStep, OffloadStep, ZeroPlan, plan_zero_range
from ..kconfig import persistent_huge_zero_folio
from ..targets.facts import TargetFacts
from .limits import SECTOR_SIZE, QueueLimits
from .run import Counts, SourceResult, direct_calls, model_kernel
from .sources import ZeroSource, make_source


@record
class Prediction:
    counts: Counts | None
    source: str
    notes: list[str] = field(default_factory=list)
    sectors: int = 0

    def to_dict(self) -> dict[str, object] | None:
        if self.counts is None:
            return None
        c = self.counts
        return {"requests": c.requests, "merges": c.merges, "sectors": self.sectors, "bios": c.bios,
                "bvecs": c.bvecs, "source": self.source, "notes": list(self.notes)}


def kernel_zero_source() -> ZeroSource:
    """What this kernel's __blkdev_issue_zero_pages() adds per bvec: largest_zero_folio()."""
    if persistent_huge_zero_folio() == "y":
        return make_source("huge-zero-folio")
    return make_source("zero-page")


def _edge(step: EdgeStep, writeback_block: int, counts: Counts) -> int:
    """Bios of the dirty buffer heads under the edge, merged into one request; its sectors."""
    first = step.offset - step.offset % writeback_block
    last = -(-(step.offset + step.length) // writeback_block) * writeback_block
    buffers = (last - first) // writeback_block
    counts.add((buffers, buffers, buffers, 1, buffers - 1))
    return (last - first) // SECTOR_SIZE


def predict_plan(plan: ZeroPlan, lim: QueueLimits, source: ZeroSource, *, writeback_block: int = 4096) -> Prediction:
    """Requests, merges and sectors the device sees for ``plan``, as ``/sys/block/<dev>/stat`` counts them.

    ``source`` is the zero buffer the plan's writes point into (``sources.source_for_buffer``);
    ``writeback_block`` the block device's buffer-head size (BLKBSZGET).
    """
    counts = Counts()
    sectors = 0
    notes: list[str] = []
    for step in plan.steps:
        if isinstance(step, OffloadStep):
            if step.mechanisms[0] != "BLKZEROOUT":
                return Prediction(None, source.name, [f"{step.mechanisms[0]} on a block device is not modelled"])
            res = model_kernel(lim, step.length, kernel_zero_source(), offset=step.offset)
            assert res.counts is not None
            counts.add(res.counts.vector())
            sectors += step.length // SECTOR_SIZE
            notes.append(f"BLKZEROOUT: {res.mechanism}")
        elif isinstance(step, EdgeStep):
            sectors += _edge(step, writeback_block, counts)
        elif step.direct:
            counts.add(direct_calls(step.runs, lim, source).vector())
            sectors += step.length // SECTOR_SIZE
        else:
            return Prediction(None, source.name, ["buffered writes are written back by the kernel's flusher "
                                                  "when it chooses: not predicted"])
    return Prediction(counts, source.name, notes, sectors)


def model_plan_direct(lim: QueueLimits, length: int, source: ZeroSource, offset: int = 0,
                      call_size: int | None = None, *, copies_data: bool = False) -> SourceResult:
    """``largezero zero --direct`` of any range (unaligned included), from the engine's own plan."""
    granule = max(source.page_size, lim.logical_block_size)
    facts = TargetFacts("model", BLOCK, offset + length, lim.logical_block_size, lim.dio_align, granule,
                        copies_data=copies_data)
    opts = ZeroOptions("page" if source.same_page else "large", True, call_size=call_size)
    plan = plan_zero_range(facts, offset, length, opts, buffer_size=source.buffer_size)
    # A block device's page cache uses page-sized buffer heads when its size allows (set_init_blocksize).
    pred = predict_plan(plan, lim, source, writeback_block=granule)
    edges = any(isinstance(s, EdgeStep) for s in plan.steps)
    return SourceResult(source, "direct", length, pred.counts,
                        "pwritev O_DIRECT" + (" + page-cache edges" if edges else ""), calls=plan.calls,
                        iov_len=plan.iov_len, call_bytes=plan.call_bytes, extra={"sectors": pred.sectors})
