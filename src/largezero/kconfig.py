"""What the running kernel was built with, from /proc/config.gz when it is there."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def _config() -> dict[str, str] | None:
    import gzip  # only when asked: gzip and zlib are not free at start-up

    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            text = f.read()
    except OSError:
        return None
    options: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            key, value = line.split("=", 1)
            options[key] = value
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            options[line[2:].split()[0]] = "n"
    return options


def kernel_option(name: str) -> str:
    """'y', 'm', 'n' or a value; 'unknown' when /proc/config.gz is absent."""
    config = _config()
    if config is None:
        return "unknown"
    return config.get(name, "n")


def persistent_huge_zero_folio() -> str:
    """Whether largest_zero_folio() can return the huge zero folio in this kernel's block layer."""
    return kernel_option("CONFIG_PERSISTENT_HUGE_ZERO_FOLIO")
