"""PNG plots (matplotlib, Agg backend): mission metrics over steps, and the sweep heat map."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Sequence

from searchr1.metrics_file import HEALTH_FIRED_PREFIX
from searchr1.report.summary import EM, MISSION_METRICS, TOOL_PANELS, ConfigSummary


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless: reports are made on clusters and in CI
    import matplotlib.pyplot as plt

    return plt


def mean_curve(summary: ConfigSummary, key: str) -> tuple[list[int], list[float], list[float]]:
    """Steps, mean and std across the configuration's seeds (a step counts the seeds that logged it)."""
    by_step: dict[int, list[float]] = {}
    for run in summary.runs:
        for step, value in run.history.get(key, []):
            by_step.setdefault(step, []).append(value)
    steps = sorted(by_step)
    means = [statistics.fmean(by_step[s]) for s in steps]
    stds = [statistics.stdev(by_step[s]) if len(by_step[s]) > 1 else 0.0 for s in steps]
    return steps, means, stds


def plot_curves(summaries: Sequence[ConfigSummary], path: Path) -> list[str]:
    """One panel per mission metric, one line per configuration (band: ± std across seeds); steps where
    a training-health rule fired are marked.

    Returns the metrics that were plotted; a metric no run logged gets an empty, labelled panel.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), squeeze=False)
    plotted = [
        key for ax, (key, label) in zip(axes.flat, MISSION_METRICS.items()) if _panel(ax, summaries, (key,), label)
    ]
    _mark_firings(axes, health_firings(summaries))
    return _finish(fig, axes, summaries, path, plotted)


def plot_tools(summaries: Sequence[ConfigSummary], tools: Sequence[str], path: Path) -> list[str]:
    """One row per tool: its calls per sample, failure rate and mean latency."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(tools), len(TOOL_PANELS), figsize=(15, 3.5 * len(tools)), squeeze=False)
    keys = [f"tool/{tool}/{key}" for tool in tools for key in TOOL_PANELS]
    plotted = [key for ax, key in zip(axes.flat, keys) if _panel(ax, summaries, (key,), key)]
    return _finish(fig, axes, summaries, path, plotted)


def plot_health(summaries: Sequence[ConfigSummary], path: Path) -> list[str]:
    """The training-health indicators (one panel each), with the steps where a health rule fired marked."""
    plt = _pyplot()
    fig, axes = plt.subplots(3, 4, figsize=(18, 11), squeeze=False)
    plotted = [
        keys[0] for ax, (keys, label) in zip(axes.flat, HEALTH_PANELS.items()) if _panel(ax, summaries, keys, label)
    ]
    _mark_firings(axes, health_firings(summaries))
    return _finish(fig, axes, summaries, path, plotted)


# Health panels: metric keys (the first one a run logged is drawn) -> label.
HEALTH_PANELS: dict[tuple[str, ...], str] = {
    (EM,): "EM",
    ("reward/format",): "format",
    ("train/entropy", "health/sampled_neg_logprob"): "entropy (Miles: -mean sampled logprob)",
    ("health/think_repetition",): "think repetition",
    ("health/empty_think_rate",): "empty think",
    ("health/zero_variance_groups",): "zero-variance groups",
    ("tis/effective_sample_size_fraction",): "ESS fraction",
    ("health/mismatch_k3_kl",): "mismatch k3 KL",
    ("health/update_kl",): "update KL (before vs after the step)",
    ("rollout/response_len_mean",): "response length",
    ("rollout/truncated_fraction",): "truncated",
    ("search_r1/invalid_action_rate",): "invalid actions",
    ("health/correct_logprob",): "logprob of correct answers",
}


def health_firings(summaries: Sequence[ConfigSummary]) -> dict[int, list[str]]:
    """Steps where a health rule fired in any run (``health/fired/<rule>`` in metrics.jsonl) -> the rules."""
    fired: dict[int, set[str]] = {}
    for run in (run for summary in summaries for run in summary.runs):
        for key, points in run.history.items():
            if key.startswith(HEALTH_FIRED_PREFIX):
                for step, value in points:
                    if value:
                        fired.setdefault(step, set()).add(key.removeprefix(HEALTH_FIRED_PREFIX))
    return {step: sorted(rules) for step, rules in sorted(fired.items())}


