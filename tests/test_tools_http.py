"""The http tool against a real JSON service on 127.0.0.1: the "internal API" variation through the rollout
loop, and every fault a service can throw becoming a failed call, never a crash or a lost sample."""

from __future__ import annotations

import time

import aiohttp
import pytest

from searchr1.config import ConfigError, to_typed
from searchr1.config.schema import RolloutConfig
from searchr1.config.secrets import secret_env_names
from searchr1.rollout.loop import run_batch
from searchr1.rollout.tokens import prompt_ids
from searchr1.tools.base import ToolContext
from searchr1.tools.http_api import HttpToolConfig
from searchr1.tools.http_api import build as build_http
from searchr1.tools.prompt import tools_prompt
from searchr1.tools.registry import selected_nodes
from searchr1.tools.toolbox import open_toolbox
from tests.support.compose import compose_config
from tests.support.orders_api import ORDERS, TOKEN, serve_orders_api
from tests.support.scripted import ScriptedEngine, Turn
from tests.support.search_servers import refused_url

FAST = dict(retries=1, backoff_s=0.01, timeout_s=1.0, deadline_s=3.0, auth_env="ORDERS_TOKEN")


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv("ORDERS_TOKEN", TOKEN)


async def _call(cfg: HttpToolConfig, *arguments: str):
    async with aiohttp.ClientSession() as session:
        tool = build_http(cfg, ToolContext(session))
        outputs = [await tool.call(a) for a in arguments]
        stats = tool.stats_and_reset()
        await tool.close()
    return outputs, stats


async def test_the_internal_api_variation_through_the_rollout_loop(token, tokenizer):
    async with serve_orders_api() as api:
        cfg = to_typed(
            compose_config(
                [
                    "tools=[http]",
                    f"http.url={api.url}/orders",
                    "http.argument_field=id",
                    "+http.arguments.source=searchr1",
                    "http.auth_env=ORDERS_TOKEN",
                    "http.result_field=data.status",
                    "http.description='Look up the status of an order by its id.'",
                ]
            )
        )
        async with aiohttp.ClientSession() as session:
            tools = open_toolbox(selected_nodes(cfg), ToolContext(session))
            prompt_text = tools_prompt("Where is order 1234?", tools.specs)
            prompt = prompt_ids(tokenizer, [{"role": "user", "content": prompt_text}])
            turns = [Turn("<think>Ask the API.</think>\n<http>order 1234</http>"), Turn("<answer>shipped</answer>")]
            engines = [ScriptedEngine(tokenizer, list(turns)) for _ in range(3)]
            trajs = [
                (await run_batch([prompt], engine=e, tools=tools, tokenizer=tokenizer, rollout_cfg=RolloutConfig()))[0]
                for e in engines
            ]
            stats = tools.stats_and_reset()
    assert "- <http> argument </http>: Look up the status of an order by its id." in prompt_text
    for traj in trajs:
        masked = tokenizer.decode([t for t, m in zip(traj.response_ids, traj.loss_mask) if not m])
        assert masked == f"\n\n<result>{ORDERS['1234']}</result>\n\n"
        assert traj.final_answer == "shipped" and not traj.tool_calls[0].failed
    assert api.requests == [{"source": "searchr1", "id": "order 1234"}]  # the cache answered the two repeats
    assert stats["tool/http/cache_hits"] == 2.0


async def test_get_sends_the_arguments_as_a_query_and_shows_the_whole_answer(token):
    async with serve_orders_api() as api:
        cfg = HttpToolConfig(url=f"{api.url}/orders", method="GET", argument_field="id", **FAST)
        (output,), _ = await _call(cfg, "5678")
    assert not output.failed
    assert output.text == '{"data": {"id": "5678", "status": "in the warehouse"}}'


@pytest.mark.parametrize(
    "path,expected",
    [
        ("/flaky", "HTTP 500"),
        ("/garbage", "not JSON"),
        ("/huge", "more than 1048576 bytes"),
        ("/slow", "no answer"),
    ],
)
async def test_a_misbehaving_service_is_a_failed_call(token, path, expected):
    async with serve_orders_api() as api:
        cfg = HttpToolConfig(url=api.url + path, max_response_bytes=1_048_576, **FAST)
        started = time.perf_counter()
        (output,), stats = await _call(cfg, "x")
    assert output.failed and expected in output.error
    assert output.text.startswith("The API call failed:") and expected in output.text
    assert time.perf_counter() - started < 10
    if path == "/flaky":
        assert len(api.requests) == 2 and stats["tool/http/retries"] == 1.0  # 5xx is retried


async def test_a_dead_host_and_a_missing_order_are_failed_calls(token):
    cfg = HttpToolConfig(url=refused_url() + "/orders", **FAST)
    (dead,), _ = await _call(cfg, "1234")
    assert dead.failed and "cannot reach" in dead.error
    async with serve_orders_api() as api:
        cfg = HttpToolConfig(url=f"{api.url}/orders", argument_field=None, arguments={"id": "{argument}"}, **FAST)
        (missing,), _ = await _call(cfg, "9999")
    assert missing.failed and "HTTP 404" in missing.error and "no order 9999" in missing.text


async def test_the_secret_never_reaches_the_model_the_config_or_an_error(token):
    async with serve_orders_api() as api:
        cfg = HttpToolConfig(url=f"{api.url}/flaky", **FAST)
        (output,), _ = await _call(cfg, "x")
    assert TOKEN not in output.text and TOKEN not in (output.error or "") and TOKEN not in repr(cfg)
    typed = to_typed(compose_config(["tools=[http]", "http.url=http://127.0.0.1:1/x", "http.auth_env=ORDERS_TOKEN"]))
    assert "ORDERS_TOKEN" in secret_env_names(typed)  # redacted from logs, files and W&B like every secret


async def test_a_wrong_token_is_a_failed_call(monkeypatch):
    monkeypatch.setenv("ORDERS_TOKEN", "Bearer wrong-token-123")
    async with serve_orders_api() as api:
        (output,), _ = await _call(HttpToolConfig(url=f"{api.url}/orders", **FAST), "1234")
    assert output.failed and "HTTP 401" in output.error


def test_bad_http_config_fails_in_one_line(monkeypatch):
    with pytest.raises(ConfigError, match=r"http.url is not set"):
        to_typed(compose_config(["tools=[search,http]"]))
    with pytest.raises(ConfigError, match=r"http.url='ftp://x' is not a URL"):
        to_typed(compose_config(["tools=[http]", "http.url=ftp://x"]))
    with pytest.raises(ConfigError, match=r"http.method='PUT' is not allowed"):
        to_typed(compose_config(["tools=[http]", "http.url=http://h/x", "http.method=PUT"]))
    monkeypatch.delenv("ORDERS_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="ORDERS_TOKEN is not set"):
        build_http(HttpToolConfig(url="http://h/x", auth_env="ORDERS_TOKEN"), ToolContext(None))
