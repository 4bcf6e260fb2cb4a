"""The python tool over the sandbox (the sandbox's own limits are tests/test_tools_python_sandbox.py):
what the model reads, failures as failed calls, the ablation, and the three-tool config."""

from __future__ import annotations

import aiohttp

from searchr1.config import to_typed
from searchr1.tools.base import ToolContext
from searchr1.tools.python_code import PythonRunner, PythonToolConfig
from searchr1.tools.registry import selected_nodes
from searchr1.tools.toolbox import open_toolbox
from tests.support.compose import compose_config


async def test_what_the_code_prints_is_the_observation():
    output = await PythonRunner(PythonToolConfig()).call("print(sum(range(1, 101)))")
    assert (output.text, output.failed) == ("5050", False)


async def test_an_exception_or_a_kill_is_a_failed_call_the_model_can_read():
    runner = PythonRunner(PythonToolConfig(timeout_s=1.0, max_observation_chars=200))
    crashed = await runner.call("1 / 0")
    assert crashed.failed and "ZeroDivisionError: division by zero" in crashed.text
    looped = await runner.call("while True: pass")
    assert looped.failed and "killed" in looped.text
    flood = await runner.call("print('x' * 100_000_000)")
    assert flood.failed and len(flood.text) < 300 and "cut" in flood.text


async def test_switched_off_it_runs_nothing():
    output = await PythonRunner(PythonToolConfig(enabled=False)).call("print(1)")
    assert output.failed and "unavailable" in output.text


async def test_three_tools_from_config(monkeypatch):
    monkeypatch.setenv("SERPER_API_KEY", "sk-parent-secret-value")
    cfg = to_typed(compose_config(["tools=[search,calculator,python]", "python.timeout_s=3"]))
    async with aiohttp.ClientSession() as session:
        context = ToolContext(session, backend=cfg.backend, retriever_urls=["http://127.0.0.1:9"])
        tools = open_toolbox(selected_nodes(cfg), context)
        observation, call = await tools.call("python", "import os; print(os.environ.get('SERPER_API_KEY'))")
        await tools.close()
    assert tools.grammar.stop_tags == ("</search>", "</calculator>", "</python>", "</answer>")
    assert observation == "\n\n<result>None</result>\n\n" and not call.failed  # no secret of the parent's
