"""What the running kernel was built with, from /proc/config.gz when it is there."""

from __future__ import annotations

_text: list[str | None] = []


def _config_text() -> str | None:
    """/proc/config.gz, decompressed once (zlib directly: gzip's module costs more to import
    than the file costs to read)."""
    if not _text:
        import zlib

        try:
            with open("/proc/config.gz", "rb") as f:
                text = zlib.decompress(f.read(), 16 + zlib.MAX_WBITS).decode("utf-8", "replace")
            _text.append("\n" + text)  # every line, the first too, then starts with a newline
        except (OSError, zlib.error):
            _text.append(None)
    return _text[0]


def kernel_option(name: str) -> str:
    """'y', 'm', 'n' or a value; 'unknown' when /proc/config.gz is absent."""
    text = _config_text()
    if text is None:
        return "unknown"
    # Look up the one line instead of parsing ~8000: "NAME=value", or "# NAME is not set".
    at = text.find(f"\n{name}=")
    if at < 0:
        return "n"
    line_end = text.find("\n", at + 1)
    return text[at + len(name) + 2 : line_end if line_end >= 0 else len(text)]


def persistent_huge_zero_folio() -> str:
    """Whether largest_zero_folio() can return the huge zero folio in this kernel's block layer."""
    return kernel_option("CONFIG_PERSISTENT_HUGE_ZERO_FOLIO")
