"""OmegaConf resolvers for well-known locations, registered once behind one idempotent helper."""

from __future__ import annotations

from omegaconf import OmegaConf

from searchr1.paths import cache_root, data_root


def register_resolvers() -> None:
    # replace=True keeps this idempotent across multirun jobs and test sessions.
    OmegaConf.register_new_resolver("searchr1_cache", lambda name: str(cache_root() / name), replace=True)
    OmegaConf.register_new_resolver("searchr1_data", lambda name: str(data_root() / name), replace=True)
