"""The wheel holds every subpackage: pyproject's explicit ``packages`` list must name each folder with an
``__init__.py`` under amorctl/, agents/ and envs/ (an editable install hides a missing entry; a wheel
installed with ``pip install .`` would then fail on ``import amorctl.<missing>``)."""

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    found = set()
    for package, folder in setuptools["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join((package, *relative.parts)))
    assert "amorctl.gradients" in found
    missing, stale = sorted(found - listed), sorted(listed - found)
    assert not missing, f"subpackages missing from pyproject's [tool.setuptools] packages: {missing}"
    assert not stale, f"pyproject lists packages that do not exist: {stale}"
