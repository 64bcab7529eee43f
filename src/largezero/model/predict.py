"""The model's prediction for a zeroing plan: the same plan that execution performs.

Each step is priced by the rule of the kernel path it takes::

    OffloadStep BLKZEROOUT   blkdev_issue_zeroout() per call: write-zeroes bios, else the kernel's zero pages
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
from ..targets.facts import PAGE_SIZE, TargetFacts, init_blocksize
from .accounting import bio_accounting, unknown_accounting
from .limits import SECTOR_SIZE, QueueLimits
from .run import Counts, SourceResult, direct_calls, model_kernel
from .sources import ZeroSource, make_source

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..mm import ZeroBuffer
    from ..targets import Target


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


def _edge(step: EdgeStep, lim: QueueLimits, writeback_block: int, counts: Counts) -> int:
    """The dirty buffer heads under the edge, one bio each, back-merged into one request under
    the writeback plug unless the device merges nothing (nomerges 2, or bio-based); its sectors."""
    first = step.offset - step.offset % writeback_block
    last = -(-(step.offset + step.length) // writeback_block) * writeback_block
    buffers = (last - first) // writeback_block
    if lim.nomerges == 2 or lim.bio_based:
        counts.add((buffers, buffers, buffers, buffers, 0))
    else:
        counts.add((buffers, buffers, buffers, 1, buffers - 1))
    return (last - first) // SECTOR_SIZE


def predict_plan(plan: ZeroPlan, lim: QueueLimits, source: ZeroSource, *, writeback_block: int = 4096) -> Prediction:
    """Requests, merges and sectors the device sees for ``plan``, as ``/sys/block/<dev>/stat`` counts them.

    ``source`` is the zero buffer the plan's writes point into (``sources.source_for_buffer``);
    ``writeback_block`` the block device's buffer-head size (BLKBSZGET, ``TargetFacts.buffer_block``).
    """
    unknown = unknown_accounting(lim)
    if unknown:
        return Prediction(None, source.name, [unknown])
    counts = Counts()
    sectors = 0
    notes: list[str] = []
    acct = bio_accounting(lim)
    if acct is not None:
        notes.append(acct.note)
    for step in plan.steps:
        if isinstance(step, OffloadStep):
            if step.mechanisms[0] != "BLKZEROOUT":
                return Prediction(None, source.name, [f"{step.mechanisms[0]} on a block device is not modelled"])
            # One BLKZEROOUT per call: each completes before the next, so nothing merges across
            # calls. The full calls start call_bytes apart (a multiple of every boundary the
            # block layer splits at), so one is priced and counted as many times as there are.
            full, last = divmod(step.length, step.call_bytes or step.length)
            for n, times, at in ((step.call_bytes or step.length, full, step.offset),
                                 (last, 1, step.offset + full * (step.call_bytes or step.length))):
                if n and times:
                    res = model_kernel(lim, n, kernel_zero_source(), offset=at)
                    assert res.counts is not None
                    counts.add(res.counts.vector(), times)
                    sectors += int(res.extra["sectors"]) * times  # type: ignore[call-overload]
            notes.append(f"BLKZEROOUT: {res.mechanism}, {step.calls} call{'s' if step.calls > 1 else ''}")
        elif isinstance(step, EdgeStep):
            sectors += _edge(step, lim, writeback_block, counts)
        elif step.direct:
            counts.add(direct_calls(step.runs, lim, source).vector())
            sectors += step.length // SECTOR_SIZE
        else:
            return Prediction(None, source.name, ["buffered writes are written back by the kernel's flusher "
                                                  "when it chooses: not predicted"])
    return Prediction(counts, source.name, notes, sectors)


def model_facts(lim: QueueLimits, size: int, *, copies_data: bool = False,
                page_size: int = PAGE_SIZE) -> TargetFacts:
    """The facts of a device we only know by its limits (a preset): what ``facts_of`` would read."""
    granule = max(page_size, lim.logical_block_size)
    return TargetFacts("model", BLOCK, size, lim.logical_block_size, lim.dio_align, granule,
                       write_zeroes=lim.write_zeroes_max_bytes > 0, copies_data=copies_data,
                       buffer_block=init_blocksize(size, lim.logical_block_size))


def model_plan(facts: TargetFacts, lim: QueueLimits, length: int, source: ZeroSource, offset: int = 0,
               call_size: int | None = None) -> SourceResult:
    """``largezero zero --direct`` of any range (unaligned included) on the device of ``facts``:
    the engine's own plan for it, priced by :func:`predict_plan`."""
    opts = ZeroOptions("page" if source.same_page else "large", True, call_size=call_size)
    plan = plan_zero_range(facts, offset, length, opts, buffer_size=source.buffer_size)
    pred = predict_plan(plan, lim, source, writeback_block=facts.buffer_block)
    edges = any(isinstance(s, EdgeStep) for s in plan.steps)
    extra: dict[str, object] = {"sectors": pred.sectors if pred.counts else None}
    if pred.notes:
        extra["notes"] = pred.notes
    return SourceResult(source, "direct", length, pred.counts,
                        "pwritev O_DIRECT" + (" + page-cache edges" if edges else ""), calls=plan.calls,
                        iov_len=plan.iov_len, call_bytes=plan.call_bytes, extra=extra,
                        error=None if pred.counts else "; ".join(pred.notes))


def predict_target(plan: ZeroPlan, tgt: Target, buf: ZeroBuffer | None,
                   lim: QueueLimits | None = None) -> dict[str, object] | None:
    """The ``predicted`` object of a job on a block device (None for a file): ``plan`` priced with
    the device's own limits and buffer size, from the zero buffer the job uses. ``largezero zero``,
    its dry run and ``largezero model --device D --path direct`` all come here."""
    if tgt.kind != BLOCK:
        from .files import predict_file

        return predict_file(plan, tgt, buf)
    if tgt.block_name is None:
        return None
    from ..targets.facts import buffer_block_of
    from .sources import source_for_buffer

    try:
        lim = lim or QueueLimits.from_sysfs(tgt.block_name)
    except (OSError, ValueError) as err:
        return {"error": f"cannot read the device's limits: {err}"}
    source = make_source("zero-page") if buf is None else \
        source_for_buffer(buf.size, buf.backing, buf.contiguous_bytes)
    if source is None:
        return {"requests": None, "notes": [f"the layout of the {buf.backing if buf else ''} zero buffer "
                                            "cannot be observed here (needs root)"]}
    pred = predict_plan(plan, lim, source, writeback_block=buffer_block_of(tgt))
    got = pred.to_dict()
    return got if got is not None else {"requests": None, "notes": pred.notes}
