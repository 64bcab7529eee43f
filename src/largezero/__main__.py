"""``python -m largezero``: the same command as the console script."""

import sys

try:
    from .cli import main
except KeyboardInterrupt:
    # Ctrl-C before main() could install its handler: still one line and 130, no traceback.
    try:
        if sys.stderr is not None:
            sys.stderr.write("largezero: interrupted\n")
    except (OSError, ValueError):
        pass
    sys.exit(130)

sys.exit(main())
