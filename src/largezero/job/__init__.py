"""The job: zero a range, measure what reached the device, price the plan with the model, verify
and record. ``largezero zero`` is a thin shell over it; so are the fleet adapters.

``zero_job()`` runs one target start to end. ``ZeroJob`` is the same in phases (open, then
run, then close), for a caller that opens several targets first to size its progress display
and then zeroes them together, as the command line does.
"""

from __future__ import annotations

import os

from .._record import record
from ..engine.options import ZeroOptions
from ..engine.zeroout import ZeroResult, check_range, plan_job, zero_range
from ..errors import LargezeroError, UsageError, ZeroingError
from ..targets import BLOCK, Target, open_target, opened, refuse_as_writer

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from ..cancel import Cancel
    from ..engine.plan import ZeroPlan
    from ..engine.writeloop import Progress
    from ..mm import ZeroBuffer
    from ..targets.diskstat import DiskStat
    from ..verify import VerifyResult

__all__ = ["JobResult", "ZeroJob", "error_json", "zero_job"]


@record
class JobResult:
    """What a job did: the engine's result (or, for a dry run, the plan), the model's
    prediction and the device's counters on a block device, the verification and identity."""

    target: str
    zeroed: ZeroResult | None = None
    plan: ZeroPlan | None = None  # a dry run's plan; a real run's is zeroed.plan
    zero_buffer: ZeroBuffer | None = None
    predicted: dict[str, object] | None = None
    measured: DiskStat | None = None
    device: str | None = None
    verified: VerifyResult | None = None
    verify_seconds: float = 0.0
    identity: dict[str, object] | None = None
    resolved: str | None = None  # what a symlink target resolved to

    @property
    def ok(self) -> bool:
        """Zeroed (or planned) and, when verified, every byte read back as zero."""
        return self.verified is None or self.verified.ok

    def to_json(self) -> dict[str, object]:
        """Exactly the object ``largezero zero --json`` prints for this target."""
        if self.zeroed is None:
            assert self.plan is not None
            buf = self.zero_buffer
            out: dict[str, object] = {"target": self.target, "dry_run": True, "plan": self.plan.to_dict(),
                                      "zero_buffer": None if buf is None else
                                      {"name": buf.name, "size": buf.size, "backing": buf.backing}}
        else:
            out = self.zeroed.to_dict()
            out["target"] = self.target
        if self.identity is not None:
            out["identity"] = self.identity
        if self.predicted is not None:
            out["predicted"] = self.predicted
        if self.measured is not None:
            m = self.measured
            out["measured"] = {"requests": m.write_ios, "merges": m.write_merges, "sectors": m.write_sectors,
                               "device": self.device, "note": "device-wide write counters around the job"}
        if self.resolved:
            out["resolved"] = self.resolved
        if self.verified is not None:
            v = self.verified
            out["verify"] = {"zero": v.ok, "first_nonzero": v.first_nonzero, "bytes_read": v.bytes_read,
                             "bytes_skipped": v.bytes_skipped, "direct": v.direct,
                             "seconds": round(self.verify_seconds, 6)}
        return out


def error_json(target: str, err: LargezeroError) -> dict[str, object]:
    """The ``--json`` object of a target whose job failed or was refused."""
    out: dict[str, object] = {"target": target, "error": err.cli_message(), "exit_code": err.exit_code,
                              "bytes_zeroed": getattr(err, "bytes_zeroed", 0)}
    if isinstance(err, ZeroingError):
        out.update(stopped_at=err.stopped_at, maybe_until=err.maybe_until)
    where = resolved(target)
    if where:
        out["resolved"] = where
    return out


def resolved(target: str) -> str | None:
    """The path a symlink target resolves to (what is really opened), else None."""
    return os.path.realpath(target) if os.path.islink(target) else None


