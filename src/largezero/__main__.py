"""``python -m largezero``: the same command as the ``largezero`` launcher (see ``_start``).

The launcher blocks SIGINT, SIGTERM and SIGHUP before the interpreter starts; here they can
only be blocked from this module's first line, so a signal during the interpreter's own
start-up and runpy's is Python's (a KeyboardInterrupt traceback, or death by the signal).
From here on it is the launcher's path: blocked, the one handler installed, unblocked.
"""

try:  # first: a Ctrl-C that lands on any line below is one line and 130, not a traceback
    TYPE_CHECKING = False
    if TYPE_CHECKING:
        import signal as _signal  # the same functions; typeshed has no stub for _signal
    else:
        import _signal  # the C module, already loaded: no import cost
    _signal.pthread_sigmask(_signal.SIG_BLOCK, (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP))
    import sys

    from ._start import main
except KeyboardInterrupt:
    import os

    try:
        os.write(2, b"largezero: interrupted\n")
    except OSError:
        pass
    raise SystemExit(130) from None

sys.exit(main())
