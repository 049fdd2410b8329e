"""``python -m fastvpd``: the same as the ``fastvpd`` console script."""

import sys

from .cli import main

sys.exit(main())
