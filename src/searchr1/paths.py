"""Where searchr1 keeps things: one cache root, the data root, and a run dir's files (:class:`RunDir`).

A leaf module (standard library only at import), so that the run, the trackers, the Miles hooks and the
reports can all name the same files without importing each other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional

from searchr1.errors import UserError


@dataclass(frozen=True)
class RunDir:
    """A run dir: every file searchr1 writes into one, by name, and the one reader of its resolved config."""

    path: Path

    RESOLVED_CONFIG: ClassVar[str] = "resolved_config.yaml"
    """The run's whole config, resolved, secrets redacted (``run.save_resolved_config``); read by :meth:`read_config`."""
    METRICS: ClassVar[str] = "metrics.jsonl"
    """One JSON object per step, both trainers (``metrics_file``); what reports read."""
    ROLLOUTS: ClassVar[str] = "rollouts.jsonl"
    """The embedded trainer's trajectories, one JSON line each."""
    CHECKPOINTS: ClassVar[str] = "checkpoints"
    """The embedded trainer's ``step_*.pt``, unless ``trainer.checkpoint_dir`` names another dir."""
    POLICY: ClassVar[str] = "policy"
    """The embedded trainer's final policy, in the warm-start format ``trainer.init_from`` loads."""
    EVAL_SAMPLES: ClassVar[str] = "eval_samples.jsonl"
    """``searchr1-eval``: one scored sample per line, beside its result JSON."""
    CHECKPOINT_EVAL: ClassVar[str] = "checkpoint_eval.json"
    """``searchr1-eval eval.run=<run dir>``: the EM/F1 vs step table it writes into the evaluated run dir."""
    CHECKPOINT_EVAL_PLOT: ClassVar[str] = "checkpoint_eval.png"
    MILES_COMMAND: ClassVar[str] = "miles_command.sh"
    """The Miles launcher's command (secrets redacted), replayable by hand."""
    MILES_LOG: ClassVar[str] = "miles.log"
    """The Miles job's output (Ray, Miles, SGLang)."""
    RETRIEVER_LOG: ClassVar[str] = "retriever.log"
    """The embedded retriever's output."""

    def checkpoint_dir(self, configured: Optional[str]) -> Path:
        """``trainer.checkpoint_dir`` when set, else the run dir's ``checkpoints/``."""
        return Path(configured) if configured else self.path / self.CHECKPOINTS

    def has_config(self) -> bool:
        return (self.path / self.RESOLVED_CONFIG).is_file()

    def read_config(self) -> dict[str, Any]:
        """The resolved config as plain data ({} when empty); a one-line UserError when it cannot be read."""
        import yaml  # PyYAML only when a config is read: the Miles hooks import this module inside Ray actors

        path = self.path / self.RESOLVED_CONFIG
        try:
            config = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            detail = " ".join(str(exc).split())  # YAML errors span lines (the mark, a caret)
            raise UserError(f"cannot read {path} ({type(exc).__name__}: {detail})") from None
        if config is not None and not isinstance(config, dict):
            raise UserError(f"{path} holds no config (a {type(config).__name__}, not a mapping)")
        return config or {}


def cache_root() -> Path:
    """Everything searchr1 generates and keeps across runs, in sub-dirs: synthetic data and indexes at
    the top, dequantized models in ``models/``, converted tokenizers in ``tokenizers/``.

    ``$SEARCHR1_CACHE``, else ``$XDG_CACHE_HOME/searchr1``, else ``~/.cache/searchr1``.
    """
    override = os.environ.get("SEARCHR1_CACHE")
    if override:
        return Path(override).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "searchr1"


def data_root() -> Path:
    """Downloaded datasets and corpora: ``$SEARCHR1_DATA``, else ``~/searchr1-data``."""
    return Path(os.environ.get("SEARCHR1_DATA", Path.home() / "searchr1-data")).expanduser()
