"""searchr1-export: a trained embedded run leaves as a plain Hugging Face model dir (merged LoRA) or a
peft adapter, and plain transformers generates the trainer's own greedy tokens from it."""

from __future__ import annotations

import json

import pytest
import torch

from searchr1.config import to_typed
from searchr1.export.cli import main as export_main
from searchr1.models.checkpoints import content_hash
from searchr1.models.loading import load_model
from searchr1.trainers.local.checkpoint import load_latest, restore
from searchr1.trainers.local.train import build_models
from tests.support.compose import compose_config
from tests.support.local_trainer import SMOLLM2, smollm2_tokenizer
from tests.support.trained_run import TINY_RUN

PROMPTS = ["The capital of France is", "Question: who wrote Hamlet?\nAnswer:", "<search> tallest mountain"]


def _greedy(model, prompt: str) -> list[int]:
    ids = smollm2_tokenizer()(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=8,
            pad_token_id=smollm2_tokenizer().pad_token_id,
        )
    return out[0, ids.shape[1] :].tolist()


def _trainer_policy(run_dir):
    """The policy as the trainer holds it after its last step: rebuilt and restored by the trainer's own code."""
    policy = build_models(to_typed(compose_config(TINY_RUN))).policy
    restore(
        load_latest(run_dir / "checkpoints"),
        policy,
        torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad]),
    )
    return policy.eval()


@pytest.mark.slow
def test_a_merged_export_loads_in_plain_transformers_and_decodes_like_the_trainer(trained_run, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "model"
    export_main([str(trained_run), "--out", str(out)])
    assert "wrote" in capsys.readouterr().out
    assert (out / "config.json").is_file() and (out / "tokenizer_config.json").is_file()
    assert list(out.glob("*.safetensors")) and not (out / "adapter_config.json").exists()
    exported = AutoModelForCausalLM.from_pretrained(out).eval()
    policy = _trainer_policy(trained_run)
    assert [_greedy(exported, p) for p in PROMPTS] == [_greedy(policy, p) for p in PROMPTS]
    # The LoRA really is in the weights: a merged projection differs from the base model's.
    base = dict(load_model(SMOLLM2).named_parameters())["model.layers.0.self_attn.q_proj.weight"]
    merged = dict(exported.named_parameters())["model.layers.0.self_attn.q_proj.weight"]
    assert (merged - base).abs().max() > 1e-3
    provenance = json.loads((out / "provenance.json").read_text())["source"]
    checkpoint = trained_run / "checkpoints" / "step_000002.pt"
    assert provenance == {"path": str(checkpoint), "kind": "checkpoint", "step": 2, "sha256": content_hash(checkpoint)}


@pytest.mark.slow
def test_an_adapter_only_export_is_peft_format_for_the_base_model(trained_run, tmp_path):
    from peft import PeftModel

    out = tmp_path / "adapter"
    export_main([str(trained_run / "checkpoints" / "step_000001.pt"), "--out", str(out), "--adapter-only"])
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 16
    adapter = PeftModel.from_pretrained(load_model(SMOLLM2), out).eval()
    expected = torch.load(trained_run / "checkpoints" / "step_000001.pt", weights_only=True)["trainable"]
    name = next(n for n in expected if "lora_B" in n)
    torch.testing.assert_close(dict(adapter.named_parameters())[name], expected[name])


def test_bad_sources_fail_in_one_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hi")
    for argv, says in (
        ([str(tmp_path / "notes.txt"), "--out", str(tmp_path / "o")], "not a checkpoint"),
        ([str(tmp_path), "--out", str(tmp_path / "o")], "neither a LoRA adapter dir"),
        ([str(tmp_path / "missing"), "--out", str(tmp_path / "o")], "no such directory"),
    ):
        with pytest.raises(SystemExit) as exited:
            export_main(argv)
        err = capsys.readouterr().err
        assert exited.value.code == 2 and says in err and err.count("\n") == 1
