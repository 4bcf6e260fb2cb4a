"""In-process generation engine with continuous batching over a KV cache (the rollout's ``Engine``).

Concurrent ``generate`` calls are decoded together: a worker admits waiting requests between decode
steps (prefilling them into free cache slots, those of similar length in one padded forward), samples
one token per row, and retires rows as they finish. Requests with identical input ids (the n samples of
a GRPO group) share one prefill, and a finished row's KV cache is kept so the trajectory's next turn
(the same ids plus an observation) only prefills the new tokens, as SGLang's radix cache does. Model
work runs in a worker thread so the event loop keeps serving search calls while the CPU decodes; the
forward itself, over merged LoRA weights and a preallocated cache, is ``engines/decoder.py``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch

from searchr1.engines.base import EngineOutput, FinishReason, SamplingParams
from searchr1.engines.decoder import Decoder
from searchr1.engines.progress import Progress

log = logging.getLogger(__name__)

PREFIX_TOKENS_PER_ROW = 512
"""Default prefix-cache budget, in tokens per row of ``max_batch``."""
PREFILL_FORWARD_TOKENS = 1024
"""Most positions (rows x widest row) one batched prefill runs: its attention mask grows with the square."""
PREFILL_PADDING = 1.25
"""Most padded positions a batched prefill may run, as a multiple of its rows' real new tokens."""


@dataclass
class _Request:
    input_ids: list[int]
    params: SamplingParams
    future: asyncio.Future
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)


@dataclass
class _Row:
    request: _Request
    slot: int
    """The decoder cache slot holding this row's keys and values."""
    length: int
    """Positions cached: the input ids and every sampled token but the newest (not yet fed)."""


@dataclass
class _Batch:
    """The rows being decoded, in admission order, and the logits that pick each one's next token."""

    rows: list[_Row]
    logits: torch.Tensor


@dataclass
class _CachedPrefix:
    """A retired row's KV cache and the token ids it covers."""

    ids: list[int]
    kv: torch.Tensor
    """``Decoder.export``'s copy: [layers, 2, len(ids), kv_heads, head_dim]."""


@dataclass
class _PrefillRun:
    """A distinct input to prefill: its new tokens run on top of ``start`` positions of a cached prefix."""

    request: _Request
    cached: Optional[_CachedPrefix]
    start: int
    slot: int = -1

    @property
    def new_tokens(self) -> int:
        return len(self.request.input_ids) - self.start


@dataclass
class EngineStats:
    """Counters for throughput reporting (generated tokens, prefilled tokens, decode steps, answered calls)."""

    generated_tokens: int = 0
    prefill_tokens: int = 0
    reused_tokens: int = 0
    decode_steps: int = 0
    finished_requests: int = 0


