"""In-process generation engine with continuous batching over a KV cache (the rollout's ``Engine``).

Concurrent ``generate`` calls are decoded together: a worker admits waiting requests between decode
steps (prefilling them left-padded and splicing their KV cache into the running batch), samples one
token per row, and retires rows as they finish. Requests with identical input ids (the n samples of
a GRPO group) share one prefill, and a finished row's KV cache is kept so the trajectory's next
turn (the same ids plus an observation) only prefills the new tokens, as SGLang's radix cache does.
Model work runs in a worker thread so the event loop keeps serving search calls while the CPU decodes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch

from searchr1.engines.base import EngineOutput, FinishReason, SamplingParams

log = logging.getLogger(__name__)

PREFIX_TOKENS_PER_ROW = 512
"""Default prefix-cache budget, in tokens per row of ``max_batch``."""


@dataclass
class _Request:
    input_ids: list[int]
    params: SamplingParams
    future: asyncio.Future
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)


@dataclass
class _Batch:
    """The rows being decoded: KV cache, attention mask and the logits that pick each next token."""

    rows: list[_Request]
    cache: Any
    mask: torch.Tensor
    logits: torch.Tensor


@dataclass
class _CachedPrefix:
    """A retired row's KV cache (no padding) and the token ids it covers."""

    ids: list[int]
    layers: list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class EngineStats:
    """Counters for throughput reporting (generated tokens, prefilled tokens, decode steps)."""

    generated_tokens: int = 0
    prefill_tokens: int = 0
    reused_tokens: int = 0
    decode_steps: int = 0


