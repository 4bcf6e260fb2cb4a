"""GRPO on a tiny real Llama: advantages, masking (observation tokens get no gradient), PPO clipping,
k3 KL, TIS truncation as configured, and the group-shared prompt forward."""

from __future__ import annotations

import contextlib
import math
import weakref

import pytest
import torch

from searchr1.config.schema import GrpoConfig, LocalTrainerConfig, TisConfig
from searchr1.trainers.local.grpo import (
    Group,
    LossInputs,
    chunks_of,
    group_advantages,
    grpo_loss,
    grpo_update,
    low_var_kl,
)
from searchr1.trainers.local.logprobs import score_responses
from tests.support.local_trainer import tiny_llama

VOCAB = 512
PROMPT = [5, 17, 42, 7, 99, 3]
RESPONSES = [[11, 12, 13, 14, 15, 16, 17, 18], [21, 22, 23, 24, 25, 26]]
# Observation tokens (0) sit between model tokens, as after a search.
MASKS = [[1, 1, 0, 0, 0, 1, 1, 1], [1, 1, 1, 0, 0, 1]]


# No gradient clipping: the tests compare raw gradients.
TRAINER = LocalTrainerConfig(micro_batch_size=8, grad_clip=1e9)


def _cfg(**overrides) -> GrpoConfig:
    return GrpoConfig(**{"kl_loss_coef": 0.0, "entropy_coef": 0.0, **overrides})


def _group(rollout_logprobs=None) -> Group:
    return Group(
        prompt_ids=PROMPT,
        responses=RESPONSES,
        loss_masks=MASKS,
        rollout_logprobs=rollout_logprobs or [[0.0] * len(r) for r in RESPONSES],
        advantages=torch.tensor([1.0, -1.0]),
    )


def _grads(model, group: Group, cfg: GrpoConfig, tis: TisConfig | None = None, reference=None):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    metrics = grpo_update(
        model, reference, [group], optimizer, TRAINER, cfg, tis or TisConfig(), temperature=1.0, pad_token_id=0
    )
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, metrics


def _perturb_logits(model, positions: dict[int, list[int]]):
    """Add large noise to the final hidden states, hence the logits, that predict the given response
    positions (response pass only; the final norm's output feeds nothing but the LM head)."""

    def hook(_module, _inputs, output):
        if output.shape[0] == 1:  # the shared prompt pass (its last state predicts position 0)
            return output
        output = output.clone()
        for row, cols in positions.items():
            for col in cols:
                output[row, col - 1] += 50.0 * torch.randn(output.shape[-1])
        return output

    return model.model.norm.register_forward_hook(hook)


def test_update_kl_measures_how_far_the_step_moved_the_policy_on_its_samples():
    kls = []
    for lr in (0.0, 1e-3, 1e-1):
        model = tiny_llama(vocab_size=VOCAB)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
        metrics = grpo_update(
            model, None, [_group()], optimizer, TRAINER, _cfg(), TisConfig(), temperature=1.0, pad_token_id=0
        )
        kls.append(metrics["health/update_kl"])
    assert kls[0] == pytest.approx(0.0, abs=1e-7)  # no step, no change
    assert 0.0 < kls[1] < kls[2]


def test_a_micro_batchs_graph_is_freed_before_the_next_micro_batchs_forward(monkeypatch):
    """After its backward a micro-batch's scores still hold its autograd graph (checkpointed layer inputs,
    KV tensors: ~0.45 GB on the quickstart); none of it may be alive when the next forward starts."""
    import searchr1.trainers.local.grpo as grpo

    graphs: list[weakref.ref] = []
    alive_at_forward: list[int] = []

    def score(*args, **kwargs):
        if torch.is_grad_enabled():
            alive_at_forward.append(sum(ref() is not None for ref in graphs))
        scores = score_responses(*args, **kwargs)
        if torch.is_grad_enabled():
            graphs.append(weakref.ref(scores.logprobs))
        return scores

    monkeypatch.setattr(grpo, "score_responses", score)
    model = tiny_llama(vocab_size=VOCAB)
    one_per_micro_batch = LocalTrainerConfig(micro_batch_size=1)
    grpo_update(
        model, None, [_group()], torch.optim.SGD(model.parameters(), lr=0.0), one_per_micro_batch, _cfg(),
        TisConfig(), temperature=1.0, pad_token_id=0,
    )  # fmt: skip
    assert alive_at_forward == [0, 0]  # two micro-batches, each forward with no earlier graph alive


