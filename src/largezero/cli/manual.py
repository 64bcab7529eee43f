"""The command line's own documentation, generated from the one parser: the man page
(argparse-manpage) and the bash and zsh completions (shtab) both read :func:`documented_parser`.

``make man completion`` writes them under ``largezero/share/`` in the FHS layout, and
pyproject.toml installs them as data files; ``largezero completion bash|zsh`` prints the installed
copy. Nothing here runs when largezero does: only those two tools and the tests import it.
"""

from __future__ import annotations

import argparse
import signal

from ..errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, EXIT_VERIFY_MISMATCH
from ..mm.zero_page import ENV_SWITCH
from . import TRACEBACK_ENV, build_parser
from .completion import COMPLETIONS, MAN_PAGE, packaged

__all__ = ["COMPLETIONS", "MAN_PAGE", "documented_parser", "man_sections", "packaged"]

# The README's Command line section, command and comment (tests/test_manpage.py keeps them equal).
EXAMPLES: list[tuple[str, str]] = [
    ("largezero zero disk.img -o 1M -l 64M", "offload if the filesystem has it, else large writes"),
    ("largezero zero disk.img -o 1000 -l 64M --dry-run", "the plan, step by step; nothing is written"),
    ("largezero zero /dev/loop0 -m large --direct --json",
     "O_DIRECT writes from LARGE_ZERO_PAGE, predicted vs measured"),
    ("largezero zero /dev/loop0 --overwrite --verify", "zeros over every byte, read back with O_DIRECT"),
    ("largezero zero disk.img -l 1G -m page", "the pre-RFC path: 4 KiB ZERO_PAGE iovecs"),
    ("largezero info /dev/loop0", "sizes, alignment, queue limits, offload, who holds it, signatures"),
    ("largezero demo", "the main job on an embedded default"),
    ("largezero verify disk.img -o 1M -l 64M", "exit 0 if all zero, 3 and the first non-zero byte if not"),
    ("largezero wipe /dev/sdX --report sdX.pdf",
     "overwrite, flush, read back; the erasure record (sdX.json) and a certificate"),
    ("largezero model --device loop0 --path direct -l 1G", "predicted bios, bvecs, segments, requests per zero source"),
    ("largezero write disk.img -o 12345 --direct < data",
     "O_DIRECT write at any offset, partial pages through the page cache"),
    ("largezero cat -l 100G | ssh host 'dd of=/dev/sdX bs=1M'",
     "zeros as a stream, vmspliced from the huge zero folio"),
    ("largezero bench --quick", "side by side with dd, fallocate -z, blkdiscard -z"),
]

EXIT_STATUS: list[tuple[int, str]] = [
    (EXIT_OK, "success"),
    (EXIT_FAILURE, "failed part way: the message says which bytes are zero, which may also be, and the exact "
                   "-o/-l that resumes"),
    (EXIT_USAGE, "bad input, refused (a target in use or carrying a signature, without --force), or nothing "
                 "applicable (-m offload where no offload is real); nothing was written"),
    (EXIT_VERIFY_MISMATCH, "verify found a non-zero byte (verify, zero --verify)"),
    (EXIT_INTERRUPTED, "interrupted (SIGINT, Ctrl-C): the job stops at the next write boundary and prints the "
                       "command that resumes; before a job starts, one line and the same status"),
    (128 + signal.SIGTERM, "stopped by SIGTERM, as for SIGINT"),  # 128 + the signal, as the shell reports
    (128 + signal.SIGHUP, "stopped by SIGHUP, as for SIGINT"),
]

