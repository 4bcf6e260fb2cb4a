"""The house's floors: pyproject's import contracts hold, and each one fails on a probe that breaks it.

``lint-imports`` (import-linter) checks the contracts in ``[tool.importlinter]``. A probe writes one
import into a copy of the code (``searchr1``, ``hydra_plugins``, ``benchmarks``, ``scripts`` and
``pyproject.toml`` under ``tmp_path``, which ``lint-imports`` reads from its working directory) and
that copy must break the contract the probe names.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from importlinter.api import read_configuration

REPO = Path(__file__).resolve().parents[1]
ROOTS = {
    "searchr1": REPO / "src" / "searchr1",
    "hydra_plugins": REPO / "src" / "hydra_plugins",
    "benchmarks": REPO / "benchmarks",
    "scripts": REPO / "scripts",
}
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"

# (file the probe appends to, the import it appends, the contract it must break)
PROBES = {
    "a floor imports a floor above it by its package": (
        "searchr1/data/probe.py",
        "from searchr1 import trainers",
        "floors",
    ),
    "a relative import reaches up": ("searchr1/data/probe.py", "from .. import trainers", "floors"),
    "metrics imports eval": ("searchr1/metrics.py", "import searchr1.eval", "floors"),
    "tis imports health": ("searchr1/tis.py", "import searchr1.health", "floors"),
    "eval imports a trainer": ("searchr1/eval/probe.py", "import searchr1.trainers.local", "floors"),
    "report reads more than run dirs": ("searchr1/report/probe.py", "import searchr1.config", "floors"),
    "a module without a floor": ("searchr1/probe.py", "import searchr1.paths", "floors"),
    "one trainer imports the other": ("searchr1/trainers/local/probe.py", "import searchr1.trainers.miles", "trainers"),
    "a trainers module without a floor": ("searchr1/trainers/probe.py", "import searchr1.paths", "trainers"),
    "rollout imports a concrete engine": (
        "searchr1/rollout/probe.py",
        "import searchr1.engines.local",
        "rollout-interfaces",
    ),
    "the Miles launcher imports a worker hook": (
        "searchr1/trainers/miles/launch.py",
        "import searchr1.trainers.miles.rollout_log",
        "miles-launcher",
    ),
    "searchr1 imports a benchmark": ("searchr1/data/probe.py", "import benchmarks.peak_rss", "roots"),
    "hydra_plugins imports searchr1": ("hydra_plugins/searchr1_ray_jobs/probe.py", "import searchr1.paths", "roots"),
    "a script imports a benchmark": ("scripts/probe.py", "import benchmarks.peak_rss", "roots"),
    "a cycle inside a package": ("searchr1/eval/run_curve.py", "from searchr1.eval import cli", "no-cycles"),
    "a cycle inside hydra_plugins": (
        "hydra_plugins/searchr1_ray_jobs/client.py",
        "import hydra_plugins.searchr1_ray_jobs.launcher",
        "no-cycles",
    ),
}


def _contract_ids() -> set[str]:
    return {contract["id"] for contract in read_configuration(str(REPO / "pyproject.toml"))["contracts_options"]}


def _python_only(directory: str, names: list[str]) -> set[str]:
    """copytree's ignore: keep packages and .py files (warm starts hold weights, conf holds YAML)."""
    return {n for n in names if n == "__pycache__" or (not n.endswith(".py") and not Path(directory, n).is_dir())}


def _copy_of_the_code(root: Path) -> Path:
    for name, source in ROOTS.items():
        shutil.copytree(source, root / name, ignore=_python_only)  # links followed: src/searchr1/conf
    shutil.copy(REPO / "pyproject.toml", root)
    return root


def lint_imports(root: Path, contract: str | None = None) -> subprocess.CompletedProcess[str]:
    only = ["--contract", contract] if contract else []
    return subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache", *only], cwd=root, capture_output=True, text=True, timeout=120
    )


def test_the_code_keeps_every_contract():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_unchanged_copy_keeps_every_contract(tmp_path):
    """The probes' control: the copy alone is found and passes, so a probe's failure is the probe's."""
    result = lint_imports(_copy_of_the_code(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(_contract_ids())} kept, 0 broken." in result.stdout


def test_every_contract_has_a_probe():
    assert {contract for _, _, contract in PROBES.values()} == _contract_ids()


@pytest.mark.parametrize("probe", PROBES)
def test_a_probe_breaks_its_contract(tmp_path, probe):
    relative, statement, contract = PROBES[probe]
    path = _copy_of_the_code(tmp_path) / relative
    path.write_text((path.read_text() if path.exists() else "") + f"\n{statement}  # probe\n")
    result = lint_imports(tmp_path, contract)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Contracts: 0 kept, 1 broken." in result.stdout, result.stdout + result.stderr


def test_ruff_refuses_a_relative_import(tmp_path):
    path = _copy_of_the_code(tmp_path) / "searchr1" / "data" / "probe.py"
    path.write_text('"""Probe."""\n\nfrom .. import paths\n\nprint(paths)\n')
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", str(path)], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 1 and "TID252" in result.stdout, result.stdout + result.stderr
