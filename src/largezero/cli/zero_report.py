"""What ``largezero zero`` says: the summary line, the JSON result, the plan, the resume command."""

from __future__ import annotations

from ..engine.plan import EdgeStep, OffloadStep, ZeroPlan
from ..units import format_size

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from typing import Any

    from ..engine.options import ZeroOptions
    from ..engine.zeroout import ZeroResult
    from ..verify import VerifyResult


def resume_command(opts: ZeroOptions, target: str, stopped: int, remaining: int, *, verify: bool = False,
                   checkpoint: float | None = None) -> str:
    """The command that zeroes exactly what is left of the original range: [stopped, stopped + remaining).

    Both --offset and --length always, so a file that grew meanwhile keeps its new bytes; the
    target after ``--``, quoted, so a name like ``-x`` or one with spaces works as typed.
    """
    argv = ["largezero", "zero", "-o", str(stopped), "-l", str(remaining), *opts.argv()]
    if verify:
        argv.append("--verify")
    if checkpoint is not None:
        argv += ["--checkpoint", f"{checkpoint:g}"]
    import shlex  # here: only a failure or a checkpoint prints a command

    return shlex.join([*argv, "--", target])


def verify_resume_command(target: str, stopped: int, remaining: int, direct: bool) -> str:
    """The command that reads back what an interrupted verification left: [stopped, +remaining)."""
    import shlex

    return shlex.join(["largezero", "verify", "-o", str(stopped), "-l", str(remaining),
                       *(["--direct"] if direct else []), "--", target])


def summary(r: ZeroResult, verbose: bool) -> str:
    how = r.mechanism + (", O_DIRECT" if r.direct else "")
    if r.zero_buffer is not None and r.method != "offload":
        buf = r.zero_buffer
        iov = f", iovec {format_size(r.plan.iov_len)}" if r.plan and r.plan.iov_len != buf.size else ""
        how += f", {buf.name} {format_size(buf.size)} {buf.backing}{iov}"
    rate = f", {format_size(r.bytes_zeroed / r.seconds)}/s" if r.seconds > 0 and r.bytes_zeroed else ""
    medium = {True: "overwritten on the medium (synced: flushed from the device's cache)",
              False: "reads as zero, old bytes may remain on the medium",
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
            calls = f" ({s.calls} calls of up to {format_size(s.call_bytes)})" if s.calls > 1 else ""
            lines.append(f"  offload {s.offset}..{s.offset + s.length}: {' then '.join(s.mechanisms)}{calls}")
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


def verified(v: VerifyResult) -> str:
    """'verified zero (...)': what the read-back read from the medium, and what it did not."""
    skipped = (f", {v.bytes_skipped} not read: holes and unwritten extents read as zero without touching "
               "the medium" if v.bytes_skipped else "")
    return f"verified zero ({v.bytes_read} bytes read{' O_DIRECT' if v.direct else ''}{skipped}, {v.seconds:.3f} s)"


def nist_line(shown: str, record: dict[str, Any]) -> str:
    """'TARGET: NIST SP 800-88: Clear (why)' or '... no category reached: why not', from the record."""
    e = record["erasure"]
    if e["nist_sp800_88"]:
        return f"{shown}: NIST SP 800-88: {e['nist_sp800_88']} ({e['nist_sp800_88_reason']})"
    return f"{shown}: NIST SP 800-88: no category reached: {e['nist_sp800_88_reason']}"