def test_the_shipped_config_projects_at_most_128_response_tokens_onto_the_vocabulary_at_a_time():
    """The vocabulary projection's slice backward set the quickstart's peak RSS (several copies of
    0.2 MB of logits a token): the default trainer config keeps its slices at 128 tokens, in the
    forward and in the backward's recompute."""
    model = tiny_llama()  # SmolLM2's 49152-token vocabulary
    head_rows: list[int] = []
    model.lm_head.register_forward_hook(lambda _module, inputs, _output: head_rows.append(inputs[0].shape[0]))
    responses = [[(7 * i + j) % 49152 for j in range(150)] for i in range(2)]
    group = Group(
        prompt_ids=PROMPT,
        responses=responses,
        loss_masks=[[1] * 150, [1] * 150],
        rollout_logprobs=[[0.0] * 150, [0.0] * 150],
        advantages=torch.tensor([1.0, -1.0]),
    )
    shipped = LocalTrainerConfig()
    grpo_update(
        model.train(), None, [group], torch.optim.SGD(model.parameters(), lr=0.0), shipped, _cfg(), TisConfig(),
        temperature=1.0, pad_token_id=0,
    )  # fmt: skip
    assert shipped.logprob_chunk_tokens == 128
    assert max(head_rows) == 128 and sum(head_rows) > 2 * 300  # 300 tokens: forward, recompute, update KL


def test_the_response_pass_keeps_no_keys_and_values_for_the_backward(monkeypatch):
    """Checkpointed layers drop their keys and values after the forward; the response pass's cache, which
    their recompute holds until the backward ends, must not keep them (only the prompt pass hands its on)."""
    import searchr1.trainers.local.logprobs as logprobs
    from searchr1.models.loading import checkpoint_layers

    response_layers = []
    as_prefix = logprobs._FixedPrefixLayer.latest_as_prefix

    def spy(self, count):
        response_layers.append(as_prefix(self, count))
        return response_layers[-1]

    monkeypatch.setattr(logprobs._FixedPrefixLayer, "latest_as_prefix", spy)
    model = tiny_llama(vocab_size=VOCAB).train()
    checkpoint_layers(model)
    scores = score_responses(model, PROMPT, RESPONSES, with_entropy=True)
    assert len(response_layers) == 2 and all(layer.latest is None for layer in response_layers)
    scores.logprobs.sum().backward()  # the recompute still finds the prompt's keys and values
    assert all(p.grad is not None for p in model.parameters())


def test_group_advantages_are_normalized_within_each_group():
    adv = group_advantages([1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0], group_size=4)
    std = torch.tensor([1.0, 0.0, 0.0, 0.0]).std()
    assert adv[:4].tolist() == pytest.approx(
        [0.75 / float(std), -0.25 / float(std), -0.25 / float(std), -0.25 / float(std)], rel=1e-4
    )
    assert adv[4:].tolist() == [0.0] * 4  # identical rewards: no signal
    assert group_advantages([3.0, 1.0], group_size=1).tolist() == [0.0, 0.0]


@pytest.mark.slow
def test_observation_tokens_get_no_gradient():
    """Changing the logits at observation positions changes no parameter gradient (KL and entropy on);
    changing a model token's logits does (so the comparison is not vacuous)."""
    cfg = _cfg(kl_loss_coef=0.1, entropy_coef=0.01)
    reference_model = tiny_llama(seed=1, vocab_size=VOCAB).requires_grad_(False)
    reference = lambda: contextlib.nullcontext(reference_model)  # noqa: E731
    observation = {i: [j for j, m in enumerate(mask) if m == 0] for i, mask in enumerate(MASKS)}

    baseline, _ = _grads(tiny_llama(vocab_size=VOCAB), _group(), cfg, reference=reference)
    model = tiny_llama(vocab_size=VOCAB)
    handle = _perturb_logits(model, observation)
    perturbed, _ = _grads(model, _group(), cfg, reference=reference)
    handle.remove()
    assert baseline.keys() == perturbed.keys() and baseline
    for name in baseline:
        torch.testing.assert_close(perturbed[name], baseline[name], rtol=1e-5, atol=1e-7)

    model = tiny_llama(vocab_size=VOCAB)
    handle = _perturb_logits(model, {0: [1]})  # a model token
    changed, _ = _grads(model, _group(), cfg, reference=reference)
    handle.remove()
    assert any(not torch.allclose(changed[n], baseline[n]) for n in baseline)


def _rollout_logprobs_5x_below_trainer() -> list[list[float]]:
    """Rollout logprobs of RESPONSES that make every model token 5x less likely than the trainer does."""
    with torch.no_grad():
        train_logprobs = score_responses(tiny_llama(vocab_size=VOCAB), PROMPT, RESPONSES).logprobs
    return [
        [float(v) - math.log(5.0) if m else 0.0 for v, m in zip(train_logprobs[i].tolist(), mask)]
        for i, mask in enumerate(MASKS)
    ]


