"""searchr1-export on a Miles run dir: Miles' tools/convert_torch_dist_to_hf.py for one saved iteration,
with the model's flags, checked against the tool's recorded parser, dry-run and snapshotted."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from searchr1.config import ConfigError, to_typed
from searchr1.export.cli import main as export_main
from searchr1.run import RunContext, save_resolved_config
from searchr1.trainers.miles.convert import CONVERT_FLAGS_FILE, check_convert_args
from searchr1.trainers.miles.flags import miles_flags, recorded_flags
from tests.support.compose import REPO, compose_config, miles_presets

SNAPSHOTS = REPO / "tests" / "snapshots" / "miles"
UPDATE = os.environ.get("SEARCHR1_UPDATE_SNAPSHOTS") == "1"
PRESETS = miles_presets()


def _miles_run(tmp_path: Path, preset: str) -> Path:
    """A Miles run dir as the launcher leaves it (its resolved config), without the cluster."""
    cfg = compose_config([f"+experiment={preset}"])
    ctx = RunContext.build(cfg, to_typed(cfg), tmp_path / "run")
    save_resolved_config(ctx)
    return ctx.run_dir


@pytest.mark.parametrize("preset", PRESETS)
def test_dry_run_snapshot_of_the_conversion_command(preset, tmp_path, capsys):
    export_main([str(_miles_run(tmp_path, preset)), "--out", "/models/qwen-hf", "--iteration", "100"])
    text = capsys.readouterr().out
    path = SNAPSHOTS / f"convert-{preset}.txt"
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"no snapshot for {preset}; run with SEARCHR1_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(), (
        f"conversion command of {preset} changed; review and rerun with SEARCHR1_UPDATE_SNAPSHOTS=1"
    )
    model = to_typed(compose_config([f"+experiment={preset}"])).model
    assert f"--input-dir {model.save.rstrip('/')}/iter_0000100 " in text and "--vocab-size 151936" in text


def test_the_tool_flags_come_from_the_same_miles_commit_as_train_py():
    recorded = recorded_flags(CONVERT_FLAGS_FILE)
    assert recorded.commits["miles"] == miles_flags().commits["miles"]
    assert recorded.sections["required"] == {"--input-dir", "--output-dir"}


def test_a_flag_the_tool_lacks_or_a_missing_required_one_is_refused():
    with pytest.raises(ConfigError, match=r"unknown flags \['--bogus'\], missing required \['--output-dir'\]"):
        check_convert_args(["--input-dir", "/x/iter_0000001", "--bogus", "1"])


def test_the_newest_iteration_comes_from_megatrons_marker(tmp_path, capsys):
    run_dir = _miles_run(tmp_path, PRESETS[0])
    save = tmp_path / "save"
    save.mkdir()
    (save / "latest_checkpointed_iteration.txt").write_text("40\n")
    cfg = compose_config([f"+experiment={PRESETS[0]}", f"model.save={save}"])
    ctx = RunContext.build(cfg, to_typed(cfg), tmp_path / "run2")
    save_resolved_config(ctx)
    export_main([str(ctx.run_dir), "--out", str(tmp_path / "hf")])
    assert f"--input-dir {save}/iter_0000040 " in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        export_main([str(run_dir), "--out", str(tmp_path / "hf")])
    assert refused.value.code == 2 and "pass --iteration N" in capsys.readouterr().err


def test_the_recorder_runs_only_the_tools_parser_statements():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from extract_miles_tool_flags import tool_parser
    finally:
        sys.path.pop(0)
    source = (
        "import torch_that_is_not_here\n"
        "if __name__ == '__main__':\n"
        "    parser = argparse.ArgumentParser()\n"
        "    parser.add_argument('--input-dir', required=True)\n"
        "    args = parser.parse_args()\n"
        "    raise SystemExit('the conversion itself never runs')\n"
    )
    parser = tool_parser(source)
    assert [a.option_strings for a in parser._actions][1:] == [["--input-dir"]]


def test_eval_checkpoint_on_a_miles_run_points_to_the_conversion(tmp_path):
    from searchr1.models.checkpoints import find_policy

    run_dir = _miles_run(tmp_path, PRESETS[0])
    with pytest.raises(ConfigError, match=f"is a Miles run.*searchr1-export {run_dir} --out DIR"):
        find_policy(str(run_dir), "eval.checkpoint")


# Stands in for Miles' converter: the same refusal of an existing output dir unless --force (which
# only skips that check), then writes a file; FAKE_CONVERT_EXIT makes it fail like a crashed conversion.
FAKE_CONVERTER = """
import argparse, os, pathlib, sys
parser = argparse.ArgumentParser()
for name in ("--input-dir", "--output-dir", "--origin-hf-dir", "--vocab-size"):
    parser.add_argument(name)
parser.add_argument("--force", action="store_true")
args = parser.parse_args()
if os.environ.get("FAKE_CONVERT_EXIT"):
    sys.exit(int(os.environ["FAKE_CONVERT_EXIT"]))
if os.path.exists(args.output_dir) and not args.force:
    raise ValueError(f"{args.output_dir} exists; --force overwrites it")
pathlib.Path(args.output_dir).mkdir(parents=True, exist_ok=True)
(pathlib.Path(args.output_dir) / "model.safetensors").write_text("converted")
"""


def _run_with_a_converter(tmp_path: Path) -> Path:
    miles_root = tmp_path / "miles"
    (miles_root / "tools").mkdir(parents=True)
    (miles_root / "tools" / "convert_torch_dist_to_hf.py").write_text(FAKE_CONVERTER)
    cfg = compose_config(
        [f"+experiment={PRESETS[0]}", f"model.save={tmp_path / 'save'}", f"trainer.miles_root={miles_root}"]
    )
    ctx = RunContext.build(cfg, to_typed(cfg), tmp_path / "run")
    save_resolved_config(ctx)
    return ctx.run_dir


def test_run_converts_into_an_existing_empty_out_dir(tmp_path, capsys):
    """The help allows an empty --out; Miles' tool refuses any existing dir without --force (issue 27, item 13)."""
    run_dir, out = _run_with_a_converter(tmp_path), tmp_path / "hf"
    out.mkdir()
    export_main([str(run_dir), "--out", str(out), "--iteration", "1", "--run"])
    assert (out / "model.safetensors").read_text() == "converted"
    assert "--force" in capsys.readouterr().out
    new = tmp_path / "new"
    export_main([str(run_dir), "--out", str(new), "--iteration", "1", "--run"])
    assert (new / "model.safetensors").exists() and "--force" not in capsys.readouterr().out


def test_a_full_out_dir_or_a_failed_conversion_is_one_line(tmp_path, monkeypatch, capsys):
    run_dir, out = _run_with_a_converter(tmp_path), tmp_path / "hf"
    out.mkdir()
    (out / "keep.txt").write_text("")
    with pytest.raises(SystemExit) as refused:
        export_main([str(run_dir), "--out", str(out), "--iteration", "1", "--run"])
    message = f"{refused.value.code} {capsys.readouterr().err}"
    assert "exists and is not an empty directory" in message and (out / "keep.txt").exists()
    monkeypatch.setenv("FAKE_CONVERT_EXIT", "3")
    with pytest.raises(SystemExit) as exit_info:
        export_main([str(run_dir), "--out", str(tmp_path / "new"), "--iteration", "1", "--run"])
    assert exit_info.value.code == 3
