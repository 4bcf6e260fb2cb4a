"""The house's floors: imports flow one way, with no circles, and eval shares no trainer's code."""

from __future__ import annotations

import ast
import collections
from pathlib import Path

import searchr1

ROOT = Path(searchr1.__file__).parent
# Each floor and the floors it may import (besides itself). Leaves sit at the bottom.
ALLOWED = {
    "paths": set(),
    "metrics_file": {"paths"},  # read and written inside Miles' Ray actors: standard library only
    "config": {"paths"},
    "data": {"config", "paths"},
    "search": {"config", "paths"},
    "reward": {"config"},
    "engines": {"config"},
    "models": {"config", "paths"},
    "retriever": {"config", "paths", "data"},
    "report": {"paths", "metrics_file"},  # reports read run dirs, nothing else
}
TRAINERS = ("trainers",)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _floor(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 2 and parts[1] == "trainers":
        return ".".join(parts[1:3])
    return parts[1] if len(parts) > 1 else ""


def _imports() -> dict[str, set[str]]:
    """Every searchr1 module a module imports, lazy (function-level) imports included."""
    found: dict[str, set[str]] = collections.defaultdict(set)
    for path in ROOT.rglob("*.py"):
        module = _module_name(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "searchr1":
                found[module].add(node.module)
            elif isinstance(node, ast.Import):
                found[module].update(a.name for a in node.names if a.name.split(".")[0] == "searchr1")
    return found


def _floor_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = collections.defaultdict(set)
    for module, targets in _imports().items():
        for target in targets:
            if _floor(target) not in ("", _floor(module)):
                edges[_floor(module)].add(_floor(target))
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state and (found := visit(nxt, path + [node])):
                return found
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node, [])):
            return found
    return None


def test_no_import_circle_between_floors():
    assert _cycle(_floor_edges()) is None


def test_the_cycle_finder_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None


def test_leaves_import_nothing_above_them():
    edges = _floor_edges()
    for floor, allowed in ALLOWED.items():
        assert edges.get(floor, set()) <= allowed, f"{floor} imports {sorted(edges[floor] - allowed)}"


def test_eval_imports_no_trainer():
    assert not {t for t in _floor_edges().get("eval", set()) if t.startswith("trainers")}


def test_rollout_uses_interfaces_not_concrete_engines_or_trainers():
    rollout = {t for m, ts in _imports().items() if _floor(m) == "rollout" for t in ts}
    assert not {
        t
        for t in rollout
        if t.startswith("searchr1.trainers") or t in ("searchr1.engines.local", "searchr1.engines.sglang")
    }
