"""SFT on trajectories with the real SmolLM2-135M: observation tokens are masked exactly as in RL, the
loss falls, micro-batching does not change the update, and a saved warm start loads back identically."""

from __future__ import annotations

import json

import pytest
import torch

from searchr1.models.loading import load_model, load_policy
from searchr1.models.lora import with_lora
from searchr1.rollout import prompt_ids
from searchr1.rollout.trajectory import Trajectory
from searchr1.models.policy_writer import PROVENANCE_FILE, save_warm_start
from searchr1.trainers.local.sft import sft_step
from tests.support.local_trainer import SMOLLM2, smollm2_tokenizer

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on a small shared CPU, more threads spin against each other and run ~10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _encode(text: str) -> list[int]:
    return smollm2_tokenizer().encode(text, add_special_tokens=False)


def _trajectory(question: str, entity: str, answer: str, trailing_correction: str = "") -> Trajectory:
    """Search turn, observation (masked), answer turn, and optionally a masked correction at the end."""
    traj = Trajectory(prompt_ids=prompt_ids(smollm2_tokenizer(), [{"role": "user", "content": question}]))
    traj.append_generated(_encode(f"<think>I need {entity}.</think>\n<search>{entity}</search>"), [0.0] * 99)
    traj.append_inserted(_encode(f"\n<information>Doc 1: {entity} was made by {answer}.</information>\n"))
    traj.append_generated(_encode(f"<answer>{answer}</answer>"), [0.0] * 99)
    if trailing_correction:
        traj.append_inserted(_encode(trailing_correction))
    traj.rollout_logprobs = traj.rollout_logprobs[: len(traj.response_ids)]
    return traj


def _batch(trailing: str = "") -> list[Trajectory]:
    # Two trajectories share a prompt (one shared prompt forward), one has its own.
    return [
        _trajectory("Who made the Ruby Lamp?", "Ruby Lamp", "Vessa Corin", trailing),
        _trajectory("Who made the Ruby Lamp?", "Ruby Lamp", "Orlan Dey"),
        _trajectory("Who built Fort Amell?", "Fort Amell", "Tarn Holloway"),
    ]


def _policy(rank: int = 4):
    torch.manual_seed(0)
    return with_lora(load_model(SMOLLM2), rank).train()


def _grads(policy, trajectories, **kwargs) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    optimizer = torch.optim.SGD([p for p in policy.parameters() if p.requires_grad], lr=0.0)
    metrics = sft_step(
        policy, optimizer, trajectories, micro_batch_size=kwargs.pop("micro_batch_size", 8), grad_clip=1e9, **kwargs
    )
    return metrics, {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}


def test_masked_tokens_change_neither_loss_nor_gradient():
    """A different trailing correction (mask 0) leaves loss and every gradient unchanged; a different
    answer token (mask 1) changes the loss, so the comparison is not vacuous."""
    policy = _policy()
    base_metrics, base_grads = _grads(policy, _batch("\nInvalid action, use <search> or <answer>.\n"))
    other_metrics, other_grads = _grads(policy, _batch("\nSomething else entirely, longer than before.\n"))
    assert other_metrics["sft/loss"] == pytest.approx(base_metrics["sft/loss"], rel=1e-6)
    assert other_metrics["sft/tokens"] == base_metrics["sft/tokens"]
    for name in base_grads:
        torch.testing.assert_close(other_grads[name], base_grads[name], rtol=1e-5, atol=1e-8)
    changed = _batch("\nInvalid action, use <search> or <answer>.\n")
    changed[0] = _trajectory("Who made the Ruby Lamp?", "Ruby Lamp", "Vessa Corinth")
    assert _grads(policy, changed)[0]["sft/loss"] != pytest.approx(base_metrics["sft/loss"], rel=1e-4)


