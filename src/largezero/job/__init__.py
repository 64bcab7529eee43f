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
    from collections.abc import Callable

    from ..cancel import Cancel
    from ..engine.plan import ZeroPlan
    from ..engine.writeloop import Progress

    Phase = Callable[[str, int], Progress | None]  # (label, total bytes) -> that phase's progress
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
    measured_note: str = "device-wide write counters around the job"
    device: str | None = None
    verified: VerifyResult | None = None
    identity: dict[str, object] | None = None
    resolved: str | None = None  # what a symlink target resolved to
    started: str | None = None  # UTC, ISO 8601: when the zeroing began
    finished: str | None = None  # and when it (and its verification) ended

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
                               "device": self.device, "note": self.measured_note}
        elif self.zeroed is not None and self.device is not None:
            out["measured"] = {"requests": None, "merges": None, "sectors": None, "device": self.device,
                               "note": self.measured_note}
        if self.resolved:
            out["resolved"] = self.resolved
        if self.verified is not None:
            out["verify"] = self.verified.to_dict()
        if self.zeroed is not None:
            from .erasure import erasure_record

            out["erasure"] = erasure_record(self)
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

    def run(self, progress: Progress | None = None, cancel: Cancel | None = None,
            phase: Phase | None = None) -> JobResult:
        """Zero (or plan, for a dry run), measure, predict, verify; raises the engine's errors.

        ``progress`` is told the bytes zeroed so far; ``phase(label, total)``, when given, is
        called as the read-back starts ("verifying") and returns its progress callback.
        """
        if self.tgt is None:
            self.open()
        tgt = self.tgt
        assert tgt is not None
        out = JobResult(self.target, device=_device_of(tgt), resolved=resolved(self.target))
        if tgt.kind != BLOCK and out.device:
            out.measured_note = (f"device-wide write counters of {out.device}, the device under the file's "
                                 "filesystem, around the job (other writers to it included)")
        if self.dry_run:
            out.plan, buf, _ = plan_job(tgt, self.offset, self.total, self.options)
            out.zero_buffer = buf
            out.predicted = predict(out.plan, tgt, buf if out.plan.method != "offload" else None)
            return out
        from .erasure import utc_now

        out.started = utc_now()
        before = _stat(out.device)
        try:
            out.zeroed = zero_range(tgt, self.offset, self.total, self._engine_options(), progress=progress,
                                    cancel=cancel)
        except LargezeroError as err:
            if self.created and err.exit_code == 2 and os.path.getsize(tgt.path or self.target) == 0:
                os.unlink(tgt.path or self.target)  # nothing was written: leave no trace of create
            raise
        after = self._settled_stat(out, tgt)
        if before is not None and after is not None:
            out.measured = after - before
        if self.created and self.options.sync:
            # fdatasync made the data durable; the new directory entry needs its directory synced.
            _fsync_dir(os.path.dirname(tgt.path or os.path.abspath(self.target)))
        out.identity = tgt.identity()
        if out.zeroed.plan is not None:
            out.predicted = predict(out.zeroed.plan, tgt, out.zeroed.zero_buffer)
        if self.verify:
            self._verify(out, cancel, phase("verifying", out.zeroed.bytes_zeroed) if phase else None)
        out.finished = utc_now()
        return out

    def _settled_stat(self, out: JobResult, tgt: Target) -> DiskStat | None:
        """The device's counters once the job's writes reached it: buffered writes not yet
        written back are written back first (never 0/0/0 for bytes that were written)."""
        z = out.zeroed
        if out.device is None or z is None or z.plan is None or z.synced or not z.bytes_zeroed:
            return _stat(out.device)
        from ..engine.plan import WriteStep
        from ..targets.diskstat import write_back

        if not any(isinstance(s, WriteStep) and not s.direct for s in z.plan.steps):
            return _stat(out.device)
        try:
            out.measured_note = write_back(tgt.fd, z.offset, z.bytes_zeroed)
        except OSError as err:
            out.measured_note = f"not measured: writing back the buffered writes failed ({err.strerror})"
            return None
        return _stat(out.device)

    def _engine_options(self) -> ZeroOptions:
        o = self.options
        if self.created and not o.extend:
            from .._record import replace

            return replace(o, extend=True)
        return o

    def _verify(self, out: JobResult, cancel: Cancel | None, progress: Progress | None) -> None:
        from ..verify import VerifyInterrupted, verify_target

        z = out.zeroed
        assert z is not None
        with opened(self.target, writable=False) as ro:
            try:
                out.verified = verify_target(ro, z.offset, z.bytes_zeroed, direct=self.options.overwrite,
                                             cancel=cancel, progress=progress)
            except VerifyInterrupted as err:
                # The zeros are written: what is left is the read-back of [stopped_at, +remaining).
                err.verify_left = (err.stopped_at, err.remaining, self.options.overwrite)
                raise


def zero_job(target: str | os.PathLike[str], offset: int = 0, length: int | None = None, *,
             options: ZeroOptions | None = None, verify: bool = False, dry_run: bool = False,
             progress: Progress | None = None, cancel: Cancel | None = None,
             phase: Phase | None = None) -> JobResult:
    """Zero [offset, offset+length) of ``target`` (None: to its end) as ``largezero zero`` does:
    refuse what is in use, zero, measure the device's counters, price the plan with the model,
    verify when asked (``result.ok``; a non-zero byte is not an exception), and return the record
    (``to_json()`` is the command's ``--json`` object). ``dry_run``: plan and price only, refusing
    what the real run refuses. Raises LargezeroError subclasses (TargetError is an OSError)."""
    with ZeroJob(target, offset, length, options=options, verify=verify, dry_run=dry_run) as job:
        return job.run(progress, cancel, phase)


def predict(plan: ZeroPlan, tgt: Target, buf: ZeroBuffer | None) -> dict[str, object] | None:
    """The model's prediction for ``plan`` on a block device, or for a file on the device under
    its filesystem (O_DIRECT writes only; otherwise a note); None where there is no device."""
    if tgt.kind != BLOCK:
        from ..model.files import predict_file  # light until the plan is one it prices

        return predict_file(plan, tgt, buf)
    from ..model.predict import predict_target

    return predict_target(plan, tgt, buf)


def _device_of(tgt: Target) -> str | None:
    """The block device whose counters the job reads: the target itself, or for a file the
    device its filesystem is on (none for tmpfs and the like)."""
    if tgt.kind == BLOCK:
        return tgt.block_name
    from ..targets.diskstat import disk_under

    return disk_under(tgt.dev_ino[0]) if tgt.dev_ino[0] else None


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
