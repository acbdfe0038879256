"""Evaluation in one place; every evaluator takes a policy or model callable.

- :mod:`~amorctl.eval.rollouts`: the one rollout loop (``run_episodes``) and summary of returns (``summarize``);
- :mod:`~amorctl.eval.seeds`: the one table of evaluation seed offsets;
- :mod:`~amorctl.eval.video`: mp4 videos of a policy's episodes and the renderer they need;
- :mod:`~amorctl.eval.policy`: a trained policy loaded from a run directory or checkpoint;
- :mod:`~amorctl.eval.direct`: held-out gap metrics of a direct amortization model;
- :mod:`~amorctl.eval.optimizer_comparison`: a learned optimizer against tuned classical ones.
"""
