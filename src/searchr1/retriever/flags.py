"""RetrieverConfig <-> ``searchr1-retriever`` flags: every field is a flag (``--max-batch-size 64``,
``--no-faiss-gpu``), so the embedded retriever and a hand-started server take the same settings.

A flag left out takes the value of the ``retriever=<kind>`` config option (``conf/retriever/<kind>.yaml``,
``--kind`` defaults to bm25): ``serve --kind dense`` serves with exactly what ``retriever=dense`` configures.
The embedded retriever's child gets every field as a flag (an empty value is null), so it composes nothing.
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
    """A flag per field: the whole of ``cfg`` on our command line (null as an empty value)."""
    args = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        flag = f.name.replace("_", "-")
        if value is None:
            args.append(f"--{flag}=")
        elif isinstance(value, bool):
            args.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            args.append(f"--{flag}={value}")
    return args


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    # A flag left out sets nothing (argparse.SUPPRESS); config_from fills it from the kind's config option.
    # The schema's defaults are retriever=bm25's (tests/test_config_defaults.py), so help can show them.
    schema = RetrieverConfig()
    for f in dataclasses.fields(RetrieverConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(schema, f.name)
        if f.name == "kind":
            parser.add_argument(
                flag,
                dest=f.name,
                choices=KINDS,
                default=argparse.SUPPRESS,
                help=f"index kind (default: {default}); the flags left out take the values of "
                "the retriever=<kind> config option, conf/retriever/<kind>.yaml",
            )
        elif isinstance(default, bool):
            parser.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=f"default: the --kind's value (bm25: {default!r})",
            )
        else:
            kind = type(default) if default is not None else _null_if_empty
            parser.add_argument(
                flag,
                dest=f.name,
                type=kind,
                default=argparse.SUPPRESS,
                help=f"default: the --kind's value (bm25: {default!r})",
            )


def _null_if_empty(text: str) -> str | None:
    """An optional field's flag: an empty value is null (``--index-dir=``: next to the corpus)."""
    return text or None


def config_from(ns: argparse.Namespace) -> RetrieverConfig:
    """The flags given, over the ``retriever=<kind>`` option's values (composed only when a flag is left out)."""
    kind = getattr(ns, "kind", RetrieverConfig.kind)
    check_choice("retriever.kind", kind, KINDS)
    given = {f.name: getattr(ns, f.name) for f in dataclasses.fields(RetrieverConfig) if hasattr(ns, f.name)}
    if len(given) == len(dataclasses.fields(RetrieverConfig)):
        return RetrieverConfig(**given)
    return dataclasses.replace(kind_defaults(kind), **given)


def kind_defaults(kind: str) -> RetrieverConfig:
    """What ``retriever=<kind>`` configures (the option named after the kind)."""
    cfg = OmegaConf.to_object(group_option("retriever", kind))
    assert isinstance(cfg, RetrieverConfig)
    return cfg
