"""Plot a cpu_learn run's reward/exact_match and reward/format over steps (docs/img/cpu_learn.png).

python -m searchr1 +experiment=cpu_learn hydra.run.dir=outputs/cpu_learn
python benchmarks/plot_cpu_learn.py outputs/cpu_learn [--out docs/img/cpu_learn.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from searchr1.report.runs import read_history
from searchr1.paths import METRICS_FILE

# total = exact_match + format: drawn dashed so that it does not hide format while EM is still 0.
STYLES = {"reward/exact_match": "-", "reward/format": "-", "reward/total": "--"}


def plot(run_dir: Path, out: Path) -> None:
    history = read_history(run_dir / METRICS_FILE)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for key, style in STYLES.items():
        points = history.get(key, [])
        ax.plot([s for s, _ in points], [v for _, v in points], style, marker="o", markersize=3, label=key)
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("mean over the step's samples")
    ax.set_title(f"cpu_learn: SmolLM2-135M + LoRA on synthetic data ({run_dir.name})")
    ax.grid(alpha=0.3)
    ax.legend()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/img/cpu_learn.png"))
    args = parser.parse_args()
    plot(args.run_dir, args.out)


if __name__ == "__main__":
    main()
