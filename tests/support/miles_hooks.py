"""What the Miles hook tests share (tests/test_miles_hooks.py, test_miles_health.py, test_miles_real.py):
a custom config and args as Miles builds them, the prompt Miles sends, a sample, and calls of the TIS and
tracking hooks the way Miles makes them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from searchr1.config import to_typed
from searchr1.data.prompt import prompt_messages
from searchr1.trainers.miles import hooks
from searchr1.trainers.miles.custom_config import build_custom_config, write_custom_config
from tests.support.compose import compose_config
from tests.support.miles_fakes import FakeSample, miles_args

QUESTION = "What is the capital of France?"


def write_args(tmp_path: Path, retriever_url: str, router_url: str, *overrides: str) -> argparse.Namespace:
    cfg = to_typed(compose_config(["trainer=miles", "model=smollm2-135m", "backend=local", "reward=em", *overrides]))
    data = build_custom_config(cfg, run_dir=tmp_path, run_name="test", retriever_urls=[retriever_url])
    return miles_args(write_custom_config(data, tmp_path / "miles_custom_config.yaml"), router_url=router_url)


def chat_prompt(tokenizer) -> str:
    """What Miles puts in Sample.prompt with --apply-chat-template."""
    return tokenizer.apply_chat_template(prompt_messages(QUESTION), tokenize=False, add_generation_prompt=True)


def new_sample(tokenizer, cls=FakeSample):
    return cls(
        group_index=0,
        index=0,
        prompt=chat_prompt(tokenizer),
        label={"style": "rule", "ground_truth": {"target": ["Paris"]}},
    )


def tis_args(**kw):
    base = dict(
        use_tis=True,
        use_rs=False,
        tis_level="token",
        tis_mode="truncate",
        tis_lower_bound=0.5,
        tis_upper_bound=2.0,
        tis_batch_normalize=False,
        global_batch_size=4,
        context_parallel_size=1,
    )
    return argparse.Namespace(**{**base, **kw})


def call_tis(args, train, masks):
    pg_loss = torch.ones(sum(len(t) for t in train))
    rollout = [torch.zeros(len(t)) for t in train]
    return hooks.tis_weights(
        args,
        pg_loss=pg_loss,
        train_log_probs=[torch.log(torch.tensor(t)) for t in train],
        rollout_log_probs=rollout,
        loss_masks=[torch.tensor(m, dtype=torch.float32) for m in masks],
        total_lengths=[10 + len(t) for t in train],
        response_lengths=[len(t) for t in train],
    )


def miles_reduced_tis_metrics(args, micro_batches, *, per_token: bool) -> dict[str, float]:
    """What Miles logs as ``train/<key>`` for our TIS hook's metrics over one optimizer step, mirroring
    its reduction at radixark/miles@31f1ca9 (CP=1, one sample per rollout, one DP rank):

    - loss_hub/losses.py:239,379-386: each hook metric goes through ``sum_of_sample_mean`` built from the
      pre-rejection ``batch["loss_masks"]`` (loss.py:163-170, ``denominators=rollout_mask_sums``);
    - train_data_conversion.py:82,101,162-167: rollout id = sample index, so ``rollout_mask_sums[i]`` is
      ``loss_masks[i].sum()``;
    - cp_utils.py:118-134: per sample ``(x_i * mask_i).sum() / clamp_min(denominator, 1)``, summed (or, with
      ``--calculate-per-token-loss``, ``(x_i * mask_i).sum()`` summed);
    - loss.py:160-161,221: each micro-batch also reports ``num_samples`` (or ``num_tokens``, the sum of
      ``clamp_min(mask.sum(), 1)``) as ``values[0]``;
    - log_utils.py:470-488 + megatron_utils/model.py:583: values are summed over micro-batches and divided by
      the step's rollout count (dp_schedule.py:69: ``global_batch_size``), or by the summed ``values[0]``
      for per-token loss.
    """
    sums: dict[str, float] = {}
    count = 0.0
    for train, masks in micro_batches:
        _, _, metrics = call_tis(args, train, masks)
        mask_tensors = [torch.tensor(m, dtype=torch.float32) for m in masks]
        lengths = [len(m) for m in masks]
        for key, value in metrics.items():
            parts = value.split(lengths)
            if per_token:
                reduced = sum(float((x * m).sum()) for x, m in zip(parts, mask_tensors))
            else:
                reduced = sum(float((x * m).sum() / torch.clamp_min(m.sum(), 1)) for x, m in zip(parts, mask_tensors))
            sums[key] = sums.get(key, 0.0) + reduced
        count += sum(float(torch.clamp_min(m.sum(), 1)) for m in mask_tensors) if per_token else len(masks)
    num_rollouts = sum(len(masks) for _, masks in micro_batches)  # one step = global_batch_size samples
    return {key: value / (count if per_token else num_rollouts) for key, value in sums.items()}


def fake_miles_tracking(monkeypatch) -> list:
    """Miles' tracking and step helpers, recording what the hook logs (Miles is not installed here)."""
    import types

    logged = []
    modules = {
        name: types.ModuleType(name)
        for name in (
            "miles",
            "miles.utils",
            "miles.utils.metric_utils",
            "miles.utils.tracking_utils",
            "miles.utils.tracking_utils.tracking",
        )
    }
    modules["miles.utils.metric_utils"].compute_rollout_step = lambda args, rollout_id: rollout_id * 10
    modules["miles.utils.tracking_utils.tracking"].log = lambda args, metrics, step_key: logged.append(
        (metrics, step_key)
    )
    modules["miles.utils.tracking_utils"].tracking = modules["miles.utils.tracking_utils.tracking"]
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return logged
