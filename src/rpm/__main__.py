"""`python -m rpm`: the same as the `rpm` command (the demo starts its processes this way)."""

import sys

from rpm.cli import main

sys.exit(main())
