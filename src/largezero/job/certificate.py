"""The erasure certificate: one page per device a person can hand over, beside the JSON record.

``write_report(path, records)`` writes ``NAME.json`` (the records, exactly as ``--json``
prints them) and then ``NAME.pdf`` at ``path``, one page per record, laid out like the
peers' certificates (nwipe, Blancco): the device, the method, the NIST SP 800-88 category and
why, the verification, the times, the tool and the host, and the sha256 of ``NAME.json`` so
the page and the record can be checked against each other (``sha256sum NAME.json``). The PDF
is made with fpdf2 (``pip install 'largezero[report]'``), imported only here.
"""

from __future__ import annotations

import hashlib
import json
import os

from ..errors import UsageError

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from typing import Any

NEEDS = "the certificate needs fpdf2: pip install 'largezero[report]'"


def check_available(path: str) -> None:
    """UsageError before any work when the certificate could not be written afterwards."""
    try:
        import fpdf  # noqa: F401
    except ImportError:
        raise UsageError(f"--report {path}: {NEEDS}") from None
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise UsageError(f"--report {path}: cannot write in {folder}")


def json_path(pdf_path: str) -> str:
    base = pdf_path[:-4] if pdf_path.lower().endswith(".pdf") else pdf_path
    return base + ".json"


def write_report(pdf_path: str, records: list[dict[str, Any]], *, kind: str = "erasure") -> tuple[str, str]:
    """Write NAME.json and NAME.pdf (one page per record); returns (pdf path, sha256 of the JSON)."""
    text = json.dumps(records[0] if len(records) == 1 else records, indent=2, sort_keys=True) + "\n"
    data = text.encode()
    digest = hashlib.sha256(data).hexdigest()
    record_path = json_path(pdf_path)
    _write(record_path, data)
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_title("Certificate of data erasure" if kind == "erasure" else "Certificate of verification")
    pdf.set_creator("largezero")
    for rec in records:
        _page(pdf, rec, kind, os.path.basename(record_path), digest)
    _write(pdf_path, bytes(pdf.output()))
    return pdf_path, digest


