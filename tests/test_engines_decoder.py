"""The engine's decoder computes Hugging Face's forward: the same logits for prefill, for rows decoding
at different positions, on a copied or exported prefix, with LoRA adapters merged into its weights;
and the engine picks up new weights once told they changed."""

from __future__ import annotations

import asyncio

import pytest
import torch

from searchr1.engines.base import SamplingParams
from searchr1.engines import decoder as decoder_module
from searchr1.engines.decoder import Decoder
from searchr1.engines.local import LocalEngine
from searchr1.models.lora import with_lora
from searchr1.trainers.local.logprobs import score_responses
from tests.support.local_trainer import tiny_llama

VOCAB = 512


def _tiny_qwen2():
    from transformers import AutoModelForCausalLM, Qwen2Config

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    return AutoModelForCausalLM.from_config(config).eval()


def _with_trained_lora(model):
    """LoRA adapters whose B is not zero (fresh adapters change nothing)."""
    peft_model = with_lora(model, 4)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    return peft_model.eval()


def _reference(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0, -1]


MODELS = {
    "llama": lambda: tiny_llama(vocab_size=VOCAB),
    "qwen2 (q/k/v biases)": _tiny_qwen2,
    "llama + LoRA": lambda: _with_trained_lora(tiny_llama(vocab_size=VOCAB)),
}


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_prefill_decode_and_prefix_reuse_give_the_model_s_own_logits(make):
    model = make()
    decoder = Decoder(model, slots=3)
    generator = torch.Generator().manual_seed(1)
    ids = [torch.randint(0, VOCAB, (24,), generator=generator).tolist() for _ in range(3)]
    starts = [10, 14, 7]  # rows at different positions in one decode step
    with torch.inference_mode():
        for slot, (row, start) in enumerate(zip(ids, starts)):
            assert torch.allclose(decoder.prefill(slot, row[:start], 0), _reference(model, row[:start]), atol=1e-5)
        for step in range(6):
            logits = decoder.decode([row[s + step] for row, s in zip(ids, starts)], [s + step for s in starts])
            for slot, (row, start) in enumerate(zip(ids, starts)):
                assert torch.allclose(logits[slot], _reference(model, row[: start + step + 1]), atol=1e-5)
        # Another row's first 5 positions, copied and exported/loaded, then continued with new tokens.
        decoder.copy(0, 2, 5)
        continued = ids[0][:5] + ids[1][:4]
        assert torch.allclose(decoder.prefill(2, continued, 5), _reference(model, continued), atol=1e-5)
        kept = decoder.export(1, 8)
        decoder.load(0, kept, 8)
        continued = ids[1][:8] + ids[2][:3]
        assert torch.allclose(decoder.prefill(0, continued, 8), _reference(model, continued), atol=1e-5)


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_rows_prefilled_together_give_each_row_s_own_logits_and_cache(make):
    """Three rows of 9, 3 and 14 new tokens on cached prefixes of 5, 0 and 2 positions in one padded
    forward: each row's logits are the model's, and decoding on from each row's end (where the shorter
    rows' padding wrote) still is."""
    model = make()
    decoder = Decoder(model, slots=3)
    generator = torch.Generator().manual_seed(2)
    ids = [torch.randint(0, VOCAB, (n,), generator=generator).tolist() for n in (14, 3, 16)]
    starts = [5, 0, 2]
    with torch.inference_mode():
        for slot, (row, start) in enumerate(zip(ids, starts)):
            if start:
                decoder.prefill(slot, row[:start], 0)
        together = decoder.prefill_rows(0, ids, starts)
        for slot, row in enumerate(ids):
            assert torch.allclose(together[slot], _reference(model, row), atol=1e-5)
        following = [7, 8, 9]
        logits = decoder.decode(following, [len(row) for row in ids])
        for slot, (row, token) in enumerate(zip(ids, following)):
            assert torch.allclose(logits[slot], _reference(model, row + [token]), atol=1e-5)


