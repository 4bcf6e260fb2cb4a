"""Training health on a destructive run: a rule fires before reward falls, and rollback brings the run back.

    python benchmarks/health_demo.py [--out outputs/health_demo] [--plot docs/img/health_demo.png] [--lr 1e-2]

Real embedded runs of SmolLM2-135M + LoRA from the shipped warm start (the default trainer.init_from), each a
subprocess with its own run dir under --out, on a small CPU config (2 prompts x 4 samples a step, one thread):
1. ``healthy``: the default learning rate (trainer.lr=1e-4): the indicators' values on a run that is fine;
2. ``warn``: trainer.lr=--lr (100x the default), every rule on its default action (warn): watch the collapse;
3. ``rollback``: the same with ``health.update_kl.action=rollback`` and ``health.rollback_lr_factor=0.01``:
   the destructive update is undone before any rollout sees it, and the run goes on at the default lr.
Prints each run's steps (EM, format, the indicators, fired rules, lr), the step where the first rule fired
vs the step where EM and format fell to half their step-1 value, and plots the curves with the firings
and rollbacks marked. Extra ``key=value`` arguments go to every run (e.g. ``seed=1``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from searchr1.config.schema import HealthConfig
from searchr1.metrics_file import HEALTH_FIRED_PREFIX
from searchr1.paths import RunDir
from searchr1.report.runs import read_history

DEFAULT_LR = 1e-4
"""trainer=local's trainer.lr."""
SMALL = (
    "trainer.threads=1",
    "trainer.prompts_per_step=2",
    "rollout.n_samples_per_prompt=4",
    "trainer.checkpoint_every=0",
    "logger.mode=disabled",
)
EM, FORMAT, UPDATE_KL = "reward/exact_match", "reward/format", "health/update_kl"
UPDATE_KL_LIMIT = HealthConfig().update_kl.threshold
COLUMNS = (
    (EM, "EM"),
    (FORMAT, "format"),
    (UPDATE_KL, "update_kl"),
    ("health/empty_think_rate", "empty_think"),
    ("search_r1/invalid_action_rate", "invalid_act"),
    ("train/entropy", "entropy"),
)


@dataclass(frozen=True)
class Run:
    name: str
    lr: float
    overrides: tuple[str, ...]
    label: str


def runs(lr: float) -> list[Run]:
    return [
        Run("healthy", DEFAULT_LR, (), f"lr {DEFAULT_LR:g} (default), rules warn"),
        Run("warn", lr, (), f"lr {lr:g}, rules warn"),
        Run(
            "rollback",
            lr,
            ("health.update_kl.action=rollback", "health.rollback_lr_factor=0.01"),
            f"lr {lr:g}, health.update_kl.action=rollback (lr x 0.01)",
        ),
    ]


def launch(run: Run, out: Path, steps: int, extra: list[str]) -> tuple[subprocess.Popen, float]:
    command = [
        sys.executable,
        "-m",
        "searchr1",
        *SMALL,
        f"trainer.steps={steps}",
        f"trainer.lr={run.lr:g}",
        *run.overrides,
        f"hydra.run.dir={out / run.name}",
        *extra,
    ]
    print(f"== {run.name}: {' '.join(command)}", flush=True)
    (out / run.name).mkdir(parents=True, exist_ok=True)
    log = (out / run.name / "stdout.log").open("w")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), time.perf_counter()


def run_all(todo: list[Run], out: Path, steps: int, extra: list[str], jobs: int) -> dict[str, float]:
    """Run ``jobs`` at a time (each on one thread); returns each run's wall seconds."""
    seconds: dict[str, float] = {}
    pending = list(todo)
    active: dict[str, tuple[subprocess.Popen, float]] = {}
    while pending or active:
        while pending and len(active) < jobs:
            run = pending.pop(0)
            active[run.name] = launch(run, out, steps, extra)
        for name, (process, started) in list(active.items()):
            code = process.poll()
            if code is None:
                continue
            del active[name]
            seconds[name] = time.perf_counter() - started
            if code:
                tail = (out / name / "stdout.log").read_text()[-3000:]
                raise SystemExit(f"{name} failed (exit code {code}):\n{tail}")
        time.sleep(1.0)
    return seconds


def at(history: dict, key: str) -> dict[int, float]:
    return dict(history.get(key, []))


def fired_at(history: dict) -> dict[int, list[str]]:
    fired: dict[int, list[str]] = {}
    for key, points in history.items():
        if key.startswith(HEALTH_FIRED_PREFIX):
            for step, value in points:
                if value:
                    fired.setdefault(step, []).append(key[len(HEALTH_FIRED_PREFIX) :])
    return fired


