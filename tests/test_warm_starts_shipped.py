"""The warm starts searchr1 ships: each records the command that made it, and that command still makes it
(its preset composes to the same SFT settings, demonstrations, data and model the provenance records)."""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

import pytest

import searchr1
from searchr1.config import to_typed
from tests.support.compose import compose_config

WARM_STARTS = Path(searchr1.__file__).parent / "warm_starts"
SHIPPED = sorted(p.name for p in WARM_STARTS.iterdir() if p.is_dir())


def test_the_two_warm_starts_are_shipped():
    assert SHIPPED == ["smollm2-135m-planned", "smollm2-135m-synthetic"]


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_warm_start_is_what_its_recorded_command_makes(name):
    directory = WARM_STARTS / name
    assert {"adapter_config.json", "adapter_model.safetensors", "provenance.json"} <= {
        p.name for p in directory.iterdir()
    }
    provenance = json.loads((directory / "provenance.json").read_text())
    program, *overrides = shlex.split(provenance["command"])
    assert program == "searchr1-sft"
    assert f"sft.output_dir=src/searchr1/warm_starts/{name}" in overrides
    cfg = to_typed(compose_config(overrides))
    # Settings added after a warm start was made keep the default it was made with.
    recorded = {**dataclasses.asdict(cfg.sft), **provenance["sft"]}
    assert dataclasses.asdict(cfg.sft) == recorded
    assert (
        provenance["lora_rank"]
        == cfg.trainer.lora_rank
        == json.loads((directory / "adapter_config.json").read_text())["r"]
    )
    assert provenance["data"]["seed"] == cfg.data.seed and provenance["data"]["num_entities"] == cfg.data.num_entities
    assert provenance["seed"] == cfg.seed
    assert provenance["rollout"] == {"max_turn_tokens": cfg.rollout.max_turn_tokens, "topk": cfg.search.topk}
