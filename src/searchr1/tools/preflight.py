"""The selected tools' preflight, the same for both trainers (one line per problem, naming the key)."""

from __future__ import annotations

from typing import Any, Mapping

from searchr1.tools.registry import selected_nodes, tool_spec


def tool_problems(cfg: Any, env: Mapping[str, str], *, endpoints: bool = True) -> list[str]:
    """Each selected tool's own checks and, with ``endpoints``, whether its services answer from this machine
    (Miles checks them on every node of the cluster instead: trainers/miles/cluster_check.py)."""
    problems: list[str] = []
    for name, node in selected_nodes(cfg).items():
        spec = tool_spec(name)
        found = spec.preflight(node, cfg, env)
        if endpoints and not found:
            found = spec.endpoints_problems(node, cfg.backend)
        problems += found
    return problems
