"""Secrets live in environment variables named by config; their values must never leave the process."""

from __future__ import annotations

import logging
import os
from typing import Iterable

REDACTED = "***"


def secret_env_names(cfg: object) -> list[str]:
    """Every ``*_env`` field that names a secret (backend, logger)."""
    names = []
    for node_name in ("backend", "logger"):
        node = getattr(cfg, node_name, None)
        name = getattr(node, "api_key_env", None)
        if name:
            names.append(name)
    return names


def secret_values(env_names: Iterable[str]) -> list[str]:
    return [os.environ[name] for name in env_names if os.environ.get(name)]


def redact(text: str, secrets: Iterable[str]) -> str:
    for value in secrets:
        if value:
            text = text.replace(value, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """Scrubs secret values from every record passing through a handler."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            record.msg = redact(record.getMessage(), self._secrets)
            record.args = ()
        return True


def install_log_redaction(secrets: Iterable[str]) -> None:
    """Attach the filter to every root handler (Hydra's console and file handlers included)."""
    redacting = RedactingFilter(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redacting)
