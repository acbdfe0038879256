"""The one table of evaluation seed offsets: which random stream each kind of evaluation draws from.

A run with ``config.seed = s`` trains on episodes seeded from the learner's own random stream
(``s`` and what the learner draws from it). Everything that scores a policy or an optimizer resets its
environments at ``s`` plus one of the offsets below, so that no evaluation replays a training episode
and the streams of the different evaluations stay apart. The values are part of every recorded result
(``eval/metrics.json``, ``evaluate.json``, ``optimizer_comparison.json``): changing one changes what
was measured, so they are fixed.

- :data:`PERIODIC_EVAL_SEED_OFFSET` = 1_000_000: training's periodic evaluations (every
  ``train.eval_every`` steps; :func:`periodic_eval_seed`), also used by the benchmark harness for both
  implementations it compares;
- :data:`EVALUATE_SEED_OFFSET` = 2_000_000: ``scripts/evaluate.py``'s default ``--seed``;
- :data:`HELDOUT_SEED_OFFSET` = 2_000_000: the learned-optimizer comparison's held-out problems;
- :data:`TUNING_SEED_OFFSET` = 3_000_000: the problems the comparison tunes its baselines on;
- :data:`BLOCKS_SEED_OFFSET` = 4_000_000: ``benchmark.py learned-optimizers --blocks K``'s further held-out
  blocks (block k by ``reset(seed=seed + BLOCKS_SEED_OFFSET + 1000·k)``, so seeds below 1000 share no block).

The held-out problems share evaluate.py's value on purpose: both are the stream a trained policy is
judged on after training. An :class:`~amorctl.envs.IterateEnv` with ``seeding="per_row"`` seeds copy i
with ``seed + i``, so held-out problem i is then exactly evaluate.py's episode i.
"""

from __future__ import annotations

PERIODIC_EVAL_SEED_OFFSET = 1_000_000
"""Training's k-th periodic evaluation starts at ``seed + PERIODIC_EVAL_SEED_OFFSET + k · episodes``."""

EVALUATE_SEED_OFFSET = 2_000_000
"""``scripts/evaluate.py`` plays episode k from ``reset(seed=seed + EVALUATE_SEED_OFFSET + k)`` (unless ``--seed``)."""

HELDOUT_SEED_OFFSET = 2_000_000
"""The learned-optimizer comparison draws its held-out problems by ``reset(seed=seed + HELDOUT_SEED_OFFSET)``."""

TUNING_SEED_OFFSET = 3_000_000
"""The comparison tunes its baselines on problems drawn by ``reset(seed=seed + TUNING_SEED_OFFSET)``."""


BLOCKS_SEED_OFFSET = 4_000_000
BLOCKS_SEED_STRIDE = 1000
"""Block k of ``learned-optimizers --blocks`` draws its problems by
``reset(seed=seed + BLOCKS_SEED_OFFSET + BLOCKS_SEED_STRIDE · k)``: runs of seeds below the stride share no block."""


def periodic_eval_seed(seed: int, k: int, episodes: int) -> int:
    """The first episode seed of training's ``k``-th periodic evaluation (k = 0, 1, ...) of ``episodes`` episodes.

    Episode j of that evaluation starts from ``reset(seed=periodic_eval_seed(seed, k, episodes) + j)``
    (see :func:`amorctl.eval.rollouts.run_episodes`), so successive evaluations play fresh episodes and
    never meet evaluate.py's stream within the first ``1_000_000 // episodes`` evaluations.
    """
    return seed + PERIODIC_EVAL_SEED_OFFSET + k * episodes
