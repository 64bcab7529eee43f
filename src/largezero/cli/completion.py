"""largezero completion: print the bash or zsh completion script of this installation.

The scripts are generated from the one parser by ``make completion`` (see cli/manual.py) and
installed as package data; printing one needs neither shtab nor the parser.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..errors import EXIT_OK, LargezeroError

# Paths below largezero/, the same as below an installation prefix (pyproject's data-files).
MAN_PAGE = "share/man/man1/largezero.1"
COMPLETIONS = {"bash": "share/bash-completion/completions/largezero", "zsh": "share/zsh/site-functions/_largezero"}

EXAMPLES = """\
examples:
  source <(largezero completion bash)                       in ~/.bashrc
  largezero completion zsh > ~/.zfunc/_largezero            with fpath+=(~/.zfunc) before compinit
"""


def register(sub: Any) -> None:
    p = sub.add_parser("completion", help="print the bash or zsh completion script",
                       description="Print the shell completion script (commands, options, choices; files and "
                       "block devices for TARGET). pip installs the same scripts under "
                       "share/bash-completion/completions and share/zsh/site-functions.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shell", choices=sorted(COMPLETIONS), metavar="SHELL", help="bash or zsh")
    p.set_defaults(func=run)


def packaged(rel: str) -> str:
    """The path of a generated file inside the installed package."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), rel)


def run(args: argparse.Namespace) -> int:
    path = packaged(COMPLETIONS[args.shell])
    try:
        with open(path) as f:
            text = f.read()
    except OSError as err:
        raise LargezeroError(f"{args.shell} completion is not in this installation ({err.strerror}: {path})") from None
    sys.stdout.write(text)
    return EXIT_OK