class LocalEngine:
    """``Engine`` over a Hugging Face causal LM (Llama family, optionally under PEFT LoRA) in this process.

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
        self._decoder = Decoder(model, slots=max_batch)
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
        self._lock = threading.Lock()
        """Held by a step in the worker thread; taken to free the decoder from the event loop's thread."""
        self._outstanding = 0
        """``generate`` calls not yet returned (counted on the event loop's thread)."""
        self._stale = False
        """The weights changed while calls were outstanding: the next batch merges them again."""
        self._progress = Progress()

    def reseed(self, seed: int) -> None:
        self._generator.manual_seed(seed)

    def track(self, label: str, samples: int = 0) -> None:
        """Name the work of the coming calls in the progress lines (``samples``: how many the caller
        sends), until the next ``clear_prefix_cache``."""
        self._progress.start(label, samples, self.stats.generated_tokens, self.stats.finished_requests)

    def clear_prefix_cache(self) -> None:
        """Forget what was computed from the current weights: cached prefixes' KV and the decoder's
        merged copy of the weights (call after the weights change; the next request merges them again).

        When nothing is generating, the merged copy and the KV cache are freed at once, so the
        trainer's update does not carry them (SmolLM2-135M: 0.54 GB of weights, 46 KB a cached token).
        """
        self.track("engine")
        with self._lock:  # waits for a running step, if any, to end
            self._prefixes.clear()
            if self._outstanding:
                self._stale = True
            else:
                self._decoder.release()

    async def generate(self, input_ids: Sequence[int], params: SamplingParams) -> EngineOutput:
        if params.max_new_tokens <= 0:
            return EngineOutput(token_ids=[], logprobs=[], finish_reason="length")
        loop = asyncio.get_running_loop()
        request = _Request(list(input_ids), params, loop.create_future())
        self._pending.append(request)
        self._ensure_worker()
        self._wakeup.set()
        self._outstanding += 1
        try:
            return await request.future
        finally:
            self._outstanding -= 1

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None
        with self._lock:
            self._decoder.release()

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
                self._progress.tick(self.stats.generated_tokens, self.stats.finished_requests, self._outstanding)
            except Exception as exc:  # a model error fails the waiting calls, not the worker
                log.exception("engine step failed")
                running = [row.request for row in batch.rows] if batch else []
                for request in running + admitted:
                    if not request.future.done():
                        request.future.set_exception(exc)
                batch = None

    def _take_pending(self, active: int) -> list[_Request]:
        room = max(self.max_batch - active, 0)
        if len(self._pending) > room:
            # Depth first when calls queue (an eval of 200 prompts on 32 rows): the longest inputs are the
            # trajectories' later turns (earlier turns plus an observation); admitted before new prompts,
            # they find their prefix still cached, where first come first served had evicted it (prefix
            # cache oldest first) and ran each later turn's whole input again. Stable: equal lengths (a
            # GRPO group's prompt) keep their order and share one prefill.
            self._pending.sort(key=lambda request: -len(request.input_ids))
        admitted, self._pending = self._pending[:room], self._pending[room:]
        return admitted

    def _step(self, batch: Optional[_Batch], admitted: list[_Request]) -> Optional[_Batch]:
        """One scheduling round (worker thread): admit, sample a token per row, retire, decode."""
        with self._lock, torch.inference_mode():
            if batch is None and self._stale:  # rows that ran on after the weights changed cached stale KV
                self._stale = False
                self._prefixes.clear()
                self._decoder.release()
            if admitted:
                batch = self._prefill(batch, admitted)
            if batch is None:
                return None
            self._sample(batch)
            done = {i: reason for i, row in enumerate(batch.rows) if (reason := self._finish_reason(row.request))}
            for i, reason in done.items():
                # Cache first, then answer: the caller's next turn must find this turn's prefix.
                self._keep_prefix(batch.rows[i])
                self._finish(batch.rows[i].request, reason)
            rows = self._retire(batch.rows, set(done))
            return self._decode(rows) if rows else None

    def _prefill(self, batch: Optional[_Batch], requests: list[_Request]) -> _Batch:
        """The admitted requests' rows: each distinct input runs its new tokens (those after the longest
        cached prefix) in a prefill; a repeated input's row copies the first one's slot."""
        first = len(batch.rows) if batch else 0
        runs: list[_PrefillRun] = []
        owner: dict[tuple[int, ...], _PrefillRun] = {}
        copies: list[tuple[_Request, _PrefillRun]] = []
        for request in requests:
            key = tuple(request.input_ids)
            if key in owner:
                copies.append((request, owner[key]))
                continue
            cached, start = self._take_prefix(request.input_ids) or (None, 0)
            owner[key] = _PrefillRun(request, cached, start)
            runs.append(owner[key])
        # Neighbours of similar length share a forward: few padded positions, wider matmuls.
        runs.sort(key=lambda run: run.new_tokens)
        for slot, run in enumerate(runs, start=first):
            run.slot = slot
            if run.cached is not None:
                self._decoder.load(slot, run.cached.kv, run.start)
            self.stats.prefill_tokens += run.new_tokens
            self.stats.reused_tokens += run.start
        logits: list[torch.Tensor] = []
        for group in _prefill_groups(runs):
            ids, starts = [run.request.input_ids for run in group], [run.start for run in group]
            logits.extend(self._decoder.prefill_rows(group[0].slot, ids, starts))
        rows = [_Row(run.request, run.slot, len(run.request.input_ids)) for run in runs]
        for slot, (request, source) in enumerate(copies, start=first + len(runs)):
            self._decoder.copy(source.slot, slot, len(request.input_ids))
            rows.append(_Row(request, slot, len(request.input_ids)))
            logits.append(logits[source.slot - first])
        return _append(batch, rows, torch.stack(logits))

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

    def _keep_prefix(self, row: _Row) -> None:
        if self._prefix_cache_tokens <= 0:
            return
        # The last sampled token was never fed to the model, so the cache stops one short.
        ids = row.request.input_ids + row.request.tokens[:-1]
        self._prefixes.append(_CachedPrefix(ids, self._decoder.export(row.slot, row.length)))
        while sum(len(entry.ids) for entry in self._prefixes) > self._prefix_cache_tokens:
            self._prefixes.pop(0)  # oldest first

    def _retire(self, rows: list[_Row], done: set[int]) -> list[_Row]:
        """The rows still running, moved into the lowest slots (a decode step runs slots 0..n-1)."""
        keep = [row for i, row in enumerate(rows) if i not in done]
        holes = sorted(row.slot for i, row in enumerate(rows) if i in done and row.slot < len(keep))
        movers = [row for row in keep if row.slot >= len(keep)]
        for row, slot in zip(movers, holes):
            self._decoder.copy(row.slot, slot, row.length)
            row.slot = slot
        return keep

    def _sample(self, batch: _Batch) -> None:
        requests = [row.request for row in batch.rows]
        temps = torch.tensor([r.params.temperature for r in requests])
        top_ps = torch.tensor([r.params.top_p for r in requests])
        greedy = temps <= 0
        scaled = batch.logits / torch.where(greedy, torch.ones_like(temps), temps).unsqueeze(-1)
        logprobs = torch.log_softmax(scaled, dim=-1)
        choice = batch.logits.argmax(-1)
        if not bool(greedy.all()):  # a greedy batch (an eval) skips the sort and draw over the vocabulary
            choice = torch.where(greedy, choice, _sample_top_p(logprobs, top_ps, self._generator))
        picked = logprobs.gather(-1, choice.unsqueeze(-1)).squeeze(-1)
        for request, token, logprob in zip(requests, choice.tolist(), picked.tolist()):
            request.tokens.append(token)
            request.logprobs.append(logprob)
        self.stats.generated_tokens += len(requests)

    def _finish(self, row: _Request, reason: FinishReason) -> None:
        output = EngineOutput(token_ids=list(row.tokens), logprobs=list(row.logprobs), finish_reason=reason)
        self.stats.finished_requests += 1
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

    def _decode(self, rows: list[_Row]) -> _Batch:
        """Feed each row's newest token; the batch with the logits for the token after it."""
        by_slot = sorted(rows, key=lambda row: row.slot)
        logits = self._decoder.decode([row.request.tokens[-1] for row in by_slot], [row.length for row in by_slot])
        for row in rows:
            row.length += 1
        self.stats.decode_steps += 1
        return _Batch(rows, logits.index_select(0, torch.tensor([row.slot for row in rows])))


def _prefill_groups(runs: list[_PrefillRun]) -> list[list[_PrefillRun]]:
    """``runs`` (in slot order, shortest first) cut into consecutive forwards of at most
    PREFILL_FORWARD_TOKENS positions, padding included, each padded to at most PREFILL_PADDING times its
    real tokens."""
    groups: list[list[_PrefillRun]] = []
    for run in runs:
        group = groups[-1] if groups else []
        width, real = run.new_tokens, sum(r.new_tokens for r in group) + run.new_tokens
        cost = width * (len(group) + 1)  # sorted: this run is the widest so far
        if group and cost <= PREFILL_FORWARD_TOKENS and cost <= PREFILL_PADDING * real:
            group.append(run)
        else:
            groups.append([run])
    return groups


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


def _append(batch: Optional[_Batch], rows: list[_Row], logits: torch.Tensor) -> _Batch:
    if batch is None:
        return _Batch(rows, logits)
    return _Batch(batch.rows + rows, torch.cat([batch.logits, logits]))
