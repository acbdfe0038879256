"""Config fuzz: every refused input exits 2 with one sentence on stderr and leaves no run folder.

Each case is a list of ``key=value`` overrides (or a config file) given to ``scripts/train.py`` on top of a
tiny valid base config of one agent; if a case were wrongly accepted the run it starts stays small.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from device_under_test import TEST_DEVICE

from amorctl.run.cli import train_main

ROOT = Path(__file__).resolve().parents[2]

DIRECT = [
    "name=tiny", f"device={TEST_DEVICE}", "problem={name: quadratic, dim: 3, cond_max: 10}", "model.hidden_sizes=[16]",
    "train.steps=2", "train.batch_size=8", "train.log_every=1", "train.eval_every=2", "train.checkpoint_every=2",
    "eval.num_contexts=8", "eval.timing_repeats=1",
]
"""A direct run of a fraction of a second."""
DIRECT_LASSO = [*DIRECT, "problem={name: lasso, signal_dim: 4, code_dim: 6, sparsity: 1}"]
"""The same on a small lasso (a composite family)."""
SET = ["problem={name: logistic_regression, num_features: 2, num_samples: 4}",
       "model={kind: set, encoder_sizes: [8], decoder_sizes: [8]}"]
"""On top of DIRECT: a tiny set model on a tiny data-set family."""

TD3_COMMON = [ "name=tiny", f"device={TEST_DEVICE}", "td3.hidden_sizes=[8]", "td3.buffer_size=64", "td3.batch_size=4",
    "td3.learning_starts=4", "train.total_steps=8", "train.log_every=4", "train.eval_every=8",
    "train.checkpoint_every=8", "train.eval_episodes=1", "train.eval_envs=1",
]
GYM = ["--config", str(ROOT / "configs" / "td3_pendulum.yaml"), *TD3_COMMON]
"""A TD3 run on Pendulum-v1 of a few transitions."""
ITERATE = ["--config", str(ROOT / "configs" / "td3_opt_quadratic.yaml"), *TD3_COMMON, "env.num_envs=1",
           "env.problem.dim=3", "env.iterate.max_iterations=5"]
"""A TD3 run on a 3-d quadratic's gradient-descent iterations of a few transitions."""
ADMM = ["--config", str(ROOT / "configs" / "td3_opt_quadratic.yaml"), *TD3_COMMON,
        "env={kind: admm, num_envs: 1, family: {name: random_qp, n: 3}, admm: {max_steps: 3}}"]
"""A TD3 run on OSQP's ADMM iterations of 3-variable random QPs (ρ as the action) of a few transitions."""
MJWARP = ["--config", str(ROOT / "configs" / "td3_halfcheetah_mjwarp.yaml"), *TD3_COMMON, "env.num_envs=1",
          "train.max_wall_seconds=60"]
"""A TD3 run on HalfCheetah-v5 in MuJoCo Warp of a few transitions."""
DAGGER_ROWS = ["--config", str(ROOT / "configs" / "dagger_opt_quadratic_rowwise.yaml"), "name=tiny",
               f"device={TEST_DEVICE}", "env.num_envs=2", "env.problem.dim=3", "env.iterate.max_iterations=5",
               "bc.hidden_sizes=[8]", "bc.batch_size=4", "train.total_steps=8", "train.log_every=4",
               "train.eval_every=8", "train.checkpoint_every=8", "train.eval_episodes=1", "train.eval_envs=1"]
"""A per-row DAgger run on a 3-d quadratic's coordinate updates of a few transitions."""

HUGE = "10000000000000"

