"""Secret redaction: by value only for key-length values, by reference in commands, tracebacks included."""

from __future__ import annotations

import logging
import os
import subprocess

from searchr1.config.secrets import RedactingFilter, redact, secret_items, shell_join_redacted

KEY = "sk-live-0123456789abcdef"


def test_values_too_short_to_be_keys_are_not_redacted_and_warned_about(caplog):
    env = {"SERPER_API_KEY": "x", "WANDB_API_KEY": KEY, "UNSET": ""}
    assert secret_items(["SERPER_API_KEY", "WANDB_API_KEY", "UNSET"], env) == {"WANDB_API_KEY": KEY}
    assert "SERPER_API_KEY is 1 characters long" in caplog.text and "'x'" not in caplog.text
    # even if handed a short value, redact leaves flag names alone
    assert redact("--rollout-max-response-len 512", ["x"]) == "--rollout-max-response-len 512"
    assert redact(f"Authorization: Bearer {KEY}!", [KEY]) == "Authorization: Bearer ***!"


def test_shell_join_replaces_secrets_by_variable_references_and_stays_replayable(tmp_path):
    argv = ["printf", "%s|", "--wandb-key", KEY, f"--header=X-API-KEY:{KEY}", "it's", ""]
    line = shell_join_redacted(argv, {"WANDB_API_KEY": KEY})
    assert KEY not in line and '"${WANDB_API_KEY}"' in line
    replayed = subprocess.run(
        ["bash", "-c", line], capture_output=True, text=True, check=True, env={**os.environ, "WANDB_API_KEY": KEY}
    ).stdout
    assert replayed == f"--wandb-key|{KEY}|--header=X-API-KEY:{KEY}|it's||"


def test_log_filter_scrubs_tracebacks(caplog):
    logger = logging.getLogger("searchr1.test_secret_traceback")
    caplog.handler.addFilter(RedactingFilter([KEY]))
    try:
        raise RuntimeError(f"upstream echoed the header X-API-KEY: {KEY}")
    except RuntimeError:
        logger.exception("search failed")
    text = caplog.handler.format(caplog.records[-1])
    assert "search failed" in text and "RuntimeError: upstream echoed the header X-API-KEY: ***" in text
    assert KEY not in text
