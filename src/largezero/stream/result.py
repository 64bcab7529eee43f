"""What a stream did: bytes, the mechanisms that moved them, calls, fallbacks, time, memory."""

from __future__ import annotations

from .._record import field, record
from ..errors import Interrupted
from ..sysfiles import read_fields, write_text

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from ..cancel import Cancel


@record
class StreamResult:
    """Filled in while the stream runs, so a caller interrupted part way still knows the count."""

    target: str  # what was written to, for messages ("stdout", "fd 5")
    kind: str  # pipe, socket, file, block, tty, other
    source: str | None = None  # the input file, None for a stream of zeros
    bytes: int = 0
    zero_bytes: int = 0  # of which served from the zero buffer or the zeroing engine
    data_bytes: int = 0  # of which copied from the input's data extents
    calls: int = 0
    zero_buffer: str | None = None  # e.g. "LARGE_ZERO_PAGE (huge-zero-folio)"
    mechanisms: dict[str, list[int]] = field(default_factory=dict)  # name -> [calls, bytes]
    fallback: list[str] = field(default_factory=list)
    seconds: float = 0.0
    rss_growth_bytes: int | None = None

    @property
    def mechanism(self) -> str:
        """The mechanisms that ran, in order of first use: "vmsplice+splice"."""
        return "+".join(self.mechanisms) or "none"

    def record(self, mechanism: str, n: int, *, zeros: bool, calls: int = 1) -> None:
        entry = self.mechanisms.setdefault(mechanism, [0, 0])
        entry[0] += calls
        entry[1] += n
        self.calls += calls
        self.bytes += n
        if zeros:
            self.zero_bytes += n
        else:
            self.data_bytes += n

    def note(self, reason: str) -> None:
        if reason not in self.fallback:
            self.fallback.append(reason)

    def to_dict(self) -> dict[str, object]:
        return {
            "target": self.target,
            "kind": self.kind,
            "source": self.source,
            "bytes": self.bytes,
            "zero_bytes": self.zero_bytes,
            "data_bytes": self.data_bytes,
            "mechanism": self.mechanism,
            "mechanisms": {k: {"calls": v[0], "bytes": v[1]} for k, v in self.mechanisms.items()},
            "calls": self.calls,
            "zero_buffer": self.zero_buffer,
            "fallback": list(self.fallback),
            "seconds": round(self.seconds, 6),
            "rss_growth_bytes": self.rss_growth_bytes,
        }


def check_cancel(cancel: Cancel | None, result: StreamResult) -> None:
    """A set cancel event stops the stream between two calls, like zero_range's KILLABLE."""
    if cancel is not None and cancel.is_set():
        raise Interrupted(f"{result.target}: interrupted after {result.bytes} bytes",
                          target=result.target, method=result.mechanism, offset=0, bytes_zeroed=result.bytes)


def _status_kib(name: str) -> int | None:
    value = read_fields("/proc/self/status").get(name, "").removesuffix(" kB")
    return int(value) if value.isdigit() else None


def rss_mark() -> int | None:
    """Reset the peak-RSS mark (clear_refs 5, this process only) and return the current RSS.

    The peak seen at the end minus this is an upper bound of what the stream itself grew.
    """
    write_text("/proc/self/clear_refs", "5")
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def rss_growth(mark: int | None) -> int | None:
    peak = _status_kib("VmHWM")
    if mark is None or peak is None:
        return None
    return max(0, peak * 1024 - mark)
