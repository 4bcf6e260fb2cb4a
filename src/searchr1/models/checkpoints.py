"""The embedded trainer's saved policies, read: checkpoint file names, which policy a path holds, and
the policy rebuilt from it.

``trainers/local/checkpoint.py`` writes the checkpoint format (these names are its keys); export and
eval read it here, so neither needs the trainer. A path is one of: a run dir (its newest checkpoint),
a ``step_XXXXXX.pt`` checkpoint, a PEFT LoRA adapter dir or a whole Hugging Face model dir. A
checkpoint holds only the trainable weights; the rest is rebuilt from the run's resolved config
(model, ``trainer.init_from``, ``trainer.lora_rank``), exactly as the trainer built its policy.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

from searchr1.config.checks import ConfigError
from searchr1.config.schema import ModelConfig
from searchr1.errors import UserError
from searchr1.paths import RunDir

LATEST = "LATEST"
"""File in the checkpoint dir naming the newest complete checkpoint."""
STEP_KEY = "step"
TRAINABLE_KEY = "trainable"
"""Checkpoint keys: the step, and {parameter name: tensor} of every trainable parameter."""
_CHECKPOINT_NAME = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_name(step: int) -> str:
    return f"step_{step:06d}.pt"


def checkpoint_step(path: Path) -> Optional[int]:
    """The step in a ``step_XXXXXX.pt`` name, None for any other name."""
    match = _CHECKPOINT_NAME.match(path.name)
    return int(match.group(1)) if match else None


def saved_checkpoints(directory: Path) -> dict[int, Path]:
    """{step: path} of every complete checkpoint in ``directory``, in step order."""
    found = {checkpoint_step(p): p for p in directory.glob("step_*.pt")}
    return {step: found[step] for step in sorted(s for s in found if s is not None)}


class UnsafeCheckpointError(ConfigError):
    """A checkpoint that holds pickled objects (possibly code); refused on load."""


def read_checkpoint(path: Path, key: str) -> dict:
    """A checkpoint's state dict, loaded with ``weights_only=True``; ``key`` names what asked for it."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message is a page of advice (including "re-run with weights_only=False"); keep
        # only its line naming the object that was refused.
        reason = next((line for line in str(exc).splitlines() if "GLOBAL" in line), "unsupported pickled object")
        raise UnsafeCheckpointError(
            f"refusing to load {path} ({key}): it holds more than tensors "
            f"and plain data, and loading it could run code ({reason[:200]})"
        ) from None


@dataclass(frozen=True)
class SavedPolicy:
    """What a path given as a policy holds (checked, no weights loaded)."""

    path: Path
    kind: Literal["checkpoint", "adapter", "model"]
    step: Optional[int]
    """The training step of a checkpoint (None for an adapter or model dir)."""
    run_dir: Optional[Path]
    """The run that wrote it (a checkpoint's run config rebuilds the policy; for a dir, its base model)."""

    def record(self) -> dict[str, Any]:
        """Which policy was used, for result files: path, kind, step and a hash of its bytes."""
        return {"path": str(self.path), "kind": self.kind, "step": self.step, "sha256": content_hash(self.path)}


def find_policy(given: str, key: str) -> SavedPolicy:
    """Resolve a run dir, checkpoint file, adapter dir or model dir, or a one-line ConfigError naming ``key``."""
    from searchr1.models.loading import check_warm_start

    path = Path(given).expanduser()
    if path.is_file():
        if checkpoint_step(path) is None:
            raise ConfigError(f"{key}={given!r} is a file but not a checkpoint (step_XXXXXX.pt)")
        return SavedPolicy(
            path=path, kind="checkpoint", step=checkpoint_step(path), run_dir=_run_dir_of(path, given, key)
        )
    if path.is_dir() and RunDir(path).has_config():
        return _newest_of_run(path, given, key)
    start = check_warm_start(given, 0, key)
    return SavedPolicy(path=start.path, kind=start.kind, step=None, run_dir=_nearest_run_dir(start.path))


def run_checkpoints(run_dir: Path, key: str) -> dict[int, Path]:
    """{step: checkpoint} of a run dir (its ``trainer.checkpoint_dir`` or ``checkpoints/``)."""
    config = run_config(run_dir, key)
    directory = RunDir(run_dir).checkpoint_dir(config.get("trainer", {}).get("checkpoint_dir"))
    return saved_checkpoints(Path(directory))


