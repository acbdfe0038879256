"""Learners, installed as ``amorctl.agents``."""

from __future__ import annotations

from amorctl.agents.direct import DirectAmortization

__all__ = ["DirectAmortization"]
