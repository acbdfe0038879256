#!/usr/bin/env python
"""Train an amortization model: ``python scripts/train.py [--config PATH] [--resume RUN_DIR] [key=value ...]``."""

import sys

from amorctl.run.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
