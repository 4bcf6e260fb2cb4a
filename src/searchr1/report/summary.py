"""Per-configuration summaries: final and best values, mean and spread across seeds."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Sequence

from searchr1.report.runs import Run

EM = "reward/exact_match"
EVAL_EM = "eval/exact_match"
# The six metrics the mission watches, with short column names.
MISSION_METRICS: dict[str, str] = {
    EM: "EM",
    "reward/format": "format",
    "search_r1/turns_per_sample": "turns",
    "search_r1/search_calls_per_sample": "searches",
    "loss_mask/observation_fraction": "obs frac",
    "tis/effective_sample_size": "ESS",
}
SWEEP_AXES = ("rollout.max_turns", "search.topk")


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.std:.3f}" if self.n > 1 else f"{self.mean:.3f}"

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std, "n": self.n}


TOOL_PANELS = {"calls_per_sample": "calls per sample", "failure_rate": "failure rate", "latency_mean_s": "latency (s)"}
"""Per-tool metrics (``tool/<name>/<key>``) the report and the W&B workspace draw when a run has several tools."""


def tool_names(runs: Sequence[Run]) -> list[str]:
    """The tools the runs logged metrics for (``tool/<name>/calls_per_sample``), in first-logged order."""
    names = (key.split("/")[1] for run in runs for key in run.history if key.startswith("tool/"))
    return list(dict.fromkeys(name for name in names))


def stat(values: Sequence[float | None]) -> Stat | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    std = statistics.stdev(present) if len(present) > 1 else 0.0  # sample std across seeds
    return Stat(mean=statistics.fmean(present), std=std, n=len(present))


@dataclass
class ConfigSummary:
    name: str
    runs: list[Run]
    final: dict[str, Stat] = field(default_factory=dict)
    best: dict[str, Stat] = field(default_factory=dict)

    @property
    def seeds(self) -> list[Any]:
        return [run.seed for run in self.runs]

    @property
    def steps(self) -> int:
        return max((points[-1][0] for run in self.runs for points in run.history.values() if points), default=0)

    def setting(self, dotted: str) -> Any:
        return self.runs[0].setting(dotted)


def summarize(runs: Sequence[Run]) -> list[ConfigSummary]:
    """Group runs that differ only in their seed; order follows the sweep axes, then the name."""
    shared = shared_overrides(runs)
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.configuration(shared), []).append(run)
    keys = sorted({key for run in runs for key in run.history})
    summaries = []
    for name, members in groups.items():
        summary = ConfigSummary(name=name, runs=sorted(members, key=lambda r: str(r.seed)))
        for key in keys:
            if (final := stat([r.final(key) for r in members])) is not None:
                summary.final[key] = final
            if (best := stat([r.best(key) for r in members])) is not None:
                summary.best[key] = best
        summaries.append(summary)
    return sorted(summaries, key=_order)


def shared_overrides(runs: Sequence[Run]) -> frozenset[str]:
    """Overrides every run has (e.g. a sweep's fixed settings): they name no configuration apart."""
    if len(runs) < 2:
        return frozenset()
    return frozenset.intersection(*(frozenset(run.configuration_overrides()) for run in runs))


def _order(summary: ConfigSummary) -> tuple:
    axes = tuple(summary.setting(axis) for axis in SWEEP_AXES)
    return tuple((value is None, value if isinstance(value, (int, float)) else 0) for value in axes) + (summary.name,)


def columns(summaries: Sequence[ConfigSummary]) -> list[tuple[str, str, str]]:
    """(header, kind, key) for the table: EM final and best, then the other mission metrics, then eval EM."""
    logged = {key for s in summaries for key in s.final}
    cols = [("EM final", "final", EM), ("EM best", "best", EM)] if EM in logged else []
    cols += [(label, "final", key) for key, label in MISSION_METRICS.items() if key != EM and key in logged]
    if EVAL_EM in logged:
        cols += [("eval EM final", "final", EVAL_EM), ("eval EM best", "best", EVAL_EM)]
    return cols


def markdown_table(summaries: Sequence[ConfigSummary]) -> str:
    cols = columns(summaries)
    header = ["configuration", "seeds", "steps", *(c[0] for c in cols)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in summaries:
        cells = [s.name, str(len(s.runs)), str(s.steps)]
        cells += [str(getattr(s, kind).get(key, "–")) for _, kind, key in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def as_json(summaries: Sequence[ConfigSummary]) -> list[dict[str, Any]]:
    return [
        {
            "configuration": s.name,
            "run_dirs": [str(r.run_dir) for r in s.runs],
            "seeds": s.seeds,
            "steps": s.steps,
            "axes": {axis: s.setting(axis) for axis in SWEEP_AXES},
            "final": {k: v.as_dict() for k, v in s.final.items()},
            "best": {k: v.as_dict() for k, v in s.best.items()},
        }
        for s in summaries
    ]


def heatmap_grid(
    summaries: Sequence[ConfigSummary], key: str, rows: str = SWEEP_AXES[0], cols: str = SWEEP_AXES[1]
) -> tuple[list[Any], list[Any], list[list[float | None]]]:
    """Mean final ``key`` per (rows, cols) cell; configurations that share a cell are averaged."""
    cells: dict[tuple[Any, Any], list[float]] = {}
    for s in summaries:
        row, col, value = s.setting(rows), s.setting(cols), s.final.get(key)
        if row is not None and col is not None and value is not None:
            cells.setdefault((row, col), []).append(value.mean)
    row_values = sorted({r for r, _ in cells})
    col_values = sorted({c for _, c in cells})
    grid = [[statistics.fmean(cells[(r, c)]) if (r, c) in cells else None for c in col_values] for r in row_values]
    return row_values, col_values, grid