def _grads_with_noisy_logits(policy, trajectory: Trajectory, columns: list[int]) -> dict[str, torch.Tensor]:
    """Gradients with large noise on the logits that predict the given response positions."""

    def noise(_module, _inputs, output):
        if output.shape[0] == 1 and output.shape[1] == len(trajectory.prompt_ids):
            return output  # the prompt pass
        output = output.clone()
        for col in columns:
            output[0, col - 1] += 50.0 * torch.randn(output.shape[-1])
        return output

    handle = policy.get_decoder().norm.register_forward_hook(noise)
    try:
        return _grads(policy, [trajectory])[1]
    finally:
        handle.remove()


def test_observation_logits_get_no_gradient():
    """Noise on the logits at observation positions (inside the trajectory) changes no gradient; noise
    on one model token's logits does (so the comparison is not vacuous)."""
    trajectory = _batch()[0]
    policy = _policy()
    _, baseline = _grads(policy, [trajectory])
    observed = [i for i, m in enumerate(trajectory.loss_mask) if m == 0]
    perturbed = _grads_with_noisy_logits(policy, trajectory, observed)
    assert baseline and baseline.keys() == perturbed.keys()
    for name in baseline:
        torch.testing.assert_close(perturbed[name], baseline[name], rtol=1e-5, atol=1e-8)
    model_token = next(i for i, m in enumerate(trajectory.loss_mask) if m == 1 and i > 0)
    changed = _grads_with_noisy_logits(policy, trajectory, [model_token])
    assert any(not torch.allclose(changed[name], baseline[name]) for name in baseline)


def test_micro_batches_and_logprob_slices_do_not_change_the_update():
    policy = _policy()
    whole, whole_grads = _grads(policy, _batch(), micro_batch_size=8, logprob_chunk_tokens=0)
    split, split_grads = _grads(policy, _batch(), micro_batch_size=1, logprob_chunk_tokens=7)
    assert split["sft/loss"] == pytest.approx(whole["sft/loss"], rel=1e-5)
    assert split["sft/grad_norm"] == pytest.approx(whole["sft/grad_norm"], rel=1e-4)
    for name in whole_grads:
        torch.testing.assert_close(split_grads[name], whole_grads[name], rtol=1e-4, atol=1e-6)


def test_loss_falls_over_a_few_steps():
    policy = _policy(rank=8)
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=2e-3)
    losses = [sft_step(policy, optimizer, _batch(), micro_batch_size=2, grad_clip=1.0)["sft/loss"] for _ in range(6)]
    assert losses[-1] < 0.5 * losses[0], losses


def _logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=torch.tensor([ids])).logits


def _trained(rank: int):
    policy = _policy(rank)
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-3)
    sft_step(policy, optimizer, _batch(), micro_batch_size=4, grad_clip=1.0)
    return policy


@pytest.mark.parametrize("rank, merged, kind", [(4, False, "adapter"), (4, True, "model"), (0, False, "model")])
def test_saved_warm_start_loads_back_with_identical_logits(tmp_path, rank, merged, kind):
    policy = _trained(rank)
    ids = _batch()[0].prompt_ids + _batch()[0].response_ids
    expected = _logits(policy, ids)
    provenance = {"command": "searchr1-sft sft.steps=1", "seed": 0, "data": {"hops": [1]}}
    out = save_warm_start(tmp_path / "warm", policy, provenance, merged=merged, tokenizer=smollm2_tokenizer())
    assert json.loads((out / PROVENANCE_FILE).read_text()) == provenance
    assert (out / ("adapter_config.json" if kind == "adapter" else "config.json")).is_file()
    # Trained further under the same rank (or all weights for a whole model), as the RL trainer would.
    loaded = load_policy(SMOLLM2, str(out), rank if kind == "adapter" else 0)
    assert any(p.requires_grad for p in loaded.parameters())
    torch.testing.assert_close(_logits(loaded, ids), expected, rtol=1e-4, atol=1e-3 if merged else 1e-4)
    # Evaluation loads it merged (lora_rank 0): the same logits up to the rounding of W + BA.
    torch.testing.assert_close(
        _logits(load_policy(SMOLLM2, str(out), 0, key="eval.init_from"), ids), expected, rtol=1e-4, atol=1e-3
    )
    assert not torch.allclose(_logits(load_model(SMOLLM2), ids), expected, atol=1e-3)  # training moved it
