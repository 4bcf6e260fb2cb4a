"""Register the schemas with Hydra's ConfigStore (called explicitly by the CLI and tests)."""

from __future__ import annotations

import dataclasses
import functools

from hydra.core.config_store import ConfigStore

from searchr1.config import schema
from searchr1.config.plugins import registered_tools
from searchr1.config.resolvers import register_resolvers

# Group YAML files extend these through their defaults list (e.g. ``/schema/trainer/local@_here_``),
# which makes every group option a typed, closed node.
GROUP_SCHEMAS: dict[str, dict[str, type]] = {
    "backend": dict(schema.BACKENDS),
    "trainer": {"local": schema.LocalTrainerConfig, "miles": schema.MilesTrainerConfig},
    "model": {"model": schema.ModelConfig},
    "reward": {"reward": schema.RewardConfig},
    "tis": {"tis": schema.TisConfig},
    "data": {"data": schema.DataConfig},
    "retriever": {"retriever": schema.RetrieverConfig},
    "logger": {"wandb": schema.LoggerConfig},
}


def register_configs() -> None:
    """Idempotent: storing the same node twice replaces it."""
    register_resolvers()
    store = ConfigStore.instance()
    store.store(name="searchr1_schema", node=root_schema())
    for group, nodes in GROUP_SCHEMAS.items():
        for name, node in nodes.items():
            store.store(group=f"schema/{group}", name=name, node=node)


def root_schema() -> type[schema.SearchR1Config]:
    """``SearchR1Config`` with one typed node per registered tool that it lacks (``search`` is built in),
    so ``calculator.max_digitz=3`` fails at composition like any other typo."""
    nodes = tuple(
        (name, spec.config_cls)
        for name, spec in sorted(registered_tools().items())
        if name not in schema.SearchR1Config.__dataclass_fields__
    )
    return _with_tool_nodes(nodes)


@functools.cache
def _with_tool_nodes(nodes: tuple[tuple[str, type], ...]) -> type[schema.SearchR1Config]:
    if not nodes:
        return schema.SearchR1Config
    fields = [(name, node, dataclasses.field(default_factory=node)) for name, node in nodes]
    root = dataclasses.make_dataclass("SearchR1Config", fields, bases=(schema.SearchR1Config,), kw_only=True)
    root.__doc__ = schema.SearchR1Config.__doc__
    return root
