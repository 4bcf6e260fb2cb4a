"""RetrieverConfig <-> ``searchr1-retriever`` flags: every field is a flag (``--max-batch-size 64``,
``--no-faiss-gpu``), so the embedded retriever and a hand-started server take the same settings."""

from __future__ import annotations

import argparse
import dataclasses

from searchr1.config.schema import RetrieverConfig


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
    defaults = RetrieverConfig()
    for f in dataclasses.fields(RetrieverConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default)
        else:
            kind = type(default) if default is not None else str
            parser.add_argument(flag, dest=f.name, type=kind, default=default, help=f"default: {default!r}")


def config_from(ns: argparse.Namespace) -> RetrieverConfig:
    names = {f.name for f in dataclasses.fields(RetrieverConfig)}
    return RetrieverConfig(**{k: v for k, v in vars(ns).items() if k in names})
