"""rollout.action_format=tool_calls: JSON tool calls through the model's chat template, results as the
template's tool messages (masked), malformed calls as error observations; never a crash or a lost sample."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

import searchr1
from searchr1.config import ConfigError, to_typed
from searchr1.config.schema import RolloutConfig
from searchr1.rollout.loop import run_trajectory
from searchr1.rollout.tokens import policy_prompt_ids
from searchr1.tools.calculator import TOOL as CALCULATOR, Calculator, CalculatorConfig
from searchr1.tools.chat_format import ToolCallFormat
from searchr1.tools.grammar import MALFORMED, ToolCallGrammar
from searchr1.tools.search import TOOL as SEARCH, SearchTool
from searchr1.tools.toolbox import BoundTool, Toolbox
from searchr1.trainers.miles import generate as miles_generate
from searchr1.trainers.miles import runtime as miles_runtime
from tests.support.compose import compose_config
from tests.support.miles_fakes import FakeSample
from tests.support.miles_hooks import write_args
from tests.support.scripted import ScriptedEngine, ScriptedSearch, Turn
from tests.support.sglang_server import serve_fake_sglang

TEMPLATE = Path(searchr1.__file__).parent / "models" / "templates" / "chatml_tools.jinja"
CALL = '<think>Look it up.</think>\n<tool_call>\n{"name": "search", "arguments": {"query": "capital of France"}}\n</tool_call>'
ANSWER = "<think>Found it.</think>\n<answer>Paris</answer>"


@pytest.fixture
def tool_tokenizer(tokenizer):
    tok = copy.copy(tokenizer)
    tok.chat_template = TEMPLATE.read_text()
    return tok


def _toolbox(tok) -> Toolbox:
    specs = [SEARCH, CALCULATOR]
    clients = [SearchTool(ScriptedSearch(), 1, "search failed"), Calculator(CalculatorConfig())]
    return Toolbox([BoundTool(s, c) for s, c in zip(specs, clients)], ToolCallFormat(specs, tok))


@pytest.mark.parametrize(
    "turn,error",
    [
        ("<tool_call>{'name': 'search'}</tool_call>", "not valid JSON"),
        ('<tool_call>{"name": "browse", "arguments": {"url": "x"}}</tool_call>', "unknown tool 'browse'"),
        ('<tool_call>{"name": "search", "arguments": {}}</tool_call>', "exactly one argument, 'query' (got: none)"),
        ('<tool_call>{"name": "search", "arguments": {"query": "a", "k": 3}}</tool_call>', "(got: query, k)"),
        ('<tool_call>{"name": "search", "arguments": {"query": "a"}} thanks</tool_call>', "not valid JSON"),
        ('<tool_call>{"name": "search"}<tool_call>{"name": "x"}</tool_call>', "two tool calls in one turn"),
    ],
)
def test_each_malformed_call_has_its_own_error(turn, error):
    action = ToolCallGrammar({"search": "query"}).parse(turn)
    assert action.kind == MALFORMED and error in action.error


async def test_a_call_and_its_tool_message_are_exactly_what_the_template_renders(tool_tokenizer):
    tools = _toolbox(tool_tokenizer)
    prompt = policy_prompt_ids(tool_tokenizer, tools, [], "What is the capital of France")
    engine = ScriptedEngine(tool_tokenizer, [Turn(CALL), Turn(ANSWER)])
    traj = await run_trajectory(
        prompt, engine=engine, tools=tools, tokenizer=tool_tokenizer, rollout_cfg=RolloutConfig()
    )
    assert traj.final_answer == "Paris" and [c.tool for c in traj.tool_calls] == ["search"]
    assert engine.calls[0][1].stop == ("</tool_call>", "</answer>")
    prompt_text = tool_tokenizer.decode(prompt)
    assert '<tools>\n{"type": "function", "function": {"name": "search"' in prompt_text  # the template's section
    # The incremental sequence equals the template's own rendering of the whole conversation.
    result = 'Doc 1(Title: "capital of France 0") About capital of France, fact number 0.'
    conversation = [
        {"role": "user", "content": tools.prompt_messages([], "What is the capital of France")[0]["content"]},
        {"role": "assistant", "content": CALL},
        {"role": "tool", "content": result},
        {"role": "assistant", "content": ANSWER},
    ]
    full = tool_tokenizer.apply_chat_template(conversation, tools=tools.template_tools, tokenize=False)
    assert full.startswith(tool_tokenizer.decode(traj.prompt_ids + traj.response_ids))
    masked = tool_tokenizer.decode([t for t, m in zip(traj.response_ids, traj.loss_mask) if not m])
    assert (
        masked
        == f"<|im_end|>\n<|im_start|>user\n<tool_response>\n{result}\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    )


async def test_a_malformed_call_is_an_error_observation_and_an_invalid_action(tool_tokenizer):
    tools = _toolbox(tool_tokenizer)
    prompt = policy_prompt_ids(tool_tokenizer, tools, [], "Q")
    bad = '<tool_call>{"name": "browse", "arguments": {"url": "x"}}</tool_call>'
    engine = ScriptedEngine(tool_tokenizer, [Turn(bad), Turn(ANSWER)])
    traj = await run_trajectory(
        prompt, engine=engine, tools=tools, tokenizer=tool_tokenizer, rollout_cfg=RolloutConfig()
    )
    masked = tool_tokenizer.decode([t for t, m in zip(traj.response_ids, traj.loss_mask) if not m])
    assert "<tool_response>\nError: unknown tool 'browse'; the tools are search, calculator\n</tool_response>" in masked
    assert traj.invalid_actions == 1 and traj.tool_calls == [] and traj.final_answer == "Paris"


def test_a_template_without_a_tools_section_fails_in_one_line(tokenizer):
    with pytest.raises(ConfigError, match="model.chat_template"):
        ToolCallFormat([SEARCH], tokenizer)  # SmolLM2's own template ignores tools


def test_action_format_is_checked_and_smollm2_ships_a_tools_template():
    with pytest.raises(ConfigError, match="rollout.action_format='json' is not allowed"):
        to_typed(compose_config(["rollout.action_format=json"]))
    cfg = to_typed(compose_config(["rollout.action_format=tool_calls"]))
    assert cfg.model.chat_template.endswith("chatml_tools.jinja")


def test_the_shipped_template_renders_tool_free_conversations_as_smollm2s_own(tokenizer, tool_tokenizer):
    messages = [
        {"role": "user", "content": "Q?"},
        {"role": "assistant", "content": "A"},
        {"role": "user", "content": "B"},
    ]
    for generation_prompt in (True, False):
        mine = tool_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
        theirs = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
        assert mine == theirs


def _call_then_answer(context: str) -> str:
    return ANSWER + "<|im_end|>" if "<tool_response>" in context else CALL


async def test_the_miles_generate_hook_speaks_tool_calls(tmp_path, tool_tokenizer):
    async with serve_fake_sglang(tool_tokenizer, _call_then_answer) as fake:
        args = write_args(tmp_path, "http://127.0.0.1:9", fake.url, "rollout.action_format=tool_calls")
        messages = [{"role": "user", "content": "Question: What is the capital of France?"}]
        sample = FakeSample(group_index=0, index=0, prompt=messages, label={"ground_truth": {"target": ["Paris"]}})
        try:
            await miles_generate.generate_sample(args, sample, tool_tokenizer)
        finally:
            await miles_runtime.close_runtimes()
    assert sample.status is FakeSample.Status.COMPLETED, sample.metadata
    sample.validate()
    assert "</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n" in sample.response
    assert (
        sample.response.endswith("<answer>Paris</answer>")
        and sample.metadata["searchr1"]["tool_calls"][0][0] == "search"
    )
    assert fake.requests[0]["sampling_params"]["stop"] == ["</tool_call>", "</answer>"]
    assert '"name": "search"' in tool_tokenizer.decode(fake.requests[0]["input_ids"])  # rendered with the tools


async def test_a_turn_with_neither_call_nor_answer_is_told_how_to_call_a_function(tool_tokenizer):
    tools = _toolbox(tool_tokenizer)
    prompt = policy_prompt_ids(tool_tokenizer, tools, [], "What is the capital of France")
    engine = ScriptedEngine(tool_tokenizer, [Turn("<think>Hmm.</think> I will look it up."), Turn(ANSWER)])
    traj = await run_trajectory(
        prompt, engine=engine, tools=tools, tokenizer=tool_tokenizer, rollout_cfg=RolloutConfig()
    )
    correction = tool_tokenizer.decode(engine.calls[1][0][len(prompt) :])
    assert "between <tool_call> and </tool_call>" in correction and "<search>" not in correction
    assert traj.final_answer == "Paris" and traj.tool_calls == []
