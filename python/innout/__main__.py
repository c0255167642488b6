"""`python -m innout ...` runs the `innout` command line."""

import sys

from innout.cli import main

sys.exit(main())
