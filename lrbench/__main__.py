"""``python -m lrbench``: the command line (:mod:`lrbench.cli`)."""

import sys

from lrbench.cli import main

sys.exit(main())
