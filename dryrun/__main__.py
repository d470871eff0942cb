"""Entry point of `python -m dryrun`."""

import sys

from dryrun.cli import main

sys.exit(main())
