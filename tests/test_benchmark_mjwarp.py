"""scripts/benchmark.py mjwarp-throughput: MjWarpEnv's rows against N next to gymnasium's, with the command."""

from __future__ import annotations

import re

from amorctl.benchmarking.mjwarp import mjwarp_throughput


def test_the_table_has_a_row_per_device_and_n_and_names_the_machine():
    # the CPU rows only, whatever AMORCTL_TEST_DEVICE says: the test checks that rows name the CPU model
    report = mjwarp_throughput("InvertedPendulum-v5", [1, 4], steps=1, repeats=1, devices=["cpu"], gym_num_envs=[2])
    rows = [line for line in report.splitlines() if line.startswith("| ") and not line.startswith(("| env", "| ---"))]
    assert [row.split(" | ")[1] for row in rows] == ["1", "4", "2"]
    assert rows[0].startswith("| MjWarpEnv (CPU: ") and rows[2].startswith("| gymnasium SyncVectorEnv (CPU: ")
    rates = [float(row.split(" | ")[2].replace(",", "")) for row in rows]
    assert all(rate > 0 for rate in rates)
    assert rows[2].endswith("| 1 |")  # gymnasium's best rate is the reference
    assert re.search(r"Machine: .*mujoco-warp 4\.\d+\.\d+, warp-lang \d", report)
