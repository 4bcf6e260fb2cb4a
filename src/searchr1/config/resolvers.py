"""OmegaConf resolvers for well-known locations, registered once behind one idempotent helper."""

from __future__ import annotations

from omegaconf import OmegaConf

from searchr1.paths import cache_root, data_root


def register_resolvers() -> None:
    # replace=True keeps this idempotent across multirun jobs and test sessions.
    OmegaConf.register_new_resolver("searchr1_cache", lambda name: str(cache_root() / name), replace=True)
    OmegaConf.register_new_resolver("searchr1_data", lambda name: str(data_root() / name), replace=True)
    OmegaConf.register_new_resolver("searchr1_help_groups", user_config_groups, replace=True)


def user_config_groups() -> str:
    """The config groups ``--help`` lists (conf/config.yaml's hydra.help), one ``group: option, ...`` line
    each as Hydra writes them, without Hydra's own groups and the typed schemas (schema/*)."""
    from hydra.core.global_hydra import GlobalHydra

    hydra = GlobalHydra.instance().hydra
    assert hydra is not None, "--help composes under an initialized Hydra"
    return hydra.format_config_groups(lambda group: group.split("/")[0] not in ("hydra", "schema")).rstrip("\n")
