"""``searchr1-report RUN_OR_SWEEP_DIR``: table, curves, heat map and W&B workspace spec for runs on disk."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

from searchr1.errors import UserError, exit_on_user_error
from searchr1.paths import RunDir
from searchr1.report.plots import plot_checkpoint_eval, plot_curves, plot_health, plot_heatmap, plot_tools
from searchr1.report.runs import find_runs
from searchr1.report.summary import EM, SWEEP_AXES, as_json, heatmap_grid, markdown_table, summarize, tool_names
from searchr1.report.workspace import apply_workspace, workspace_spec

TABLE_FILE = "report.md"
SUMMARY_FILE = "summary.json"
CURVES_FILE = "curves.png"
HEATMAP_FILE = "heatmap.png"
HEALTH_FILE = "health.png"
TOOLS_FILE = "tools.png"
CHECKPOINT_EVAL_CURVES_FILE = "checkpoint_eval.png"
WORKSPACE_FILE = "wandb_workspace.json"


@dataclass
class Report:
    out_dir: Path
    table: str
    files: list[Path] = field(default_factory=list)


def make_report(path: Path, out_dir: Path | None = None, heatmap_metric: str = EM) -> Report:
    runs = find_runs(path)
    if not runs:
        raise UserError(f"no run dirs (metrics.jsonl + resolved_config.yaml) under {path}")
    out_dir = out_dir or Path(path) / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = summarize(runs)
    report = Report(out_dir=out_dir, table=markdown_table(summaries))
    _write(report, TABLE_FILE, f"# searchr1 report: {path}\n\n{report.table}{_checkpoint_eval_tables(runs)}")
    _write(report, SUMMARY_FILE, json.dumps(as_json(summaries), indent=2))
    plot_curves(summaries, out_dir / CURVES_FILE)
    report.files.append(out_dir / CURVES_FILE)
    tools = tool_names(runs)
    if len(tools) > 1:  # one row of panels per tool
        plot_tools(summaries, tools, out_dir / TOOLS_FILE)
        report.files.append(out_dir / TOOLS_FILE)
    if any(key.startswith("health/") for run in runs for key in run.history):  # training-health indicators
        plot_health(summaries, out_dir / HEALTH_FILE)
        report.files.append(out_dir / HEALTH_FILE)
    evaluated = {run.run_dir.name: run.checkpoint_eval for run in runs if run.checkpoint_eval}
    if evaluated:  # held-out scores of saved checkpoints, beside the training curves
        plot_checkpoint_eval(evaluated, out_dir / CHECKPOINT_EVAL_CURVES_FILE)
        report.files.append(out_dir / CHECKPOINT_EVAL_CURVES_FILE)
    rows, cols, grid = heatmap_grid(summaries, heatmap_metric)
    if len(summaries) > 1 and rows and cols:
        plot_heatmap(
            rows,
            cols,
            grid,
            out_dir / HEATMAP_FILE,
            title=f"final {heatmap_metric} (mean over seeds)",
            row_label=SWEEP_AXES[0],
            col_label=SWEEP_AXES[1],
        )
        report.files.append(out_dir / HEATMAP_FILE)
    _write(report, WORKSPACE_FILE, json.dumps(workspace_spec(runs), indent=2))
    return report


def _checkpoint_eval_tables(runs) -> str:
    """The step tables ``searchr1-eval eval.run`` left next to each run's checkpoint_eval.json."""
    tables = [(run.run_dir / RunDir.CHECKPOINT_EVAL).with_suffix(".md") for run in runs if run.checkpoint_eval]
    texts = [path.read_text() for path in tables if path.is_file()]
    return "\n## Held-out EM/F1 per saved checkpoint\n\n" + "\n".join(texts) if texts else ""


def _write(report: Report, name: str, text: str) -> None:
    path = report.out_dir / name
    path.write_text(text)
    report.files.append(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="searchr1-report", description=__doc__)
    parser.add_argument("path", type=Path, help="a run dir or a sweep dir (searched recursively for runs)")
    parser.add_argument("--out", type=Path, default=None, help="output dir (default: PATH/report)")
    parser.add_argument("--heatmap-metric", default=EM, help=f"metric of the max_turns x topk heat map ({EM})")
    parser.add_argument("--wandb-apply", action="store_true", help="save the W&B workspace (online)")
    parser.add_argument("--entity", default=None, help="W&B entity for --wandb-apply (default: logger.entity)")
    args = parser.parse_args(argv)
    with exit_on_user_error("searchr1-report"):
        report = make_report(args.path, args.out, args.heatmap_metric)
    print(report.table)
    for path in report.files:
        print(f"wrote {path}")
    if args.wandb_apply:
        spec = json.loads((report.out_dir / WORKSPACE_FILE).read_text())
        spec["entity"] = args.entity or spec["entity"]
        with exit_on_user_error("searchr1-report"):
            print(f"W&B workspace: {apply_workspace(spec)}")
