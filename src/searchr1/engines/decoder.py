"""The embedded engine's forward pass: a Llama-family decoder over its own merged weights and a KV
cache with one slot per batch row.

What it computes is the Hugging Face forward of the same model (RMSNorm, rotary embeddings, grouped
attention, SiLU MLP), with the work arranged for a CPU decode step:

- LoRA adapters are merged into the engine's copy of each projection (``W + scale * B @ A``), and
  q/k/v and gate/up are each one matmul, so a layer runs 4 matmuls instead of 7 plus 14 adapter ones;
- the KV cache is preallocated (grown in chunks) and written in place: a decode step copies one
  token's keys and values per row, never the cache, and attention reads the live rows as a view;
- attention is one ``scaled_dot_product_attention`` per layer with the query heads that share a
  key/value head stacked as extra query rows, so keys and values are read once, not repeated;
- about 20 tensor operations per layer (the HF + PEFT forward dispatches over a hundred): fused
  RMSNorm, residual adds inside the matmuls (``addmm``), one attention mask per forward.

The merged copy costs the projections' size again plus a transposed copy of the output head
(SmolLM2-135M in float32: 0.43 + 0.11 GB; embeddings and norms are shared with the model);
``release`` frees it and the cache, and the next forward merges the model's current weights again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F  # noqa: N812  (torch's own convention)

log = logging.getLogger(__name__)

CACHE_CHUNK = 128
"""Cache growth step in tokens: growing copies the cache, so it happens every CHUNK tokens at most."""
SUPPORTED = ("llama", "qwen2")
NATIVE_FLAGS = {torch.bfloat16: ("avx512_bf16", "amx_bf16"), torch.float16: ("avx512_fp16", "amx_fp16")}
"""CPU flags (/proc/cpuinfo) under which a low-precision matmul runs natively rather than emulated."""


@dataclass
class _Weights:
    """What the forward reads: merged projections per layer, the rest shared with the model."""

    embed: torch.Tensor
    layers: list[_Layer]
    norm: torch.Tensor
    head: torch.Tensor
    rotary: Any
    """The model's rotary-embedding module (cos/sin for any positions, its own scaling rules)."""


@dataclass
class _Layer:
    """One decoder layer's weights; projections transposed ([in, out], contiguous), see ``_transposed``."""

    attn_norm: torch.Tensor
    qkv: torch.Tensor
    qkv_bias: Optional[torch.Tensor]
    o: torch.Tensor
    mlp_norm: torch.Tensor
    gate_up: torch.Tensor
    down: torch.Tensor


