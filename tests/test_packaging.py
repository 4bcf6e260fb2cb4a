"""A wheel built from the repo works from any directory in a fresh venv (config shipped inside)."""

from __future__ import annotations

import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.support.compose import REPO


def _see_running_interpreters_packages(python: Path) -> None:
    """Give the venv at `python` this interpreter's installed packages (hydra, omegaconf) without a network.

    Not `system_site_packages=True`: that shows the *base* interpreter's packages, which lack them when
    the tests run inside a venv. A .pth file lists the running interpreter's site dirs instead; paths it
    adds come after the venv's own site-packages and their .pth files are not read, so the checkout's
    editable install stays out and the wheel is what gets imported.
    """
    site_dirs = site.getsitepackages() + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])
    venv_site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip()
    (Path(venv_site) / "running_interpreter.pth").write_text("\n".join(site_dirs) + "\n")


@pytest.mark.slow
def test_wheel_install_runs_cfg_job_from_an_unrelated_directory(tmp_path):
    wheel_dir = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheel_dir)], check=True, capture_output=True)
    (wheel,) = wheel_dir.glob("searchr1-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    _see_running_interpreters_packages(python)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                    "-q", str(wheel)], check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([python, "-c", "import searchr1; print(searchr1.__file__)"], cwd=elsewhere,
                           capture_output=True, text=True, check=True).stdout
    assert str(env_dir) in where, f"searchr1 imported from {where}, not from the installed wheel"
    experiments = sorted(p.stem for p in (REPO / "experiments").glob("*.yaml"))
    extra = [f"+experiment={experiments[0]}"] if experiments else []
    result = subprocess.run([python, "-m", "searchr1", "--cfg", "job", "backend=google", *extra], cwd=elsewhere,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "api_key_env: SERPER_API_KEY" in result.stdout
    assert "trainer:" in result.stdout
    assert not list(Path(elsewhere).iterdir()), "--cfg job must not create files"
