"""Secrets live in environment variables named by config; their values must never leave the process."""

from __future__ import annotations

import logging
import os
import shlex
from typing import Any, Iterable, Mapping

from searchr1.config.schema import SearchR1Config

log = logging.getLogger(__name__)

REDACTED = "***"
MIN_SECRET_LEN = 8
"""Shorter values are not redacted by value: no real API key is that short, and replacing every
occurrence of, say, ``x`` would corrupt commands, configs and logs (issue 13)."""


def secret_env_names(cfg: object) -> list[str]:
    """Every ``*_env`` field that names a secret (backend, logger, and each tool's, e.g. http.auth_env)."""
    names = []
    for node_name in ("backend", "logger"):
        node = getattr(cfg, node_name, None)
        name = getattr(node, "api_key_env", None)
        if name:
            names.append(name)
    tool_nodes = cfg.tool_nodes().values() if isinstance(cfg, SearchR1Config) else ()
    return names + [name for node in tool_nodes for name in node.secret_envs]


def secret_items(env_names: Iterable[str], env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Name -> value of each named secret that is set and long enough to redact (a warning otherwise)."""
    items = {}
    for name in env_names:
        value = env.get(name, "")
        if not value:
            continue
        if len(value) < MIN_SECRET_LEN:
            log.warning(
                "%s is %d characters long, too short for an API key: it is not redacted from logs "
                "and files (redacting it would corrupt them); use the real key",
                name,
                len(value),
            )
            continue
        items[name] = value
    return items


def secret_values(env_names: Iterable[str]) -> list[str]:
    return list(secret_items(env_names).values())


def redact(text: str, secrets: Iterable[str]) -> str:
    """Every occurrence of each secret (of at least MIN_SECRET_LEN characters) replaced by ``***``."""
    for value in secrets:
        if len(value) >= MIN_SECRET_LEN:
            text = text.replace(value, REDACTED)
    return text


def redact_data(data: Any, secrets: Iterable[str]) -> Any:
    """A copy of plain containers with every string redacted, for files that must stay parseable
    (redacting their serialized text could write ``- ***``, a YAML alias)."""
    secrets = list(secrets)
    if isinstance(data, str):
        return redact(data, secrets)
    if isinstance(data, Mapping):
        return {key: redact_data(value, secrets) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_data(value, secrets) for value in data]
    return data


def shell_join_redacted(argv: Iterable[str], secrets: Mapping[str, str]) -> str:
    """``shlex.join(argv)`` with each secret value replaced by a reference to the environment variable
    that holds it (``"${SERPER_API_KEY}"``): the line stays replayable and holds no secret."""
    return " ".join(_shell_word(arg, secrets) for arg in argv)


def _shell_word(arg: str, secrets: Mapping[str, str]) -> str:
    for name, value in secrets.items():
        if len(value) >= MIN_SECRET_LEN and value in arg:
            return f'"${{{name}}}"'.join(_shell_word(part, secrets) if part else "" for part in arg.split(value))
    return shlex.quote(arg)


class RedactingFilter(logging.Filter):
    """Scrubs secret values from every record passing through a handler."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        record.msg = redact(record.getMessage(), self._secrets)
        record.args = ()
        # A traceback is text too (an exception message may quote a request): format it here, once,
        # redacted; formatters print exc_text and skip formatting exc_info when it is set.
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self._secrets)
        return True


def install_log_redaction(secrets: Iterable[str]) -> None:
    """Attach the filter to every root handler (Hydra's console and file handlers included)."""
    redacting = RedactingFilter(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redacting)