def _newest_of_run(run_dir: Path, given: str, key: str) -> SavedPolicy:
    saved = run_checkpoints(run_dir, key)
    if saved:
        step = max(saved)
        return SavedPolicy(path=saved[step], kind="checkpoint", step=step, run_dir=run_dir)
    if (run_dir / RunDir.POLICY).is_dir():
        return find_policy(str(run_dir / RunDir.POLICY), key)
    if run_trainer_name(run_dir) == "miles":
        raise ConfigError(
            f"{key}={given!r} is a Miles run: its checkpoints are Megatron torch_dist; convert one with "
            f"searchr1-export {given} --out DIR and serve DIR with SGLang (eval.sglang_url)"
        )
    raise ConfigError(
        f"{key}={given!r}: the run dir holds no checkpoint ({RunDir.CHECKPOINTS}/step_*.pt) and no {RunDir.POLICY}/ dir"
    )


def _nearest_run_dir(path: Path) -> Optional[Path]:
    """The run dir above ``path``: the nearest ancestor holding a resolved config (None if none)."""
    return next((parent for parent in path.resolve().parents if RunDir(parent).has_config()), None)


def _run_dir_of(checkpoint: Path, given: str, key: str) -> Path:
    run_dir = _nearest_run_dir(checkpoint)
    if run_dir is not None:
        return run_dir
    raise ConfigError(
        f"{key}={given!r}: no {RunDir.RESOLVED_CONFIG} above it; a checkpoint holds only the trainable "
        "weights, and the run's config says which model and warm start they belong to"
    )


def run_config(run_dir: Path, key: str) -> dict[str, Any]:
    """A run dir's resolved config as plain data, or a one-line ConfigError naming ``key``."""
    try:
        config = RunDir(run_dir).read_config()
    except UserError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    if not isinstance(config.get("model"), dict):
        raise ConfigError(f"{key}: {run_dir / RunDir.RESOLVED_CONFIG} holds no model: section")
    return config


def run_trainer_name(path: Path) -> Optional[str]:
    """``trainer.name`` of the run dir ``path`` (local, miles), None when it is no run dir."""
    if not RunDir(path).has_config():
        return None
    return run_config(path, str(path)).get("trainer", {}).get("name")


def run_model_config(run_dir: Path, key: str) -> ModelConfig:
    """The ``model.*`` a run trained, from its resolved config."""
    section = run_config(run_dir, key)["model"]
    known = {name: value for name, value in section.items() if name in ModelConfig.__dataclass_fields__}
    return ModelConfig(**known)


def load_saved_policy(saved: SavedPolicy, model_cfg: ModelConfig, *, merge: bool = True) -> Any:
    """The float32 policy ``saved`` holds, in eval mode; LoRA adapters merged unless ``merge=False``.

    A checkpoint is rebuilt as its run's trainer built the policy (same base or warm start, same LoRA
    rank) and its trainable weights copied in. An adapter dir applies to its run's model, else to
    ``model_cfg``.
    """
    import torch

    from searchr1.models.loading import load_policy

    if saved.kind != "checkpoint":
        base = run_model_config(saved.run_dir, "checkpoint") if saved.run_dir else model_cfg
        policy = load_policy(base, str(saved.path), 0 if merge else _adapter_rank(saved), key="checkpoint")
        return policy.eval().requires_grad_(False)
    assert saved.run_dir is not None
    trainer = run_config(saved.run_dir, "checkpoint").get("trainer", {})
    policy = load_policy(
        run_model_config(saved.run_dir, "checkpoint"),
        trainer.get("init_from"),
        int(trainer.get("lora_rank", 0)),
        key=f"{saved.run_dir}: trainer.init_from",
    )
    trainable = read_checkpoint(saved.path, "checkpoint")[TRAINABLE_KEY]
    params = dict(policy.named_parameters())
    missing = sorted(set(trainable) - set(params))
    if missing:
        raise ConfigError(f"{saved.path} holds parameters the rebuilt policy lacks: {missing[:3]}")
    with torch.no_grad():
        for name, value in trainable.items():
            params[name].copy_(value)
    if merge and hasattr(policy, "merge_and_unload"):
        policy = policy.merge_and_unload()
    return policy.eval().requires_grad_(False)


def _adapter_rank(saved: SavedPolicy) -> int:
    from searchr1.models.loading import check_warm_start

    return check_warm_start(str(saved.path), 0, "checkpoint").rank


def content_hash(path: Path) -> str:
    """sha256 over a file's bytes, or over a dir's files (name and bytes, in name order)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
