"""RL visibly learning on a laptop: GRPO on top of a partial warm start, held-out exact match before and after.

    python benchmarks/learning_demo.py [--out outputs/learning_demo] [--plot docs/img/learning_demo.png]
    python benchmarks/learning_demo.py --experiment cpu_learn_two_hop    # two search turns, planned warm start
    python benchmarks/learning_demo.py --experiment cpu_learn_tools      # two tools: search, then calculator
    python benchmarks/learning_demo.py --experiment cpu_learn_tool_calls # cpu_learn in the function-call format

Real runs, each a subprocess with its own run dir under --out:
0. (``--remake-warm-start``, or a warm start searchr1 does not ship) ``searchr1-sft +experiment=<its warm-start
   preset>``: make the warm start instead of using the one searchr1 ships (the same command made it; its
   provenance.json says so);
1. ``python -m searchr1 +experiment=<--experiment>``: GRPO from the warm start, with the shared eval code
   scoring 200 held-out test questions (greedy) before the first step and after the last;
2. ``searchr1-eval +experiment=<--experiment> eval.checkpoint=<1>/policy <tool>.enabled=false``, once per tool
   of the experiment: the trained policy on the same questions with that tool off (every search returns
   nothing, every calculation answers that the calculator is unavailable): where its answers come from.
Prints warm-start EM, final EM, EM with each tool off, per-source EM, calls per sample of each tool and
wall time per phase, and plots the curves. Extra ``key=value`` arguments go to every run (e.g.
``trainer.steps=4``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from searchr1.paths import RunDir
from searchr1.report.runs import read_history

CURVES = (
    "reward/exact_match",
    "reward/format",
    "search_r1/search_calls_per_sample",
    "loss_mask/observation_fraction",
    "tis/effective_sample_size_fraction",
)


@dataclass(frozen=True)
class Demo:
    warm_start_preset: str
    """The searchr1-sft preset that made the warm start the learning preset starts from."""
    tools: tuple[str, ...] = ("search",)
    """The learning preset's tools: each is turned off in one eval of the trained policy."""
    shipped: bool = True
    """searchr1 ships the warm start; when not, the demo always makes it first."""


DEMOS = {
    "cpu_learn": Demo("cpu_warmstart"),
    "cpu_learn_two_hop": Demo("cpu_warmstart_planned"),
    "cpu_learn_tools": Demo("cpu_warmstart_tools", ("search", "calculator")),
    "cpu_learn_tool_calls": Demo("cpu_warmstart_tool_calls", shipped=False),
}


