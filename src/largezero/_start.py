"""The ``largezero`` command's first instructions: the signal handler, then everything else.

The launcher (``scripts/largezero``) starts the interpreter with SIGINT, SIGTERM and SIGHUP
blocked, so a signal during the interpreter's own start-up (site, encodings) waits instead of
raising KeyboardInterrupt where nothing can catch it. Here the one handler goes in and the
signals are unblocked: a signal that came meanwhile is handled at once, with one line and
128 + its number. Only then is the command line imported. ``python -m largezero`` runs the
same (there, the interpreter's start-up before ``__main__`` is not covered: nothing blocked it).
"""

import sys

from .cancel import install


def main() -> int:
    install()
    from .cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