# (id, base, overrides, a piece the message must hold)
CASES: list[tuple[str, list[str], list[str], str]] = [
    # ------------------------------------------------------------------------------- top level
    ("agent-list", DIRECT, ["agent=[direct]"], "'agent'"),
    ("agent-dict", DIRECT, ["agent={a: 1}"], "'agent'"),
    ("agent-number", DIRECT, ["agent=3"], "'agent'"),
    ("agent-unknown", DIRECT, ["agent=td4"], "did you mean 'td3'"),
    ("agent-null", DIRECT, ["agent=null"], "'agent'"),
    ("name-parent", DIRECT, ["name=../../x"], "'name'"),
    ("name-absolute", DIRECT, ["name=/tmp/x"], "'name'"),
    ("name-dot", DIRECT, ["name=.."], "'name'"),
    ("name-empty", DIRECT, ["name="], "'name'"),
    ("name-slash", DIRECT, ["name=a/b"], "'name'"),
    ("name-list", DIRECT, ["name=[a]"], "'name'"),
    ("name-number", DIRECT, ["name=5"], "'name'"),
    ("name-td3-parent", GYM, ["name=../x"], "'name'"),
    ("seed-bool", DIRECT, ["seed=true"], "'seed'"),
    ("seed-negative", DIRECT, ["seed=-1"], "'seed'"),
    ("seed-2**63", DIRECT, ["seed=9223372036854775808"], "'seed'"),
    ("seed-2**64", DIRECT, ["seed=18446744073709551616"], "'seed'"),
    ("seed-float", DIRECT, ["seed=1.5"], "'seed'"),
    ("seed-string", DIRECT, ["seed=abc"], "'seed'"),
    ("seed-inf", DIRECT, ["seed=.inf"], "'seed'"),
    ("seed-td3-huge", ITERATE, ["seed=9223372036854775808"], "'seed'"),
    ("device-unknown", DIRECT, ["device=tpu"], "'device'"),
    ("device-list", DIRECT, ["device=[cpu]"], "'device'"),
    ("runs_dir-list", DIRECT, ["runs_dir=[a]"], "'runs_dir'"),
    ("runs_dir-null", DIRECT, ["runs_dir=null"], "'runs_dir'"),
    ("runs_dir-number", DIRECT, ["runs_dir=3"], "'runs_dir'"),
    ("top-typo", DIRECT, ["sed=1"], "did you mean 'seed'"),
    ("top-section-typo", DIRECT, ["trian.steps=5"], "did you mean 'train'"),
    ("top-td3-key-on-direct", DIRECT, ["td3.gamma=0.9"], "'td3'"),
    ("override-no-equals", DIRECT, ["train.steps"], "train.steps"),
    ("override-empty-part", DIRECT, ["train..steps=3"], "train..steps"),
    ("override-into-scalar", DIRECT, ["seed.x=3"], "'seed'"),
    # ---------------------------------------------------------------------- direct: problem.*
    ("problem-not-section", DIRECT, ["problem=5"], "'problem'"),
    ("problem-list", DIRECT, ["problem=[quadratic]"], "'problem'"),
    ("problem-name-typo", DIRECT, ["problem.name=quadratc"], "did you mean 'quadratic'"),
    ("problem-name-list", DIRECT, ["problem.name=[quadratic]"], "'problem.name'"),
    ("problem-name-dict", DIRECT, ["problem.name={a: 1}"], "'problem.name'"),
    ("problem-extra-key", DIRECT, ["problem.dimm=4"], "did you mean 'dim'"),
    ("problem-unknown-key", DIRECT, ["problem.foo=1"], "'problem.foo'"),
    ("quadratic-dim-1", DIRECT, ["problem.dim=1"], "'problem.dim'"),
    ("quadratic-dim-bool", DIRECT, ["problem.dim=true"], "'problem.dim'"),
    ("quadratic-dim-string", DIRECT, ["problem.dim=ten"], "'problem.dim'"),
    ("quadratic-dim-float", DIRECT, ["problem.dim=3.5"], "'problem.dim'"),
    ("quadratic-dim-huge", DIRECT, ["problem.dim=10000000000"], "problem.dim"),
    ("quadratic-dim-100k", DIRECT, ["problem.dim=100000"], "problem.dim"),
    ("quadratic-cond-inf", DIRECT, ["problem.cond_max=.inf"], "'problem.cond_max'"),
    ("quadratic-cond-nan", DIRECT, ["problem.cond_min=.nan"], "'problem.cond_min'"),
    ("quadratic-cond-low", DIRECT, ["problem.cond_min=0.5"], "'problem.cond_min'"),
    ("quadratic-cond-order", DIRECT, ["problem.cond_max=0.9"], "'problem.cond_max'"),
    ("quadratic-encoding", DIRECT, ["problem.encoding=sparse"], "'problem.encoding'"),
    ("quadratic-seed-huge", DIRECT, ["problem.seed=18446744073709551616"], "'problem.seed'"),
    ("quadratic-seed-negative", DIRECT, ["problem.seed=-1"], "'problem.seed'"),
    ("rosenbrock-dim-0", DIRECT, ["problem={name: rosenbrock, dim: 0}"], "'problem.dim'"),
    ("rosenbrock-dim-huge", DIRECT, ["problem={name: rosenbrock, dim: 10000000000}"], "GiB"),
    ("rosenbrock-shift-neg", DIRECT, ["problem={name: rosenbrock, shift_max: -1}"], "'problem.shift_max'"),
    ("rosenbrock-shift-inf", DIRECT, ["problem={name: rosenbrock, shift_max: .inf}"], "'problem.shift_max'"),
    ("rosenbrock-curv-nan", DIRECT, ["problem={name: rosenbrock, curvature_min: .nan}"], "'problem.curvature_min'"),
    ("rosenbrock-curv-order", DIRECT, ["problem={name: rosenbrock, curvature_max: 0.5}"], "'problem.curvature_max'"),
    ("logreg-features-0", DIRECT, ["problem={name: logistic_regression, num_features: 0}"], "'problem.num_features'"),
    ("logreg-samples-huge", DIRECT, ["problem={name: logistic_regression, num_samples: 10000000000}"],
     "GiB"),
    ("logreg-l2-neg", DIRECT, ["problem={name: logistic_regression, l2: -1}"], "'problem.l2'"),
    ("logreg-l2-inf", DIRECT, ["problem={name: logistic_regression, l2: .inf}"], "'problem.l2'"),
    ("logreg-typo", DIRECT, ["problem={name: logistic_regression, num_feature: 3}"], "did you mean 'num_features'"),
    ("pendulum-torque-inf", DIRECT, ["problem={name: pendulum_mpc, max_torque: .inf}"], "'problem.max_torque'"),
    ("pendulum-torque-neg", DIRECT, ["problem={name: pendulum_mpc, max_torque: -1}"], "'problem.max_torque'"),
    ("pendulum-torque-str", DIRECT, ["problem={name: pendulum_mpc, max_torque: strong}"], "'problem.max_torque'"),
    ("pendulum-dt-nan", DIRECT, ["problem={name: pendulum_mpc, dt: .nan}"], "'problem.dt'"),
    ("pendulum-dt-zero", DIRECT, ["problem={name: pendulum_mpc, dt: 0}"], "'problem.dt'"),
    ("pendulum-dt-inf", DIRECT, ["problem={name: pendulum_mpc, dt: .inf}"], "'problem.dt'"),
    ("pendulum-horizon-0", DIRECT, ["problem={name: pendulum_mpc, horizon: 0}"], "'problem.horizon'"),
    ("pendulum-horizon-huge", DIRECT, ["problem={name: pendulum_mpc, horizon: 10000000000}"], "GiB"),
    ("pendulum-angle", DIRECT, ["problem={name: pendulum_mpc, angle_range: 4}"], "'problem.angle_range'"),
    ("pendulum-gravity-inf", DIRECT, ["problem={name: pendulum_mpc, gravity: -.inf}"], "'problem.gravity'"),
    ("pendulum-weight-neg", DIRECT, ["problem={name: pendulum_mpc, torque_weight: -1}"], "'problem.torque_weight'"),
    ("pendulum-iterations-0", DIRECT, ["problem={name: pendulum_mpc, solver_iterations: 0}"],
     "'problem.solver_iterations'"),
    ("pendulum-bool-horizon", DIRECT, ["problem={name: pendulum_mpc, horizon: false}"], "'problem.horizon'"),
    ("lasso-signal-0", DIRECT, ["problem={name: lasso, signal_dim: 0}"], "'problem.signal_dim'"),
    ("lasso-code-huge", DIRECT, ["problem={name: lasso, code_dim: 10000000000}"], "problem.code_dim"),
    ("lasso-both-100k", DIRECT, ["problem={name: lasso, code_dim: 100000, signal_dim: 100000}"], "problem."),
    ("lasso-sparsity", DIRECT, ["problem={name: lasso, sparsity: 100}"], "'problem.sparsity'"),
    ("lasso-l1-zero", DIRECT, ["problem={name: lasso, l1: 0}"], "'problem.l1'"),
    ("lasso-noise-inf", DIRECT, ["problem={name: lasso, noise_std: .inf}"], "'problem.noise_std'"),
    ("lasso-dictionary", DIRECT, ["problem={name: lasso, dictionary_type: sparse}"], "'problem.dictionary_type'"),
    ("lasso-orthogonal", DIRECT, ["problem={name: lasso, dictionary_type: orthogonal}"], "'problem.code_dim'"),
    ("lasso-seed-huge", DIRECT, ["problem={name: lasso, seed: 99999999999999999999}"], "'problem.seed'"),
    # ------------------------------------------------------------------------ direct: model.*
    ("model-not-section", DIRECT, ["model=mlp"], "'model'"),
    ("model-kind-typo", DIRECT, ["model.kind=mpl"], "did you mean 'mlp'"),
    ("model-kind-list", DIRECT, ["model.kind=[mlp]"], "'model.kind'"),
    ("model-hidden-huge", DIRECT, ["model.hidden_sizes=[1000000000000]"], "model"),
    ("model-hidden-many", DIRECT, ["model.hidden_sizes=[100000, 100000, 100000]"], "model"),
    ("model-hidden-zero", DIRECT, ["model.hidden_sizes=[0]"], "'model.hidden_sizes"),
    ("model-hidden-negative", DIRECT, ["model.hidden_sizes=[-4]"], "'model.hidden_sizes"),
    ("model-hidden-bool", DIRECT, ["model.hidden_sizes=[true]"], "'model.hidden_sizes"),
    ("model-hidden-string", DIRECT, ["model.hidden_sizes=wide"], "'model.hidden_sizes'"),
    ("model-hidden-int", DIRECT, ["model.hidden_sizes=16"], "'model.hidden_sizes'"),
    ("model-hidden-float", DIRECT, ["model.hidden_sizes=[16.5]"], "'model.hidden_sizes"),
    ("model-activation", DIRECT, ["model.activation=gelu"], "'model.activation'"),
    ("model-projection", DIRECT, ["model.projection=sparsemax"], "'model.projection'"),
    ("model-projection-no-box", DIRECT, ["model.projection=tanh"], "model"),
    ("model-typo", DIRECT, ["model.hidden_size=[8]"], "did you mean 'hidden_sizes'"),
    ("lista-not-composite", DIRECT, ["model={kind: lista, steps: 2}"], "model.kind='lista'"),
    ("lista-variant", DIRECT_LASSO, ["model={kind: lista, variant: tied}"], "'model.variant'"),
    ("lista-steps-zero", DIRECT_LASSO, ["model={kind: lista, steps: 0}"], "'model.steps'"),
    ("lista-support-step-zero", DIRECT_LASSO, ["model={kind: lista, support_step: 0}"], "'model.support_step'"),
    ("lista-support-max-big", DIRECT_LASSO, ["model={kind: lista, support_max: 1.5}"], "'model.support_max'"),
    ("lista-support-bool", DIRECT_LASSO, ["model={kind: lista, support_selection: often}"],
     "'model.support_selection'"),
    ("lista-eval-steps", DIRECT_LASSO, ["model={kind: lista, steps: 2}", "eval.steps=3"], "eval.steps=3"),
    # ------------------------------------------------------------------ direct: model.kind: set
    ("set-no-data-set", DIRECT, ["model={kind: set}"], "model.kind"),
    ("set-pooling", DIRECT, [*SET, "model.pooling=max"], "'model.pooling'"),
    ("set-encoder-zero", DIRECT, [*SET, "model.encoder_sizes=[0]"], "'model.encoder_sizes"),
    ("set-encoder-empty", DIRECT, [*SET, "model.encoder_sizes=[]"], "model.encoder_sizes"),
    ("set-encoder-huge", DIRECT, [*SET, "model.encoder_sizes=[1000000000000]"], "model"),
    ("set-decoder-string", DIRECT, [*SET, "model.decoder_sizes=wide"], "'model.decoder_sizes'"),
    ("set-heads", DIRECT, [*SET, "model.pooling=attention", "model.heads=3"], "model.heads"),
    ("set-heads-zero", DIRECT, [*SET, "model.pooling=attention", "model.heads=0"], "'model.heads'"),
    ("set-queries-zero", DIRECT, [*SET, "model.queries=0"], "'model.queries'"),
    ("set-rounds-zero", DIRECT, [*SET, "model.rounds=0"], "'model.rounds'"),
    ("set-rounds-bool", DIRECT, [*SET, "model.rounds=true"], "'model.rounds'"),
    ("set-sample-features", DIRECT, [*SET, "model.sample_features=cubic"], "'model.sample_features'"),
    ("set-mlp-key", DIRECT, [*SET, "model.hidden_sizes=[8]"], "'model.hidden_sizes'"),
    ("learned-update-cell", DIRECT, ["model.kind=learned_update", "model.cell=rnn"], "'model.cell'"),
    ("learned-update-output", DIRECT, ["model.kind=learned_update", "model.output=direction"], "'model.output'"),
    ("learned-update-scale-inf", DIRECT, ["model.kind=learned_update", "model.output_scale=.inf"],
     "'model.output_scale'"),
    ("learned-update-layers-zero", DIRECT, ["model.kind=learned_update", "model.cell_layers=0"],
     "'model.cell_layers'"),
    ("warm-start-no-step", DIRECT, ["model.kind=warm_start"], "model.step_size"),
    ("warm-start-step-nan", DIRECT, ["model.kind=warm_start", "model.step_size=.nan"], "'model.step_size'"),
    ("warm-start-truncated", DIRECT, ["model.kind=warm_start", "model.step_size=0.1", "gradient.estimator=truncated"],
     "gradient.estimator"),
    # ------------------------------------------------------------------------- direct: loss.*
    ("loss-target", DIRECT, ["loss.target=truth"], "'loss.target'"),
    ("loss-target-unplanted", DIRECT, ["loss.kind=regression", "loss.target=planted"], "loss.target='planted'"),
    ("loss-kind", DIRECT, ["loss.kind=l2"], "'loss.kind'"),
    ("loss-kind-list", DIRECT, ["loss.kind=[objective]"], "'loss.kind'"),
    ("loss-weight-nan", DIRECT, ["loss.regression_weight=.nan"], "'loss.regression_weight'"),
    ("loss-weight-big", DIRECT, ["loss.regression_weight=2"], "'loss.regression_weight'"),
    ("loss-weight-bool", DIRECT, ["loss.regression_weight=true"], "'loss.regression_weight'"),
    ("loss-typo", DIRECT, ["loss.knd=objective"], "did you mean 'kind'"),
    ("loss-not-section", DIRECT, ["loss=objective"], "'loss'"),
    ("gradient-es-sigma-nan", DIRECT, ["gradient.estimator=es", "gradient.sigma=.nan"], "'gradient.sigma'"),
    ("gradient-es-sigma-inf", DIRECT, ["gradient.estimator=es", "gradient.sigma=.inf"], "'gradient.sigma'"),
    ("gradient-es-sigma-string", DIRECT, ["gradient.estimator=es", "gradient.sigma=big"], "'gradient.sigma'"),
    ("gradient-es-final-zero", DIRECT, ["gradient.estimator=es", "gradient.sigma_final=0"], "'gradient.sigma_final'"),
    ("gradient-es-pairs-float", DIRECT, ["gradient.estimator=es", "gradient.num_perturbations=2.5"],
     "'gradient.num_perturbations'"),
    ("gradient-es-pairs-huge", DIRECT, ["gradient.estimator=es", f"gradient.num_perturbations={HUGE}"],
     "'gradient.num_perturbations'"),
    ("gradient-es-perturb-list", DIRECT, ["gradient.estimator=es", "gradient.perturb=[parameters]"],
     "'gradient.perturb'"),
    ("gradient-implicit-mlp", DIRECT, ["gradient.estimator=implicit"], "gradient.estimator"),
    ("gradient-implicit-lam-nan", DIRECT, ["model.kind=unrolled_gd", "gradient.estimator=implicit",
                                           "gradient.lam=.nan"], "'gradient.lam'"),
    ("gradient-implicit-cg-bool", DIRECT, ["model.kind=unrolled_gd", "gradient.estimator=implicit",
                                           "gradient.cg_steps=true"], "'gradient.cg_steps'"),
    ("gradient-implicit-tolerance-inf", DIRECT, ["model.kind=unrolled_gd", "gradient.estimator=implicit",
                                                 "gradient.tolerance=.inf"], "'gradient.tolerance'"),
    ("gradient-implicit-damping-negative", DIRECT, ["model.kind=unrolled_gd", "gradient.estimator=implicit",
                                                    "gradient.cg_damping=-0.5"], "'gradient.cg_damping'"),
    # ------------------------------------------------------------------------ direct: train.*
    ("train-steps-bool", DIRECT, ["train.steps=true"], "'train.steps'"),
    ("train-steps-zero", DIRECT, ["train.steps=0"], "'train.steps'"),
    ("train-steps-negative", DIRECT, ["train.steps=-5"], "'train.steps'"),
    ("train-steps-string", DIRECT, ["train.steps=many"], "'train.steps'"),
    ("train-steps-inf", DIRECT, ["train.steps=.inf"], "'train.steps'"),
    ("train-stpes", DIRECT, ["train.stpes=5"], "did you mean 'steps'"),
    ("train-batch-huge", DIRECT, ["train.batch_size=1000000000000"], "train.batch_size"),
    ("train-batch-zero", DIRECT, ["train.batch_size=0"], "'train.batch_size'"),
    ("train-lr-inf", DIRECT, ["train.lr=.inf"], "'train.lr'"),
    ("train-lr-nan", DIRECT, ["train.lr=.nan"], "'train.lr'"),
    ("train-lr-zero", DIRECT, ["train.lr=0"], "'train.lr'"),
    ("train-lr-negative", DIRECT, ["train.lr=-1e-3"], "'train.lr'"),
    ("train-lr-list", DIRECT, ["train.lr=[0.1]"], "'train.lr'"),
    ("train-lr-bool", DIRECT, ["train.lr=true"], "'train.lr'"),
    ("train-wd-negative", DIRECT, ["train.weight_decay=-1"], "'train.weight_decay'"),
    ("train-wd-inf", DIRECT, ["train.weight_decay=.inf"], "'train.weight_decay'"),
    ("train-optimizer", DIRECT, ["train.optimizer=lbfgs"], "'train.optimizer'"),
    ("train-schedule", DIRECT, ["train.lr_schedule=linear"], "'train.lr_schedule'"),
    ("train-clip-zero", DIRECT, ["train.grad_clip=0"], "'train.grad_clip'"),
    ("train-clip-inf", DIRECT, ["train.grad_clip=.inf"], "'train.grad_clip'"),
    ("train-log-zero", DIRECT, ["train.log_every=0"], "'train.log_every'"),
    ("train-keep-zero", DIRECT, ["train.keep_checkpoints=0"], "'train.keep_checkpoints'"),
    ("train-wall-zero", DIRECT, ["train.max_wall_seconds=0"], "'train.max_wall_seconds'"),
    ("train-wall-nan", DIRECT, ["train.max_wall_seconds=.nan"], "'train.max_wall_seconds'"),
    ("train-not-section", DIRECT, ["train=5"], "'train'"),
    ("train-td3-key", DIRECT, ["train.total_steps=5"], "'train.total_steps'"),
    # ------------------------------------------------------------------------- direct: eval.*
    ("eval-contexts-zero", DIRECT, ["eval.num_contexts=0"], "'eval.num_contexts'"),
    ("eval-contexts-huge", DIRECT, ["eval.num_contexts=1000000000000"], "eval.num_contexts"),
    ("eval-seed-huge", DIRECT, ["eval.seed=9223372036854775808"], "'eval.seed'"),
    ("eval-seed-negative", DIRECT, ["eval.seed=-3"], "'eval.seed'"),
    ("eval-repeats-bool", DIRECT, ["eval.timing_repeats=false"], "'eval.timing_repeats'"),
    ("eval-typo", DIRECT, ["eval.num_context=8"], "did you mean 'num_contexts'"),
    # ------------------------------------------------------------------------------ td3: env (gym)
    ("env-not-section", GYM, ["env=Pendulum-v1"], "'env'"),
    ("env-kind-typo", GYM, ["env.kind=gmy"], "did you mean 'gym'"),
    ("env-kind-list", GYM, ["env.kind=[gym]"], "'env.kind'"),
    ("env-id-discrete", GYM, ["env.id=CartPole-v1"], "CartPole-v1"),
    ("env-id-unknown", GYM, ["env.id=Pendulum-v9"], "Pendulum-v9"),
    ("env-id-list", GYM, ["env.id=[Pendulum-v1]"], "'env.id'"),
    ("env-id-module", GYM, ["env.id=evil_module:Env-v0"], "evil_module"),
    ("env-num-envs-zero", GYM, ["env.num_envs=0"], "'env.num_envs'"),
    ("env-num-envs-huge", GYM, [f"env.num_envs={HUGE}"], "env.num_envs"),
    ("env-num-envs-memory", GYM, ["env.num_envs=1000000000", "td3.buffer_size=1000000000"], "env.num_envs"),
    ("env-num-envs-bool", GYM, ["env.num_envs=true"], "'env.num_envs'"),
    ("env-vectorization", GYM, ["env.vectorization=threads"], "'env.vectorization'"),
    ("env-max-steps-zero", GYM, ["env.max_episode_steps=0"], "'env.max_episode_steps'"),
    ("env-gym-typo", GYM, ["env.num_env=2"], "did you mean 'num_envs'"),
    ("env-gym-with-iterate-key", GYM, ["env.iterate={max_iterations: 3}"], "'env.iterate'"),
    ("env-gym-with-problem", GYM, ["env.problem={name: quadratic}"], "'env.problem'"),
    # ------------------------------------------------------------------------------ td3: env (admm)
    ("admm-family-typo", ADMM, ["env.family.name=random_pq"], "did you mean 'random_qp'"),
    ("admm-family-size-0", ADMM, ["env.family.n=0"], "'env.family.n'"),
    ("admm-family-density-inf", ADMM, ["env.family.density=.inf"], "'env.family.density'"),
    ("admm-family-unknown-key", ADMM, ["env.family.m=3"], "'env.family.m'"),
    ("admm-action", ADMM, ["env.admm.action=vector"], "'env.admm.action'"),
    ("admm-reward", ADMM, ["env.admm.reward=gain"], "'env.admm.reward'"),
    ("admm-iterations-0", ADMM, ["env.admm.iterations_per_step=0"], "'env.admm.iterations_per_step'"),
    ("admm-eps-nan", ADMM, ["env.admm.eps_abs=.nan"], "'env.admm.eps_abs'"),
    ("admm-range-negative", ADMM, ["env.admm.rho_log_range=-2"], "'env.admm.rho_log_range'"),
    ("admm-feature-unknown", ADMM, ["env.admm.features=[log_slack, slack]"], "'env.admm.features"),
    ("admm-features-empty", ADMM, ["env.admm.features=[]"], "'env.admm.features'"),
    ("admm-features-twice", ADMM, ["env.admm.features=[log_slack, log_slack]"], "'env.admm.features'"),
    ("admm-with-iterate-key", ADMM, ["env.iterate={max_iterations: 3}"], "'env.iterate'"),
    # --------------------------------------------------------------------------- td3: env (iterate)
    # ------------------------------------------------------------------------------ td3: env (mjwarp)
    ("mjwarp-id-unknown", MJWARP, ["env.id=Humanoid-v5"], "'env.id'"),
    ("mjwarp-id-typo", MJWARP, ["env.id=Hopper-v4"], "did you mean 'Hopper-v5'"),
    ("mjwarp-with-vectorization", MJWARP, ["env.vectorization=sync"], "'env.vectorization'"),
    ("mjwarp-nconmax-zero", MJWARP, ["env.nconmax=0"], "'env.nconmax'"),
    ("mjwarp-njmax-bool", MJWARP, ["env.njmax=true"], "'env.njmax'"),
    ("mjwarp-max-steps-zero", MJWARP, ["env.max_episode_steps=0"], "'env.max_episode_steps'"),
    ("mjwarp-num-envs-memory", MJWARP, ["env.num_envs=1000000000", "td3.buffer_size=1000000000"], "env.num_envs"),
    ("iterate-with-id", ITERATE, ["env.id=Pendulum-v1"], "'env.id'"),
    ("iterate-num-envs-huge", ITERATE, [f"env.num_envs={HUGE}"], "env.num_envs"),
    ("iterate-problem-not-section", ITERATE, ["env.problem=quadratic"], "'env.problem'"),
    ("iterate-problem-name-typo", ITERATE, ["env.problem.name=lasso2"], "'env.problem.name'"),
    ("iterate-problem-dim-huge", ITERATE, ["env.problem.dim=10000000000"], "env.problem.dim"),
    ("iterate-problem-dim-100k", ITERATE, ["env.problem.dim=100000"], "env.problem.dim"),
    ("iterate-problem-dim-bool", ITERATE, ["env.problem.dim=true"], "'env.problem.dim'"),
    ("iterate-problem-cond-inf", ITERATE, ["env.problem.cond_max=.inf"], "'env.problem.cond_max'"),
    ("iterate-problem-extra", ITERATE, ["env.problem.dimm=3"], "did you mean 'dim'"),
    ("iterate-problem-lasso-l1", ITERATE, ["env.problem={name: lasso, l1: -1}"], "'env.problem.l1'"),
    ("iterate-not-section", ITERATE, ["env.iterate=5"], "'env.iterate'"),
    ("iterate-typo", ITERATE, ["env.iterate.max_iteration=5"], "did you mean 'max_iterations'"),
    ("iterate-max-iterations-0", ITERATE, ["env.iterate.max_iterations=0"], "'env.iterate.max_iterations'"),
    ("iterate-max-iterations-bool", ITERATE, ["env.iterate.max_iterations=true"], "'env.iterate.max_iterations'"),
    ("iterate-history-negative", ITERATE, ["env.iterate.history=-1"], "'env.iterate.history'"),
    ("iterate-history-huge", ITERATE, ["env.iterate.history=10000000000"], "env.iterate.history"),
    ("iterate-action", ITERATE, ["env.iterate.action=jump"], "'env.iterate.action'"),
    ("iterate-action-scale-inf", ITERATE, ["env.iterate.action_scale=.inf"], "'env.iterate.action_scale'"),
    ("iterate-action-scale-zero", ITERATE, ["env.iterate.action_scale=0"], "'env.iterate.action_scale'"),
    ("iterate-step-range-inf", ITERATE, ["env.iterate.step_size_range=[0.001, .inf]"], "'env.iterate.step_size_range"),
    ("iterate-step-range-nan", ITERATE, ["env.iterate.step_size_range=[.nan, 1]"], "'env.iterate.step_size_range"),
    ("iterate-step-range-order", ITERATE, ["env.iterate.step_size_range=[1, 0.1]"], "'env.iterate.step_size_range'"),
    ("iterate-step-range-zero", ITERATE, ["env.iterate.step_size_range=[0, 1]"], "'env.iterate.step_size_range"),
    ("iterate-step-range-three", ITERATE, ["env.iterate.step_size_range=[0.1, 1, 2]"], "'env.iterate.step_size_range'"),
    ("iterate-step-range-scalar", ITERATE, ["env.iterate.step_size_range=0.1"], "'env.iterate.step_size_range'"),
    ("iterate-reward", ITERATE, ["env.iterate.reward=gain"], "'env.iterate.reward'"),
    ("iterate-tolerance-negative", ITERATE, ["env.iterate.tolerance=-1"], "'env.iterate.tolerance'"),
    ("iterate-tolerance-nan", ITERATE, ["env.iterate.tolerance=.nan"], "'env.iterate.tolerance'"),
    ("iterate-init", ITERATE, ["env.iterate.init=ones"], "'env.iterate.init'"),
    ("iterate-init-scale-inf", ITERATE, ["env.iterate.init_scale=.inf"], "'env.iterate.init_scale'"),
    ("iterate-gap-floor-zero", ITERATE, ["env.iterate.gap_floor=0"], "'env.iterate.gap_floor'"),
    ("iterate-divergence-nan", ITERATE, ["env.iterate.divergence_threshold=.nan"],
     "'env.iterate.divergence_threshold'"),
    ("iterate-divergence-negative", ITERATE, ["env.iterate.divergence_threshold=-1"],
     "'env.iterate.divergence_threshold'"),
    ("iterate-penalty-inf", ITERATE, ["env.iterate.divergence_penalty=.inf"], "'env.iterate.divergence_penalty'"),
    ("iterate-omit-unknown", ITERATE, ["env.iterate.omit_blocks=[nothing]"], "'env.iterate.omit_blocks"),
    ("iterate-omit-string", ITERATE, ["env.iterate.omit_blocks=5"], "'env.iterate.omit_blocks'"),
    ("iterate-seeding", ITERATE, ["env.iterate.seeding=random"], "'env.iterate.seeding'"),
    ("iterate-log-gap-without-solve", ITERATE, ["env.iterate.solve=false", "env.iterate.reward=log_gap"],
     "'env.iterate'"),
    ("iterate-gap-without-solve", ITERATE, ["env.iterate.solve=false", "env.iterate.convergence=gap"],
     "'env.iterate'"),
    ("iterate-solve-string", ITERATE, ["env.iterate.solve=sometimes"], "'env.iterate.solve'"),
    ("iterate-secant-number", ITERATE, ["env.iterate.secant_features=0"], "'env.iterate.secant_features'"),
    ("iterate-device-key", ITERATE, ["env.iterate.device=cuda"], "'env.iterate.device'"),
    ("iterate-num-envs-key", ITERATE, ["env.iterate.num_envs=3"], "'env.iterate.num_envs'"),
    ("iterate-secant-update-number", ITERATE, ["env.iterate.secant_update=0"], "'env.iterate.secant_update'"),
    ("iterate-step-size-base", ITERATE, ["env.iterate.step_size_base=bb3"], "'env.iterate.step_size_base'"),
    ("iterate-step-size-base-update", ITERATE, ["env.iterate.action=update", "env.iterate.step_size_base=bb2"],
     "'env.iterate.step_size_base'"),
    ("iterate-residual-scale-zero", ITERATE, ["env.iterate.residual_scale=0"], "'env.iterate.residual_scale'"),
    ("iterate-residual-scale-inf", ITERATE, ["env.iterate.residual_scale=.inf"], "'env.iterate.residual_scale'"),
    ("iterate-first-step-negative", ITERATE, ["env.iterate.first_step=-1"], "'env.iterate.first_step'"),
    ("iterate-first-step-nan", ITERATE, ["env.iterate.first_step=.nan"], "'env.iterate.first_step'"),
    ("iterate-ritz-memory-negative", ITERATE, ["env.iterate.ritz_memory=-1"], "'env.iterate.ritz_memory'"),
    ("iterate-ritz-memory-float", ITERATE, ["env.iterate.ritz_memory=2.5"], "'env.iterate.ritz_memory'"),
    ("warm-start-lmsd-without-ritz", ITERATE, ["warm_start={expert: {kind: lmsd}}"], "ritz_memory"),
    ("iterate-layout", ITERATE, ["env.iterate.observation_layout=columns"], "'env.iterate.observation_layout'"),
    ("iterate-rows-step-size", ITERATE, ["env.iterate.observation_layout=rows"], "'env.iterate.observation_layout'"),
    ("iterate-rows-no-row-block", ITERATE, ["env.iterate.action=update", "env.iterate.observation_layout=rows",
                                            "env.iterate.omit_blocks=[iterate, gradient]"],
     "'env.iterate.omit_blocks'"),
    # ------------------------------------------------------------------------------------ td3.*
    ("td3-not-section", GYM, ["td3=fast"], "'td3'"),
    ("td3-typo", GYM, ["td3.learning_rat=0.1"], "did you mean 'learning_rate'"),
    ("td3-lr-inf", GYM, ["td3.learning_rate=.inf"], "'td3.learning_rate'"),
    ("td3-lr-nan", ITERATE, ["td3.learning_rate=.nan"], "'td3.learning_rate'"),
    ("td3-lr-zero", GYM, ["td3.learning_rate=0"], "'td3.learning_rate'"),
    ("td3-gamma-big", GYM, ["td3.gamma=1.5"], "'td3.gamma'"),
    ("td3-gamma-bool", GYM, ["td3.gamma=true"], "'td3.gamma'"),
    ("td3-tau-zero", GYM, ["td3.tau=0"], "'td3.tau'"),
    ("td3-noise-inf", GYM, ["td3.exploration_noise=.inf"], "'td3.exploration_noise'"),
    ("td3-noise-negative", GYM, ["td3.target_policy_noise=-0.1"], "'td3.target_policy_noise'"),
    ("td3-clip-nan", GYM, ["td3.target_noise_clip=.nan"], "'td3.target_noise_clip'"),
    ("td3-buffer-huge", GYM, ["td3.buffer_size=10000000000000"], "td3.buffer_size"),
    ("td3-buffer-zero", GYM, ["td3.buffer_size=0"], "'td3.buffer_size'"),
    ("td3-buffer-small", ITERATE, ["env.num_envs=8", "td3.buffer_size=4"], "'td3.buffer_size'"),
    ("td3-batch-huge", GYM, ["td3.batch_size=1000000000000"], "td3.batch_size"),
    ("td3-batch-bool", GYM, ["td3.batch_size=true"], "'td3.batch_size'"),
    ("td3-hidden-huge", GYM, ["td3.hidden_sizes=[1000000000000]"], "td3.hidden_sizes"),
    ("td3-hidden-zero", GYM, ["td3.hidden_sizes=[0]"], "'td3.hidden_sizes"),
    ("td3-hidden-dict", GYM, ["td3.hidden_sizes={a: 1}"], "'td3.hidden_sizes'"),
    ("td3-delay-zero", GYM, ["td3.policy_delay=0"], "'td3.policy_delay'"),
    ("td3-bc-alpha-zero", GYM, ["td3.bc_alpha=0"], "'td3.bc_alpha'"),
    ("td3-bc-alpha-inf", GYM, ["td3.bc_alpha=.inf"], "'td3.bc_alpha'"),
    ("td3-bc-alpha-string", GYM, ["td3.bc_alpha=strong"], "'td3.bc_alpha'"),
    ("td3-zero-init-number", GYM, ["td3.zero_init_actor=2"], "'td3.zero_init_actor'"),
    ("td3-policy-unknown", GYM, ["td3.policy=lstm"], "'td3.policy'"),
    ("td3-policy-list", GYM, ["td3.policy=[rowwise]"], "'td3.policy'"),
    ("td3-rowwise-without-rows", ITERATE, ["td3.policy=rowwise"], "'td3.policy'"),
    ("td3-rowwise-gym", GYM, ["td3.policy=rowwise_odd"], "'td3.policy'"),
    ("bc-policy-unknown", DAGGER_ROWS, ["bc.policy=lstm"], "'bc.policy'"),
    ("bc-rowwise-without-rows", DAGGER_ROWS, ["env.iterate.observation_layout=blocks"], "'bc.policy'"),
    ("bc-loss-unknown", DAGGER_ROWS, ["bc.loss=huber"], "'bc.loss'"),
    ("bc-relative-floor-zero", DAGGER_ROWS, ["bc.relative_floor=0"], "'bc.relative_floor'"),
    ("bc-relative-floor-nan", DAGGER_ROWS, ["bc.relative_floor=.nan"], "'bc.relative_floor'"),
    ("td3-starts-negative", GYM, ["td3.learning_starts=-1"], "'td3.learning_starts'"),
    ("td3-gradient-steps-huge", GYM, ["td3.gradient_steps=-2"], "'td3.gradient_steps'"),
    ("td3-compile-string", GYM, ["td3.compile=maybe"], "'td3.compile'"),
    ("td3-compile-number", GYM, ["td3.compile=1"], "'td3.compile'"),
    ("td3-compile-quoted", GYM, ["td3.compile='true'"], "'td3.compile'"),
    ("td3-seed-key", GYM, ["td3.seed=3"], "'td3.seed'"),
    ("td3-env-key", GYM, ["td3.env=x"], "'td3.env'"),
    # ------------------------------------------------------------------------------ td3: train.*
    ("td3-train-steps-bool", GYM, ["train.total_steps=true"], "'train.total_steps'"),
    ("td3-train-steps-zero", ITERATE, ["train.total_steps=0"], "'train.total_steps'"),
    ("td3-train-stpes", GYM, ["train.total_stpes=5"], "did you mean 'total_steps'"),
    ("td3-train-direct-key", GYM, ["train.steps=5"], "'train.steps'"),
    ("td3-train-target-inf", GYM, ["train.target_return=.inf"], "'train.target_return'"),
    ("td3-train-target-nan", GYM, ["train.target_return=.nan"], "'train.target_return'"),
    ("td3-train-target-minus-inf", ITERATE, ["train.target_return=-.inf"], "'train.target_return'"),
    ("td3-train-target-string", GYM, ["train.target_return=high"], "'train.target_return'"),
    ("td3-train-eval-envs-zero", GYM, ["train.eval_envs=0"], "'train.eval_envs'"),
    ("td3-train-eval-envs-huge", GYM, [f"train.eval_envs={HUGE}"], "train.eval_envs"),
    ("td3-train-eval-envs-huge-iterate", ITERATE, [f"train.eval_envs={HUGE}"], "train.eval_envs"),
    # ------------------------------------------------------------------------------- warm_start
    ("warm-start-list", ITERATE, ["warm_start=[1]"], "'warm_start'"),
    ("warm-start-number", ITERATE, ["warm_start=3"], "'warm_start'"),
    ("warm-start-no-expert", ITERATE, ["warm_start={steps: 8}"], "'warm_start.expert'"),
    ("warm-start-expert-string", ITERATE, ["warm_start={expert: bb}"], "'warm_start.expert'"),
    ("warm-start-expert-unknown", ITERATE, ["warm_start={expert: {kind: barzilai_borwien}}"], "did you mean"),
    ("warm-start-expert-kind-key", ITERATE, ["warm_start={expert: {kind: bb}}"], "'warm_start.expert.kind'"),
    ("warm-start-expert-key", ITERATE, ["warm_start={expert: {kind: barzilai_borwein, step: 1}}"],
     "warm_start.expert.step"),
    ("warm-start-steps-bool", ITERATE, ["warm_start={expert: {kind: barzilai_borwein}, steps: true}"],
     "'warm_start.steps'"),
    ("warm-start-steps-float", ITERATE, ["warm_start={expert: {kind: barzilai_borwein}, steps: 8.5}"],
     "'warm_start.steps'"),
    ("warm-start-steps-below-learning-starts", ITERATE,
     ["td3.learning_starts=8", "warm_start={expert: {kind: barzilai_borwein}, steps: 4}"], "warm_start.steps"),
    ("warm-start-imitation-nan", ITERATE,
     ["warm_start={expert: {kind: barzilai_borwein}, imitation_steps: .nan}"], "'warm_start.imitation_steps'"),
    ("warm-start-critic-negative", ITERATE,
     ["warm_start={expert: {kind: barzilai_borwein}, critic_steps: -3}"], "'warm_start.critic_steps'"),
    ("warm-start-bb-on-gym", GYM, ["warm_start={expert: {kind: barzilai_borwein}}"], "iterate environment"),
    ("warm-start-run-missing", GYM, ["warm_start={expert: {kind: run, path: /nonexistent}}"], "does not exist"),
    ("td3-train-episodes-bool", GYM, ["train.eval_episodes=true"], "'train.eval_episodes'"),
    ("td3-train-save-buffer", GYM, ["train.save_replay_buffer=sometimes"], "'train.save_replay_buffer'"),
    ("td3-train-save-buffer-number", GYM, ["train.save_replay_buffer=1"], "'train.save_replay_buffer'"),
    ("td3-train-wall-inf", GYM, ["train.max_wall_seconds=.inf"], "'train.max_wall_seconds'"),
    ("td3-train-checkpoint-zero", GYM, ["train.checkpoint_every=0"], "'train.checkpoint_every'"),
]

