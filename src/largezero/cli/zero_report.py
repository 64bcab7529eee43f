"""What ``largezero zero`` says: the summary line, the JSON result, the plan, the resume command."""

from __future__ import annotations

import argparse
import os

from ..engine.plan import EdgeStep, OffloadStep, ZeroPlan
from ..engine.zeroout import ZeroResult
from ..errors import LargezeroError, ZeroingError
from ..mm import ZeroBuffer
from ..targets import BLOCK, Target
from ..units import format_size

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from typing import Any


def resume_command(args: argparse.Namespace, target: str, stopped: int, remaining: int) -> str:
    """The command that zeroes exactly what is left of the original range: [stopped, stopped + remaining).

    Both --offset and --length always, so a file that grew meanwhile keeps its new bytes; the
    target after ``--``, quoted, so a name like ``-x`` or one with spaces works as typed.
    """
    argv = ["largezero", "zero", "-o", str(stopped), "-l", str(remaining)]
    if args.method != "auto":
        argv += ["-m", args.method]
    for flag in ("direct", "unmap", "extend", "sync", "force", "verify", "overwrite"):
        if getattr(args, flag, False):
            argv.append(f"--{flag}")
    if args.create and not args.extend:
        argv.append("--extend")  # the file exists now, and may be shorter than the range
    if args.backing != "auto":
        argv += ["--backing", args.backing]
    if args.large_page is False:
        argv.append("--no-large-page")
    if args.call_size is not None:
        argv += ["--call-size", str(args.call_size)]
    if args.iov_size is not None:
        argv += ["--iov-size", str(args.iov_size)]
    if args.checkpoint is not None:
        argv += ["--checkpoint", f"{args.checkpoint:g}"]
    import shlex  # here: only a failure or a checkpoint prints a command

    return shlex.join([*argv, "--", target])


def resolved(target: str) -> str | None:
    """The path a symlink target resolves to (what is really opened), else None."""
    return os.path.realpath(target) if os.path.islink(target) else None


def summary(r: ZeroResult, verbose: bool) -> str:
    how = r.mechanism + (", O_DIRECT" if r.direct else "")
    if r.zero_buffer is not None and r.method != "offload":
        buf = r.zero_buffer
        iov = f", iovec {format_size(r.plan.iov_len)}" if r.plan and r.plan.iov_len != buf.size else ""
        how += f", {buf.name} {format_size(buf.size)} {buf.backing}{iov}"
    rate = f", {format_size(r.bytes_zeroed / r.seconds)}/s" if r.seconds > 0 and r.bytes_zeroed else ""
    medium = {True: "overwritten on the medium", False: "reads as zero, old bytes may remain on the medium",
              None: "reads as zero"}[r.medium_overwritten]
    line = (f"{r.target}: zeroed {format_size(r.bytes_zeroed)} at offset {r.offset} with {r.method} ({how}): "
            f"{r.calls} calls, {r.iovecs} iovecs, {r.seconds:.3f} s{rate}; {medium}")
    if verbose:
        if r.plan is not None:
            line += "\n  plan: " + "; ".join(r.plan.why)
        line += f"\n  medium: {r.medium_note}"
        if r.fallback:
            line += "\n  fallback: " + "; ".join(r.fallback)
    return line


def describe_plan(plan: ZeroPlan, target: str) -> str:
    """The plan as text, one line a step (run-length: a run of identical calls is one line)."""
    lines = [f"{target}: plan {plan.method}{' O_DIRECT' if plan.direct else ''} for bytes "
             f"{plan.offset}..{plan.offset + plan.length} ({format_size(plan.length)}), {plan.calls} calls"]
    for s in plan.steps:
        if isinstance(s, OffloadStep):
            lines.append(f"  offload {s.offset}..{s.offset + s.length}: {' then '.join(s.mechanisms)}")
        elif isinstance(s, EdgeStep):
            lines.append(f"  edge    {s.offset}..{s.offset + s.length}: pwrite through the page cache, "
                         "then written back")
        else:
            for run in s.runs:
                lines.append(f"  write   {run.offset}..{run.offset + run.length}: {run.calls} x pwritev"
                             f"{' O_DIRECT' if s.direct else ''} of {format_size(run.call_bytes)} "
                             f"({run.iovecs_per_call} iovecs of {format_size(run.iov_len)}"
                             f"{f' + {run.last_iov_len} bytes' if run.last_iov_len else ''})")
    lines.extend(f"  why: {w}" for w in plan.why)
    if plan.fallback is not None:
        lines.append("  if the offload is refused:")
        lines.extend("  " + line for line in describe_plan(plan.fallback, target).splitlines()[1:])
    return "\n".join(lines)


def predicted(plan: ZeroPlan, tgt: Target, buf: ZeroBuffer | None) -> dict[str, object] | None:
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
    out = pred.to_dict()
    return out if out is not None else {"requests": None, "notes": pred.notes}


def result_dict(target: str, r: ZeroResult | LargezeroError, checked: Any) -> dict[str, object]:
    if isinstance(r, LargezeroError):
        out: dict[str, object] = {"target": target, "error": str(r), "exit_code": r.exit_code,
                                  "bytes_zeroed": getattr(r, "bytes_zeroed", 0)}
        if isinstance(r, ZeroingError):
            out.update(stopped_at=r.stopped_at, maybe_until=r.maybe_until)
    else:
        out = r.to_dict()
    where = resolved(target)
    if where:
        out["resolved"] = where
    if checked is not None:
        out["verify"] = checked.to_dict()
    return out


def verified(v: Any) -> str:
    """'verified zero (...)': what the read-back read from the medium, and what it could not."""
    skipped = (f", {v.bytes_skipped} not read (holes and unwritten extents read as zero without touching "
               "the medium)" if v.bytes_skipped else "")
    return f"verified zero ({v.bytes_read} bytes read{' O_DIRECT' if v.direct else ''}{skipped}, {v.seconds:.3f} s)"
