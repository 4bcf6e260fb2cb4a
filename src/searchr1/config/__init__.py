"""Typed configuration: schemas, registration, validation and secret handling."""

from searchr1.config.checks import ConfigError
from searchr1.config.schema import SearchR1Config
from searchr1.config.store import register_configs
from searchr1.config.validate import to_typed

__all__ = ["ConfigError", "SearchR1Config", "register_configs", "to_typed"]
