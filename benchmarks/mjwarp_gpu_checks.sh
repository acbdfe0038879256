#!/usr/bin/env bash
# The GPU figures of issue 8 (MuJoCo Warp), in one script: run it from the repository root on a machine
# with one CUDA GPU and a venv holding a CUDA build of torch and `pip install -e ".[test,mjwarp,sweep]"`.
# Writes every table to $OUT (default benchmarks/mjwarp_gpu) for benchmarks/RESULTS.md, section
# "MuJoCo Warp (issue 8)". The first step compiles Warp's CUDA kernels (cached in ~/.cache/warp).
set -euo pipefail
out="${OUT:-benchmarks/mjwarp_gpu}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/card.txt"

# 1. The MJWarp tests on CUDA (parity with gymnasium, the BatchedEnv contract), then the whole default suite
#    with every run, environment, agent and model on CUDA (tests/device_under_test.py). `|| true` on the
#    suite: a failing test there is a finding to record, not a reason to skip the measurements below.
AMORCTL_TEST_DEVICE=cuda python -m pytest -q tests/envs/test_mjwarp.py tests/envs/test_mjwarp_parity.py \
    2>&1 | tee "$out/tests.txt"
AMORCTL_TEST_DEVICE=cuda python -m pytest -q -p no:cacheprovider 2>&1 | tee "$out/suite_cuda.txt" || true

# 2. Environment steps/s against N (target: >= 500,000 at N = 4096 for HalfCheetah), random actions,
#    resets included, next to gymnasium's SyncVectorEnv.
python scripts/benchmark.py mjwarp-throughput --device cuda --num-envs 256 1024 4096 16384 --steps 200 \
    --gym-num-envs 1 16 | tee "$out/throughput_halfcheetah.md"
python scripts/benchmark.py mjwarp-throughput --id Ant-v5 --device cuda --num-envs 4096 --steps 200 \
    --gym-num-envs 16 | tee "$out/throughput_ant.md"

# 3. IterateEnv at N = 65,536 on the GPU, the same command as the CPU figure in RESULTS.md (the sync
#    reference at N = 256: its per-step rate barely depends on N, and 65,536 Python environments would take hours).
python scripts/benchmark.py iterate-throughput --device cuda --num-envs 65536 --sync-num-envs 256 --steps 50 \
    --repeats 3 | tee "$out/iterate_65536.md"

# 4. TD3 from the shipped MJWarp config: wall clock to a mean evaluation return of 5,000 (it stops
#    there, or after 10 minutes). The run's eval/ scalars and its log give the time.
python scripts/train.py --config configs/td3_halfcheetah_mjwarp.yaml device=cuda runs_dir="$out/runs" \
    2>&1 | tee "$out/td3_train.log"
