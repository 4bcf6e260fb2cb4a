import asyncio

import pytest

from searchr1.config.schema import RolloutConfig
from searchr1.rollout import prompt_ids
from searchr1.tools.grammar import SEARCH_GRAMMAR
from searchr1.rollout.loop import run_batch, run_trajectory
from searchr1.tools.search import search_toolbox
from tests.support.scripted import ScriptedEngine, ScriptedSearch, Turn, fake_logprob, smollm2_tokenizer

FAILURE = "search is down"
SEARCH = "<think>Look it up.</think>\n<search>capital of France</search>"
ANSWER = "<think>Found it.</think>\n<answer>Paris</answer>"


@pytest.fixture(scope="module")
def tok():
    return smollm2_tokenizer()


@pytest.fixture(scope="module")
def prompt(tok):
    return prompt_ids(tok, [{"role": "user", "content": "Question: What is the capital of France?"}])


async def roll(tok, prompt, turns, cfg=None, search=None, honour_stop=True, topk=3):
    cfg = cfg or RolloutConfig()
    engine = ScriptedEngine(tok, list(turns), honour_stop=honour_stop)
    search = search or ScriptedSearch()
    tools = search_toolbox(search, topk, FAILURE)
    traj = await run_trajectory(prompt, engine=engine, tools=tools, tokenizer=tok, rollout_cfg=cfg)
    return traj, engine, search


def masked_text(tok, traj):
    return tok.decode([t for t, m in zip(traj.response_ids, traj.loss_mask) if m == 0], skip_special_tokens=False)


def model_text(tok, traj):
    return tok.decode([t for t, m in zip(traj.response_ids, traj.loss_mask) if m == 1], skip_special_tokens=False)


async def test_search_then_answer(tok, prompt):
    traj, engine, search = await roll(tok, prompt, [Turn(SEARCH), Turn(ANSWER)], topk=2)
    assert (traj.status, traj.turns, traj.search_calls, traj.final_answer) == ("completed", 2, 1, "Paris")
    assert traj.queries == ["capital of France"] and search.topk_seen == [2]
    assert model_text(tok, traj) == SEARCH + ANSWER
    assert masked_text(tok, traj).startswith('\n\n<information>Doc 1(Title: "capital of France 0")')
    assert masked_text(tok, traj).endswith("</information>\n\n")
    assert traj.observation_tokens == traj.loss_mask.count(0)
    assert traj.response_text == tok.decode(traj.response_ids, skip_special_tokens=False)
    assert [p.stop for _, p in engine.calls] == [SEARCH_GRAMMAR.stop_tags, SEARCH_GRAMMAR.stop_tags]


async def test_token_in_token_out(tok, prompt):
    traj, engine, _ = await roll(tok, prompt, [Turn(SEARCH), Turn("no action here"), Turn(ANSWER)])
    full = traj.prompt_ids + traj.response_ids
    for input_ids, _ in engine.calls:
        assert input_ids == full[: len(input_ids)]  # every turn continues from the exact ids so far
    model_positions = [i for i, m in enumerate(traj.loss_mask) if m == 1]
    for i in model_positions:  # logprobs are the engine's, at the engine's positions
        assert traj.rollout_logprobs[i] == fake_logprob(len(prompt) + i, traj.response_ids[i])


@pytest.mark.parametrize("honour_stop", [True, False])
async def test_nothing_generated_after_the_closing_tag_is_kept(tok, prompt, honour_stop):
    invented = SEARCH + "\n\n<information>Doc 1(Title: Invented) made up</information>\n\n<answer>Lyon</answer>"
    traj, _, _ = await roll(tok, prompt, [Turn(invented), Turn(ANSWER)], honour_stop=honour_stop)
    assert "Invented" not in traj.response_text and "Lyon" not in traj.response_text
    assert model_text(tok, traj) == SEARCH + ANSWER
    assert traj.final_answer == "Paris"


async def test_stop_at_tags_off_sends_no_stop_strings_but_still_cuts(tok, prompt):
    cfg = RolloutConfig(stop_at_tags=False)
    traj, engine, _ = await roll(tok, prompt, [Turn(SEARCH + " and more"), Turn(ANSWER)], cfg=cfg, honour_stop=False)
    assert all(p.stop == () for _, p in engine.calls)
    assert model_text(tok, traj) == SEARCH + ANSWER


@pytest.mark.parametrize("final_turn,generations,searches", [(True, 3, 2), (False, 2, 1)])
async def test_max_turns_then_one_final_generation_without_search(tok, prompt, final_turn, generations, searches):
    cfg = RolloutConfig(max_turns=2, final_turn=final_turn)
    traj, engine, _ = await roll(tok, prompt, [Turn(SEARCH)] * 5, cfg=cfg)
    assert len(engine.calls) == traj.turns == generations
    assert traj.search_calls == searches  # the last generation's search is never executed
    assert traj.loss_mask[-1] == 1  # so the trajectory never ends on an observation
    assert (traj.status, traj.final_answer) == ("completed", None)


