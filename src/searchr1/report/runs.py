"""Load run dirs: ``metrics.jsonl`` + ``resolved_config.yaml`` (+ Hydra's ``.hydra/overrides.yaml`` and
``checkpoint_eval.json`` when ``searchr1-eval eval.run`` scored its checkpoints), nothing else."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from searchr1.metrics_file import read_records
from searchr1.paths import RunDir

OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
# Overrides that do not change what a run is: the seed (aggregated over) and the sweep selector.
_NOT_CONFIGURATION = ("seed", "sweep", "sweep_name")


@dataclass
class Run:
    run_dir: Path
    config: dict[str, Any]
    overrides: list[str]
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    """Metric key -> [(step, value)] in step order; non-numeric and NaN values are dropped."""
    checkpoint_eval: list[dict[str, Any]] = field(default_factory=list)
    """Held-out EM/F1 per saved checkpoint (``checkpoint_eval.json`` rows), empty when not evaluated."""

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    def setting(self, dotted: str) -> Any:
        node: Any = self.config
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def configuration_overrides(self) -> list[str]:
        """What distinguishes this run from its seed siblings: its overrides without the seed."""
        return sorted(o for o in self.overrides if o.split("=", 1)[0].lstrip("+~") not in _NOT_CONFIGURATION)

    def configuration(self, shared: frozenset[str] = frozenset()) -> str:
        """The configuration's name; ``shared`` overrides (common to every run compared) are left out."""
        return ",".join(o for o in self.configuration_overrides() if o not in shared) or "default"

    def final(self, key: str) -> float | None:
        points = self.history.get(key)
        return points[-1][1] if points else None

    def best(self, key: str) -> float | None:
        points = self.history.get(key)
        return max(v for _, v in points) if points else None


def is_run_dir(path: Path) -> bool:
    return (path / RunDir.METRICS).is_file() and RunDir(path).has_config()


def find_runs(root: Path) -> list[Run]:
    """``root`` itself when it is a run dir, else every run dir below it (a sweep dir), sorted by path."""
    root = Path(root)
    if is_run_dir(root):
        return [load_run(root)]
    return [load_run(p.parent) for p in sorted(root.rglob(RunDir.METRICS)) if is_run_dir(p.parent)]


def load_run(run_dir: Path) -> Run:
    config = RunDir(run_dir).read_config()
    overrides_path = run_dir / OVERRIDES_FILE
    overrides = [str(o) for o in yaml.safe_load(overrides_path.read_text()) or []] if overrides_path.is_file() else []
    checkpoint_eval = run_dir / RunDir.CHECKPOINT_EVAL
    rows = json.loads(checkpoint_eval.read_text())["rows"] if checkpoint_eval.is_file() else []
    return Run(
        run_dir=run_dir,
        config=config,
        overrides=overrides,
        history=read_history(run_dir / RunDir.METRICS),
        checkpoint_eval=rows,
    )


def read_history(path: Path) -> dict[str, list[tuple[int, float]]]:
    history: dict[str, dict[int, float]] = {}
    for record in read_records(path):
        for key, value in record.items():
            if key != "step" and _is_number(value):
                history.setdefault(key, {})[record["step"]] = float(value)  # a re-logged step keeps its last value
    return {key: sorted(points.items()) for key, points in history.items()}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
