"""The embedded engine: continuous batching gives the same tokens and logprobs as one-at-a-time
decoding, logprobs match the trainer's recomputation, stop strings end a turn with their tokens."""

from __future__ import annotations

import asyncio

import pytest
import torch

from searchr1.engines import local
from searchr1.engines.base import SamplingParams
from searchr1.engines.decoder import CACHE_CHUNK
from searchr1.engines.local import LocalEngine
from searchr1.trainers.local.logprobs import score_responses
from tests.support.local_trainer import tiny_llama

GREEDY = SamplingParams(max_new_tokens=12, temperature=0.0)


def _prompts(tokenizer, count: int) -> list[list[int]]:
    texts = ["Who wrote the book?", "<search> capital of France", "Hello", "A much longer prompt " * 4]
    return [tokenizer.encode(texts[i % len(texts)] + f" #{i}", add_special_tokens=False) for i in range(count)]


async def test_batched_greedy_equals_one_at_a_time(tokenizer):
    """5 requests of different lengths on 3 slots: rows join mid-flight and retire while others run
    on (the engine moves a running row into a retired row's slot)."""
    model = tiny_llama()
    prompts = _prompts(tokenizer, 5)
    params = [SamplingParams(max_new_tokens=n, temperature=0.0) for n in (12, 5, 9, 3, 12)]
    single = LocalEngine(model, tokenizer, max_batch=1)
    alone = [await single.generate(p, sp) for p, sp in zip(prompts, params)]
    batched_engine = LocalEngine(model, tokenizer, max_batch=3)
    together = await asyncio.gather(*(batched_engine.generate(p, sp) for p, sp in zip(prompts, params)))
    for a, b, sp in zip(alone, together, params):
        assert a.token_ids == b.token_ids
        assert len(b.token_ids) == sp.max_new_tokens
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
        assert a.finish_reason == b.finish_reason == "length"
    await single.close()
    await batched_engine.close()


async def test_rows_longer_than_the_cache_chunk_keep_their_keys_and_values(tokenizer):
    """The KV cache grows in chunks while rows are in flight, keeping what it held."""
    model = tiny_llama()
    long = [tokenizer.encode("word " * (CACHE_CHUNK - 8 + i), add_special_tokens=False) for i in range(2)]
    params = SamplingParams(max_new_tokens=20, temperature=0.0)
    assert all(len(p) < CACHE_CHUNK < len(p) + params.max_new_tokens for p in long)
    engine = LocalEngine(model, tokenizer, max_batch=2)
    together = await asyncio.gather(*(engine.generate(p, params) for p in long))
    for prompt, out in zip(long, together):
        with torch.no_grad():
            scores = score_responses(model, prompt, [out.token_ids], temperature=1.0)
        assert scores.logprobs[0].tolist() == pytest.approx(out.logprobs, abs=1e-4)
    await engine.close()


async def test_identical_prompts_share_one_prefill(tokenizer):
    model = tiny_llama()
    engine = LocalEngine(model, tokenizer, max_batch=8, seed=1)
    prompt = _prompts(tokenizer, 1)[0]
    params = SamplingParams(max_new_tokens=6, temperature=1.0)
    outs = await asyncio.gather(*(engine.generate(prompt, params) for _ in range(5)))
    assert engine.stats.prefill_tokens == len(prompt)
    assert all(len(o.token_ids) == 6 for o in outs)
    assert len({tuple(o.token_ids) for o in outs}) > 1  # sampled, not copies
    await engine.close()


async def test_next_turn_reuses_the_cached_prefix(tokenizer):
    """Turn 2 (turn 1's ids + an observation) prefills only the new tokens, with the same result."""
    model = tiny_llama()
    prompts = _prompts(tokenizer, 3)
    observation = tokenizer.encode("\n\n<information>Doc 1</information>\n\n", add_special_tokens=False)
    cached, plain = LocalEngine(model, tokenizer, max_batch=4), LocalEngine(model, tokenizer, prefix_cache_tokens=0)
    first = await asyncio.gather(*(cached.generate(p, GREEDY) for p in prompts))
    # Keep only part of each turn (the loop cuts after a stop tag), then append the observation.
    second_inputs = [p + out.token_ids[:7] + observation for p, out in zip(prompts, first)]
    prefilled = cached.stats.prefill_tokens
    second = await asyncio.gather(*(cached.generate(ids, GREEDY) for ids in second_inputs))
    assert cached.stats.prefill_tokens - prefilled == 3 * len(observation)
    assert cached.stats.reused_tokens == sum(len(p) + 7 for p in prompts)
    for ids, out in zip(second_inputs, second):
        reference = await plain.generate(ids, GREEDY)
        assert out.token_ids == reference.token_ids
        assert out.logprobs == pytest.approx(reference.logprobs, abs=1e-4)
    await cached.close()
    await plain.close()


