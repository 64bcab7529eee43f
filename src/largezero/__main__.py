"""``python -m largezero``: the same command as the ``largezero`` launcher (see ``_start``)."""

import sys

from ._start import main

sys.exit(main())
