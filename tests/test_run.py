"""Run-dir artifacts and secret redaction."""

from __future__ import annotations

import logging

import yaml

from searchr1.config import to_typed
from searchr1.config.secrets import RedactingFilter
from searchr1.paths import RunDir
from searchr1.run import RunContext, save_resolved_config
from tests.support.compose import compose_config


def test_resolved_config_is_saved_resolved_and_without_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("SERPER_API_KEY", "sk-top-secret")
    cfg = compose_config(["backend=google"])
    ctx = RunContext.build(cfg, to_typed(cfg), tmp_path, sweep_point={"search.topk": "5"})
    assert ctx.secrets == ("sk-top-secret",)
    saved = yaml.safe_load((save_resolved_config(ctx)).read_text())
    assert saved["backend"]["api_key_env"] == "SERPER_API_KEY"
    assert "${" not in (tmp_path / RunDir.RESOLVED_CONFIG).read_text(), "interpolations must be resolved"
    assert "sk-top-secret" not in (tmp_path / RunDir.RESOLVED_CONFIG).read_text()


def test_a_secret_pasted_into_the_config_is_redacted_in_what_goes_to_wandb(tmp_path, monkeypatch):
    monkeypatch.setenv("SERPER_API_KEY", "sk-top-secret-123")
    cfg = compose_config(["backend=google", "logger.project=sk-top-secret-123"])
    ctx = RunContext.build(cfg, to_typed(cfg), tmp_path)
    assert ctx.resolved["logger"]["project"] == "***" and "sk-top-secret-123" not in str(ctx.resolved)


def test_log_filter_scrubs_secret_values(caplog):
    logger = logging.getLogger("searchr1.test_secret")
    caplog.handler.addFilter(RedactingFilter(["sk-abc123"]))
    logger.warning("calling serper with key %s", "sk-abc123")
    assert "sk-abc123" not in caplog.text
    assert "***" in caplog.text


def test_run_name_carries_the_sweep_point(tmp_path):
    cfg = compose_config(["rollout.max_turns=4", "search.topk=5", "seed=3"])
    ctx = RunContext.build(
        cfg, to_typed(cfg), tmp_path, sweep_point={"rollout.max_turns": "4", "search.topk": "5", "seed": "3"}
    )
    assert "t4" in ctx.run_name and "k5" in ctx.run_name and "seed=3" in ctx.run_name


def test_run_name_leaves_out_what_does_not_change_learning(tmp_path):
    cfg = compose_config(["trainer=miles", "trainer.dry_run=true", "logger.mode=disabled", "seed=2"])
    point = {"trainer": "miles", "trainer.dry_run": "true", "logger.mode": "disabled", "seed": "2", "+experiment": "x"}
    name = RunContext.build(cfg, to_typed(cfg), tmp_path, sweep_point=point).run_name
    assert name == "miles-smollm2-135m-local-t2-k3-seed=2"


def test_run_name_shows_paths_and_long_values_short_and_stable(tmp_path):
    cfg = compose_config([])
    point = {
        "data.train_path": "/mnt/shared/datasets/nq_hotpotqa_train/train.parquet",
        "model.hf_checkpoint": "/ckpt/Qwen2.5-3B-Instruct/",
        "reward.kind": "a" * 40,
        "seed": "3",
    }
    name = RunContext.build(cfg, to_typed(cfg), tmp_path, sweep_point=point).run_name
    assert "/" not in name and "datasets" not in name and len(name) < 140
    assert "train_path=train.parquet~" in name and "hf_checkpoint=Qwen2.5-3B-Instruct~" in name and "seed=3" in name
    assert "a" * 40 not in name
    # stable across runs, and two paths with one file name stay apart
    assert RunContext.build(cfg, to_typed(cfg), tmp_path, sweep_point=point).run_name == name
    other = {**point, "data.train_path": "/mnt/shared/datasets/other/train.parquet"}
    assert RunContext.build(cfg, to_typed(cfg), tmp_path, sweep_point=other).run_name != name


def test_where_a_run_runs_does_not_name_it(tmp_path):
    """A cluster, shared dir, checkout or port is not what a run learns: moving the run keeps its name,
    its W&B group and its shared job dir (issue 27, item 10)."""
    where = {
        "trainer.ray_address": "http://HEAD:8265",
        "trainer.shared_dir": "/mnt/shared",
        "trainer.remote_preflight": "false",
        "trainer.miles_root": "/opt/miles",
        "trainer.megatron_root": "/opt/Megatron-LM",
        "trainer.node_gpus": "16",
        "+trainer.env": "{NCCL_DEBUG:INFO}",
        "trainer.dry_run": "true",
        "backend.urls": "[http://10.0.0.2:8000]",
    }
    cfg = compose_config(["trainer=miles", "seed=2"])
    named = RunContext.build(cfg, to_typed(cfg), tmp_path, sweep_point={"seed": "2", **where}).run_name
    assert named == "miles-smollm2-135m-local-t2-k3-seed=2"
    local = compose_config([])
    point = {"trainer.checkpoint_dir": "/ckpt", "trainer.resume": "true", "trainer.threads": "4"}
    point |= {"backend.embedded_port": "8123", "retriever.host": "0.0.0.0"}
    assert (
        RunContext.build(local, to_typed(local), tmp_path, sweep_point=point).run_name
        == "local-smollm2-135m-local-t2-k3"
    )
