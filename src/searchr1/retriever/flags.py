"""RetrieverConfig <-> ``searchr1-retriever`` flags: every field is a flag (``--max-batch-size 64``,
``--no-faiss-gpu``), so the embedded retriever and a hand-started server take the same settings.

A flag left out takes the value of the ``retriever=<kind>`` config option (``conf/retriever/<kind>.yaml``,
``--kind`` defaults to bm25): ``serve --kind dense`` serves with exactly what ``retriever=dense`` configures.
"""

from __future__ import annotations

import argparse
import dataclasses

from omegaconf import OmegaConf

from searchr1.config.checks import check_choice
from searchr1.config.compose import group_option
from searchr1.config.schema import RetrieverConfig

KINDS = ("bm25", "dense")


def config_to_args(cfg: RetrieverConfig) -> list[str]:
    """The flags that reproduce ``cfg`` on our command line."""
    args = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        flag = f.name.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            args.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            args.append(f"--{flag}={value}")
    return args


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    # Flags default to None ("not given"); config_from fills them from the kind's config option. The
    # schema's defaults are retriever=bm25's (tests/test_config_defaults.py), so help can show them.
    schema = RetrieverConfig()
    for f in dataclasses.fields(RetrieverConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(schema, f.name)
        if f.name == "kind":
            parser.add_argument(
                flag,
                dest=f.name,
                choices=KINDS,
                default=None,
                help=f"index kind (default: {default}); the flags left out take the values of "
                "the retriever=<kind> config option, conf/retriever/<kind>.yaml",
            )
        elif isinstance(default, bool):
            parser.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"default: the --kind's value (bm25: {default!r})",
            )
        else:
            kind = type(default) if default is not None else str
            parser.add_argument(
                flag, dest=f.name, type=kind, default=None, help=f"default: the --kind's value (bm25: {default!r})"
            )


def config_from(ns: argparse.Namespace) -> RetrieverConfig:
    """The flags given, over the ``retriever=<kind>`` option's values."""
    kind = ns.kind or RetrieverConfig.kind
    check_choice("retriever.kind", kind, KINDS)
    given = {
        f.name: getattr(ns, f.name)
        for f in dataclasses.fields(RetrieverConfig)
        if getattr(ns, f.name, None) is not None
    }
    return dataclasses.replace(kind_defaults(kind), **given)


def kind_defaults(kind: str) -> RetrieverConfig:
    """What ``retriever=<kind>`` configures (the option named after the kind)."""
    cfg = OmegaConf.to_object(group_option("retriever", kind))
    assert isinstance(cfg, RetrieverConfig)
    return cfg
