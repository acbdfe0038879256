"""The benchmark command line runs its TD3 throughput section end to end (tiny settings, no timing asserted)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_td3_throughput_section_prints_both_rows_and_the_ratio():
    command = [
        sys.executable, "scripts/benchmark.py", "td3-throughput",
        "--repeats", "1", "--steps", "30", "--learning-starts", "300", "--update-steps", "20",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith(("| amorctl", "| stable-baselines3"))]
    assert len(rows) == 2
    for row in rows:
        steps_per_second = float(row.split("|")[2].replace(",", ""))
        assert steps_per_second > 0
    assert re.search(r"amorctl / stable-baselines3 env steps/s: \*\*[\d.]+×\*\*", result.stdout)
    assert "Command: `python scripts/benchmark.py td3-throughput" in result.stdout