MUJOCO_CASES: list[tuple[str, list[str], list[str], str]] = [
    ("mujoco-num-envs-huge", GYM, ["env.id=HalfCheetah-v5", f"env.num_envs={HUGE}"], "env.num_envs"),
    ("mujoco-buffer-huge", GYM, ["env.id=Hopper-v5", "td3.buffer_size=10000000000000"], "td3.buffer_size"),
    ("mujoco-iterate-key", GYM, ["env.id=Hopper-v5", "env.iterate={history: 2}"], "'env.iterate'"),
]


def assert_refused(status: int, stderr: str, runs_dir: Path, must_hold: str) -> str:
    """Exit 2, one ``error: `` line without a traceback that holds ``must_hold``, and no run folder (nor any
    folder beside ``runs_dir``, where a bad ``runs_dir`` value would have put one)."""
    assert status == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert must_hold in lines[0], lines[0]
    assert not runs_dir.exists() or not any(runs_dir.iterdir()), "a refused config created a run folder"
    assert not [path for path in runs_dir.parent.iterdir() if path.is_dir()], "a refused config created a folder"
    return lines[0]


@pytest.mark.parametrize(("base", "overrides", "must_hold"),
                         [pytest.param(b, o, m, id=i) for i, b, o, m in CASES + MUJOCO_CASES])