def _panel(ax: Any, summaries: Sequence[ConfigSummary], keys: Sequence[str], label: str) -> bool:
    """One metric's mean curve per configuration (band: ± std across seeds); False when no run logged it."""
    key = next((k for k in keys if any(mean_curve(s, k)[0] for s in summaries)), keys[0])
    ax.set_title(key, fontsize=10)
    ax.set_xlabel("step")
    ax.set_prop_cycle(color=_pyplot().cm.tab20.colors)  # a 4x3 sweep needs more than the default 10 colours
    drawn = False
    for summary in summaries:
        steps, means, stds = mean_curve(summary, key)
        if not steps:
            continue
        (line,) = ax.plot(steps, means, marker="o", markersize=3, label=summary.name)
        if len(summary.runs) > 1:
            low = [m - s for m, s in zip(means, stds)]
            high = [m + s for m, s in zip(means, stds)]
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
        drawn = True
    if not drawn:
        ax.text(0.5, 0.5, f"{label}: not logged", ha="center", va="center", transform=ax.transAxes)
        return False
    _plain_axes(ax)
    return True


FLAT_SPREAD = 1e-3
"""A series whose values spread less than this fraction of their magnitude is drawn as flat."""


def _plain_axes(ax: Any) -> None:
    """Steps are integers, so only integer step ticks; values are labelled as they are, never as an
    offset ('1e-5+3.5e-2'), and a series that barely moves (float noise in a mean) is drawn flat in
    the middle of a readable range instead of magnifying its noise."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.ticklabel_format(axis="y", useOffset=False)
    low, high = ax.dataLim.intervaly
    middle = (low + high) / 2
    if high - low <= FLAT_SPREAD * abs(middle):
        pad = 0.05 * abs(middle) or 0.05
        ax.set_ylim(middle - pad, middle + pad)


def _mark_firings(axes: Any, firings: dict[int, list[str]]) -> None:
    """A dotted line at each firing in every panel; the first panel names the rules."""
    for i, ax in enumerate(axes.flat):
        for step, rules in firings.items():
            ax.axvline(step, color="crimson", linestyle=":", linewidth=1)
            if i == 0:
                ax.annotate(
                    ", ".join(rules),
                    xy=(step, 0.98),
                    xycoords=("data", "axes fraction"),
                    rotation=90,
                    fontsize=6,
                    va="top",
                    ha="right",
                    color="crimson",
                )


def _finish(fig: Any, axes: Any, summaries: Sequence[ConfigSummary], path: Path, plotted: list[str]) -> list[str]:
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles and len(summaries) <= 16:
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0.08 if handles else 0, 1, 1))
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return plotted


def plot_heatmap(
    rows: list[Any],
    cols: list[Any],
    grid: list[list[float | None]],
    path: Path,
    *,
    title: str,
    row_label: str,
    col_label: str,
) -> None:
    plt = _pyplot()
    import numpy as np

    values = np.array([[np.nan if v is None else v for v in row] for row in grid], dtype=float)
    fig, ax = plt.subplots(figsize=(1.6 * len(cols) + 2.5, 1.0 * len(rows) + 2))
    image = ax.imshow(values, cmap="viridis", aspect="auto", origin="lower")
    ax.set_xticks(range(len(cols)), [str(c) for c in cols])
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    ax.set_title(title, fontsize=10)
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            ax.text(j, i, "–" if value is None else f"{value:.3f}", ha="center", va="center", color="w")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_checkpoint_eval(curves: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Held-out EM and F1 vs step from ``searchr1-eval eval.run`` rows, one line per run and data source
    (solid: the average over sources)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), squeeze=False)
    for ax, metric, title in zip(axes.flat, ("exact_match", "f1"), ("held-out EM", "held-out F1")):
        ax.set_title(f"{title} per saved checkpoint", fontsize=10)
        ax.set_xlabel("step")
        for name, rows in curves.items():
            steps = [row["step"] for row in rows]
            for source in rows[0][metric]:
                average = source == "Avg."
                ax.plot(
                    steps,
                    [row[metric][source] for row in rows],
                    marker="o",
                    markersize=3,
                    linestyle="-" if average else "--",
                    linewidth=2 if average else 1,
                    label=f"{name} · {source}" if len(curves) > 1 else source,
                )
        _plain_axes(ax)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
