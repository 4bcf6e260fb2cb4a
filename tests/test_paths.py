"""RunDir: one name per run-dir file, and the one reader of a run's resolved config."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import searchr1
from searchr1.errors import UserError
from searchr1.paths import RunDir

SRC = Path(searchr1.__file__).parent
NAMES = {value for key, value in vars(RunDir).items() if key.isupper()}
# report/ writes a plot of the same name into its own report dir, not into a run dir.
ELSEWHERE = {("checkpoint_eval.png", "report/cli.py")}


def test_no_other_module_spells_a_run_dir_file():
    spelled = {
        (node.value, str(path.relative_to(SRC)))
        for path in SRC.rglob("*.py")
        if path.name != "paths.py" or path.parent != SRC
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value in NAMES
    }
    assert spelled == ELSEWHERE


def test_the_resolved_config_reads_as_plain_data(tmp_path):
    run = RunDir(tmp_path)
    assert not run.has_config()
    (tmp_path / RunDir.RESOLVED_CONFIG).write_text("model:\n  name: smollm2\n")
    assert run.has_config() and run.read_config() == {"model": {"name": "smollm2"}}
    (tmp_path / RunDir.RESOLVED_CONFIG).write_text("")
    assert run.read_config() == {}


@pytest.mark.parametrize(
    "text, says", [(None, "FileNotFoundError"), ("model: [", "ParserError"), ("- a list\n", "a list, not a mapping")]
)
def test_an_unreadable_config_is_one_line(tmp_path, text, says):
    if text is not None:
        (tmp_path / RunDir.RESOLVED_CONFIG).write_text(text)
    with pytest.raises(UserError, match=says) as refused:
        RunDir(tmp_path).read_config()
    assert "\n" not in str(refused.value) and RunDir.RESOLVED_CONFIG in str(refused.value)


def test_checkpoints_live_in_the_run_dir_unless_configured(tmp_path):
    assert RunDir(tmp_path).checkpoint_dir(None) == tmp_path / "checkpoints"
    assert RunDir(tmp_path).checkpoint_dir("/shared/ckpt") == Path("/shared/ckpt")
