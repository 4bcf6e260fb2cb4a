"""A Miles run's policy as a Hugging Face model dir: Miles' own ``tools/convert_torch_dist_to_hf.py``.

Miles saves the actor as Megatron ``torch_dist`` checkpoints, ``<model.save>/iter_XXXXXXX`` (newest
named by ``latest_checkpointed_iteration.txt``). The tool reads one of them (Megatron's own args are
inside it), renames the weights to Hugging Face names, strips the vocabulary padding
(``--vocab-size``: the model's ``vocab-size`` arch flag) and copies the config and tokenizer from
``--origin-hf-dir`` (``model.hf_checkpoint``). We build its command from the run's resolved config,
check every flag against the tool's recorded parser (``convert_flags.txt``), and print or run it.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from searchr1.config.checks import ConfigError
from searchr1.models.checkpoints import run_config, run_model_config
from searchr1.trainers.miles.flags import recorded_flags

log = logging.getLogger(__name__)

CONVERT_TOOL = "tools/convert_torch_dist_to_hf.py"
CONVERT_FLAGS_FILE = "convert_flags.txt"
LATEST_ITERATION_FILE = "latest_checkpointed_iteration.txt"


@dataclass(frozen=True)
class ConvertCommand:
    """``python3 <miles_root>/tools/convert_torch_dist_to_hf.py <args>`` and the PYTHONPATH it imports Miles with."""

    args: list[str]
    miles_root: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def argv(self) -> list[str]:
        return ["python3", f"{self.miles_root.rstrip('/')}/{CONVERT_TOOL}", *self.args]

    def shell(self) -> str:
        return " ".join([*(f"{k}={shlex.quote(v)}" for k, v in self.env.items()), shlex.join(self.argv)])


def iteration_dir(save_dir: str, iteration: int) -> str:
    """Megatron's name for one saved iteration."""
    return f"{save_dir.rstrip('/')}/iter_{iteration:07d}"


def newest_iteration(save_dir: str) -> int:
    """The iteration ``latest_checkpointed_iteration.txt`` names, or a one-line ConfigError."""
    marker = Path(save_dir) / LATEST_ITERATION_FILE
    try:
        return int(marker.read_text().strip())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read {marker} ({type(exc).__name__}); the save dir may live on the cluster: pass --iteration N"
        ) from None


def build_convert_command(config: dict[str, Any], model: Any, out: Path, iteration: int) -> ConvertCommand:
    """The tool's command for ``iteration`` of a run whose resolved config is ``config`` (``model``: its model.*)."""
    trainer = config.get("trainer") or {}
    if not model.save:
        raise ConfigError("the run saved no actor checkpoints (model.save is unset): nothing to convert")
    args = [
        "--input-dir",
        iteration_dir(model.save, iteration),
        "--output-dir",
        str(out),
        *force_flag(out),
        "--origin-hf-dir",
        model.hf_checkpoint,
    ]
    vocab_size = model.megatron_args.get("vocab-size")
    if vocab_size:  # Megatron pads the vocabulary for tensor parallelism; the HF model has the real size
        args += ["--vocab-size", str(vocab_size)]
    check_convert_args(args)
    miles_root = trainer.get("miles_root", "/root/miles")
    env = {"PYTHONPATH": ":".join([trainer.get("megatron_root", "/root/Megatron-LM"), miles_root])}
    return ConvertCommand(args=args, miles_root=miles_root, env=env)


def force_flag(out: Path) -> list[str]:
    """The tool refuses any existing output dir unless ``--force``, which only skips that check (it
    deletes nothing); searchr1-export's ``--out`` may be a new or an empty directory."""
    if not out.exists():
        return []
    if not out.is_dir() or any(out.iterdir()):
        raise ConfigError(f"--out {out} exists and is not an empty directory; pick a new or empty one")
    return ["--force"]


def check_convert_args(args: list[str]) -> None:
    """Every flag is one the tool's parser defines, and its required flags are there."""
    recorded = recorded_flags(CONVERT_FLAGS_FILE)
    unknown = recorded.unknown(args)
    missing = sorted(recorded.sections.get("required", frozenset()) - set(args))
    if unknown or missing:
        raise ConfigError(
            f"{CONVERT_TOOL} ({recorded.commits.get('miles')}) would refuse the command: "
            f"unknown flags {unknown}, missing required {missing}"
        )


def convert_run(run_dir: Path, out: Path, *, iteration: Optional[int], execute: bool) -> ConvertCommand:
    """Print the conversion of one saved iteration of a Miles run (``execute``: run it, output in ``out``)."""
    model = run_model_config(run_dir, "source")
    if iteration is None:
        iteration = newest_iteration(model.save or "")
    command = build_convert_command(run_config(run_dir, "source"), model, out, iteration)
    print(command.shell())
    if not execute:
        print("# dry run: add --run to convert (on a machine with Miles, Megatron-LM and the save dir)")
        return command
    log.info("converting iteration %d of %s into %s", iteration, model.save, out)
    code = subprocess.run(command.argv, env={**os.environ, **command.env}).returncode
    if code:  # the tool printed its own error above
        log.error("%s failed (exit code %d); its output is above", CONVERT_TOOL, code)
        raise SystemExit(code)
    return command
