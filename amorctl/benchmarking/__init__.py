"""Benchmarks behind ``scripts/benchmark.py``: timing helpers and the amorctl-versus-stable-baselines3 sections.

Import the sections lazily (``amorctl.benchmarking.throughput`` for TD3's and SAC's throughput,
``amorctl.benchmarking.time_to_solve`` for the learning runs of TD3, SAC and DDPG, ``amorctl.benchmarking.td3``
for TD3's wall-clock budget): they are the only modules that import stable-baselines3.
"""

from amorctl.benchmarking.common import machine_info, markdown_table, median, timed_repeats

__all__ = ["machine_info", "markdown_table", "median", "timed_repeats"]
