"""The engine computes what it always computed: SmolLM2-135M with the shipped LoRA warm start, greedy
(float32), gives the token ids recorded from the engine before it was rewritten for speed (commit
e1c7ae2's continuous-batching engine over Hugging Face's forward and a PEFT adapter), and logprobs
within float tolerance of the recorded ones.

The case is the quickstart's rollout shape, driven through ``generate`` alone: questions from the
synthetic split, two samples per prompt sharing one prefill, three turns of up to 64 tokens ending at
a closing tag, each later turn extending the previous one plus a fixed observation (cached prefixes). Regenerate the record (only on purpose: it is the reference)
with ``SEARCHR1_RECORD_ENGINE=1 python3 -m pytest tests/test_engines_greedy.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from searchr1.data.prompt import make_prompt
from searchr1.engines.base import SamplingParams
from searchr1.engines.local import LocalEngine
from searchr1.models.loading import load_policy
from searchr1.rollout import prompt_ids
from tests.support.local_trainer import SMOLLM2

RECORD = Path(__file__).parent / "data" / "engine_greedy_smollm2.json"
WARM_START = "pypi:searchr1/warm_starts/smollm2-135m-synthetic"
QUESTIONS = [
    "Which river flows through the city where Zeso Memen was born?",
    "In what year was the Fozamum lamp invented?",
    "In which country was Braidrous Bravedro born?",
    "In which city was Zetu Pemer born?",
]
SAMPLES, TURNS = 2, 3
GREEDY = SamplingParams(max_new_tokens=64, temperature=0.0, stop=("</search>", "</answer>"))
OBSERVATION = (
    '\n\n<information>Doc 1(Title: "Zeso Memen") Zeso Memen is a painter born in Pelgrad in 1811.\n'
    'Doc 2(Title: "Pelgrad") Pelgrad is a city in Fesaisene. The Lisam River flows through Pelgrad.\n'
    'Doc 3(Title: "Fozamum lamp") The Fozamum lamp was invented in 1808 in Soziwick.\n</information>\n\n'
)
LOGPROB_TOLERANCE = 2e-4


async def _greedy_rollout(tokenizer) -> list[dict]:
    policy = load_policy(SMOLLM2, WARM_START, 16).eval().requires_grad_(False)
    prompts = [prompt_ids(tokenizer, [{"role": "user", "content": make_prompt(q)}]) for q in QUESTIONS]
    observation = tokenizer.encode(OBSERVATION, add_special_tokens=False)
    engine = LocalEngine(policy, tokenizer, max_batch=16, seed=0)

    async def turns(prompt: list[int]) -> dict:
        ids, record = list(prompt), {"token_ids": [], "logprobs": [], "finish_reasons": []}
        for _ in range(TURNS):
            out = await engine.generate(ids, GREEDY)
            record["token_ids"].append(out.token_ids)
            record["logprobs"].append(out.logprobs)
            record["finish_reasons"].append(out.finish_reason)
            ids += out.token_ids + observation
        return record

    try:
        return list(await asyncio.gather(*(turns(p) for p in prompts for _ in range(SAMPLES))))
    finally:
        await engine.close()


@pytest.mark.slow
async def test_greedy_ids_and_logprobs_match_the_recorded_engine(tokenizer):
    got = await _greedy_rollout(tokenizer)
    if os.environ.get("SEARCHR1_RECORD_ENGINE") == "1":
        RECORD.write_text(json.dumps(got) + "\n")
    recorded = json.loads(RECORD.read_text())
    assert [t["token_ids"] for t in got] == [t["token_ids"] for t in recorded]
    assert [t["finish_reasons"] for t in got] == [t["finish_reasons"] for t in recorded]
    assert "stop" in {r for t in recorded for r in t["finish_reasons"]}  # turns end at tags, not only at 64
    for mine, theirs in zip(got, recorded):
        for a, b in zip(mine["logprobs"], theirs["logprobs"]):
            assert a == pytest.approx(b, abs=LOGPROB_TOLERANCE)
