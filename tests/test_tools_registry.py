"""The tool registry: tools come from entry points (a package's, or searchr1's own), each with a typed node,
and any of them runs through the rollout loop and the Miles generate hook like search does."""

from __future__ import annotations

import aiohttp
import pytest

from searchr1.config import ConfigError, to_typed
from searchr1.config.schema import RolloutConfig
from searchr1.metrics import rollout_metrics
from searchr1.reward import RewardBreakdown
from searchr1.rollout.loop import run_trajectory
from searchr1.rollout.tokens import prompt_ids
from searchr1.tools.base import ToolContext
from searchr1.tools.prompt import tools_prompt
from searchr1.tools.registry import selected_nodes, tool_specs
from searchr1.tools.toolbox import open_toolbox
from searchr1.trainers.miles import hooks
from searchr1.trainers.miles import generate as miles_generate
from searchr1.trainers.miles import rollout_log
from searchr1.trainers.miles import runtime as miles_runtime
from searchr1.trainers.miles import samples as miles_samples
from tests.support.compose import compose_config
from tests.support.miles_fakes import FakeSample
from tests.support.miles_hooks import write_args
from tests.support.reverse_tool import install_reverse_tool
from tests.support.scripted import ScriptedEngine, Turn
from tests.support.sglang_server import serve_fake_sglang

REVERSE_TURN = "<think>Reverse it.</think>\n<reverse>siraP</reverse>"
ANSWER_TURN = "<think>Done.</think>\n<answer>Paris</answer>"


@pytest.fixture
def reverse_tool(tmp_path, monkeypatch):
    return install_reverse_tool(monkeypatch, tmp_path / "site")


def test_searchr1s_own_tools_are_registered_like_any_package_s():
    assert {"search", "calculator", "http"} <= set(tool_specs())


def test_a_package_s_tool_gets_a_typed_node_and_a_one_line_typo(reverse_tool):
    cfg = to_typed(compose_config(["tools=[search,reverse]", "reverse.uppercase=true"]))
    assert cfg.tools == ["search", "reverse"] and cfg.reverse.uppercase is True
    with pytest.raises(Exception, match="reverse.uppercaze"):
        to_typed(compose_config(["tools=[search,reverse]", "reverse.uppercaze=true"]))


def test_an_unknown_tool_name_fails_in_one_line_with_a_close_match(reverse_tool):
    with pytest.raises(ConfigError, match=r"tools='revers' is not allowed \(did you mean 'reverse'\?\)"):
        to_typed(compose_config(["tools=[search,revers]"]))
    with pytest.raises(ConfigError, match="selects no tool"):
        to_typed(compose_config(["tools=[]"]))
    with pytest.raises(ConfigError, match="names a tool twice"):
        to_typed(compose_config(["tools=[search,search]"]))


def test_without_the_package_the_tool_is_unknown():
    with pytest.raises(ConfigError, match="tools='reverse' is not allowed"):
        to_typed(compose_config(["tools=[search,reverse]"]))


async def test_a_package_s_tool_runs_through_the_rollout_loop(reverse_tool, tokenizer):
    cfg = to_typed(compose_config(["tools=[search,reverse]", "reverse.uppercase=true"]))
    async with aiohttp.ClientSession() as session:
        tools = open_toolbox(
            selected_nodes(cfg), ToolContext(session, backend=cfg.backend, retriever_urls=["http://127.0.0.1:9"])
        )
        prompt = prompt_ids(tokenizer, [{"role": "user", "content": tools_prompt("Capital of France?", tools.specs)}])
        engine = ScriptedEngine(tokenizer, [Turn(REVERSE_TURN), Turn("<reverse></reverse>"), Turn(ANSWER_TURN)])
        traj = await run_trajectory(
            prompt, engine=engine, tools=tools, tokenizer=tokenizer, rollout_cfg=RolloutConfig()
        )
        stats = tools.stats_and_reset()
        await tools.close()
    assert [p.stop for _, p in engine.calls][0] == ("</search>", "</reverse>", "</answer>")
    observations = tokenizer.decode([t for t, m in zip(traj.response_ids, traj.loss_mask) if not m])
    assert observations.startswith("\n\n<result>PARIS</result>\n\n")  # masked, rendered by the spec
    assert [(c.tool, c.argument, c.failed) for c in traj.tool_calls] == [
        ("reverse", "siraP", False),
        ("reverse", "", True),
    ]
    assert "<result>The reverse tool failed: internal error.</result>" in observations  # its bug, not a crash
    assert traj.final_answer == "Paris" and traj.turns == 3
    metrics = rollout_metrics([traj], [RewardBreakdown(1.0, 1.0, 0.0)], [["Paris"]], stats, tools=cfg.tools)
    assert metrics["tool/reverse/calls_per_sample"] == 2.0 and metrics["tool/reverse/failure_rate"] == 0.5
    assert metrics["tool/search/calls_per_sample"] == 0.0 and metrics["tool/reverse/own_counter"] == 1.0


def _reverse_then_answer(context: str) -> str:
    response = context.rsplit("<|im_start|>assistant\n", 1)[-1]
    return ANSWER_TURN + "<|im_end|>" if "<result>" in response else REVERSE_TURN


async def test_a_package_s_tool_runs_through_the_miles_generate_hook(reverse_tool, tmp_path, tokenizer):
    async with serve_fake_sglang(tokenizer, _reverse_then_answer) as fake:
        args = write_args(tmp_path, "http://127.0.0.1:9", fake.url, "tools=[search,reverse]")
        prompt = [
            {"role": "user", "content": tools_prompt("Capital of France?", [tool_specs()["search"], reverse_tool])}
        ]
        sample = FakeSample(
            group_index=0,
            index=0,
            prompt=tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True),
            label={"ground_truth": {"target": ["Paris"]}},
        )
        try:
            await miles_generate.generate_sample(args, sample, tokenizer)
            metrics = rollout_log.rollout_log_metrics([sample], args)
        finally:
            await miles_runtime.close_runtimes()
    assert sample.status is FakeSample.Status.COMPLETED
    sample.validate()
    assert "<reverse>siraP</reverse>\n\n<result>Paris</result>\n\n" in sample.response
    assert [call[:3] for call in sample.metadata[miles_samples.METADATA_KEY]["tool_calls"]] == [
        ["reverse", "siraP", False]
    ]
    assert fake.requests[0]["sampling_params"]["stop"] == ["</search>", "</reverse>", "</answer>"]
    assert await hooks.reward(args, sample) == {"total": 1.0, "exact_match": 1.0, "format": 0.0}
    assert metrics["tool/reverse/calls_per_sample"] == 1.0