def test_a_bad_override_exits_2_with_one_sentence_and_no_run_folder(
    base, overrides, must_hold, tmp_path, capsys, monkeypatch
):
    if any(o.startswith("env.id=") and "-v5" in o for o in overrides):
        pytest.importorskip("mujoco")
    monkeypatch.chdir(tmp_path)  # a relative runs_dir a bad case might leave lands here, and is seen
    runs_dir = tmp_path / "runs"
    status = train_main(["--no-progress", f"runs_dir={runs_dir}", *base, *overrides])
    assert_refused(status, capsys.readouterr().err, runs_dir, must_hold)


BAD_FILES = {
    "non-utf8": (b"agent: direct\nname: caf\xe9\n", "not UTF-8"),
    "empty": (b"", "empty"),
    "blank": (b"  \n# only a comment\n", "empty"),
    "invalid-yaml": (b"agent: direct\ntrain: {steps: [\n", "not valid YAML"),
    "a-list": (b"- agent: direct\n- name: x\n", "mapping"),
    "a-string": (b"just some words\n", "mapping"),
    "a-number": (b"42\n", "mapping"),
    "tabs": (b"agent: direct\n\ttrain: 3\n", "YAML"),
    "bad-section": (b"agent: direct\ntrain: [1, 2]\n", "'train'"),
    "duplicate-bool": (b"agent: direct\ntrain:\n  steps: yes\n", "'train.steps'"),
}


