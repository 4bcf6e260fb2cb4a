"""A wheel built from the repo works from any directory in a fresh venv (config shipped inside), and the
declared dependency ranges are the ones the code works with."""

from __future__ import annotations

import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.support.compose import REPO
from tests.support.local_trainer import tiny_llama

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: hatchling (dev extra) brings tomli
    import tomli as tomllib

TRANSFORMERS_SUPPORTED = SpecifierSet(">=5.24,<6")
"""The KV-cache API the local engine and the trainer's scorer use (engines/local.py, trainers/local/logprobs.py):
``model(..., cache=...)``, ``out.cache.layers[i].keys/.values`` and ``DynamicCache(ddp_cache_data=...)``. Before
5.24 the cache went by ``past_key_values`` (5.23 fails: "'CausalLMOutputWithPast' object has no attribute
'cache'"); 6 may change it again."""


def _see_running_interpreters_packages(python: Path) -> None:
    """Give the venv at `python` this interpreter's installed packages (hydra, omegaconf) without a network.

    Not `system_site_packages=True`: that shows the *base* interpreter's packages, which lack them when
    the tests run inside a venv. A .pth file lists the running interpreter's site dirs instead; paths it
    adds come after the venv's own site-packages and their .pth files are not read, so the checkout's
    editable install stays out and the wheel is what gets imported.
    """
    site_dirs = site.getsitepackages() + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])
    venv_site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(venv_site) / "running_interpreter.pth").write_text("\n".join(site_dirs) + "\n")


@pytest.mark.slow
def test_wheel_install_runs_cfg_job_from_an_unrelated_directory(tmp_path):
    wheel_dir = tmp_path / "wheel"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(REPO),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheel_dir),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheel_dir.glob("searchr1-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    _see_running_interpreters_packages(python)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [python, "-c", "import searchr1; print(searchr1.__file__)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(env_dir) in where, f"searchr1 imported from {where}, not from the installed wheel"
    experiments = sorted(p.stem for p in (REPO / "experiments").glob("*.yaml"))
    extra = [f"+experiment={experiments[0]}"] if experiments else []
    result = subprocess.run(
        [python, "-m", "searchr1", "--cfg", "job", "backend=google", *extra],
        cwd=elsewhere,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "api_key_env: SERPER_API_KEY" in result.stdout
    assert "trainer:" in result.stdout
    assert not list(Path(elsewhere).iterdir()), "--cfg job must not create files"


def _pyproject_requirements(name: str) -> dict[str, Requirement]:
    """``name``'s requirement in each extra of pyproject.toml that declares it."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    found = {extra: [Requirement(text) for text in texts] for extra, texts in extras.items()}
    return {extra: req for extra, reqs in found.items() for req in reqs if req.name == name}


def test_local_extra_declares_the_supported_transformers_range():
    assert _pyproject_requirements("transformers")["local"].specifier == TRANSFORMERS_SUPPORTED


def test_installed_transformers_is_in_the_supported_range():
    import transformers

    version = Version(transformers.__version__)
    assert version in TRANSFORMERS_SUPPORTED, f"transformers {version} is outside {TRANSFORMERS_SUPPORTED}"


def test_transformers_kv_cache_api_the_engine_uses():
    """Prefill part of a prompt, rebuild its cache from the layers' keys and values as the engine does for a
    cached prefix, and feed the rest on top: the last logits equal one full prefill's."""
    from transformers import DynamicCache

    model, ids, split = tiny_llama(vocab_size=64), torch.arange(1, 9).unsqueeze(0), 5
    with torch.no_grad():
        full = model(input_ids=ids, use_cache=True)
        head = model(input_ids=ids[:, :split], use_cache=True)
        layers = [(layer.keys, layer.values) for layer in head.cache.layers]
        assert len(layers) == model.config.num_hidden_layers and layers[0][0].shape[2] == split
        cache = DynamicCache(ddp_cache_data=layers)
        tail = model(
            input_ids=ids[:, split:],
            position_ids=torch.arange(split, ids.shape[1]).unsqueeze(0),
            attention_mask=torch.ones_like(ids),
            cache=cache,
            use_cache=True,
        )
    assert [layer.keys.shape[2] for layer in tail.cache.layers] == [ids.shape[1]] * len(layers)
    torch.testing.assert_close(tail.logits[:, -1], full.logits[:, -1], rtol=1e-4, atol=1e-5)
