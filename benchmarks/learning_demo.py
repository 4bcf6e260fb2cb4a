"""RL visibly learning on a laptop: GRPO on top of a partial warm start, held-out exact match before and after.

    python benchmarks/learning_demo.py [--out outputs/learning_demo] [--plot docs/img/learning_demo.png]
    python benchmarks/learning_demo.py --experiment cpu_learn_two_hop    # two search turns, planned warm start

Real runs, each a subprocess with its own run dir under --out:
0. (``--remake-warm-start``) ``searchr1-sft +experiment=<its warm-start preset>``: make the warm start again
   instead of using the one searchr1 ships (the same command made it; its provenance.json says so);
1. ``python -m searchr1 +experiment=<--experiment>``: GRPO from the warm start, with the shared eval code
   scoring 200 held-out test questions (greedy) before the first step and after the last;
2. ``searchr1-eval +experiment=<--experiment> eval.checkpoint=<1>/policy search.enabled=false``: the trained policy
   on the same questions without search (every search returns nothing): where its answers come from.
Prints warm-start EM, final EM, search-off EM, per-hop EM, searches per sample and wall time per phase,
and plots the curves. Extra ``key=value`` arguments go to every run (e.g. ``trainer.steps=4``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
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
HOPS = ("synthetic_1hop", "synthetic_2hop")
# Each learning preset and the searchr1-sft preset that made the warm start it starts from.
WARM_START_PRESETS = {"cpu_learn": "cpu_warmstart", "cpu_learn_two_hop": "cpu_warmstart_planned"}


def run(phase: str, command: list[str]) -> float:
    print(f"== {phase}: {' '.join(command)}", flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def eval_point(history: dict, step_index: int) -> dict[str, float]:
    """The eval/* values logged at the first (0) or last (-1) eval step."""
    return {
        key[len("eval/") :]: points[step_index][1]
        for key, points in history.items()
        if key.startswith("eval/") and points
    }


def plot(history: dict, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (train_ax, eval_ax) = plt.subplots(1, 2, figsize=(12, 4.2))
    for key in CURVES:
        points = history.get(key, [])
        train_ax.plot([s for s, _ in points], [v for _, v in points], marker="o", markersize=3, label=key)
    train_ax.set(xlabel="GRPO step", ylabel="mean over the step's samples", title="training samples")
    for key in ("eval/exact_match", *(f"eval/{hop}/exact_match" for hop in HOPS)):
        points = history.get(key, [])
        eval_ax.plot([s for s, _ in points], [v for _, v in points], marker="s", label=key)
    eval_ax.set(xlabel="GRPO step", ylabel="exact match (greedy)", title="held-out test questions", ylim=(0, 1))
    for ax in (train_ax, eval_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
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
    parser.add_argument("--experiment", choices=sorted(WARM_START_PRESETS), default="cpu_learn")
    parser.add_argument(
        "--remake-warm-start",
        action="store_true",
        help="run searchr1-sft first instead of starting from the shipped warm start",
    )
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    args = parser.parse_args()
    out = args.out.resolve()
    grpo_dir, off_dir = out / "grpo", out / "search_off"
    overrides = list(args.overrides)
    started = time.perf_counter()
    seconds = {}
    if args.remake_warm_start:
        warm_start = out / "warm_start"
        seconds["warm start"] = run(
            "warm start",
            [
                "searchr1-sft",
                f"+experiment={WARM_START_PRESETS[args.experiment]}",
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
    seconds["search off"] = run(
        "search off",
        [
            "searchr1-eval",
            f"+experiment={args.experiment}",
            f"eval.checkpoint={grpo_dir / 'policy'}",
            "search.enabled=false",
            f"hydra.run.dir={off_dir}",
            *overrides,
        ],
    )
    search_off = json.loads((off_dir / "eval.json").read_text())["metrics"]
    before, after = eval_point(history, 0), eval_point(history, -1)
    print("\n== learning demo (greedy, held-out test questions)")
    print(f"{'':24}{'warm start':>12}{'after GRPO':>12}{'search off':>12}")
    for key in ("exact_match", *(f"{hop}/exact_match" for hop in HOPS), "search_calls_per_sample"):
        off = search_off.get(f"eval/{key}", float("nan"))
        print(f"{key:24}{before.get(key, float('nan')):12.3f}{after.get(key, float('nan')):12.3f}{off:12.3f}")
    print(f"EM gain from GRPO: {after.get('exact_match', 0.0) - before.get('exact_match', 0.0):+.3f}")
    print(
        "wall time: "
        + ", ".join(f"{phase} {s / 60:.1f} min" for phase, s in seconds.items())
        + f", total {(time.perf_counter() - started) / 60:.1f} min"
    )
    title = f"{args.experiment}: SmolLM2-135M + LoRA, GRPO from the partial warm start"
    plot(history, args.plot or out / "curves.png", title)


if __name__ == "__main__":
    main()
