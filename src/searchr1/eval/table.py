"""The paper's evaluation table: EM per dataset in Search-R1's column order, their average, and more rows."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from statistics import fmean
from typing import Sequence

from searchr1.eval.scoring import SampleScore

# Search-R1's Table 2 order (general QA, then multi-hop QA) and display names.
PAPER_DATASETS: dict[str, str] = {
    "nq": "NQ",
    "triviaqa": "TriviaQA",
    "popqa": "PopQA",
    "hotpotqa": "HotpotQA",
    "2wikimultihopqa": "2Wiki",
    "musique": "Musique",
    "bamboogle": "Bamboogle",
}
AVERAGE = "Avg."
# Row name -> SampleScore field averaged over samples.
ROWS: dict[str, str] = {
    "EM": "exact_match",
    "sub-EM": "sub_exact_match",
    "F1": "f1",
    "turns/sample": "turns",
    "searches/sample": "search_calls",
}
# SampleScore field -> periodic-eval key (named like the training keys, under eval/).
_FLAT_KEYS = {
    "exact_match": "exact_match",
    "sub_exact_match": "sub_exact_match",
    "f1": "f1",
    "turns": "turns_per_sample",
    "search_calls": "search_calls_per_sample",
}


@dataclass(frozen=True)
class EvalTable:
    columns: list[str]
    """data_source names in paper order, then any others (synthetic sources) alphabetically."""
    cells: dict[str, dict[str, float]]
    """row -> column (data_source or Avg.) -> value. Avg. is the unweighted mean over datasets (paper)."""
    counts: dict[str, int]
    """Samples per column."""
    pass_k: int


def build_table(scores: Sequence[SampleScore], pass_k: int = 1) -> EvalTable:
    by_source: dict[str, list[SampleScore]] = defaultdict(list)
    for score in scores:
        by_source[score.data_source].append(score)
    columns = [s for s in PAPER_DATASETS if s in by_source] + sorted(s for s in by_source if s not in PAPER_DATASETS)
    cells: dict[str, dict[str, float]] = {}
    for row, attr in ROWS.items():
        cells[row] = {src: fmean(getattr(s, attr) for s in by_source[src]) for src in columns}
    if pass_k > 1:
        cells[f"pass@{pass_k}"] = {src: pass_at_k(by_source[src]) for src in columns}
    for values in cells.values():
        if columns:
            values[AVERAGE] = fmean(values[src] for src in columns)
    counts = {src: len(by_source[src]) for src in columns}
    counts[AVERAGE] = len(scores)
    return EvalTable(columns=columns, cells=cells, counts=counts, pass_k=pass_k)


def pass_at_k(scores: Sequence[SampleScore]) -> float:
    """Share of prompts with at least one exact match among their samples (all k samples are drawn)."""
    solved: dict[int, bool] = defaultdict(bool)
    for score in scores:
        solved[score.prompt_index] |= score.exact_match > 0
    return fmean(solved.values()) if solved else 0.0


def markdown(table: EvalTable, title: str = "") -> str:
    header = ["", *(PAPER_DATASETS.get(c, c) for c in table.columns), AVERAGE]
    lines = [f"**{title}**\n" if title else ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, values in table.cells.items():
        digits = 2 if "/" in row else 3  # rates to 3 places, counts per sample to 2
        lines.append("| " + " | ".join([row, *(f"{values[c]:.{digits}f}" for c in [*table.columns, AVERAGE])]) + " |")
    lines.append("| n | " + " | ".join(str(table.counts[c]) for c in [*table.columns, AVERAGE]) + " |")
    return "\n".join(line for line in lines if line) + "\n"


def flat_metrics(table: EvalTable, scores: Sequence[SampleScore], prefix: str = "eval") -> dict[str, float]:
    """W&B-style keys for periodic eval: overall means over samples, plus EM per dataset."""
    metrics = {f"{prefix}/{key}": fmean(getattr(s, attr) for s in scores) for attr, key in _FLAT_KEYS.items()}
    metrics[f"{prefix}/exact_match_avg_over_datasets"] = table.cells["EM"][AVERAGE]
    metrics.update({f"{prefix}/{src}/exact_match": table.cells["EM"][src] for src in table.columns})
    if table.pass_k > 1:
        metrics[f"{prefix}/pass@{table.pass_k}"] = table.cells[f"pass@{table.pass_k}"][AVERAGE]
    return metrics
