"""Evaluation in one place; every evaluator takes a policy or model callable.

- :mod:`~amorctl.eval.rollouts`: the one rollout loop (``run_episodes``) and summary of returns (``summarize``);
- :mod:`~amorctl.eval.seeds`: the one table of evaluation seed offsets;
- :mod:`~amorctl.eval.video`: mp4 videos of a policy's episodes and the renderer they need;
- :mod:`~amorctl.eval.load`: ``load_run``, a trained run's config and model or policy, ready to call;
- :mod:`~amorctl.eval.direct`: held-out gap metrics of a direct amortization model;
- :mod:`~amorctl.eval.amortization_report`: its gap against seconds and evaluations, beside a warm start and
  the solver from scratch (did amortizing pay off?);
- :mod:`~amorctl.eval.timing`: the one timing rule of model and solver (robust on a shared machine);
- :mod:`~amorctl.eval.optimizer_comparison`: a learned optimizer against tuned classical ones;
- :mod:`~amorctl.eval.closed_loop`: an amortized controller in closed loop against the solver in the loop;
- :mod:`~amorctl.eval.reports`: what ``scripts/evaluate.py`` adds per environment kind or problem family.
"""
