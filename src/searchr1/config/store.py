"""Register the schemas with Hydra's ConfigStore (called explicitly by the CLI and tests)."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from searchr1.config import schema
from searchr1.config.resolvers import register_resolvers

# Group YAML files extend these through their defaults list (e.g. ``/schema/trainer/local@_here_``),
# which makes every group option a typed, closed node.
_GROUP_SCHEMAS: dict[str, dict[str, type]] = {
    "backend": {"local": schema.LocalBackendConfig, "google": schema.GoogleBackendConfig},
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
    store.store(name="searchr1_schema", node=schema.SearchR1Config)
    for group, nodes in _GROUP_SCHEMAS.items():
        for name, node in nodes.items():
            store.store(group=f"schema/{group}", name=name, node=node)