class Decoder:
    """Prefill and decode for rows held in cache slots ``0..slots-1``.

    A decode step runs the rows in slots ``0..n-1`` together (the engine keeps its live rows in the
    lowest slots), each at its own position; a prefill runs one row's new tokens on top of what its
    slot already holds.
    """

    def __init__(self, model: Any, slots: int) -> None:
        _check_supported(model)
        config = model.config
        self.model = model
        self.slots = slots
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        dtype = next(model.parameters()).dtype
        if dtype in NATIVE_FLAGS and not cpu_flags().intersection(NATIVE_FLAGS[dtype]):
            log.warning(
                "the engine runs in %s, which this CPU lacks instructions for (%s): it works, emulated, "
                "likely slower than float32 (trainer.engine_dtype=float32)",
                dtype,
                " or ".join(NATIVE_FLAGS[dtype]),
            )
        self._merged: Optional[_Weights] = None
        self._cache: list[torch.Tensor] = []
        """Per layer: [2 (keys, values), slots in use so far, capacity, kv_heads, head_dim]."""

    # ------------------------------------------------------------------ weights and cache
    def release(self) -> None:
        """Free the merged weights and the KV cache (call after the model's weights change)."""
        self._merged = None
        self._cache = []

    def allocated_bytes(self) -> int:
        """Memory this decoder holds of its own: the merged projections and the KV cache."""
        held = list(self._cache)
        if self._merged is not None:
            held += [t for layer in self._merged.layers for t in (layer.qkv, layer.o, layer.gate_up, layer.down)]
            held.append(self._merged.head)
        return sum(t.numel() * t.element_size() for t in held)

    def _weights(self) -> _Weights:
        if self._merged is None:
            base = _base(self.model)
            decoder = base.model
            self._merged = _Weights(
                embed=decoder.embed_tokens.weight.detach(),
                layers=[self._merge(layer) for layer in decoder.layers],
                norm=decoder.norm.weight.detach(),
                head=_transposed(merged_weight(base.lm_head)),
                rotary=decoder.rotary_emb,
            )
        return self._merged

    def _merge(self, layer: Any) -> _Layer:
        attn, mlp = layer.self_attn, layer.mlp
        projections = (attn.q_proj, attn.k_proj, attn.v_proj)
        biases = [_bias(p) for p in projections]
        return _Layer(
            attn_norm=layer.input_layernorm.weight.detach(),
            qkv=_transposed(*(merged_weight(p) for p in projections)),
            qkv_bias=None if biases[0] is None else torch.cat([b.detach() for b in biases if b is not None]),
            o=_transposed(merged_weight(attn.o_proj)),
            mlp_norm=layer.post_attention_layernorm.weight.detach(),
            gate_up=_transposed(merged_weight(mlp.gate_proj), merged_weight(mlp.up_proj)),
            down=_transposed(merged_weight(mlp.down_proj)),
        )

    def _reserve(self, slots: int, length: int) -> list[torch.Tensor]:
        """The per-layer caches, grown to hold ``slots`` slots of ``length`` positions, contents kept.

        Slots grow as rows arrive (up to the engine's batch size), positions in CACHE_CHUNK steps; a layer
        at a time, so growing holds one layer's old copy at once, not the whole cache's."""
        if not self._cache:
            layers = self._weights().layers
            empty = (2, 0, 0, self.kv_heads, self.head_dim)
            self._cache = [torch.zeros(empty, dtype=layers[0].qkv.dtype) for _ in layers]
        have_slots, have_length = self._cache[0].shape[1:3]
        if have_slots >= slots and have_length >= length:
            return self._cache
        shape = (2, max(slots, have_slots), max(-(-length // CACHE_CHUNK) * CACHE_CHUNK, have_length))
        for index, old in enumerate(self._cache):
            # Zeros, not empty: attention masks the unused positions, but 0 * NaN garbage would still be NaN.
            grown = torch.zeros((*shape, self.kv_heads, self.head_dim), dtype=old.dtype)
            grown[:, :have_slots, :have_length] = old
            self._cache[index] = grown
        return self._cache

    def export(self, slot: int, length: int) -> torch.Tensor:
        """A copy of the first ``length`` cached positions of ``slot`` ([layers, 2, length, kv_heads, head_dim])."""
        return torch.stack([layer[:, slot, :length] for layer in self._cache])

    def load(self, slot: int, kv: torch.Tensor, length: int) -> None:
        """Put the first ``length`` positions of an exported ``kv`` into ``slot``."""
        for layer, saved in zip(self._reserve(slot + 1, length), kv):
            layer[:, slot, :length] = saved[:, :length]

    def copy(self, source: int, target: int, length: int) -> None:
        """Copy the first ``length`` cached positions of slot ``source`` into slot ``target``."""
        for layer in self._reserve(target + 1, length):
            layer[:, target, :length] = layer[:, source, :length]

    # ------------------------------------------------------------------ forward
    def prefill(self, slot: int, ids: Sequence[int], start: int) -> torch.Tensor:
        """Run ``ids[start:]`` at positions ``start..`` on top of the slot's first ``start`` positions;
        the float32 logits after the last token ([vocab])."""
        return self.prefill_rows(slot, [ids], [start])[0]

    def prefill_rows(self, first_slot: int, ids: Sequence[Sequence[int]], starts: Sequence[int]) -> torch.Tensor:
        """``prefill`` for the rows in slots ``first_slot..`` in one forward ([rows, vocab]).

        Rows with fewer new tokens are padded at the end; the padding's keys and values land past the row's
        length, where the row's own later tokens overwrite them and no query of the row sees them."""
        news = [len(row) - start for row, start in zip(ids, starts)]
        width = max(news)
        tokens = torch.zeros((len(ids), width), dtype=torch.long)
        for index, (row, start, new) in enumerate(zip(ids, starts, news)):
            tokens[index, :new] = torch.tensor(list(row[start:]))
        positions = torch.tensor(list(starts)).unsqueeze(1) + torch.arange(width)
        return self._forward(tokens, positions, first_slot, last=torch.tensor(news) - 1)

    def decode(self, tokens: Sequence[int], positions: Sequence[int]) -> torch.Tensor:
        """One token for each of the rows in slots ``0..len(tokens)-1``, at its own position; the float32
        logits after it ([rows, vocab])."""
        return self._forward(torch.tensor(tokens).unsqueeze(1), torch.tensor(positions).unsqueeze(1), 0)

    def _forward(
        self, tokens: torch.Tensor, positions: torch.Tensor, first_slot: int, last: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """``tokens`` and ``positions``: [rows, new]; rows live in slots ``first_slot..``; logits after each
        row's token ``last`` (default: its final one)."""
        weights = self._weights()
        rows, new = tokens.shape
        length = int(positions.max()) + 1
        cache = self._reserve(first_slot + rows, length)
        x = F.embedding(tokens.flatten(), weights.embed)  # [rows * new, hidden]: every matmul is 2-d
        cos, sin = weights.rotary(x, positions)
        cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)
        mask = self._mask(positions, length)
        slots = torch.arange(first_slot, first_slot + rows).unsqueeze(1).expand(rows, new)
        k_end = (self.heads + self.kv_heads) * self.head_dim
        hidden = x.shape[-1]
        for index, layer in enumerate(weights.layers):
            h = F.rms_norm(x, (hidden,), layer.attn_norm, self.eps)
            qkv = h @ layer.qkv if layer.qkv_bias is None else torch.addmm(layer.qkv_bias, h, layer.qkv)
            qk = _rotate(qkv[:, :k_end].view(rows, new, -1, self.head_dim), cos, sin)
            keys, values = cache[index][0], cache[index][1]
            keys[slots, positions] = qk[:, :, self.heads :]
            values[slots, positions] = qkv[:, k_end:].view(rows, new, self.kv_heads, self.head_dim)
            attended = self._attend(qk[:, :, : self.heads], keys, values, first_slot, length, mask)
            x = torch.addmm(x, attended, layer.o)
            h = F.rms_norm(x, (hidden,), layer.mlp_norm, self.eps)
            gate, up = (h @ layer.gate_up).chunk(2, dim=-1)
            x = torch.addmm(x, F.silu(gate) * up, layer.down)
        x = x.view(rows, new, hidden)
        ends = x[:, -1] if last is None else x[torch.arange(rows), last]
        return (F.rms_norm(ends, (hidden,), weights.norm, self.eps) @ weights.head).float()

    def _mask(self, positions: torch.Tensor, length: int) -> torch.Tensor:
        """Additive attention mask ([rows, 1, groups * new, length]): 0 at the cached positions each query
        row sees (at or before its own, causal and nothing past the row's own length), -inf elsewhere.
        Built once per forward: a boolean mask would be converted in every layer's attention."""
        rows, new = positions.shape
        groups = self.heads // self.kv_heads
        hidden = torch.arange(length) > positions.unsqueeze(-1)  # [rows, new, length]
        hidden = hidden.unsqueeze(1).expand(rows, groups, new, length).reshape(rows, 1, groups * new, length)
        return torch.zeros(hidden.shape).masked_fill_(hidden, float("-inf"))

    def _attend(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        first_slot: int,
        length: int,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """Attention of ``queries`` ([rows, new, heads, head_dim]) over the rows' cached keys and values.

        Query head ``h`` reads key/value head ``h // groups`` (Hugging Face's ``repeat_kv``), so the
        ``groups`` query heads of one key/value head become ``groups * new`` query rows of it.
        """
        rows, new = queries.shape[:2]
        groups = self.heads // self.kv_heads
        q = queries.view(rows, new, self.kv_heads, groups, self.head_dim).permute(0, 2, 3, 1, 4)
        q = q.reshape(rows, self.kv_heads, groups * new, self.head_dim)
        span = slice(first_slot, first_slot + rows)
        k = keys[span, :length].transpose(1, 2)
        v = values[span, :length].transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # [rows, kv_heads, groups * new, dim]
        out = out.view(rows, self.kv_heads, groups, new, self.head_dim).permute(0, 3, 1, 2, 4)
        return out.reshape(rows * new, self.heads * self.head_dim)


def _base(model: Any) -> Any:
    """The Hugging Face model under a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _check_supported(model: Any) -> None:
    config = model.config
    activation = getattr(config, "hidden_act", None)
    if config.model_type not in SUPPORTED or activation != "silu":
        raise ValueError(
            f"the embedded engine runs Llama-family models {SUPPORTED} with SiLU MLPs, "
            f"not {config.model_type} ({activation})"
        )
    for layer in _base(model).model.layers:
        unbiased = (layer.self_attn.o_proj, layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj)
        if any(_bias(linear) is not None for linear in unbiased):
            raise ValueError("the embedded engine supports biases on the q/k/v projections only")


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none to read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding as Hugging Face's ``apply_rotary_pos_emb`` computes it ([rows, new, heads, dim])."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return (x * cos) + (rotated * sin)


def _transposed(*weights: torch.Tensor) -> torch.Tensor:
    """``[out, in]`` weights stacked along ``out`` and stored as one contiguous ``[in, out]`` matrix:
    MKL's sgemm runs ``x @ W`` with few rows (a decode step) up to ~1.7x faster than ``x @ W.T``."""
    return torch.cat(weights).t().contiguous()


def _bias(linear: Any) -> Optional[torch.Tensor]:
    return getattr(getattr(linear, "base_layer", linear), "bias", None)


def merged_weight(linear: Any) -> torch.Tensor:
    """The weight a projection applies: a plain Linear's own, or a PEFT LoRA layer's base weight plus
    its active adapters' ``scale * B @ A`` (which PEFT computes; float32 on CPU even for bf16 weights)."""
    base = getattr(linear, "base_layer", None)
    if base is None:
        return linear.weight.detach()
    weight = base.weight.detach()
    if linear.disable_adapters or linear.merged:
        return weight
    for adapter in linear.active_adapters:
        if adapter not in linear.lora_A:
            continue
        if adapter in linear.lora_variant:
            raise ValueError(f"the embedded engine merges plain LoRA adapters only, not {adapter!r}'s variant")
        weight = weight + linear.get_delta_weight(adapter).detach()
    return weight
