"""``python -m sobat_matrix``: the same as the ``sobat-matrix`` command."""

import sys

from .cli import main

sys.exit(main())