ENVIRONMENT: list[tuple[str, str]] = [
    (ENV_SWITCH, "0, no, off or false: never use LARGE_ZERO_PAGE, zero from the 4 KiB ZERO_PAGE (like a kernel "
                 "without CONFIG_PERSISTENT_HUGE_ZERO_FOLIO); 1, yes, on, true or unset: use it where the kernel "
                 "maps its huge zero folio. Any other value is bad input (exit 2)."),
    (TRACEBACK_ENV, "1: an unexpected error shows its Python traceback instead of one line (for developers)."),
    ("LARGEZERO_PYTHON", "the interpreter the largezero command runs (default: python3 beside the command, else "
                         "python3 on PATH)."),
    ("LARGEZERO_BLOCK_SIGNALS", "0: start the interpreter without SIGINT, SIGTERM and SIGHUP blocked, where env has "
                                "no --block-signal (busybox, coreutils before 8.31); a signal in the first "
                                "milliseconds is then Python's."),
    ("LARGEZERO_BENCH_DIR", "where bench's stream part creates its sparse image (default: $TMPDIR)."),
    ("TMPDIR", "where bench and demo create their scratch files and loop images (bench --dir overrides)."),
    ("COLUMNS", "the width of --help (default: the terminal's)."),
]

SEE_ALSO = [("wipefs", 8), ("blkdiscard", 8), ("fallocate", 1), ("shred", 1), ("dd", 1)]

# TARGET is a regular file or a block device: complete both. The bash function's name holds
# "_file" so that shtab's script turns on `compopt -o filenames` (quoting, "/" after folders).
_BASH_TARGETS = "_largezero_compgen_files_and_block_devices"
_ZSH_TARGETS = "_largezero_files_and_block_devices"
TARGET_COMPLETE = {
    "bash": _BASH_TARGETS,
    "zsh": _ZSH_TARGETS,
    "preamble": {
        "bash": f"""
# $1=the word being completed. Files and folders, and the block devices under /dev (and
# /dev/mapper) starting with it; under /dev itself only block devices and folders, since a
# character device is refused as a target.
{_BASH_TARGETS}() {{
  local word=$1 path
  if [[ $word == /dev/* ]]; then
    while IFS= read -r path; do
      [[ -b $path || -d $path ]] && printf '%s\\n' "$path"
    done < <(compgen -f -- "$word")
    return 0
  fi
  compgen -f -- "$word"
  for path in /dev/* /dev/mapper/*; do
    [[ -b $path && $path == "$word"* ]] && printf '%s\\n' "$path"
  done
  return 0
}}
""",
        "zsh": f"""
# Files and folders, and the block devices under /dev and /dev/mapper.
{_ZSH_TARGETS}() {{
  local -a devices
  devices=(/dev/*(N-%b) /dev/mapper/*(N-%b))
  _alternative 'files:file:_files' 'devices:block device:compadd -a devices'
}}
""",
    },
}
FILE_COMPLETE = {"bash": "_shtab_compgen_files", "zsh": "_files"}  # shtab.FILE, without importing shtab


def _roff(text: str) -> str:
    """Plain text as roff: backslashes and hyphens escaped, no line starting with a control dot."""
    out = text.replace("\\", "\\\\").replace("-", "\\-")
    return "\\&" + out if out.startswith((".", "'")) else out


def _items(pairs: list[tuple[str, str]]) -> str:
    return "\n".join(f".TP\n\\fB{_roff(term)}\\fR\n{_roff(text)}" for term, text in pairs)


def man_sections() -> list[dict[str, str]]:
    """The sections argparse-manpage adds after the commands (its ``parser._manpage``)."""
    see_also = ",\n".join(f".BR {name} ({section})" for name, section in SEE_ALSO)
    return [
        {"heading": "EXIT STATUS", "content": _items([(str(code), text) for code, text in EXIT_STATUS])},
        {"heading": "ENVIRONMENT", "content": _items(ENVIRONMENT)},
        {"heading": "EXAMPLES", "content": _items(EXAMPLES)},
        {"heading": "SEE ALSO", "content": see_also},
    ]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def documented_parser() -> argparse.ArgumentParser:
    """The full parser, with the man page's extra sections and the completion of each TARGET
    (and of cat's FILE) attached the way argparse-manpage and shtab read them."""
    parser = build_parser()
    parser._manpage = man_sections()  # type: ignore[attr-defined]
    for sub in _subparsers(parser).values():
        for action in sub._actions:
            if action.option_strings:
                continue
            if action.metavar == "TARGET":
                action.complete = TARGET_COMPLETE  # type: ignore[attr-defined]
            elif action.metavar == "FILE":
                action.complete = FILE_COMPLETE  # type: ignore[attr-defined]
    return parser