def run(phase: str, command: list[str]) -> float:
    print(f"== {phase}: {' '.join(command)}", flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def sources(history: dict) -> list[str]:
    """The data sources the periodic eval scored (``eval/<source>/exact_match``)."""
    keys = (key.split("/") for key in history if key.startswith("eval/") and key.endswith("/exact_match"))
    return sorted(parts[1] for parts in keys if len(parts) == 3)


def eval_point(history: dict, step_index: int) -> dict[str, float]:
    """The eval/* values logged at the first (0) or last (-1) eval step."""
    return {
        key[len("eval/") :]: points[step_index][1]
        for key, points in history.items()
        if key.startswith("eval/") and points
    }


def plot(history: dict, out: Path, title: str, tools: tuple[str, ...], ablations: dict[str, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (train_ax, eval_ax, tools_ax) = plt.subplots(1, 3, figsize=(16, 4.2), width_ratios=(4, 4, 3))
    tool_curves = tuple(f"tool/{tool}/calls_per_sample" for tool in tools if len(tools) > 1)
    for key in (*CURVES, *tool_curves):
        points = history.get(key, [])
        train_ax.plot([s for s, _ in points], [v for _, v in points], marker="o", markersize=3, label=key)
    train_ax.set(xlabel="GRPO step", ylabel="mean over the step's samples", title="training samples")
    for key in ("eval/exact_match", *(f"eval/{source}/exact_match" for source in sources(history))):
        points = history.get(key, [])
        eval_ax.plot([s for s, _ in points], [v for _, v in points], marker="s", label=key)
    eval_ax.set(xlabel="GRPO step", ylabel="exact match (greedy)", title="held-out test questions", ylim=(0, 1))
    bars = tools_ax.bar(list(ablations), list(ablations.values()), color="tab:blue")
    tools_ax.bar_label(bars, fmt="%.3f", fontsize=8)
    tools_ax.set(ylabel="exact match (greedy)", title="held-out: before, after, each tool off", ylim=(0, 1))
    tools_ax.tick_params(axis="x", labelsize=8)
    for ax in (train_ax, eval_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # GRPO steps, no 1.5
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/learning_demo"))
    parser.add_argument("--plot", type=Path, default=None, help="PNG of the curves (default: <out>/curves.png)")
    parser.add_argument("--experiment", choices=sorted(DEMOS), default="cpu_learn")
    parser.add_argument(
        "--remake-warm-start",
        action="store_true",
        help="run searchr1-sft first instead of starting from the shipped warm start",
    )
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    args = parser.parse_args()
    demo = DEMOS[args.experiment]
    out = args.out.resolve()
    grpo_dir = out / "grpo"
    overrides = list(args.overrides)
    started = time.perf_counter()
    seconds = {}
    if args.remake_warm_start or not demo.shipped:
        warm_start = out / "warm_start"
        seconds["warm start"] = run(
            "warm start",
            [
                "searchr1-sft",
                f"+experiment={demo.warm_start_preset}",
                f"sft.output_dir={warm_start}",
                f"hydra.run.dir={out / 'sft'}",
                *overrides,
            ],
        )
        overrides.append(f"trainer.init_from={warm_start}")
    seconds["grpo"] = run(
        "grpo",
        [sys.executable, "-m", "searchr1", f"+experiment={args.experiment}", f"hydra.run.dir={grpo_dir}", *overrides],
    )
    history = read_history(grpo_dir / RunDir.METRICS)
    columns = {"warm start": eval_point(history, 0), "after GRPO": eval_point(history, -1)}
    for tool in demo.tools:
        phase = f"{tool} off"
        off_dir = out / f"{tool}_off"
        seconds[phase] = run(
            phase,
            [
                "searchr1-eval",
                f"+experiment={args.experiment}",
                f"eval.checkpoint={grpo_dir / 'policy'}",
                f"{tool}.enabled=false",
                f"hydra.run.dir={off_dir}",
                *overrides,
            ],
        )
        metrics = json.loads((off_dir / "eval.json").read_text())["metrics"]
        columns[phase] = {key[len("eval/") :]: value for key, value in metrics.items() if key.startswith("eval/")}
    rows = ["exact_match", *(f"{source}/exact_match" for source in sources(history)), "search_calls_per_sample"]
    rows += [f"tool/{tool}/calls_per_sample" for tool in demo.tools if len(demo.tools) > 1]
    print_table(columns, rows)
    before, after = columns["warm start"], columns["after GRPO"]
    print(f"EM gain from GRPO: {after.get('exact_match', 0.0) - before.get('exact_match', 0.0):+.3f}")
    print(
        "wall time: "
        + ", ".join(f"{phase} {s / 60:.1f} min" for phase, s in seconds.items())
        + f", total {(time.perf_counter() - started) / 60:.1f} min"
    )
    title = f"{args.experiment}: SmolLM2-135M + LoRA, GRPO from the partial warm start"
    ablations = {name: values.get("exact_match", float("nan")) for name, values in columns.items()}
    plot(history, args.plot or out / "curves.png", title, demo.tools, ablations)


def print_table(columns: dict[str, dict[str, float]], rows: list[str]) -> None:
    """One row per metric, one column per policy (warm start, after GRPO, each tool off)."""
    width = max(24, *(len(row) + 2 for row in rows))
    sizes = {name: max(12, len(name) + 2) for name in columns}
    print("\n== learning demo (greedy, held-out test questions)")
    print(f"{'':{width}}" + "".join(f"{name:>{sizes[name]}}" for name in columns))
    for row in rows:
        cells = (f"{values.get(row, float('nan')):{sizes[name]}.3f}" for name, values in columns.items())
        print(f"{row:{width}}" + "".join(cells))


if __name__ == "__main__":
    main()
