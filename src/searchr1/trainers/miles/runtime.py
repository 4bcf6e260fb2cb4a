"""What the hooks of one Miles rollout process share: ``args.searchr1`` typed once per args object, and
per event loop the HTTP session, SGLang client and tool clients (Miles calls hooks as bare functions)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from searchr1.engines.sglang import SGLangEngine
from searchr1.rollout.tokens import SegmentEncoder
from searchr1.tools.base import ToolContext
from searchr1.tools.toolbox import Toolbox, open_toolbox
from searchr1.trainers.miles.custom_config import HookSettings

log = logging.getLogger(__name__)


@dataclass
class _Runtime:
    """The HTTP session, engine client and tool clients of one rollout process and event loop."""

    settings: HookSettings
    session: aiohttp.ClientSession
    engine: SGLangEngine
    tools: Toolbox
    encoders: dict[int, SegmentEncoder]

    def encoder(self, tokenizer: Any) -> SegmentEncoder:
        return self.encoders.setdefault(id(tokenizer), SegmentEncoder(tokenizer))


# Miles calls hooks as bare functions, so their connections are cached per process. aiohttp sessions
# belong to the loop that made them: one runtime per (running loop, args object).
_RUNTIMES: dict[tuple[int, int], _Runtime] = {}
_SETTINGS: dict[int, HookSettings] = {}


def hook_settings(args: Any) -> HookSettings:
    """``args.searchr1`` typed once per args object (range checks re-run on the worker)."""
    key = id(args)
    if key not in _SETTINGS:
        _SETTINGS[key] = HookSettings.from_args(args)
    return _SETTINGS[key]


def router_url(args: Any) -> str:
    return f"http://{args.sglang_router_ip}:{args.sglang_router_port}"


async def process_runtime(args: Any, tokenizer: Any) -> _Runtime:
    key = (id(asyncio.get_running_loop()), id(args))
    runtime = _RUNTIMES.get(key)
    if runtime is not None and not runtime.session.closed:
        return runtime
    settings = hook_settings(args)
    session = aiohttp.ClientSession()
    tools = open_toolbox(
        settings.tools,
        ToolContext(session, run_dir=settings.run_dir, backend=settings.backend),
        action_format=settings.rollout.action_format,
        tokenizer=tokenizer,
    )
    runtime = _Runtime(settings, session, SGLangEngine(router_url(args), session), tools, {})
    _RUNTIMES[key] = runtime
    log.info(
        "searchr1 rollout: engine %s, tools %s, search backend %s",
        router_url(args),
        ", ".join(settings.tools),
        settings.backend.name,
    )
    return runtime


async def close_runtimes() -> None:
    """Close every cached session and tool client (tests; Miles ends the process instead)."""
    for runtime in list(_RUNTIMES.values()):
        await runtime.tools.close()
        await runtime.session.close()
    _RUNTIMES.clear()
    _SETTINGS.clear()


def search_stats_and_reset() -> dict[str, float]:
    """This rollout's tool counters (``search/*``, …) over every runtime of the process (one per event loop
    and args)."""
    return combine_search_stats([runtime.tools.stats_and_reset() for runtime in _RUNTIMES.values()])


# How the search metrics of several runtimes combine; every other search/* key is a count and adds up.
_PER_CALL_KEYS = ("search/failure_rate", "search/cache_hit_rate", "search/latency_mean_s")
_MAX_KEYS = ("search/latency_max_s", "search/breaker_open")


def combine_search_stats(parts: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Counts add up, rates and mean latency are weighted by each part's search/calls, maxima take the max."""
    calls = sum(part.get("search/calls", 0.0) for part in parts)
    combined: dict[str, float] = {}
    for key in dict.fromkeys(key for part in parts for key in part):
        values = [(part.get("search/calls", 0.0), part[key]) for part in parts if key in part]
        if key in _PER_CALL_KEYS:
            combined[key] = sum(n * value for n, value in values) / calls if calls else 0.0
        elif key in _MAX_KEYS:
            combined[key] = max(value for _, value in values)
        else:
            combined[key] = sum(value for _, value in values)
    return combined
