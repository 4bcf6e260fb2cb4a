"""The warm starts searchr1 ships: each records the command that made it, and that command, composed
today, still gives the settings the warm start records (SFT, model, data, rollout, LoRA rank, seed).

Remaking one runs the command (minutes of SFT on a CPU: ``benchmarks/learning_demo.py --remake-warm-start``
does); what a test can check is that nothing the command selects has drifted from what made it."""

from __future__ import annotations

import copy
import dataclasses
import json
import shlex
from pathlib import Path
from typing import Any, Callable

import pytest

import searchr1
from searchr1.config import to_typed
from tests.support.compose import compose_config

WARM_STARTS = Path(searchr1.__file__).parent / "warm_starts"
SHIPPED = sorted(p.name for p in WARM_STARTS.iterdir() if p.is_dir())


def _provenance(name: str) -> dict[str, Any]:
    return json.loads((WARM_STARTS / name / "provenance.json").read_text())


def _drift(provenance: dict[str, Any], adapter_rank: int) -> dict[str, Any]:
    """Each recorded setting the recorded command no longer composes to: {key: (recorded, composed)}.
    Settings added after a warm start was made are not recorded; they keep the default it was made with."""
    program, *overrides = shlex.split(provenance["command"])
    cfg = to_typed(compose_config(overrides))
    composed = {
        "program": "searchr1-sft",
        "overrides": {k: v for k, v in (o.split("=", 1) for o in overrides) if not k.startswith("hydra.")},
        "lora_rank": cfg.trainer.lora_rank,
        "adapter rank": cfg.trainer.lora_rank,
        "seed": cfg.seed,
        "tools": cfg.tools,
        "rollout": {"max_turn_tokens": cfg.rollout.max_turn_tokens, "topk": cfg.search.topk},
        **{f"{section}.{key}": value for section in ("sft", "model", "data") for key, value in _fields(cfg, section)},
    }
    recorded = {
        "program": program,
        "overrides": provenance["overrides"],
        "lora_rank": provenance["lora_rank"],
        "adapter rank": adapter_rank,
        "seed": provenance["seed"],
        "tools": provenance.get("tools", ["search"]),  # recorded since the tools warm start
        "rollout": provenance["rollout"],
        **{
            f"{section}.{key}": value
            for section in ("sft", "model", "data")
            for key, value in provenance[section].items()
        },
    }
    return {key: (value, composed.get(key)) for key, value in recorded.items() if composed.get(key) != value}


def _fields(cfg: Any, section: str) -> list[tuple[str, Any]]:
    return list(dataclasses.asdict(getattr(cfg, section)).items())


def test_the_three_warm_starts_are_shipped():
    assert SHIPPED == ["smollm2-135m-planned", "smollm2-135m-synthetic", "smollm2-135m-tools"]
    for name in SHIPPED:
        assert {"adapter_config.json", "adapter_model.safetensors", "provenance.json"} <= {
            p.name for p in (WARM_STARTS / name).iterdir()
        }
        assert f"sft.output_dir=src/searchr1/warm_starts/{name}" in _provenance(name)["command"]


@pytest.mark.parametrize("name", SHIPPED)
def test_a_warm_starts_recorded_command_still_composes_to_its_recorded_settings(name):
    adapter_rank = json.loads((WARM_STARTS / name / "adapter_config.json").read_text())["r"]
    assert _drift(_provenance(name), adapter_rank) == {}


BREAKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "sft.lr": lambda p: p["sft"].update(lr=p["sft"]["lr"] * 10),
    "model.hf_checkpoint": lambda p: p["model"].update(hf_checkpoint="pypi:another-model"),
    "data.num_entities": lambda p: p["data"].update(num_entities=p["data"]["num_entities"] + 1),
    "rollout": lambda p: p["rollout"].update(topk=p["rollout"]["topk"] + 1),
    "seed": lambda p: p.update(seed=p["seed"] + 1),
    "tools": lambda p: p.update(tools=["search", "calculator"]),
    "data.questions": lambda p: p["data"].update(questions="years"),
    "lora_rank": lambda p: p.update(lora_rank=p["lora_rank"] * 2),
    "overrides": lambda p: p["overrides"].update({"sft.steps": "1"}),
    "program": lambda p: p.update(command=p["command"].replace("searchr1-sft", "searchr1", 1)),
}


@pytest.mark.parametrize("key", BREAKS)
def test_a_drifted_setting_is_found(key):
    provenance = copy.deepcopy(_provenance(SHIPPED[0]))
    BREAKS[key](provenance)
    assert key in _drift(provenance, adapter_rank=provenance["lora_rank"])