def _write(path: str, data: bytes) -> None:
    """Write whole or not at all: a temporary file beside it, then renamed over it."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _latin1(text: object) -> str:
    # The PDF core fonts are Latin-1: anything else is shown as '?', never dropped silently.
    return str(text).encode("latin-1", "replace").decode("latin-1")


def _size(n: object) -> str:
    if not isinstance(n, int):
        return "unknown"
    from ..units import format_size

    return f"{n} bytes ({format_size(n)})"


def _yes(v: object) -> str:
    return {True: "yes", False: "no", None: "unknown"}.get(v, str(v)) if isinstance(v, bool) or v is None else str(v)


def _device_rows(ident: dict[str, Any], target: str) -> list[tuple[str, str]]:
    loop = ident.get("loop")
    rows = [("Device", str(ident.get("device") or ident.get("path") or target)),
            ("Size", _size(ident.get("size")))]
    if ident.get("kind") == "block":
        rows += [("Model", str(ident.get("model") or "not reported")),
                 ("Serial number", str(ident.get("serial") or "not reported")),
                 ("WWN", str(ident.get("wwn") or "not reported")),
                 ("Firmware", str(ident.get("firmware") or "not reported")),
                 ("Block size", f"{ident.get('logical_block_size')} logical, {ident.get('physical_block_size')} "
                                "physical"),
                 ("Rotational", _yes(ident.get("rotational"))),
                 ("Transport", str(ident.get("transport") or "unknown"))]
        if isinstance(loop, dict):
            rows.append(("Loop backing", f"{loop.get('backing_file')} at offset {loop.get('offset')}"))
    else:
        rows += [("Filesystem", f"{ident.get('filesystem')} on {ident.get('fs_source')}"),
                 ("Inode", f"{ident.get('ino')} on device {ident.get('dev')}")]
    return rows


def _erasure_rows(e: dict[str, Any]) -> list[tuple[str, str]]:
    r = e["range"]
    v = e["verification"]
    rows = [("Method", f"{e['method']} ({e['mechanism']})"),
            ("Range", f"bytes {r['offset']}..{r['offset'] + r['length']} ({r['length']} bytes)"),
            ("Bytes zeroed", str(e["bytes_zeroed"])),
            ("Flushed (synced)", _yes(e["synced"])),
            ("Medium overwritten", _yes(e["medium_overwritten"]) + f": {e['medium']}"),
            ("Started (UTC)", str(e["started"])), ("Finished (UTC)", str(e["finished"]))]
    rows += _verification_rows(v)
    return rows


def _verification_rows(v: dict[str, Any]) -> list[tuple[str, str]]:
    if not v.get("performed"):
        return [("Verification", "not verified (the zeros were not read back)")]
    result = "verified: every byte read back as zero" if v["result"] == "zero" else \
        f"FAILED: a non-zero byte at offset {v['first_nonzero']}"
    return [("Verification", f"{result} ({v['method']})"),
            ("Read from the medium" if v["bytes_read_from_medium"] or not v["bytes_read"] else "Read back (buffered)",
             f"{v['bytes_read']} bytes"),
            ("Not read (holes)", f"{v['bytes_skipped']} bytes: holes and unwritten extents read as zero without "
                                 "touching the medium" if v["bytes_skipped"] else "0 bytes")]


def _page(pdf: Any, rec: dict[str, Any], kind: str, record_name: str, digest: str) -> None:
    pdf.add_page()
    pdf.set_margins(18, 16, 18)
    pdf.set_y(16)
    pdf.set_font("Helvetica", "B", 18)
    title = "Certificate of data erasure" if kind == "erasure" else "Certificate of verification"
    pdf.cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    e = rec.get("erasure")
    if "error" in rec:
        pdf.set_font("Helvetica", "B", 12)
        pdf.multi_cell(0, 6, _latin1(f"NOT ERASED: {rec['target']}: {rec['error']}"), new_x="LMARGIN",
                       new_y="NEXT")
        _section(pdf, "Record", [("JSON record", record_name), ("SHA-256 of the record", digest)])
        return
    if e is not None:
        category = e["nist_sp800_88"]
        headline = (f"NIST SP 800-88 Rev. 2 category reached: {category}" if category else
                    "NIST SP 800-88 Rev. 2 category reached: none")
        pdf.set_font("Helvetica", "B", 12)
        pdf.multi_cell(0, 6, _latin1(headline), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 9)
        pdf.multi_cell(0, 4.5, _latin1(("Why: " if category else "Why not: ") + e["nist_sp800_88_reason"]),
                       new_x="LMARGIN", new_y="NEXT")
        sections = [("Device", _device_rows(e["device"], rec.get("target", ""))),
                    ("Erasure", _erasure_rows(e))]
        caveat = e.get("device_caveat")
        host = [("Tool", e["tool"]), ("Host", e["host"]), ("Kernel", e["kernel"])]
    else:
        sections = [("Device", _device_rows(rec.get("identity") or {}, rec.get("target", ""))),
                    ("Verification", [("Range", f"bytes {rec['offset']}..{rec['offset'] + rec['length']} "
                                                f"({rec['length']} bytes)"),
                                      *_verification_rows(rec["verification"]),
                                      ("Started (UTC)", str(rec.get("started"))),
                                      ("Finished (UTC)", str(rec.get("finished")))])]
        caveat = "This certifies a verification (a read-back), not an erasure: this job wrote nothing."
        host = [("Tool", rec["tool"]), ("Host", rec["host"]), ("Kernel", rec["kernel"])]
    sections.append(("Tool and host", host))
    sections.append(("Record", [("JSON record", record_name), ("SHA-256 of the record", digest)]))
    for name, rows in sections:
        _section(pdf, name, rows)
    if caveat:
        _section(pdf, "Device class", [("Caveat", caveat)])
    pdf.ln(6)
    pdf.set_font("Helvetica", "", 10)
    for label in ("Operator", "Signature", "Date"):
        pdf.cell(58, 8, f"{label}: ____________________", new_x="RIGHT", new_y="TOP")
    pdf.ln(10)


def _section(pdf: Any, name: str, rows: list[tuple[str, str]]) -> None:
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 6, name, new_x="LMARGIN", new_y="NEXT")
    for label, value in rows:
        pdf.set_font("Helvetica", "B", 8.5)
        pdf.cell(42, 4.5, _latin1(label), new_x="RIGHT", new_y="TOP")
        pdf.set_font("Helvetica", "", 8.5)
        pdf.multi_cell(0, 4.5, _latin1(value), new_x="LMARGIN", new_y="NEXT")
