#!/usr/bin/env python
"""Search hyper-parameters: ``python scripts/sweep.py --config PATH --space SPACE --trials N [key=value ...]``."""

import sys

from amorctl.sweep.cli import sweep_main

if __name__ == "__main__":
    sys.exit(sweep_main())
