"""The loop over HTTP: SGLang's /generate protocol (scripted policy, real tokenizer) + the real retriever."""

import aiohttp

from searchr1.config.schema import LocalBackendConfig, RolloutConfig, SearchConfig
from searchr1.data.prompt import prompt_messages
from searchr1.rollout import prompt_ids
from searchr1.rollout.loop import run_batch
from searchr1.tools.search import search_toolbox
from searchr1.engines.sglang import SGLangEngine
from searchr1.search.factory import build_search_backend
from tests.support.scripted import ScriptedSearch, search_then_answer_policy, smollm2_tokenizer
from tests.support.sglang_server import serve_fake_sglang

QUESTIONS = {
    "What is the capital of France": "Paris",
    "Who wrote Hamlet and Macbeth": "Shakespeare",
    "Which planet is the largest in the Solar System": "Jupiter",
}


async def test_loop_over_sglang_protocol_and_real_retriever(retriever):
    tok = smollm2_tokenizer()
    prompts = [prompt_ids(tok, prompt_messages(q)) for q in QUESTIONS]
    cfg = RolloutConfig(max_turns=2)
    async with aiohttp.ClientSession() as session, serve_fake_sglang(tok, search_then_answer_policy) as fake:
        search = build_search_backend(LocalBackendConfig(urls=[retriever.url]), SearchConfig(), session=session)
        tools = search_toolbox(search, 3, SearchConfig().failure_text)
        trajs = await run_batch(
            prompts, engine=SGLangEngine(fake.url, session, timeout_s=30), tools=tools, tokenizer=tok, rollout_cfg=cfg
        )
        stats = tools.stats_and_reset()
        await tools.close()

    assert [t.final_answer for t in trajs] == list(QUESTIONS.values())
    for traj, question in zip(trajs, QUESTIONS):
        assert (traj.status, traj.turns, traj.search_calls, traj.search_failures) == ("completed", 2, 1, 0)
        assert traj.queries == [question + "?"]
        assert traj.response_text.count("<information>") == 1  # ours; the policy's invented block was cut
        assert "invented by the policy" not in traj.response_text
        assert 1 <= traj.response_text.count("(Title: ") <= 3  # top-3 (BM25 skips non-matching docs)
        assert len(traj.response_ids) == len(traj.loss_mask) == len(traj.rollout_logprobs)
        assert traj.tool_seconds > 0
    # Every request carried the exact ids so far, and the stop strings.
    for payload in fake.requests:
        assert payload["sampling_params"]["stop"] == ["</search>", "</answer>"]
    sent = [tuple(p["input_ids"]) for p in fake.requests]
    assert len(sent) == 2 * len(trajs)
    for traj in trajs:
        before_answer = traj.loss_mask.index(0) + traj.observation_tokens
        assert tuple(traj.prompt_ids) in sent and tuple(traj.prompt_ids + traj.response_ids[:before_answer]) in sent
    assert stats["search/failure_rate"] == 0.0


async def test_engine_failures_abort_samples_without_failing_the_batch():
    tok = smollm2_tokenizer()
    prompts = [prompt_ids(tok, prompt_messages(q)) for q in QUESTIONS]
    async with aiohttp.ClientSession() as session, serve_fake_sglang(tok, search_then_answer_policy) as fake:
        fake.fail_status = 500
        trajs = await run_batch(
            prompts,
            engine=SGLangEngine(fake.url, session, timeout_s=30),
            tools=search_toolbox(ScriptedSearch(), 3, "failed"),
            tokenizer=tok,
            rollout_cfg=RolloutConfig(),
        )
    assert [(t.status, t.turns, t.response_ids) for t in trajs] == [("aborted", 1, [])] * len(prompts)
    assert [t.prompt_ids for t in trajs] == prompts