async def test_a_new_prompt_on_the_same_template_leaves_the_cached_turn_in_place(tokenizer):
    """A fresh prompt sharing only the template reuses it without evicting the turn it came from,
    so that turn's trajectory still prefills only its observation when it comes back."""
    model = tiny_llama()
    template = tokenizer.encode("Answer the question; search when you need to. Question: ", add_special_tokens=False)
    first, other = (template + tokenizer.encode(q, add_special_tokens=False) for q in ("Who wrote it?", "Where?"))
    observation = tokenizer.encode("\n\n<information>Doc 1</information>\n\n", add_special_tokens=False)
    engine = LocalEngine(model, tokenizer, max_batch=4)
    turn = await engine.generate(first, GREEDY)
    await engine.generate(other, GREEDY)
    assert engine.stats.reused_tokens == _shared(first, other)  # the template's KV, shared
    reused = engine.stats.reused_tokens
    await engine.generate(first + turn.token_ids[:7] + observation, GREEDY)
    assert engine.stats.reused_tokens - reused == len(first) + 7
    await engine.close()


async def test_the_prefix_cache_keeps_within_its_token_budget_newest_first(tokenizer):
    model = tiny_llama()
    prompts = _prompts(tokenizer, 6)
    budget = 2 * max(len(p) for p in prompts) + 2 * GREEDY.max_new_tokens
    engine = LocalEngine(model, tokenizer, max_batch=2, prefix_cache_tokens=budget)
    for prompt in prompts:  # one at a time: each retires a row into the cache
        await engine.generate(prompt, GREEDY)
        assert sum(len(entry.ids) for entry in engine._prefixes) <= budget
    assert engine._prefixes[-1].ids[: len(prompts[-1])] == prompts[-1]  # the newest stays
    assert len(engine._prefixes) < len(prompts)  # the oldest went
    await engine.close()


