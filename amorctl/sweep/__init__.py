"""Sweeps, seed groups and scale-out: Optuna studies over search spaces (:mod:`amorctl.sweep.study`), one config
over several seeds with aggregate statistics (:mod:`amorctl.sweep.multiseed`, :mod:`amorctl.sweep.stats`), run
in this process, a local process pool or on Ray (:mod:`amorctl.sweep.backends`).

Optuna and Ray come with the optional ``sweep`` extra (``pip install -e ".[sweep]"``); the seed statistics
and the local backend need neither.
"""