def halved_at(history: dict, key: str) -> Optional[int]:
    """The first step whose value is at most half the step-1 value (None: never)."""
    points = history.get(key, [])
    if not points:
        return None
    first = points[0][1]
    return next((step for step, value in points if value <= first / 2), None)


def lr_at(run: Run, history: dict) -> dict[int, float]:
    """The lr the step's update used (a rollback at a step lowers the lr from the next step on)."""
    scales = at(history, "health/lr_scale")
    out, scale = {}, 1.0
    for step, _ in history.get(EM, []):
        out[step] = run.lr * scale
        scale = scales.get(step, scale)
    return out


def print_run(run: Run, history: dict) -> None:
    fired, lrs, rollbacks = fired_at(history), lr_at(run, history), rollback_steps(history)
    print(f"\n== {run.name}: {run.label}")
    print(f"{'step':>4} {'lr':>8} " + " ".join(f"{label:>11}" for _, label in COLUMNS) + "  fired")
    for step, _ in history.get(EM, []):
        values = " ".join(f"{at(history, key).get(step, float('nan')):11.4f}" for key, _ in COLUMNS)
        note = ",".join(sorted(fired.get(step, []))) + ("  -> rolled back" if step in rollbacks else "")
        print(f"{step:4d} {lrs[step]:8.0e} {values}  {note}")
    first = min(fired) if fired else None
    rules = ",".join(sorted(fired[first])) if first is not None else "-"
    print(
        f"first firing: step {first} ({rules}); EM fell to half its step-1 value at step {halved_at(history, EM)}, "
        f"format at step {halved_at(history, FORMAT)} (None: never)"
    )


def plot(todo: list[Run], histories: dict[str, dict], out: Path, lr: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = (
        (EM, "exact match (the step's samples)"),
        (FORMAT, "format reward"),
        ("health/empty_think_rate", "empty <think> rate"),
        (UPDATE_KL, "update KL, nats per token (log)"),
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(17, 4.3))
    colors = {"healthy": "tab:green", "warn": "tab:red", "rollback": "tab:blue"}
    for ax, (key, title) in zip(axes, panels):
        for run in todo:
            history, color = histories[run.name], colors[run.name]
            points = history.get(key, [])
            values = {step: max(v, 1e-4) if key == UPDATE_KL else v for step, v in points}
            style = "--" if run.name == "warn" else "-"  # the warn and rollback runs share step 1
            ax.plot(list(values), list(values.values()), style, marker="o", markersize=4, color=color, label=run.label)
            for step, _ in at(history, HEALTH_FIRED_PREFIX + "update_kl").items():
                if step in values:
                    ax.plot(step, values[step], marker="x", markersize=12, mew=2.5, color=color)
            for step in rollback_steps(history):
                ax.axvline(step + 0.5, color=color, linestyle=":", linewidth=1.5)
        if key == UPDATE_KL:
            ax.axhline(UPDATE_KL_LIMIT, color="black", linestyle="--", linewidth=1, label="health.update_kl threshold")
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel="GRPO step", title=title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[-1].legend(fontsize=8, handles=axes[-1].get_lines()[-1:])
    fig.suptitle(
        f"SmolLM2-135M + LoRA from its warm start, lr {lr:g} (100x the default): x = health.update_kl fired; "
        "dotted = rolled back (the next step starts from the restored weights at lr x 0.01)",
        fontsize=10,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"wrote {out}")


def rollback_steps(history: dict) -> list[int]:
    """The steps at whose end a rollback happened (health/rollbacks went up)."""
    steps, previous = [], 0.0
    for step, count in history.get("health/rollbacks", []):
        if count > previous:
            steps.append(step)
        previous = count
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/health_demo"))
    parser.add_argument("--plot", type=Path, default=Path("docs/img/health_demo.png"))
    parser.add_argument("--lr", type=float, default=100 * DEFAULT_LR, help="the destructive learning rate")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (each uses one thread; 2: both cores)")
    parser.add_argument(
        "--runs", default="healthy,warn,rollback", help="which of healthy, warn, rollback to run (comma-separated)"
    )
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    args = parser.parse_args()
    out = args.out.resolve()
    todo = [run for run in runs(args.lr) if run.name in args.runs.split(",")]
    started = time.perf_counter()
    seconds = run_all(todo, out, args.steps, list(args.overrides), args.jobs)
    histories = {run.name: read_history(out / run.name / RunDir.METRICS) for run in todo}
    for run in todo:
        print_run(run, histories[run.name])
    print(
        "\nwall time: "
        + ", ".join(f"{name} {s / 60:.1f} min" for name, s in seconds.items())
        + f", total {(time.perf_counter() - started) / 60:.1f} min"
    )
    plot(todo, histories, args.plot, args.lr)


if __name__ == "__main__":
    main()
