"""`python -m flowplane ...`: the same commands as the `flowplane` console script."""

import sys

from .cli import main

sys.exit(main())
