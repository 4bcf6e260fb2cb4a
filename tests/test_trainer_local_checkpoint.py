"""Checkpoints hold tensors and plain data only: they load with weights_only=True, RNG states included."""

import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from searchr1.trainers.local.checkpoint import UnsafeCheckpointError, load_latest, restore, save_checkpoint


def _model_and_optimizer():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(1, 4)).sum().backward()
    optimizer.step()  # moments in the optimizer state
    return model, optimizer


def _draws():
    return random.random(), np.random.random(), np.random.normal(), torch.rand(1).item()


def test_a_checkpoint_round_trips_weights_optimizer_and_rng_under_weights_only(tmp_path):
    model, optimizer = _model_and_optimizer()
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.normal()  # numpy caches a second gaussian: that is state too
    save_checkpoint(tmp_path, 7, model, optimizer, {"epoch": 1, "position": 5})
    expected = _draws()
    weights = {k: v.clone() for k, v in model.state_dict().items()}

    torch.manual_seed(99)
    fresh = torch.nn.Linear(4, 2)
    fresh_optimizer = torch.optim.AdamW(fresh.parameters(), lr=0.1)
    random.seed(5), np.random.seed(5)
    state = load_latest(tmp_path)
    restore(state, fresh, fresh_optimizer)
    assert state["step"] == 7 and state["sampler"] == {"epoch": 1, "position": 5}
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in weights.items())
    assert fresh_optimizer.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    assert _draws() == expected


def test_a_checkpoint_holding_a_pickled_object_is_refused_in_one_line(tmp_path):
    marker = tmp_path / "pwned"
    # A checkpoint from elsewhere whose unpickling would run a command.
    payload = f"""
import os, torch
class Evil:
    def __reduce__(self):
        return (os.system, ("touch {marker}",))
torch.save({{"step": 1, "trainable": {{}}, "evil": Evil()}}, "{tmp_path / "step_000001.pt"}")
"""
    subprocess.run([sys.executable, "-c", payload], check=True)
    (tmp_path / "LATEST").write_text("step_000001.pt")
    with pytest.raises(UnsafeCheckpointError) as refused:
        load_latest(tmp_path)
    message = str(refused.value)
    assert "\n" not in message and "trainer.resume" in message and "step_000001.pt" in message
    assert "posix.system" in message and "weights_only=False" not in message
    assert not marker.exists()
