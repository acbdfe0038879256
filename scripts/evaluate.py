#!/usr/bin/env python
"""Evaluate a trained policy: ``python scripts/evaluate.py RUN_DIR_OR_CHECKPOINT [--episodes N] [--video]``."""

import sys

from amorctl.run.cli import evaluate_main

if __name__ == "__main__":
    sys.exit(evaluate_main())