@pytest.mark.slow
@pytest.mark.parametrize("upper_bound", [2.0, 3.0])
def test_tis_weights_are_truncated_at_the_configured_bound(upper_bound):
    """Rollout probabilities 5x below the trainer's: every weight is truncated to ``upper_bound``, so the
    policy gradient is exactly ``upper_bound`` times the gradient without TIS."""
    rollout = _rollout_logprobs_5x_below_trainer()
    plain, _ = _grads(tiny_llama(vocab_size=VOCAB), _group(rollout), _cfg(), TisConfig(enabled=False))
    tis = TisConfig(enabled=True, mode="truncate", upper_bound=upper_bound)
    weighted, metrics = _grads(tiny_llama(vocab_size=VOCAB), _group(rollout), _cfg(), tis)
    for name in plain:
        # float32 sums in another order: up to ~1.3e-7 absolute on some CPUs' kernels
        torch.testing.assert_close(weighted[name], upper_bound * plain[name], rtol=1e-4, atol=1e-6)
    assert metrics["tis/bounded_fraction"] == pytest.approx(1.0)
    assert metrics["tis/effective_sample_size"] == pytest.approx(2.0)
    # With TIS off the loss ignores the weights, but their ESS is still reported.
    _, off_metrics = _grads(tiny_llama(vocab_size=VOCAB), _group(rollout), _cfg(), TisConfig(enabled=False))
    assert "tis/effective_sample_size" in off_metrics


def test_batch_normalized_tis_matches_its_weights_mean():
    """tis.batch_normalize rescales all weights to mean 1: uniformly truncated weights become 1."""
    rollout = _rollout_logprobs_5x_below_trainer()
    plain, _ = _grads(tiny_llama(vocab_size=VOCAB), _group(rollout), _cfg(), TisConfig(enabled=False))
    tis = TisConfig(enabled=True, upper_bound=2.0, batch_normalize=True)
    normalized, _ = _grads(tiny_llama(vocab_size=VOCAB), _group(rollout), _cfg(), tis)
    for name in plain:
        torch.testing.assert_close(normalized[name], plain[name], rtol=1e-4, atol=1e-7)


def test_ppo_clip_stops_the_gradient_beyond_the_upper_range():
    logprobs = torch.tensor([[0.0, 0.0]], requires_grad=True)
    old = torch.tensor([[-0.5, -0.1]])  # ratios e^0.5 = 1.65 (beyond 1.28) and e^0.1 = 1.105 (inside)
    loss, metrics = grpo_loss(
        LossInputs(logprobs=logprobs, old_logprobs=old, advantages=torch.tensor([1.0]), loss_mask=torch.ones(1, 2)),
        _cfg(eps_clip_high=0.28),
        total_samples=1,
    )
    loss.backward()
    assert logprobs.grad[0, 0] == 0.0
    assert logprobs.grad[0, 1] == pytest.approx(-math.exp(0.1) / 2, rel=1e-5)
    assert metrics["train/pg_clipfrac"] == pytest.approx(0.5)


def test_low_var_kl_is_zero_at_the_reference_and_positive_elsewhere():
    logprobs = torch.tensor([-1.0, -2.0, -0.5])
    assert low_var_kl(logprobs, logprobs).abs().max() == 0.0
    assert bool((low_var_kl(logprobs, logprobs + torch.tensor([0.3, -0.7, 1.0])) > 0).all())


def test_group_shared_prompt_forward_equals_separate_sequences():
    model = tiny_llama(vocab_size=VOCAB)
    with torch.no_grad():
        shared = score_responses(model, PROMPT, RESPONSES, temperature=0.8).logprobs
        for i, response in enumerate(RESPONSES):
            ids = torch.tensor([PROMPT + response])
            logits = model(input_ids=ids).logits[0, len(PROMPT) - 1 : -1] / 0.8
            expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(response).unsqueeze(-1)).squeeze(-1)
            torch.testing.assert_close(shared[i, : len(response)], expected, rtol=1e-4, atol=1e-5)
            assert shared[i, len(response) :].abs().sum() == 0


def _plain_scores(model, prompt: list[int], responses: list[list[int]], temperature: float):
    """Reference: each sequence through the whole model, full-vocabulary logits, no sharing, no slices."""
    logprobs, entropies = [], []
    for response in responses:
        logits = model(input_ids=torch.tensor([prompt + response])).logits[0, len(prompt) - 1 : -1] / temperature
        log_probs = torch.log_softmax(logits.float(), -1)
        logprobs.append(log_probs.gather(-1, torch.tensor(response).unsqueeze(-1)).squeeze(-1))
        entropies.append(-(log_probs.exp() * log_probs).sum(-1))
    return logprobs, entropies