def _shared(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


async def test_sampled_logprobs_match_trainer_recomputation(tokenizer):
    model = tiny_llama()
    engine = LocalEngine(model, tokenizer, max_batch=4, seed=3)
    prompt = _prompts(tokenizer, 1)[0]
    params = SamplingParams(max_new_tokens=10, temperature=0.7, top_p=0.9)
    outs = await asyncio.gather(*(engine.generate(prompt, params) for _ in range(3)))
    with torch.no_grad():
        scores = score_responses(model, prompt, [o.token_ids for o in outs], temperature=0.7)
    for i, out in enumerate(outs):
        assert scores.logprobs[i, : len(out.token_ids)].tolist() == pytest.approx(out.logprobs, abs=1e-4)
    await engine.close()


async def test_stop_string_ends_the_turn_and_keeps_its_tokens(tokenizer, monkeypatch):
    """A model that always emits the tokens of '</search> tail' stops right after the tag."""
    target = tokenizer.encode("x</search> and more text", add_special_tokens=False)
    monkeypatch.setattr(local, "Decoder", lambda model, slots: _ScriptedDecoder(target))
    engine = LocalEngine(tiny_llama(), tokenizer, max_batch=2)
    out = await engine.generate([1, 2, 3], SamplingParams(max_new_tokens=20, temperature=0.0, stop=("</search>",)))
    text = tokenizer.decode(out.token_ids, skip_special_tokens=False)
    assert out.finish_reason == "stop"
    assert text.endswith("</search>") or ("</search>" in text and len(out.token_ids) < len(target))
    assert "more" not in text
    monkeypatch.setattr(local, "Decoder", lambda model, slots: _ScriptedDecoder([5, tokenizer.eos_token_id, 7]))
    eos = await LocalEngine(tiny_llama(), tokenizer).generate([1], GREEDY)
    assert eos.token_ids == [5, tokenizer.eos_token_id] and eos.finish_reason == "stop"


class _ScriptedDecoder:
    """Emits a fixed token sequence (by decode step) for one row, whatever the input: tests stop handling only."""

    def __init__(self, script: list[int], vocab: int = 49152) -> None:
        self.script, self.vocab, self.steps = script, vocab, 0

    def prefill_rows(self, first_slot: int, ids: list[list[int]], starts: list[int]) -> torch.Tensor:
        self.steps = 0
        return self._logits(len(ids))

    def decode(self, tokens: list[int], positions: list[int]) -> torch.Tensor:
        self.steps += 1
        return self._logits(len(tokens))

    def export(self, slot: int, length: int) -> torch.Tensor:
        return torch.zeros(0)

    def release(self) -> None:
        return None

    def _logits(self, rows: int) -> torch.Tensor:
        logits = torch.full((rows, self.vocab), -1e4)
        logits[:, self.script[min(self.steps, len(self.script) - 1)]] = 0.0
        return logits


async def test_greedy_requests_leave_the_sampling_draws_alone(tokenizer):
    """An eval (greedy) between two rollouts draws nothing: the sampled tokens after it are those of an
    engine that never ran it."""
    model = tiny_llama()
    prompt = _prompts(tokenizer, 1)[0]
    sampled = SamplingParams(max_new_tokens=8, temperature=1.0)
    with_eval = LocalEngine(model, tokenizer, max_batch=2, seed=5)
    await asyncio.gather(*(with_eval.generate(p, GREEDY) for p in _prompts(tokenizer, 2)))
    without_eval = LocalEngine(model, tokenizer, max_batch=2, seed=5)
    after = await with_eval.generate(prompt, sampled)
    assert after.token_ids == (await without_eval.generate(prompt, sampled)).token_ids
    await with_eval.close()
    await without_eval.close()


async def test_queued_later_turns_go_first_and_find_their_turn_still_cached(tokenizer):
    """Eight two-turn trajectories on two rows, with room in the prefix cache for two turns: each second
    turn (its first turn plus an observation) is admitted before the prompts still waiting, while its
    first turn is cached, and prefills only the observation."""
    model = tiny_llama()
    prompts = _prompts(tokenizer, 8)
    observation = tokenizer.encode("\n\n<information>Doc 1</information>\n\n", add_special_tokens=False)
    budget = 2 * (max(len(p) for p in prompts) + GREEDY.max_new_tokens)
    engine = LocalEngine(model, tokenizer, max_batch=2, prefix_cache_tokens=budget)

    async def two_turns(prompt: list[int]) -> int:
        turn = await engine.generate(prompt, GREEDY)
        await engine.generate(prompt + turn.token_ids + observation, GREEDY)
        return len(prompt) + len(turn.token_ids) - 1  # the turn's last token was never fed to the model

    cached_turns = await asyncio.gather(*(two_turns(p) for p in prompts))
    assert engine.stats.reused_tokens >= sum(cached_turns)
    await engine.close()


async def test_requests_admitted_together_share_prefill_forwards_by_length():
    """Four distinct prompts admitted in one round: the three of similar length run in one prefill forward,
    the much longer one in its own (padding it with them would run more than it saves); a repeated prompt
    copies its twin's row."""

    class Ids:  # ids only: no stop strings to decode
        eos_token_id, pad_token_id = None, 0

    engine = LocalEngine(tiny_llama(), Ids(), max_batch=8)
    forwards: list[list[int]] = []
    prefill_rows = engine._decoder.prefill_rows

    def spy(first_slot, ids, starts):
        forwards.append([len(row) - start for row, start in zip(ids, starts)])
        return prefill_rows(first_slot, ids, starts)

    engine._decoder.prefill_rows = spy
    prompts = [list(range(1, 1 + n)) for n in (10, 11, 12, 40)]
    params = SamplingParams(max_new_tokens=1, temperature=0.0)
    await asyncio.gather(*(engine.generate(p, params) for p in prompts + [prompts[0]]))
    assert forwards == [[10, 11, 12], [40]]
    assert engine.stats.prefill_tokens == 73
    await engine.close()
