"""searchr1-report marks where training-health rules fired (read from metrics.jsonl only)."""

from __future__ import annotations

import json

import pytest

from searchr1.report.cli import HEALTH_FILE, make_report
from searchr1.report.plots import _mark_firings, _panel, _pyplot, health_firings
from searchr1.report.runs import find_runs
from searchr1.report.summary import summarize
from tests.support.runs import make_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _health_run(tmp_path, fired: dict[int, list[str]]):
    run_dir = make_run(tmp_path / "run", max_turns=1, topk=3, seed=0, em=[0.4, 0.4, 0.2, 0.1], sweep_name=None)
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for line in lines:
        line["health/think_repetition"] = 0.1 * line["step"]
        line.update({f"health/fired/{rule}": 1.0 for rule in fired.get(line["step"], [])})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return run_dir


def test_firings_are_read_per_step_from_metrics_jsonl(tmp_path):
    _health_run(tmp_path, {2: ["think_repetition", "entropy"], 4: ["entropy"]})
    summaries = summarize(find_runs(tmp_path))
    assert health_firings(summaries) == {2: ["entropy", "think_repetition"], 4: ["entropy"]}


def test_each_firing_is_a_line_in_every_panel_named_in_the_first():
    fig, axes = _pyplot().subplots(1, 2, squeeze=False)
    _mark_firings(axes, {3: ["entropy", "truncation"]})
    for ax in axes.flat:
        assert [list(line.get_xdata()) for line in ax.lines] == [[3, 3]]
    assert [t.get_text() for t in axes.flat[0].texts] == ["entropy, truncation"]
    assert len(axes.flat[1].texts) == 0
    _pyplot().close(fig)


@pytest.mark.slow
def test_report_writes_the_health_panels_when_runs_logged_health(tmp_path):
    run_dir = _health_run(tmp_path, {3: ["think_repetition"]})
    report = make_report(run_dir)
    data = (report.out_dir / HEALTH_FILE).read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000
    plain = make_run(tmp_path / "plain", max_turns=1, topk=3, seed=0, em=[0.1], sweep_name=None)
    assert not (make_report(plain).out_dir / HEALTH_FILE).exists()


def test_curve_panels_tick_whole_steps_and_label_a_flat_series_plainly(tmp_path):
    # A 3-step run used to get step ticks 1.00, 1.25, ... and a y axis labelled '1e-5+3.5e-2'.
    make_run(tmp_path / "run", max_turns=1, topk=3, seed=0, em=[0.035, 0.03501, 0.035], sweep_name=None)
    fig, axes = _pyplot().subplots(1, 1, squeeze=False)
    ax = axes.flat[0]
    assert _panel(ax, summarize(find_runs(tmp_path)), ("reward/exact_match",), "EM")
    fig.canvas.draw()
    steps = [tick.get_text() for tick in ax.get_xticklabels()]
    assert steps and all(text.replace("−", "").isdigit() for text in steps), steps
    assert ax.yaxis.get_offset_text().get_text() == ""
    low, high = ax.get_ylim()
    assert low < 0.035 < high and high - low > 0.001  # drawn flat in a readable range
    _pyplot().close(fig)