@pytest.mark.slow
@pytest.mark.parametrize("chunk_tokens, checkpointing", [(0, False), (7, True)])
def test_sliced_vocabulary_projection_equals_the_plain_computation_on_smollm2(chunk_tokens, checkpointing):
    """Logprobs, entropies and every weight's gradient (tied embedding / LM head included) of the real
    SmolLM2-135M match a plain full-logits forward per sequence, with the vocabulary projection in
    checkpointed slices of 7 tokens and the decoder layers checkpointed (recomputed over the shared
    prompt's cache), or neither."""
    from searchr1.models.loading import checkpoint_layers, load_model
    from tests.support.local_trainer import SMOLLM2, smollm2_tokenizer

    tok = smollm2_tokenizer()
    prompt = tok.encode("Question: who made the Ruby Lamp? Answer with a search.", add_special_tokens=False)
    responses = [
        tok.encode(
            "<search>Ruby Lamp</search> <information>made by Vessa</information> <answer>Vessa",
            add_special_tokens=False,
        ),
        tok.encode("<answer>Orlan</answer>", add_special_tokens=False),
    ]
    weights = [torch.linspace(-1.0, 1.0, len(r)) for r in responses]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared small CPU runs one thread ~10x faster than several
    try:
        model = load_model(SMOLLM2).train()  # train mode: checkpointing is active (SmolLM2 has no dropout)
        logprobs, entropies = _plain_scores(model, prompt, responses, 0.7)
        sum(((lp * w).sum() + 0.1 * e.sum()) for lp, e, w in zip(logprobs, entropies, weights)).backward()
        expected = {n: p.grad.clone() for n, p in model.named_parameters()}
        model.zero_grad()
        if checkpointing:
            checkpoint_layers(model)
        scores = score_responses(
            model, prompt, responses, temperature=0.7, with_entropy=True, chunk_tokens=chunk_tokens
        )
        loss = 0.0
        for i, (lp, e, w) in enumerate(zip(logprobs, entropies, weights)):
            n = len(responses[i])
            torch.testing.assert_close(scores.logprobs[i, :n], lp.detach(), rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(scores.entropy[i, :n], e.detach(), rtol=1e-5, atol=1e-5)
            loss = loss + (scores.logprobs[i, :n] * w).sum() + 0.1 * scores.entropy[i, :n].sum()
        loss.backward()
        for name, param in model.named_parameters():
            # Relative to the gradient's norm: summation order differs (shared prompt, slices), a few of
            # the 28M embedding entries differ by ~5e-5 in absolute terms; the CPU's kernels move it too
            # (a layer norm's weight: 0.5e-5 on one machine, 1.3e-5 on another).
            error = float((param.grad - expected[name]).norm() / expected[name].norm().clamp_min(1e-12))
            assert error < 5e-5, (name, error)
    finally:
        torch.set_num_threads(threads)


def test_the_update_logs_its_progress(monkeypatch, caplog):
    """The update is most of a CPU step: the console shows it moving, one micro-batch at a time."""
    from searchr1.engines import progress

    monkeypatch.setattr(progress, "EVERY_S", 0.0)
    model = tiny_llama(vocab_size=VOCAB)
    with caplog.at_level("INFO", logger="searchr1.trainers.local"):
        grpo_update(
            model, None, [_group()], torch.optim.SGD(model.parameters(), lr=0.0), LocalTrainerConfig(micro_batch_size=1),
            _cfg(), TisConfig(), temperature=1.0, pad_token_id=0, label="step 3 update",
        )  # fmt: skip
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step 3 update: ")]
    assert [line.split(", ", 1)[1] for line in lines] == [
        "1 of 2 samples scored and back-propagated",
        "2 of 2 samples scored and back-propagated",
    ]


def _lengths_group(lengths: list[int], prompt: int) -> Group:
    return Group([1] * prompt, [[2] * n for n in lengths], [[1] * n for n in lengths], [], torch.zeros(len(lengths)))


@pytest.mark.parametrize(
    "lengths,prompt,size,batches",
    [
        # The quickstart's first group: one batch runs 5 x 477 positions and the prompt; apart, 2014 in all.
        ([161, 477, 438, 243, 250], 155, 8, [(0, 3, 4), (1, 2)]),
        ([200, 200, 200, 200, 200], 155, 8, [(0, 1, 2, 3, 4)]),  # nothing to save: one prompt pass
        ([30, 31, 32, 33], 500, 8, [(0, 1, 2, 3)]),  # a long prompt outweighs the padding
        ([200, 200, 200, 200, 200], 155, 2, [(0,), (1, 2), (3, 4)]),  # never more than micro_batch_size
        ([8, 6], 6, 8, [(0, 1)]),  # in the group's order within a micro-batch
    ],
)
def test_micro_batches_put_responses_of_similar_length_together(lengths, prompt, size, batches):
    assert [c.rows for c in chunks_of([_lengths_group(lengths, prompt)], size)] == batches