@pytest.mark.parametrize(("content", "must_hold"), [pytest.param(c, m, id=i) for i, (c, m) in BAD_FILES.items()])
def test_a_bad_config_file_exits_2_with_one_sentence_and_no_run_folder(content, must_hold, tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    runs_dir = tmp_path / "runs"
    status = train_main(["--no-progress", "--config", str(path), f"runs_dir={runs_dir}"])
    assert_refused(status, capsys.readouterr().err, runs_dir, must_hold)


def test_a_missing_config_file_exits_2(tmp_path, capsys):
    runs_dir = tmp_path / "runs"
    status = train_main(["--no-progress", "--config", str(tmp_path / "nope.yaml"), f"runs_dir={runs_dir}"])
    assert_refused(status, capsys.readouterr().err, runs_dir, "does not exist")


def test_there_are_at_least_100_cases():
    assert len(CASES) + len(MUJOCO_CASES) + len(BAD_FILES) >= 100


SUBPROCESS_CASES = {
    "agent-list": ([*DIRECT, "agent=[direct]"], "'agent'"),
    "seed-2**64": ([*DIRECT, "seed=18446744073709551616"], "'seed'"),
    "td3-buffer-huge": ([*ITERATE, "td3.buffer_size=10000000000000"], "td3.buffer_size"),
}


@pytest.mark.parametrize(("argv", "must_hold"), [pytest.param(a, m, id=i) for i, (a, m) in SUBPROCESS_CASES.items()])
def test_scripts_train_prints_no_traceback(argv, must_hold, tmp_path):
    runs_dir = tmp_path / "runs"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "--no-progress",
                           f"runs_dir={runs_dir}", *argv], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.stdout == ""
    assert_refused(done.returncode, done.stderr, runs_dir, must_hold)
