"""The calculator as a tool, and several tools in one trajectory (search, then arithmetic, then the answer)."""

from __future__ import annotations

import aiohttp
import pytest

from searchr1.config import to_typed
from searchr1.config.schema import RolloutConfig
from searchr1.rollout.loop import run_trajectory
from searchr1.rollout.tokens import prompt_ids
from searchr1.tools.base import ToolContext
from searchr1.tools.calculator import Calculator, CalculatorConfig
from searchr1.tools.prompt import tools_prompt
from searchr1.tools.registry import selected_nodes
from searchr1.tools.toolbox import BoundTool, Toolbox, open_toolbox
from tests.support.compose import compose_config
from tests.support.scripted import ScriptedEngine, ScriptedSearch, Turn

SEARCH = "<think>Find the years.</think>\n<search>Vokraigar founded</search>"
CALCULATE = "<think>Subtract.</think>\n<calculator>1952 - 1910</calculator>"
ANSWER = "<think>So 42.</think>\n<answer>42</answer>"


@pytest.mark.parametrize(
    "expression,error",
    [
        ("10**10**10", "too large"),
        ("1/0", "division by zero"),
        ("garbage", "unknown"),
        ("1" * 1_000_000, "too long"),
        ("(" * 500 + "1" + ")" * 500, "too long"),
    ],
)
async def test_a_bad_expression_is_a_failed_call_the_model_can_read(expression, error):
    output = await Calculator(CalculatorConfig()).call(expression)
    assert output.failed and error in output.text and output.text.startswith("Error: ")


async def test_calculator_answers_exactly_and_switches_off():
    assert (await Calculator(CalculatorConfig()).call("(1990 - 1952) * 2")).text == "76"
    assert (await Calculator(CalculatorConfig()).call("7 / 4")).text == "1.75"
    off = await Calculator(CalculatorConfig(enabled=False)).call("1 + 1")
    assert off.failed and "unavailable" in off.text


def _toolbox() -> Toolbox:
    from searchr1.tools.search import TOOL as SEARCH_TOOL, SearchTool
    from searchr1.tools.calculator import TOOL as CALCULATOR_TOOL

    search = SearchTool(ScriptedSearch(), 2, "search failed")
    return Toolbox([BoundTool(SEARCH_TOOL, search), BoundTool(CALCULATOR_TOOL, Calculator(CalculatorConfig()))])


async def test_one_trajectory_calls_two_tools_and_max_turns_counts_both(tokenizer):
    tools = _toolbox()
    prompt_text = tools_prompt("How many years passed?", tools.specs)
    prompt = prompt_ids(tokenizer, [{"role": "user", "content": prompt_text}])
    # max_turns=2 tool calls; the third generation is the final turn: its calculator call is not executed.
    engine = ScriptedEngine(tokenizer, [Turn(SEARCH), Turn(CALCULATE), Turn(CALCULATE), Turn(ANSWER)])
    cfg = RolloutConfig(max_turns=2)
    traj = await run_trajectory(prompt, engine=engine, tools=tools, tokenizer=tokenizer, rollout_cfg=cfg)
    assert [c.tool for c in traj.tool_calls] == ["search", "calculator"]
    assert traj.turns == 3 and traj.final_answer is None and traj.search_calls == 1
    masked = tokenizer.decode([t for t, m in zip(traj.response_ids, traj.loss_mask) if not m])
    assert masked.startswith('\n\n<information>Doc 1(Title: "Vokraigar founded 0")')
    assert masked.endswith("\n\n<result>42</result>\n\n")
    assert engine.calls[0][1].stop == ("</search>", "</calculator>", "</answer>")
    for line in ("<search> query </search>", "<calculator> expression </calculator>", "between <result> and </result>"):
        assert line in prompt_text


async def test_an_invalid_turn_names_every_tool_in_its_correction(tokenizer):
    tools = _toolbox()
    prompt = prompt_ids(tokenizer, [{"role": "user", "content": "Q?"}])
    engine = ScriptedEngine(tokenizer, [Turn("no tags"), Turn(ANSWER)])
    traj = await run_trajectory(prompt, engine=engine, tools=tools, tokenizer=tokenizer, rollout_cfg=RolloutConfig())
    correction = tokenizer.decode([t for t, m in zip(traj.response_ids, traj.loss_mask) if not m])
    assert "<search> and </search>, <calculator> and </calculator>" in correction
    assert traj.invalid_actions == 1 and traj.final_answer == "42"


async def test_tools_from_config_keep_the_configured_order(tokenizer):
    cfg = to_typed(compose_config(["tools=[calculator,search]", "calculator.decimals=3"]))
    async with aiohttp.ClientSession() as session:
        context = ToolContext(session, backend=cfg.backend, retriever_urls=["http://127.0.0.1:9"])
        tools = open_toolbox(selected_nodes(cfg), context)
        observation, call = await tools.call("calculator", "1/3")
        await tools.close()
    assert [s.name for s in tools.specs] == ["calculator", "search"]
    assert observation == "\n\n<result>0.333</result>\n\n" and not call.failed
