"""The search tool: Search-R1's ``<search> query </search>``, answered by the search stack of ``search/``.

Its observation is ``\\n\\n<information>Doc 1(Title: …) …</information>\\n\\n``, byte for byte what the original
loop appends; its node is ``search.*`` and its backend ``backend.*``.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from searchr1.config.schema import SearchConfig
from searchr1.preflight import file_problem, retriever_problem, secret_problem, url_problem
from searchr1.search.base import SearchBackend
from searchr1.search.factory import build_search_backend
from searchr1.search.render import format_passages
from searchr1.tools.base import ToolContext, ToolOutput, ToolSpec
from searchr1.tools.toolbox import BoundTool, Toolbox


class SearchTool:
    """A search backend as a tool client: a query in, the passages (or the failure text) out."""

    def __init__(self, backend: SearchBackend, topk: int, failure_text: str) -> None:
        self.backend = backend
        self.topk = topk
        self.failure_text = failure_text

    async def call(self, argument: str) -> ToolOutput:
        result = await self.backend.search(argument, self.topk)
        if result.failed:
            return ToolOutput(self.failure_text, failed=True, error=result.error)
        # Search-R1 strips the joined passages before closing the tag, so the last newline goes.
        return ToolOutput(format_passages(result.passages).strip())

    def stats_and_reset(self) -> dict[str, float]:
        return self.backend.stats_and_reset()

    async def close(self) -> None:
        await self.backend.close()


def build(node: SearchConfig, ctx: ToolContext) -> SearchTool:
    stack = build_search_backend(ctx.backend, node, session=ctx.session, urls=ctx.retriever_urls, run_dir=ctx.run_dir)
    return SearchTool(stack, node.topk, node.failure_text)


def preflight(node: SearchConfig, cfg: Any, env: Mapping[str, str]) -> list[str]:
    """What this machine can tell before a run: the replay file, the backend's key, the retrievers' URLs."""
    if not node.enabled:
        return []  # no search is ever sent
    if node.replay_path:
        return _replay_problems(node.replay_path)
    backend = cfg.backend
    problems = [secret_problem(env, backend.secret_env, "backend.api_key_env")] if backend.secret_env else []
    problems += [url_problem("backend.urls", url) for url in backend.retriever_urls]
    return [problem for problem in problems if problem]


def endpoints_problems(node: SearchConfig, backend: Any) -> list[str]:
    """Whether the retrievers answer, from where the rollout runs (this machine, or each Miles node)."""
    if not node.enabled or node.replay_path:
        return []
    return [problem for url in backend.retriever_urls if (problem := retriever_problem(url))]


def _replay_problems(path: str) -> list[str]:
    problem: Optional[str] = file_problem("search.replay_path", path, "a run with search.record=true")
    return [problem] if problem else []


TOOL = ToolSpec(
    name="search",
    config_cls=SearchConfig,
    description="Search the knowledge source for passages about a query.",
    argument="query",
    argument_description="What to search for.",
    example="capital of France",
    build=build,
    observation_tag="information",
    preflight=preflight,
    endpoints_problems=endpoints_problems,
)


def search_toolbox(backend: SearchBackend, topk: int, failure_text: str) -> Toolbox:
    """A toolbox holding only search over ``backend`` (tests, benchmarks, the SFT oracle)."""
    return Toolbox([BoundTool(TOOL, SearchTool(backend, topk, failure_text))])
