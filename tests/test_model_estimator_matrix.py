"""Issue 7: every registered model × gradient estimator × shipped differentiable family either trains through
``scripts/train.py`` or is refused before anything runs — exit 2 and one sentence naming the key — never a crash.

The combinations that must train and those that must be refused are stated explicitly below, so a model or
estimator that silently stops supporting a combination (or starts accepting a meaningless one) fails here.
"""

from __future__ import annotations

import json

import pytest
from device_under_test import TEST_DEVICE

from amorctl.gradients import ESTIMATORS
from amorctl.models import MODELS
from amorctl.run.cli import train_main

FAMILIES = {
    "quadratic": "{name: quadratic, dim: 3, cond_max: 10.0}",
    "lasso": "{name: lasso, signal_dim: 4, code_dim: 6, sparsity: 1}",
    "logistic_regression": "{name: logistic_regression, num_features: 2, num_samples: 4}",
}
MODEL_SECTIONS = {
    "mlp": "{kind: mlp, hidden_sizes: [8]}",
    "unrolled_gd": "{kind: unrolled_gd, steps: 2, hidden_sizes: [8]}",
    "learned_update": "{kind: learned_update, steps: 2, cell_size: 4, cell_layers: 1, hidden_sizes: [8]}",
    "warm_start": "{kind: warm_start, steps: 2, hidden_sizes: [8], step_size: 0.1}",
    "lista": "{kind: lista, steps: 2}",
    "set": "{kind: set, encoder_sizes: [8], decoder_sizes: [8]}",
}
ESTIMATOR_SECTIONS = {
    "bptt": "{estimator: bptt}",
    "first_order": "{estimator: first_order}",
    "truncated": "{estimator: truncated, horizon: 1}",
    "implicit": "{estimator: implicit, cg_steps: 5}",
    "es": "{estimator: es, num_perturbations: 2}",
}
MUST_TRAIN = {
    ("quadratic", "mlp", "bptt"), ("quadratic", "mlp", "es"),
    *(("quadratic", "unrolled_gd", estimator) for estimator in ESTIMATOR_SECTIONS),
    *(("lasso", "unrolled_gd", estimator) for estimator in ("bptt", "first_order", "truncated", "es")),
    *(("logistic_regression", "learned_update", e) for e in ("bptt", "first_order", "truncated", "es")),
    ("quadratic", "warm_start", "bptt"), ("lasso", "warm_start", "bptt"),
    *(("lasso", "lista", estimator) for estimator in ("bptt", "first_order", "truncated", "es")),
    ("logistic_regression", "set", "bptt"), ("logistic_regression", "set", "es"),
}
MUST_REFUSE = {
    ("quadratic", "mlp", "first_order"): "gradient.estimator", ("quadratic", "mlp", "truncated"): "gradient.estimator",
    ("quadratic", "mlp", "implicit"): "gradient.estimator",
    ("lasso", "unrolled_gd", "implicit"): "gradient.estimator",
    ("lasso", "lista", "implicit"): "gradient.estimator",
    ("quadratic", "lista", "bptt"): "model.kind", ("logistic_regression", "lista", "bptt"): "model.kind",
    ("quadratic", "set", "bptt"): "model.kind", ("lasso", "set", "bptt"): "model.kind",
    ("lasso", "learned_update", "bptt"): "model.kind",
    ("quadratic", "warm_start", "first_order"): "gradient.estimator",
}
CASES = [(f, m, e) for f in FAMILIES for m in MODEL_SECTIONS for e in ESTIMATOR_SECTIONS]


def test_the_matrix_covers_every_registered_model_and_estimator():
    assert set(MODEL_SECTIONS) == set(MODELS) and set(ESTIMATOR_SECTIONS) == set(ESTIMATORS)
    assert MUST_TRAIN <= set(CASES) and set(MUST_REFUSE) <= set(CASES) and not MUST_TRAIN & set(MUST_REFUSE)


@pytest.mark.parametrize(("family", "model", "estimator"), CASES, ids=["-".join(case) for case in CASES])
def test_a_combination_trains_or_is_refused_with_one_sentence(tmp_path, capsys, family, model, estimator):
    status = train_main([
        "--no-progress", f"device={TEST_DEVICE}", f"runs_dir={tmp_path}", f"problem={FAMILIES[family]}",
        f"model={MODEL_SECTIONS[model]}", f"gradient={ESTIMATOR_SECTIONS[estimator]}", "train.steps=2",
        "train.batch_size=8", "train.log_every=1", "train.eval_every=2", "train.checkpoint_every=2",
        "eval.num_contexts=8", "eval.timing_repeats=1",
    ])
    err = capsys.readouterr().err.strip()
    assert status in (0, 2), err
    case = (family, model, estimator)
    if status == 2:
        assert case not in MUST_TRAIN, err
        assert len(err.splitlines()) == 1 and ("model" in err or "gradient" in err), err
        assert MUST_REFUSE.get(case, "") in err
        assert not any(tmp_path.iterdir())  # refused before a run directory exists
    else:
        assert case not in MUST_REFUSE
        (metrics,) = tmp_path.glob("*/*/eval/metrics.json")
        assert json.loads(metrics.read_text())["step"] == 2
