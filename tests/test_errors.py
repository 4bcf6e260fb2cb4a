"""One user-error base class: every error meant for the user derives from it, and every entry point
turns it into one line and exit 2 (a bug keeps its traceback)."""

from __future__ import annotations

import pytest

from searchr1.config.checks import ConfigError
from searchr1.data.errors import DataError
from searchr1.entry import run_checked
from searchr1.errors import UserError, exit_on_user_error
from searchr1.models.checkpoints import UnsafeCheckpointError
from searchr1.preflight import PreflightError
from searchr1.retriever.embedded import RetrieverStartError
from searchr1.run import RunContext
from tests.support.compose import compose_config


@pytest.mark.parametrize("error", [ConfigError, DataError, RetrieverStartError, PreflightError, UnsafeCheckpointError])
def test_every_error_meant_for_the_user_is_a_user_error(error):
    assert issubclass(error, UserError)


def test_a_user_error_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exited, exit_on_user_error("searchr1-x"):
        raise DataError("data.train_path=x.jsonl: no such file")
    assert exited.value.code == 2
    assert capsys.readouterr().err == "searchr1-x: error: data.train_path=x.jsonl: no such file\n"


def test_a_bug_keeps_its_traceback():
    with pytest.raises(KeyError), exit_on_user_error("searchr1-x"):
        raise KeyError("a bug")


def test_a_hydra_job_reports_a_user_error_found_after_start_up_like_a_bad_command_line(capsys, monkeypatch):
    monkeypatch.setattr(RunContext, "from_hydra", classmethod(lambda cls, cfg, typed: None))  # no Hydra runtime

    def body(ctx):
        raise RetrieverStartError("the embedded retriever exited: no bm25 index (log: retriever.log)")

    with pytest.raises(SystemExit) as exited:
        run_checked(compose_config([]), body, program="searchr1")
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "searchr1: error: the embedded retriever exited: no bm25 index (log: retriever.log)\n"
    )
