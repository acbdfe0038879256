"""Evaluation: held-out amortization metrics, policy rollouts and videos, learned-optimizer comparisons."""