async def test_invalid_action_gets_the_masked_correction_and_loses_its_eos(tok, prompt):
    cfg = RolloutConfig()
    traj, _, _ = await roll(tok, prompt, [Turn("I am not sure<|im_end|>"), Turn(ANSWER)], cfg=cfg)
    assert traj.invalid_actions == 1 and traj.final_answer == "Paris"
    assert masked_text(tok, traj) == cfg.invalid_action_text
    assert traj.response_text == "I am not sure" + cfg.invalid_action_text + ANSWER
    assert traj.observation_tokens == 0


async def test_final_generation_keeps_its_eos_and_gets_no_correction(tok, prompt):
    cfg = RolloutConfig(max_turns=1)
    traj, _, _ = await roll(tok, prompt, [Turn(SEARCH), Turn("I give up<|im_end|>")], cfg=cfg)
    assert traj.response_ids[-1] == tok.eos_token_id and traj.loss_mask[-1] == 1
    assert traj.invalid_actions == 1 and traj.status == "completed"


async def test_per_turn_budget_is_the_smaller_of_turn_cap_and_remaining(tok, prompt):
    cfg = RolloutConfig(max_turn_tokens=40, max_response_len=100)
    traj, engine, _ = await roll(tok, prompt, [Turn(SEARCH), Turn(ANSWER)], cfg=cfg, topk=1)
    first, second = (p.max_new_tokens for _, p in engine.calls)
    used_before_second = len(engine.calls[1][0]) - len(prompt)
    assert first == 40 and second == min(40, 100 - used_before_second)


async def test_running_out_of_budget_in_a_turn_truncates(tok, prompt):
    cfg = RolloutConfig(max_turn_tokens=12, max_response_len=12)
    traj, _, _ = await roll(tok, prompt, [Turn("word " * 50)], cfg=cfg)
    assert traj.status == "truncated" and len(traj.response_ids) == 12
    assert len(traj.loss_mask) == len(traj.rollout_logprobs) == 12


async def test_an_observation_that_overflows_the_budget_is_cut_and_truncates(tok, prompt):
    cfg = RolloutConfig(max_turn_tokens=40, max_response_len=40)
    traj, engine, _ = await roll(tok, prompt, [Turn(SEARCH), Turn(ANSWER)], cfg=cfg)
    assert traj.status == "truncated" and len(traj.response_ids) == 40
    assert len(engine.calls) == 1 and traj.loss_mask[-1] == 0


async def test_observations_are_cut_at_max_obs_tokens(tok, prompt):
    cfg = RolloutConfig(max_obs_tokens=7)
    traj, _, _ = await roll(tok, prompt, [Turn(SEARCH), Turn(ANSWER)], cfg=cfg)
    assert traj.observation_tokens == 7 == traj.loss_mask.count(0)
    assert traj.status == "completed"


async def test_engine_abort_keeps_the_partial_sample(tok, prompt):
    traj, engine, _ = await roll(tok, prompt, [Turn(SEARCH), Turn("<think>half a thou", abort=True), Turn(ANSWER)])
    assert traj.status == "aborted" and len(engine.calls) == 2
    assert traj.response_text.endswith("<think>half a thou")
    assert len(traj.response_ids) == len(traj.loss_mask) == len(traj.rollout_logprobs)


async def test_failed_search_shows_the_failure_text(tok, prompt):
    failing = "<search>please fail</search>"
    traj, _, _ = await roll(tok, prompt, [Turn(failing), Turn(ANSWER)])
    assert traj.search_failures == 1 and traj.search_calls == 1
    assert masked_text(tok, traj) == f"\n\n<information>{FAILURE}</information>\n\n"


async def test_search_time_is_recorded(tok, prompt):
    class SlowSearch(ScriptedSearch):
        async def search(self, query, topk):
            await asyncio.sleep(0.05)
            return await super().search(query, topk)

    traj, _, _ = await roll(tok, prompt, [Turn(SEARCH), Turn(ANSWER)], search=SlowSearch())
    assert 0.05 <= traj.tool_seconds < 1.0


async def test_run_batch_keeps_order_and_runs_concurrently(tok, prompt):
    class SlowEngine(ScriptedEngine):
        async def generate(self, input_ids, params):
            await asyncio.sleep(0.05)
            return await super().generate(input_ids, params)

    class PerPrompt:
        """Answers with the prompt's last token so each trajectory can be matched to its prompt."""

        def __init__(self):
            self.engines = {}

        async def generate(self, input_ids, params):
            key = input_ids[0]
            engine = self.engines.setdefault(key, SlowEngine(tok, [Turn(f"<answer>{key}</answer>")]))
            return await engine.generate(input_ids, params)

    prompts = [[100 + i] + prompt for i in range(8)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    trajs = await run_batch(
        prompts,
        engine=PerPrompt(),
        tools=search_toolbox(ScriptedSearch(), 3, FAILURE),
        tokenizer=tok,
        rollout_cfg=RolloutConfig(),
    )
    assert loop.time() - started < 0.3  # 8 x 50 ms sequentially would be 0.4 s
    assert [t.final_answer for t in trajs] == [str(100 + i) for i in range(8)]
    assert [t.prompt_ids for t in trajs] == prompts
