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

from dataclasses import dataclass, field

from ..kconfig import persistent_huge_zero_folio
from .bio import IovLayout
from .limits import SECTOR_SIZE, QueueLimits
from .model import Counts, _call_counts, model_kernel, repeat
from .plan import EdgeStep, OffloadStep, WriteStep, ZeroPlan
from .sources import ZeroSource, make_source
from .split import sector_period


@dataclass
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


def source_of_buffer(backing: str, size: int) -> ZeroSource:
    """The model's zero source for one of ``mm``'s zero buffers (by its backing)."""
    if backing == "huge-zero-folio":
        return make_source("huge-zero-folio")
    if backing == "allocated":
        return make_source("allocated", buffer_size=size)
    return make_source("zero-page")  # ZERO_PAGE, and the PMD alias of it: the same 4 KiB page


def kernel_zero_source() -> ZeroSource:
    """What this kernel's __blkdev_issue_zero_pages() adds per bvec: largest_zero_folio()."""
    if persistent_huge_zero_folio() == "y":
        return make_source("huge-zero-folio")
    return make_source("zero-page")


def _direct(step: WriteStep, lim: QueueLimits, source: ZeroSource, counts: Counts) -> None:
    period = sector_period(lim)
    for run in step.runs:
        layout = IovLayout(run.full_iovecs, run.iov_len, run.last_iov_len)
        sectors = run.call_bytes // SECTOR_SIZE

        def one_call(phase: int, layout: IovLayout = layout, sectors: int = sectors) -> tuple[int, tuple[int, ...]]:
            return (phase + sectors) % period, _call_counts(layout, source, phase, lim)

        _, totals = repeat(run.calls, (lim.partition_start + run.offset // SECTOR_SIZE) % period, one_call)
        counts.add(totals)


def _edge(step: EdgeStep, writeback_block: int, counts: Counts) -> int:
    """Bios of the dirty buffer heads under the edge, merged into one request; its sectors."""
    first = step.offset - step.offset % writeback_block
    last = -(-(step.offset + step.length) // writeback_block) * writeback_block
    buffers = (last - first) // writeback_block
    counts.add((buffers, buffers, buffers, 1, buffers - 1))
    return (last - first) // SECTOR_SIZE


def predict_plan(plan: ZeroPlan, lim: QueueLimits, *, backing: str, buffer_size: int,
                 writeback_block: int = 4096) -> Prediction:
    """Requests, merges and sectors the device sees for ``plan``, as ``/sys/block/<dev>/stat`` counts them."""
    source = source_of_buffer(backing, buffer_size)
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
            _direct(step, lim, source, counts)
            sectors += step.length // SECTOR_SIZE
        else:
            return Prediction(None, source.name, ["buffered writes are written back by the kernel's flusher "
                                                  "when it chooses: not predicted"])
    return Prediction(counts, source.name, notes, sectors)
