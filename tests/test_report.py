"""searchr1-report on fabricated run and sweep dirs: table values, seed aggregation, PNGs, W&B spec."""

from __future__ import annotations

import json
import statistics

import pytest

from searchr1.report.cli import main, make_report
from searchr1.report.runs import find_runs, read_history
from searchr1.report.summary import heatmap_grid, summarize
from searchr1.report.workspace import build_workspace, workspace_spec
from tests.support.runs import make_run, make_sweep

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_history_skips_text_nan_and_partial_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "a": 1.0, "b": "x"}\n{"step": 2, "a": NaN}\n{"step": 3, "a": 3}\n{"step": 4, "a"')
    assert read_history(path) == {"a": [(1, 1.0), (3, 3.0)]}


def test_sweep_table_aggregates_seeds_with_mean_and_std(tmp_path):
    make_sweep(tmp_path)
    summaries = summarize(find_runs(tmp_path))
    assert [s.name for s in summaries] == [
        "rollout.max_turns=1,search.topk=1",
        "rollout.max_turns=1,search.topk=3",
        "rollout.max_turns=2,search.topk=1",
        "rollout.max_turns=2,search.topk=3",
    ]
    last = summaries[-1]
    finals = [0.1 * 2 + 0.03 + 0.02 * s for s in (0, 1)]
    assert last.final["reward/exact_match"].mean == pytest.approx(statistics.fmean(finals))
    assert last.final["reward/exact_match"].std == pytest.approx(statistics.stdev(finals))
    assert last.best["reward/exact_match"].n == 2 and last.steps == 3


def test_configuration_names_leave_out_overrides_every_run_shares(tmp_path):
    for t in (1, 2):
        make_run(tmp_path / f"t{t}", max_turns=t, topk=3, seed=0, em=[0.1], extra_overrides=("data.num_entities=200",))
    assert [s.name for s in summarize(find_runs(tmp_path))] == ["rollout.max_turns=1", "rollout.max_turns=2"]


def test_heatmap_grid_is_em_over_turns_by_topk(tmp_path):
    make_sweep(tmp_path, turns=(1, 2, 4), topks=(1, 3, 5), seeds=(0,))
    rows, cols, grid = heatmap_grid(summarize(find_runs(tmp_path)), "reward/exact_match")
    assert (rows, cols) == ([1, 2, 4], [1, 3, 5])
    assert grid[2][1] == pytest.approx(0.1 * 4 + 0.03)


@pytest.mark.slow
def test_report_on_a_sweep_writes_table_curves_heatmap_and_workspace(tmp_path, capsys):
    make_sweep(tmp_path / "sweep")
    main([str(tmp_path / "sweep")])
    out_dir = tmp_path / "sweep" / "report"
    printed = capsys.readouterr().out
    assert "| rollout.max_turns=2,search.topk=3 | 2 | 3 | 0.240 ± 0.014 |" in printed
    for name in ("curves.png", "heatmap.png"):
        data = (out_dir / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary[0]["axes"] == {"rollout.max_turns": 1, "search.topk": 1}
    assert summary[0]["seeds"] == [0, 1]
    assert "| EM final | EM best | format | turns | searches | obs frac | ESS |" in (out_dir / "report.md").read_text()


@pytest.mark.slow
def test_report_on_one_run_has_no_heatmap(tmp_path):
    run = make_run(tmp_path / "run", max_turns=2, topk=3, seed=0, em=[0.1, 0.3, 0.2], sweep_name=None)
    report = make_report(run)
    assert [p.name for p in report.files if p.suffix == ".png"] == ["curves.png"]
    assert "| rollout.max_turns=2,search.topk=3,seed=0 |" not in report.table, "the seed is not a configuration"
    assert "| rollout.max_turns=2,search.topk=3 | 1 | 3 | 0.200 | 0.300 |" in report.table


def test_report_without_runs_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path)])
    assert info.value.code == 2
    assert "no run dirs" in capsys.readouterr().err


def test_workspace_spec_filters_the_sweep_and_groups_by_its_axes(tmp_path):
    make_sweep(tmp_path)
    spec = workspace_spec(find_runs(tmp_path))
    assert spec["filter"] == {"config.sweep_name": "turns_topk"}
    assert spec["group_by"] == ["config.rollout.max_turns", "config.search.topk"]
    metrics = [p["metric"] for p in spec["sections"][0]["panels"]]
    assert metrics == [
        "reward/exact_match",
        "reward/format",
        "search_r1/turns_per_sample",
        "search_r1/search_calls_per_sample",
        "loss_mask/observation_fraction",
        "tis/effective_sample_size",
    ]


def test_workspace_spec_for_miles_runs_reads_the_searchr1_namespace(tmp_path):
    run = make_run(tmp_path / "run", max_turns=2, topk=3, seed=0, em=[0.1])
    config_path = run / "resolved_config.yaml"
    config_path.write_text(config_path.read_text() + "trainer: {name: miles}\n")
    spec = workspace_spec(find_runs(run))
    assert spec["filter"] == {"config.searchr1.sweep_name": "turns_topk"}
    assert spec["group_by"] == ["config.searchr1.rollout.max_turns", "config.searchr1.search.topk"]


def test_workspace_spec_builds_a_wandb_workspace_offline(tmp_path):
    pytest.importorskip("wandb_workspaces")
    make_sweep(tmp_path)
    spec = {**workspace_spec(find_runs(tmp_path)), "entity": "team"}
    workspace = build_workspace(spec)
    assert [p.y for p in workspace.sections[0].panels][0] == ["reward/exact_match"]
    assert len(workspace.runset_settings.groupby) == 2


@pytest.mark.slow
def test_a_run_with_two_tools_gets_a_panel_row_and_a_workspace_section_per_tool(tmp_path):
    run = make_run(tmp_path / "run", max_turns=2, topk=3, seed=0, em=[0.1, 0.3], tools=("search", "calculator"))
    report = make_report(run)
    tools_png = report.out_dir / "tools.png"
    assert tools_png in report.files and tools_png.read_bytes().startswith(PNG_MAGIC)
    sections = workspace_spec(find_runs(run))["sections"]
    assert [s["name"] for s in sections[1:]] == ["Tool: search", "Tool: calculator"]
    assert [p["metric"] for p in sections[2]["panels"]] == [
        "tool/calculator/calls_per_sample",
        "tool/calculator/failure_rate",
        "tool/calculator/latency_mean_s",
    ]
    one_tool = make_run(tmp_path / "one", max_turns=2, topk=3, seed=0, em=[0.1])
    assert "tools.png" not in [p.name for p in make_report(one_tool).files]
    assert len(workspace_spec(find_runs(one_tool))["sections"]) == 1
