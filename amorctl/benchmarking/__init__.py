"""Benchmarks behind ``scripts/benchmark.py``: timing helpers and the TD3-versus-stable-baselines3 sections.

Import the sections lazily (``amorctl.benchmarking.td3``): it is the only module that imports
stable-baselines3.
"""

from amorctl.benchmarking.common import machine_info, markdown_table, median, timed_repeats

__all__ = ["machine_info", "markdown_table", "median", "timed_repeats"]
