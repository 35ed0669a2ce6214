"""``python -m llamaroute``: the same as the ``llamaroute`` command."""

import sys

from .cli import main

sys.exit(main())
