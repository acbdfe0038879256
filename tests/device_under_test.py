"""The device the test suite runs on: ``AMORCTL_TEST_DEVICE`` (``cpu`` when unset, e.g. ``cuda``).

A module of its own (not ``conftest``, whose name ``tests/sweep/conftest.py`` shares) so that test modules
can build module-level override lists with ``from device_under_test import TEST_DEVICE``.
"""

from __future__ import annotations

import os

import pytest
import torch

TEST_DEVICE = torch.device(os.environ.get("AMORCTL_TEST_DEVICE", "cpu"))
"""Where the tests train and build environments, agents, models and problem batches."""
if TEST_DEVICE.type == "cuda" and not torch.cuda.is_available():
    raise pytest.UsageError(f"AMORCTL_TEST_DEVICE={TEST_DEVICE} but torch sees no CUDA device")
