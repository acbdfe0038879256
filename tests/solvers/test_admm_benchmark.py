"""The admm-throughput benchmark section end to end with tiny settings (no timing asserted)."""

import pytest

from amorctl.run.errors import AmorctlError


def test_admm_throughput_prints_osqp_and_every_batch_size(capsys):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "benchmark", Path(__file__).resolve().parents[2] / "scripts" / "benchmark.py"
    )
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    status = benchmark.main(
        [
            "admm-throughput",
            "--families",
            "eq_qp:n=4",
            "portfolio:assets=3,factors=1",
            "--sizes",
            "1",
            "3",
            "--single-problems",
            "2",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    for row in (
        "| eq_qp:n=4 | 4 | 2 | osqp (loop) | 3 |",
        "| eq_qp:n=4 | 4 | 2 | batched ADMM, N=1 | 2 |",
        "| portfolio:assets=3,factors=1 | 4 | 5 | batched ADMM, N=3 | 3 |",
    ):
        assert row in out
    assert "identical iteration counts on 3 of the first 3 problems" in out
    assert benchmark.main(["admm-throughput", "--families", "eq_qp:n=x"]) == 2
    assert "must be a number" in capsys.readouterr().err
    # the torch backend, and the numba backend on more threads than numba has: one sentence, exit 2
    tiny = ["admm-throughput", "--families", "eq_qp:n=4", "--sizes", "3", "--single-problems", "1"]
    assert benchmark.main([*tiny, "--backend", "torch"]) == 0
    assert "torch backend, 1 thread(s)" in capsys.readouterr().out
    assert benchmark.main([*tiny, "--threads", "4096"]) == 2
    assert "threads=4096" in capsys.readouterr().err


def test_family_specs_parse_numbers():
    from amorctl.benchmarking.admm import parse_family

    assert parse_family("lasso:data=30,density=0.25") == ("lasso", {"data": 30, "density": 0.25})
    with pytest.raises(AmorctlError, match="KEY=VALUE"):
        parse_family("lasso:data")