class ZeroJob:
    """One target's job in phases: ``open()`` (refusals, the range; ``total`` is then known),
    ``run()``, ``close()``. A context manager closes it."""

    def __init__(self, target: str | os.PathLike[str], offset: int = 0, length: int | None = None, *,
                 options: ZeroOptions | None = None, verify: bool = False, dry_run: bool = False) -> None:
        self.target = os.fspath(target)
        self.offset = offset
        self.length = length
        self.options = options or ZeroOptions()
        self.verify = verify
        self.dry_run = dry_run
        self.options.check(dry_run=dry_run, verify=verify)
        self.tgt: Target | None = None
        self.created = False
        self.total = 0

    def __enter__(self) -> ZeroJob:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Open the target as the real run would (refusing what it refuses) and size the range."""
        if not self.target:
            raise UsageError("empty target name")
        o = self.options
        existed = os.path.lexists(self.target)
        self.tgt = open_target(self.target, force=o.force, create=o.create and not self.dry_run,
                               writable=not self.dry_run, force_signatures=o.force_signatures)
        self.created = o.create and not existed and not self.dry_run
        try:
            if self.dry_run:  # opened read-only: refuse what the real run would refuse
                refuse_as_writer(self.tgt, force=o.force, force_signatures=o.force_signatures)
            self.total = check_range(self.tgt, self.offset, self.length, o.extend or self.created)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.tgt is not None:
            self.tgt.close()
            self.tgt = None

    def run(self, progress: Progress | None = None, cancel: Cancel | None = None) -> JobResult:
        """Zero (or plan, for a dry run), measure, predict, verify; raises the engine's errors."""
        if self.tgt is None:
            self.open()
        tgt = self.tgt
        assert tgt is not None
        out = JobResult(self.target, device=tgt.block_name, resolved=resolved(self.target))
        if self.dry_run:
            out.plan, buf, _ = plan_job(tgt, self.offset, self.total, self.options)
            out.zero_buffer = buf
            out.predicted = predict(out.plan, tgt, buf if out.plan.method != "offload" else None)
            return out
        before = _stat(out.device)
        try:
            out.zeroed = zero_range(tgt, self.offset, self.total, self._engine_options(), progress=progress,
                                    cancel=cancel)
        except (UsageError, LargezeroError) as err:
            if self.created and err.exit_code == 2 and os.path.getsize(tgt.path or self.target) == 0:
                os.unlink(tgt.path or self.target)  # nothing was written: leave no trace of create
            raise
        after = _stat(out.device)
        if before is not None and after is not None:
            out.measured = after - before
        if self.created and self.options.sync:
            # fdatasync made the data durable; the new directory entry needs its directory synced.
            _fsync_dir(os.path.dirname(tgt.path or os.path.abspath(self.target)))
        out.identity = tgt.identity()
        if out.zeroed.plan is not None:
            out.predicted = predict(out.zeroed.plan, tgt, out.zeroed.zero_buffer)
        if self.verify:
            self._verify(out, cancel)
        return out

    def _engine_options(self) -> ZeroOptions:
        o = self.options
        if self.created and not o.extend:
            from .._record import replace

            return replace(o, extend=True)
        return o

    def _verify(self, out: JobResult, cancel: Cancel | None) -> None:
        from ..verify import verify_target

        z = out.zeroed
        assert z is not None
        with opened(self.target, writable=False) as ro:
            out.verified, out.verify_seconds = verify_target(ro, z.offset, z.bytes_zeroed,
                                                             direct=self.options.overwrite, cancel=cancel)


def zero_job(target: str | os.PathLike[str], offset: int = 0, length: int | None = None, *,
             options: ZeroOptions | None = None, verify: bool = False, dry_run: bool = False,
             progress: Progress | None = None, cancel: Cancel | None = None) -> JobResult:
    """Zero [offset, offset+length) of ``target`` (None: to its end) as ``largezero zero`` does:
    refuse what is in use, zero, measure the device's counters, price the plan with the model,
    verify when asked (``result.ok``; a non-zero byte is not an exception), and return the record
    (``to_json()`` is the command's ``--json`` object). ``dry_run``: plan and price only, refusing
    what the real run refuses. Raises LargezeroError subclasses (TargetError is an OSError)."""
    with ZeroJob(target, offset, length, options=options, verify=verify, dry_run=dry_run) as job:
        return job.run(progress, cancel)


def predict(plan: ZeroPlan, tgt: Target, buf: ZeroBuffer | None) -> dict[str, object] | None:
    """The model's prediction for ``plan`` on a block device; None for a file."""
    if tgt.kind != BLOCK or tgt.block_name is None:
        return None
    from ..model.limits import QueueLimits
    from ..model.predict import predict_plan
    from ..model.sources import make_source, source_for_buffer
    from ..syscalls import BLKBSZGET, ioctl_int

    try:
        lim = QueueLimits.from_sysfs(tgt.block_name)
        writeback_block = ioctl_int(tgt.fd, BLKBSZGET, "Q") & 0xFFFFFFFF  # an int in a size_t-sized slot
    except (OSError, ValueError) as err:
        return {"error": f"cannot read the device's limits: {err}"}
    source = make_source("zero-page") if buf is None else \
        source_for_buffer(buf.size, buf.backing, buf.contiguous_bytes)
    if source is None:
        return {"requests": None, "notes": [f"the layout of the {buf.backing if buf else ''} zero buffer "
                                            "cannot be observed here (needs root)"]}
    pred = predict_plan(plan, lim, source, writeback_block=writeback_block)
    got = pred.to_dict()
    return got if got is not None else {"requests": None, "notes": pred.notes}


def _stat(device: str | None) -> DiskStat | None:
    if device is None:
        return None
    from ..targets.diskstat import read_stat  # block devices only

    try:
        return read_stat(device)
    except (OSError, ValueError, IndexError):
        return None


def _fsync_dir(path: str) -> None:
    fd = os.open(path or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
