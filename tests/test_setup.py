"""scripts/setup.sh and scripts/run as a new user meets them: on a Debian-style externally managed python3
(PEP 668) setup makes a .venv and scripts/run uses it; inside an activated venv it installs there.

Each test runs the real setup script in a copy of this checkout. The interpreters it is given see this
interpreter's packages through PYTHONPATH, so pip finds every dependency installed, and pip is told to work
offline (the user's own pip settings, which setup must honour): a test takes a minute, not a full install
and no index's timeouts. A full install from nothing is measured by hand (CONTRIBUTING.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pip
import pytest

REPO = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# An EXTERNALLY-MANAGED file in the stdlib dir: what marks Debian's and Ubuntu's python3 (PEP 668).
MARKER = "[externally-managed]\nError=Debian-style system python: use a venv\n"


def copy_checkout(dest: Path, *paths: str) -> Path:
    """The files a clone of this working tree has (tracked and new, not ignored), or just ``paths``."""
    if not paths:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
        paths = tuple(name for name in listed.decode().split("\0") if name)
    for name in paths:
        source = REPO / name
        if source.exists() or source.is_symlink():  # a tracked file deleted in the working tree is skipped
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name, follow_symlinks=False)
    return dest


def externally_managed_python(root: Path, *, ensurepip: bool = True) -> Path:
    """A copy of this interpreter laid out as a distribution's system python3: not a venv, pip installed,
    an EXTERNALLY-MANAGED file in its stdlib dir. Without ``ensurepip`` it is Debian's python3 without the
    python3-venv package."""
    stdlib = Path(sysconfig.get_path("stdlib"))
    lib = root / "lib" / stdlib.name
    lib.mkdir(parents=True)
    left_out = {"site-packages", "dist-packages", "EXTERNALLY-MANAGED"} | (set() if ensurepip else {"ensurepip"})
    for entry in stdlib.iterdir():
        if entry.name not in left_out:
            (lib / entry.name).symlink_to(entry)
    (lib / "EXTERNALLY-MANAGED").write_text(MARKER)
    (lib / "site-packages").mkdir()
    (lib / "site-packages" / "pip").symlink_to(Path(pip.__file__).parent)
    for shared in Path(sys.base_prefix, "lib").glob("libpython*.so*"):  # a --enable-shared build's libpython
        (root / "lib" / shared.name).symlink_to(shared)
    (root / "bin").mkdir()
    shutil.copy2(os.path.realpath(sys.executable), root / "bin" / "python3")
    return root / "bin" / "python3"


def user_env(path_head: list[Path], **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONHOME")}
    lent = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    return {
        **env,
        "PATH": os.pathsep.join([*map(str, path_head), env["PATH"]]),
        "PYTHONPATH": os.pathsep.join(lent),
        "PIP_NO_INDEX": "1",
        "PIP_NO_BUILD_ISOLATION": "false",  # pip reads this one inverted: false means --no-build-isolation
        # setup's reachability probe of PyTorch's index goes through a closed port here: nothing leaves 127.0.0.1
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "no_proxy": "",
        "NO_PROXY": "",
        **extra,
    }


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False)


def assert_searchr1_works(checkout: Path, env: dict[str, str], prefix: Path) -> None:
    """``scripts/run searchr1 --help`` answers, from the copy, in the environment setup installed into."""
    result = run(["scripts/run", "searchr1", "--help"], checkout, env)
    assert result.returncode == 0, result.stderr
    assert "== Config groups" in result.stdout
    where = run(
        ["scripts/run", "python3", "-c", "import searchr1, sys; print(searchr1.__file__, sys.prefix)"], checkout, env
    )
    module, used_prefix = where.stdout.split()
    assert Path(module).is_relative_to(checkout / "src") and Path(used_prefix) == prefix


@pytest.mark.slow
def test_externally_managed_python_gets_a_venv_that_scripts_run_uses(tmp_path):
    python = externally_managed_python(tmp_path / "system")
    refused = run([str(python), "-m", "pip", "install", "--dry-run", "pip"], tmp_path, user_env([]))
    assert "externally-managed-environment" in refused.stderr  # the fake is what Debian's python3 is to pip
    checkout = copy_checkout(tmp_path / "checkout")
    env = user_env([python.parent])

    result = run(["bash", "scripts/setup.sh"], checkout, env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert (checkout / ".venv" / "bin" / "python3").exists()
    if not shutil.which("nvidia-smi"):  # torch's CPU build is looked for, and an index that is down left out
        assert f"{CPU_INDEX} is unreachable" in result.stdout
    assert_searchr1_works(checkout, env, checkout / ".venv")


@pytest.mark.slow
def test_activated_venv_is_installed_into_and_torch_keeps_pips_default_on_a_gpu_machine(tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    gpu_bin = tmp_path / "gpu-bin"
    gpu_bin.mkdir()
    (gpu_bin / "nvidia-smi").write_text("#!/bin/sh\n")
    (gpu_bin / "nvidia-smi").chmod(0o755)
    checkout = copy_checkout(tmp_path / "checkout")
    env = user_env([env_dir / "bin", gpu_bin], VIRTUAL_ENV=str(env_dir))

    result = run(["bash", "scripts/setup.sh"], checkout, env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert not (checkout / ".venv").exists()
    assert CPU_INDEX not in result.stdout
    assert_searchr1_works(checkout, env, env_dir)


def test_a_python_without_venvs_pip_bootstrap_stops_setup_in_one_line_naming_the_package(tmp_path):
    python = externally_managed_python(tmp_path / "system", ensurepip=False)
    checkout = copy_checkout(tmp_path / "checkout", "scripts/setup.sh", "scripts/run")

    result = run(["bash", "scripts/setup.sh"], checkout, user_env([python.parent]))

    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].endswith("on Debian/Ubuntu: sudo apt-get install python3-venv")
    assert not (checkout / ".venv").exists()  # scripts/run must not pick a venv without pip


def test_ci_runs_the_readmes_commands_through_scripts_run():
    block = (REPO / "README.md").read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    train, tests = [line.split("#", 1)[0].strip() for line in block.splitlines()[:2]]
    setup, test_command = tests.split(" && ")
    assert setup == "bash scripts/setup.sh" and train.startswith(f"{setup} && scripts/run ")
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert f"{setup} || exit 1" in ci and any(line.startswith(f"{test_command} || ") for line in ci)