class LocalEngine:
    """``Engine`` over a Hugging Face causal LM in this process.

    Logprobs are those of the sampled tokens under the sampling distribution's temperature
    (``log_softmax(logits / T)``, raw logits for greedy), before top-p filtering, as SGLang reports
    them; the trainer recomputes the same quantity, so the two differ only by numerics.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch: int = 16,
        seed: int = 0,
        prefix_cache_tokens: Optional[int] = None,
    ) -> None:
        self.model = model
        self.eos_token_id = tokenizer.eos_token_id
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._tokenizer = tokenizer
        self.max_batch = max_batch
        self.stats = EngineStats()
        self._generator = torch.Generator().manual_seed(seed)
        self._pending: list[_Request] = []
        self._prefixes: list[_CachedPrefix] = []
        # A token budget, not an entry count: KV memory grows with tokens (46 KB a token for SmolLM2-135M
        # in fp32), and a whole batch's trajectories coming back for their next turn should find theirs.
        self._prefix_cache_tokens = (
            PREFIX_TOKENS_PER_ROW * max_batch if prefix_cache_tokens is None else prefix_cache_tokens
        )
        self._wakeup = asyncio.Event()  # each new worker gets its own: an Event belongs to one event loop
        self._worker: Optional[asyncio.Task] = None

    def reseed(self, seed: int) -> None:
        self._generator.manual_seed(seed)

    def clear_prefix_cache(self) -> None:
        """Forget cached prefixes (call after the weights change: their KV is stale)."""
        self._prefixes.clear()

    async def generate(self, input_ids: Sequence[int], params: SamplingParams) -> EngineOutput:
        if params.max_new_tokens <= 0:
            return EngineOutput(token_ids=[], logprobs=[], finish_reason="length")
        loop = asyncio.get_running_loop()
        request = _Request(list(input_ids), params, loop.create_future())
        self._pending.append(request)
        self._ensure_worker()
        self._wakeup.set()
        return await request.future

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None

    # ------------------------------------------------------------------ worker
    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        batch: Optional[_Batch] = None
        while True:
            if batch is None and not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            # Let requests made in the same event-loop tick (a whole GRPO group) join one prefill.
            await asyncio.sleep(0)
            admitted = self._take_pending(0 if batch is None else len(batch.rows))
            try:
                batch = await asyncio.to_thread(self._step, batch, admitted)
            except Exception as exc:  # a model error fails the waiting calls, not the worker
                log.exception("engine step failed")
                for row in (batch.rows if batch else []) + admitted:
                    if not row.future.done():
                        row.future.set_exception(exc)
                batch = None

    def _take_pending(self, active: int) -> list[_Request]:
        room = max(self.max_batch - active, 0)
        admitted, self._pending = self._pending[:room], self._pending[room:]
        return admitted

    def _step(self, batch: Optional[_Batch], admitted: list[_Request]) -> Optional[_Batch]:
        """One scheduling round (worker thread): admit, sample a token per row, retire, decode."""
        with torch.inference_mode():
            fresh = []
            for request in admitted:
                prefix = self._take_prefix(request.input_ids)
                if prefix is None:
                    fresh.append(request)
                else:
                    batch = _merge(batch, self._extend(request, prefix))
            if fresh:
                batch = _merge(batch, self._prefill(fresh))
            if batch is None:
                return None
            self._sample(batch)
            done = {i: reason for i, row in enumerate(batch.rows) if (reason := self._finish_reason(row)) is not None}
            for i, reason in done.items():
                # Cache first, then answer: the caller's next turn must find this turn's prefix.
                self._keep_prefix(batch, i)
                self._finish(batch.rows[i], reason)
            keep = [i for i in range(len(batch.rows)) if i not in done]
            if not keep:
                return None
            batch = _select(batch, keep)
            self._decode(batch)
            return batch

    def _prefill(self, requests: list[_Request]) -> _Batch:
        unique: dict[tuple[int, ...], int] = {}
        owner = [unique.setdefault(tuple(r.input_ids), len(unique)) for r in requests]
        prompts = [list(ids) for ids in unique]
        length = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), length), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), length), dtype=torch.long)
        for i, prompt in enumerate(prompts):
            ids[i, length - len(prompt) :] = torch.tensor(prompt)
            mask[i, length - len(prompt) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
        self.stats.prefill_tokens += int(mask.sum())
        batch = _Batch(rows=[], cache=out.cache, mask=mask, logits=out.logits[:, -1].float())
        batch = _select(batch, owner)
        batch.rows = list(requests)
        return batch

    def _take_prefix(self, ids: list[int]) -> Optional[tuple[_CachedPrefix, int]]:
        """The cached prefix sharing the most leading tokens with ``ids``.

        An entry that ``ids`` continues whole is taken out (the new row's cache supersedes it); one
        shared only in part (another prompt on the same template) stays, so that the trajectory it
        belongs to still finds its own turn when it comes back with an observation.
        """
        best, best_len = None, 0
        for entry in self._prefixes:
            length = _common_prefix(entry.ids, ids)
            if length > best_len:
                best, best_len = entry, length
        if best is None:
            return None
        if best_len == len(best.ids):
            self._prefixes.remove(best)
        # At least one token must be run to get the next-token logits.
        best_len = min(best_len, len(ids) - 1)
        return (best, best_len) if best_len >= 1 else None

    def _keep_prefix(self, batch: _Batch, index: int) -> None:
        if self._prefix_cache_tokens <= 0:
            return
        row = batch.rows[index]
        live = batch.mask[index].bool()
        layers = [(layer.keys[index][:, live], layer.values[index][:, live]) for layer in _layers(batch.cache)]
        # The last sampled token was never fed to the model, so the cache stops one short.
        self._prefixes.append(_CachedPrefix(row.input_ids + row.tokens[:-1], layers))
        while sum(len(entry.ids) for entry in self._prefixes) > self._prefix_cache_tokens:
            self._prefixes.pop(0)  # oldest first

    def _extend(self, request: _Request, prefix: tuple[_CachedPrefix, int]) -> _Batch:
        """Prefill only the tokens after a cached prefix, on top of that prefix's KV cache."""
        from transformers import DynamicCache

        entry, length = prefix
        cache = DynamicCache(ddp_cache_data=[(k[None, :, :length], v[None, :, :length]) for k, v in entry.layers])
        new = torch.tensor([request.input_ids[length:]])
        mask = torch.ones((1, len(request.input_ids)), dtype=torch.long)
        positions = torch.arange(length, len(request.input_ids)).unsqueeze(0)
        out = self.model(
            input_ids=new, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1
        )
        self.stats.prefill_tokens += new.shape[1]
        self.stats.reused_tokens += length
        return _Batch(rows=[request], cache=out.cache, mask=mask, logits=out.logits[:, -1].float())

    def _sample(self, batch: _Batch) -> None:
        temps = torch.tensor([r.params.temperature for r in batch.rows])
        top_ps = torch.tensor([r.params.top_p for r in batch.rows])
        greedy = temps <= 0
        scaled = batch.logits / torch.where(greedy, torch.ones_like(temps), temps).unsqueeze(-1)
        logprobs = torch.log_softmax(scaled, dim=-1)
        choice = _sample_top_p(logprobs, top_ps, self._generator)
        choice = torch.where(greedy, batch.logits.argmax(-1), choice)
        picked = logprobs.gather(-1, choice.unsqueeze(-1)).squeeze(-1)
        for row, token, logprob in zip(batch.rows, choice.tolist(), picked.tolist()):
            row.tokens.append(token)
            row.logprobs.append(logprob)
        self.stats.generated_tokens += len(batch.rows)

    def _finish(self, row: _Request, reason: FinishReason) -> None:
        output = EngineOutput(token_ids=list(row.tokens), logprobs=list(row.logprobs), finish_reason=reason)
        row.future.get_loop().call_soon_threadsafe(_resolve, row.future, output)

    def _finish_reason(self, row: _Request) -> Optional[FinishReason]:
        if row.tokens[-1] == self.eos_token_id:
            return "stop"
        if row.params.stop and self._hit_stop(row):
            return "stop"
        if len(row.tokens) >= row.params.max_new_tokens:
            return "length"
        return None

    def _hit_stop(self, row: _Request) -> bool:
        # Every token decodes to at least one character, so the last len(stop) tokens cover any
        # stop string the newest token can have completed (earlier ones already ended the row).
        window = max(len(s) for s in row.params.stop)
        tail = self._tokenizer.decode(row.tokens[-window:], skip_special_tokens=False)
        return any(s in tail for s in row.params.stop)

    def _decode(self, batch: _Batch) -> None:
        tokens = torch.tensor([[row.tokens[-1]] for row in batch.rows])
        batch.mask = torch.cat([batch.mask, torch.ones((len(batch.rows), 1), dtype=torch.long)], dim=1)
        positions = batch.mask.sum(-1, keepdim=True) - 1
        out = self.model(
            input_ids=tokens, attention_mask=batch.mask, position_ids=positions, cache=batch.cache, use_cache=True
        )
        batch.cache = out.cache
        batch.logits = out.logits[:, -1].float()
        self.stats.decode_steps += 1


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    length = 0
    for x, y in zip(a, b):
        if x != y:
            break
        length += 1
    return length


def _resolve(future: asyncio.Future, output: EngineOutput) -> None:
    if not future.done():
        future.set_result(output)


def _sample_top_p(logprobs: torch.Tensor, top_ps: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Sample from each row's smallest token set whose probability reaches that row's top_p."""
    probs = logprobs.exp()
    if bool((top_ps < 1.0).any()):
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        before = sorted_probs.cumsum(-1) - sorted_probs  # mass of the tokens ranked above each one
        sorted_probs = sorted_probs.masked_fill(before >= top_ps.unsqueeze(-1), 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _layers(cache: Any) -> list[Any]:
    return list(cache.layers)


def _select(batch: _Batch, index: list[int]) -> _Batch:
    """Keep (or repeat) rows by index and drop the left columns no row attends to any more."""
    idx = torch.tensor(index, dtype=torch.long)
    mask = batch.mask.index_select(0, idx)
    live = mask.any(dim=0).nonzero()
    start = int(live[0]) if len(live) else 0
    for layer in _layers(batch.cache):
        layer.keys = layer.keys.index_select(0, idx)[:, :, start:]
        layer.values = layer.values.index_select(0, idx)[:, :, start:]
    rows = [batch.rows[i] for i in index] if batch.rows else []
    return _Batch(rows=rows, cache=batch.cache, mask=mask[:, start:], logits=batch.logits.index_select(0, idx))


def _merge(batch: Optional[_Batch], new: _Batch) -> _Batch:
    """Append ``new``'s rows to ``batch``, left-padding the shorter cache so the columns line up."""
    if batch is None:
        return new
    length = max(batch.mask.shape[1], new.mask.shape[1])
    for old_layer, new_layer in zip(_layers(batch.cache), _layers(new.cache)):
        old_layer.keys = torch.cat([_pad_left(old_layer.keys, length), _pad_left(new_layer.keys, length)], dim=0)
        old_layer.values = torch.cat([_pad_left(old_layer.values, length), _pad_left(new_layer.values, length)], dim=0)
    mask = torch.cat([_pad_left(batch.mask, length), _pad_left(new.mask, length)], dim=0)
    return _Batch(
        rows=batch.rows + new.rows, cache=batch.cache, mask=mask, logits=torch.cat([batch.logits, new.logits], dim=0)
    )


def _pad_left(tensor: torch.Tensor, length: int) -> torch.Tensor:
    """Zero-pad the sequence axis (dim -2 of a KV tensor, dim -1 of a mask) on the left to ``length``."""
    axis = -1 if tensor.dim() == 2 else -2
    missing = length - tensor.shape[axis]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[axis] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=axis)
