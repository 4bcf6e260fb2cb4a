"""Turn a composed DictConfig into typed objects, or one clear line saying what is wrong."""

from __future__ import annotations

import difflib
from typing import Optional

from omegaconf import DictConfig, OmegaConf
from hydra.errors import MissingConfigException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException

from searchr1.config.checks import ConfigError
from searchr1.config.schema import SearchR1Config

RENAMED_KEYS = {"eval.init_from": "eval.checkpoint"}
"""Keys that moved: the old name fails in one line naming the new one."""


def to_typed(cfg: DictConfig) -> SearchR1Config:
    """Resolve and instantiate every schema, which runs each range check."""
    try:
        typed = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        raise ConfigError(one_line_error(exc)) from exc
    if not isinstance(typed, SearchR1Config):
        raise ConfigError("the primary config does not extend searchr1_schema")
    check_no_added_keys(cfg)
    return typed


def check_no_added_keys(node: DictConfig, prefix: str = "") -> None:
    """``+rollout.max_turnz=3`` adds a key to a typed node (Hydra opens it for ``+``), and OmegaConf
    hands the stray key to the dataclass without a word; refuse it like any unknown key."""
    fields = getattr(OmegaConf.get_type(node), "__dataclass_fields__", None)
    for key, value in node.items_ex(resolve=False):
        name = str(key)
        full_key = prefix + name
        if fields is not None and name not in fields:
            if full_key in RENAMED_KEYS:
                raise ConfigError(renamed_message(full_key))
            close = difflib.get_close_matches(name, list(fields), n=1)
            hint = f" (did you mean {prefix + close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown config key {full_key!r}{hint}")
        if isinstance(value, DictConfig) and fields is not None:
            check_no_added_keys(value, f"{full_key}.")


def one_line_error(exc: BaseException) -> str:
    """The most specific message in an exception chain, on one line, with a close match when known."""
    root = _root_cause(exc)
    if isinstance(root, ConfigError):
        return str(root)
    if isinstance(root, (ConfigKeyError, ConfigAttributeError)) and root.full_key:
        return _unknown_key_message(root)
    if isinstance(root, MissingConfigException):
        return _unknown_option_message(root)
    if isinstance(root, MissingMandatoryValue):
        return f"{root.full_key} is required but not set (add {root.full_key}=...)"
    if isinstance(root, OmegaConfBaseException) and getattr(root, "full_key", None):
        return f"{root.full_key}: {getattr(root, 'msg', str(root)).splitlines()[0]}"
    return str(root).strip().splitlines()[0] if str(root).strip() else type(root).__name__


def _root_cause(exc: BaseException) -> BaseException:
    seen = exc
    while (parent := seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)) is not None:
        seen = parent
    # Prefer our own message anywhere in the chain: it already names key, value and range.
    probe: Optional[BaseException] = exc
    while probe is not None:
        if isinstance(probe, ConfigError):
            return probe
        probe = probe.__cause__ or probe.__context__
    return seen


def _unknown_key_message(err: OmegaConfBaseException) -> str:
    full_key = err.full_key or ""
    if full_key in RENAMED_KEYS:
        return renamed_message(full_key)
    parent_path, _, leaf = full_key.rpartition(".")
    known = _known_keys(err)
    close = difflib.get_close_matches(leaf, known, n=1)
    hint = f" (did you mean {'.'.join(filter(None, [parent_path, close[0]]))!r}?)" if close else ""
    return f"unknown config key {full_key!r}{hint}"


def renamed_message(old_key: str) -> str:
    return f"{old_key} was renamed to {RENAMED_KEYS[old_key]} (use {RENAMED_KEYS[old_key]}=...)"


def _unknown_option_message(err: MissingConfigException) -> str:
    missing = err.missing_cfg_file or ""
    group, _, option = missing.rpartition("/")
    options = list(err.options or [])
    if not group or not options:
        return str(err).strip().splitlines()[0]
    close = difflib.get_close_matches(option, options, n=1)
    hint = f" (did you mean {group}={close[0]}?)" if close else ""
    return f"unknown option {group}={option}{hint}; available: {', '.join(options)}"


def _known_keys(err: OmegaConfBaseException) -> list[str]:
    object_type = getattr(err, "object_type", None)
    fields = getattr(object_type, "__dataclass_fields__", None)
    return list(fields) if fields else []