def test_release_frees_the_merged_weights_and_the_cache():
    decoder = Decoder(tiny_llama(vocab_size=VOCAB), slots=2)
    assert decoder.allocated_bytes() == 0
    with torch.inference_mode():
        decoder.prefill(0, [1, 2, 3], 0)
    assert decoder.allocated_bytes() > 0
    decoder.release()
    assert decoder.allocated_bytes() == 0


def _gpt2():
    from transformers import AutoModelForCausalLM, GPT2Config

    return AutoModelForCausalLM.from_config(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=VOCAB))


def _llama_with_an_output_bias():
    model = tiny_llama(vocab_size=VOCAB)
    model.model.layers[1].self_attn.o_proj.bias = torch.nn.Parameter(torch.zeros(32))
    return model


@pytest.mark.parametrize(
    "make, message", [(_gpt2, "Llama-family"), (_llama_with_an_output_bias, "biases on the q/k/v projections only")]
)
def test_a_model_the_decoder_does_not_compute_is_refused_up_front(make, message):
    with pytest.raises(ValueError, match=message):
        Decoder(make(), slots=1)


async def test_the_engine_uses_new_weights_after_clear_prefix_cache(tokenizer):
    """Its merged copy is made again after the trainer's update (which calls clear_prefix_cache)."""
    policy = _with_trained_lora(tiny_llama())
    engine = LocalEngine(policy, tokenizer, max_batch=2)
    prompt = tokenizer.encode("Who wrote the book?", add_special_tokens=False)
    params = SamplingParams(max_new_tokens=6, temperature=0.0)
    await engine.generate(prompt, params)
    assert engine._decoder.allocated_bytes() > 0
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.mul_(-1.0)
    engine.clear_prefix_cache()
    assert engine._decoder.allocated_bytes() == 0  # nothing in flight: freed at once, before the update's peak
    out = await engine.generate(prompt, params)
    with torch.no_grad():
        scores = score_responses(policy, prompt, [out.token_ids])
    assert scores.logprobs[0].tolist() == pytest.approx(out.logprobs, abs=1e-4)
    await engine.close()


async def test_weights_changed_mid_generation_are_merged_for_the_next_batch(tokenizer):
    """clear_prefix_cache while a call is outstanding leaves that call alone; the next batch re-merges."""
    policy = _with_trained_lora(tiny_llama())
    engine = LocalEngine(policy, tokenizer, max_batch=2)
    prompt = tokenizer.encode("Who wrote the book?", add_special_tokens=False)
    running = asyncio.create_task(engine.generate(prompt, SamplingParams(max_new_tokens=30, temperature=0.0)))
    while engine.stats.decode_steps == 0:
        await asyncio.sleep(0.01)
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.mul_(-1.0)
    engine.clear_prefix_cache()
    assert len((await running).token_ids) == 30
    out = await engine.generate(prompt, SamplingParams(max_new_tokens=6, temperature=0.0))
    with torch.no_grad():
        scores = score_responses(policy, prompt, [out.token_ids])
    assert scores.logprobs[0].tolist() == pytest.approx(out.logprobs, abs=1e-4)
    await engine.close()


@pytest.mark.parametrize("flags, warned", [(set(), True), ({"avx512f", "avx512_bf16"}, False)])
def test_bf16_on_a_cpu_without_bf16_instructions_warns_and_still_runs(monkeypatch, caplog, flags, warned):
    monkeypatch.setattr(decoder_module, "cpu_flags", lambda: flags)
    model = tiny_llama(vocab_size=VOCAB).to(torch.bfloat16)
    decoder = Decoder(model, slots=1)
    assert ("likely slower than float32" in caplog.text) == warned
    with torch.inference_mode():
        logits = decoder.prefill(0, [1, 2, 3], 0)
    assert logits.dtype == torch.float32 and torch.allclose(logits, _reference(model, [1, 2, 3]).float(), atol=0.1)
