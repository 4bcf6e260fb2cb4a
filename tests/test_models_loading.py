"""Warm starts (trainer.init_from / eval.checkpoint): a bad directory fails in one line naming the key
before any weights load, a package-relative form resolves, and a resumed checkpoint wins over the warm start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from searchr1.config.checks import ConfigError
from searchr1.models.loading import ADAPTER_CONFIG, ADAPTER_WEIGHTS, check_warm_start, load_policy
from searchr1.models.lora import with_lora
from searchr1.models.loading import load_model
from searchr1.models.tokenizer import resolve_checkpoint
from tests.support.local_trainer import SMOLLM2

KEY = "trainer.init_from"


def _adapter_dir(tmp_path: Path, config: str = '{"r": 16}', weights: bool = True) -> Path:
    directory = tmp_path / "adapter"
    directory.mkdir()
    (directory / ADAPTER_CONFIG).write_text(config)
    if weights:
        (directory / ADAPTER_WEIGHTS).write_bytes(b"")
    return directory


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda tmp: tmp / "missing", "no such directory"),
        (lambda tmp: tmp, "neither a LoRA adapter dir"),
        (lambda tmp: _adapter_dir(tmp, weights=False), f"no {ADAPTER_WEIGHTS}"),
        (lambda tmp: _adapter_dir(tmp, config="{not json"), "malformed"),
        (lambda tmp: _adapter_dir(tmp, config='{"lora_alpha": 8}'), "malformed"),
    ],
)
def test_bad_warm_start_fails_in_one_line_naming_the_key(tmp_path, make, message):
    with pytest.raises(ConfigError, match=message) as caught:
        check_warm_start(str(make(tmp_path)), 16, KEY)
    assert str(caught.value).startswith(f"{KEY}=") and "\n" not in str(caught.value)


def test_model_dir_without_weights_is_rejected(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="no weights"):
        check_warm_start(str(tmp_path), 0, KEY)


def test_home_relative_warm_start_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    _adapter_dir(tmp_path)
    assert check_warm_start("~/adapter", 16, KEY).path == tmp_path / "adapter"


def test_adapter_rank_must_match_lora_rank_or_be_merged(tmp_path):
    directory = str(_adapter_dir(tmp_path))
    with pytest.raises(ConfigError, match="rank-16 LoRA adapter but trainer.lora_rank=8"):
        check_warm_start(directory, 8, KEY)
    assert check_warm_start(directory, 16, KEY).kind == "adapter"
    assert check_warm_start(directory, 0, KEY).rank == 16  # merged, all weights train


def test_package_relative_warm_start_resolves_inside_the_installed_package():
    path = Path(resolve_checkpoint("pypi:searchr1/conf"))
    assert path.is_dir() and (path / "config.yaml").is_file()
    with pytest.raises(ConfigError, match=f"{KEY}='pypi:searchr1/no-such-dir': no such directory"):
        check_warm_start("pypi:searchr1/no-such-dir", 0, KEY)
    with pytest.raises(ConfigError, match="pip install no_such_pkg"):
        check_warm_start("pypi:no-such-pkg/x", 0, KEY)


@pytest.mark.slow
def test_a_resumed_checkpoint_overrides_the_warm_start(tmp_path):
    """The trainer loads init_from, then restores the checkpoint's trainable weights over it: the adapter
    loaded from a warm start has the same parameter names as the checkpoint's."""
    from searchr1.trainers.local.checkpoint import load_latest, restore, save_checkpoint

    torch.manual_seed(0)
    warm = with_lora(load_model(SMOLLM2), 4)
    with torch.no_grad():
        for name, param in warm.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.01)  # a warm start that differs from a fresh adapter
    warm.save_pretrained(tmp_path / "warm")
    policy = load_policy(SMOLLM2, str(tmp_path / "warm"), 4)
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad])
    with torch.no_grad():
        for param in policy.parameters():
            if param.requires_grad:
                param.add_(0.5)  # what some RL steps would do
    save_checkpoint(tmp_path / "ckpt", 3, policy, optimizer, {"epoch": 0, "position": 0})
    expected = {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}

    resumed = load_policy(SMOLLM2, str(tmp_path / "warm"), 4)
    restore(
        load_latest(tmp_path / "ckpt"), resumed, torch.optim.AdamW([p for p in resumed.parameters() if p.requires_grad])
    )
    current = {n: p.detach() for n, p in resumed.named_parameters() if p.requires_grad}
    assert current.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(current[name], expected[name])


@pytest.mark.slow
@pytest.mark.parametrize("main, key", [("searchr1.cli", "trainer.init_from"), ("searchr1.eval.cli", "eval.checkpoint")])
def test_cli_rejects_a_missing_warm_start_in_one_line(tmp_path, main, key):
    program = f"import sys; from {main} import main; main()"
    env = {**os.environ, "WANDB_MODE": "offline"}
    run = subprocess.run(
        [sys.executable, "-c", program, f"{key}={tmp_path}/nope", f"hydra.run.dir={tmp_path}/run"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert run.returncode == 2, run.stderr[-2000:]
    errors = [
        line for line in (run.stdout + run.stderr).splitlines() if f"{key}=" in line and "no such directory" in line
    ]
    assert len(errors) == 1, run.stderr[-2000:]
    assert "Loading weights" not in run.stderr  # failed before any model loaded
