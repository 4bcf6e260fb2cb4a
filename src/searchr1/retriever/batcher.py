"""Cross-request micro-batching in front of the worker threads that search the index.

Miles sends one query per request with hundreds in flight; encoding and searching them one by
one wastes the encoder and the BLAS search. Requests queue here; a worker takes the first,
keeps taking more until ``max_batch_size`` queries or ``max_wait_ms`` have passed, runs a single
vectorised search and hands each request its slice. With one worker (the default) only that
thread touches the index, which is what FAISS GPU indexes need (they are not thread-safe, not
even for search); more workers search separate batches at once.
``max_batch_size=1`` switches batching off: every request is searched on its own.

A request of more queries than one piece holds (Search-R1's trainer sends up to 2560 in one POST)
is split, and at most one piece per worker is queued at a time: requests that arrive meanwhile
queue between its pieces, so one huge request cannot starve the others. A piece is at most
``max_batch_size`` queries and at most what the workers search in ``piece_ms`` (measured on the
batches they just searched): on a slow CPU encoder 64 queries can take a second, and a request
arriving behind such a piece would wait that long. Each piece is cut when it is queued, so the
size follows the measurement as it changes.
Batching never changes an answer: the index ranks by a total order (see ``Index``), so the first
k hits of a search at the batch's largest topk are what a search at k alone returns.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

log = logging.getLogger(__name__)

Hit = tuple[dict, float]
SearchFn = Callable[[Sequence[str], int], list[list[Hit]]]


@dataclass
class _Job:
    queries: list[str]
    topk: int
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


@dataclass
class BatchStats:
    """Batch sizes in queries; histogram buckets are powers of two (key = bucket's upper bound)."""

    batches: int = 0
    queries: int = 0
    max_size: int = 0
    histogram: dict[int, int] = field(default_factory=dict)

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, size: int) -> None:
        with self._lock:  # several workers may finish a batch at once
            self.batches += 1
            self.queries += size
            self.max_size = max(self.max_size, size)
            bucket = 1 << max(size - 1, 0).bit_length()
            self.histogram[bucket] = self.histogram.get(bucket, 0) + 1

    def as_dict(self) -> dict:
        return {
            "batches": self.batches,
            "mean_size": self.queries / self.batches if self.batches else 0.0,
            "max_size": self.max_size,
            # dict() copies in one step under the GIL while a worker may be adding a bucket.
            "histogram": {f"<={k}": v for k, v in sorted(dict(self.histogram).items())},
        }


class MicroBatcher:
    """``await submit(queries, topk)`` from the event loop; ``search`` runs only in the workers."""

    def __init__(
        self,
        search: SearchFn,
        *,
        max_batch_size: int,
        max_wait_ms: float,
        workers: int = 1,
        piece_ms: float = math.inf,
    ) -> None:
        self._search = search
        self._max_batch = max_batch_size
        self._max_wait_s = max_wait_ms / 1000.0
        self._piece_s = piece_ms / 1000.0
        self.seconds_per_query: Optional[float] = None
        """Search time per query, smoothed over the last batches (None before the first one)."""
        self._queue: queue.SimpleQueue[Optional[_Job]] = queue.SimpleQueue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self.stats = BatchStats()
        self._threads = [
            threading.Thread(target=self._run, name=f"retriever-index-{i}", daemon=True) for i in range(workers)
        ]

    @property
    def workers(self) -> int:
        return len(self._threads)

    @property
    def queue_depth(self) -> int:
        """Queries submitted and not yet answered (queued or being searched)."""
        return self._pending

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=10)

    def piece_size(self) -> int:
        """Queries in the next piece of a large request: ``piece_ms`` worth at the measured speed
        (one query before anything was measured), at most ``max_batch_size``."""
        if math.isinf(self._piece_s):
            return self._max_batch
        if self.seconds_per_query is None:
            return 1
        return max(1, min(self._max_batch, int(self._piece_s / self.seconds_per_query)))

    async def submit(self, queries: list[str], topk: int) -> list[list[Hit]]:
        if len(queries) <= self.piece_size():
            return await self._submit_piece(queries, topk)
        return await self._submit_in_pieces(queries, topk)

    async def _submit_in_pieces(self, queries: list[str], topk: int) -> list[list[Hit]]:
        # A piece waiting for a slot holds no place in the queue: it goes behind whatever arrived
        # before it was cut.
        slots = asyncio.Semaphore(self.workers)
        pieces: list[asyncio.Task[list[list[Hit]]]] = []
        try:
            start = 0
            while start < len(queries):
                await slots.acquire()
                end = start + self.piece_size()
                pieces.append(asyncio.ensure_future(self._submit_piece(queries[start:end], topk)))
                pieces[-1].add_done_callback(lambda _: slots.release())
                start = end
            answers = await asyncio.gather(*pieces)
        except BaseException:  # the client went away: its queued pieces need no search
            for piece in pieces:
                piece.cancel()
            raise
        return [row for answer in answers for row in answer]

    async def _submit_piece(self, queries: list[str], topk: int) -> list[list[Hit]]:
        if not queries:
            return []
        loop = asyncio.get_running_loop()
        job = _Job(queries, topk, loop.create_future(), loop)
        self._add_pending(len(queries))
        self._queue.put(job)
        return await job.future

    def _add_pending(self, n: int) -> None:
        with self._pending_lock:
            self._pending += n

    def _run(self) -> None:
        carry: Optional[_Job] = None
        while True:
            batch, carry = self._next_batch(carry)
            if batch is None:
                return
            self._serve(batch)

    def _next_batch(self, carry: Optional[_Job]) -> tuple[Optional[list[_Job]], Optional[_Job]]:
        """A batch and the job that did not fit in it (it starts this worker's next batch)."""
        first = carry or self._live_job()
        if first is None:
            return None, None
        batch, size = [first], len(first.queries)
        deadline = time.monotonic() + self._max_wait_s
        while size < self._max_batch:
            job = self._take(deadline)
            if job is None:
                break
            if size + len(job.queries) > self._max_batch:
                return batch, job  # submit() split the request into pieces that fit on their own
            batch.append(job)
            size += len(job.queries)
        return batch, None

    def _live_job(self) -> Optional[_Job]:
        """Block for the next job whose client still waits; None is the stop signal."""
        while (job := self._queue.get()) is not None and self._abandoned(job):
            pass
        return job

    def _abandoned(self, job: _Job) -> bool:
        # The handler was cancelled (client gone, e.g. its timeout fired): don't search for nobody.
        if not job.future.cancelled():
            return False
        self._add_pending(-len(job.queries))
        return True

    def _take(self, deadline: float) -> Optional[_Job]:
        """The next queued job before the deadline; queued jobs are always taken without waiting."""
        try:
            job = self._queue.get_nowait()
        except queue.Empty:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                job = self._queue.get(timeout=remaining)
            except queue.Empty:
                return None
        if job is None:
            self._queue.put(None)  # keep the stop signal for the main loop
            return None
        return self._take(deadline) if self._abandoned(job) else job

    def _serve(self, batch: list[_Job]) -> None:
        queries = [q for job in batch for q in job.queries]
        topk = max(job.topk for job in batch)
        self.stats.record(len(queries))
        try:
            started = time.perf_counter()
            hits = self._search(queries, topk)
            self._measured(time.perf_counter() - started, len(queries))
        except Exception as exc:  # each waiting request gets the error, the worker lives on
            log.exception("search failed for a batch of %d queries", len(queries))
            self._resolve(batch, [exc] * len(batch))
            return
        outcomes, start = [], 0
        for job in batch:
            stop = start + len(job.queries)
            outcomes.append([row[: job.topk] for row in hits[start:stop]])
            start = stop
        self._resolve(batch, outcomes)

    def _measured(self, seconds: float, queries: int) -> None:
        # Half old, half new: follows a change of load within a few batches. Workers may race
        # here; either one's update is a fine estimate.
        latest = seconds / queries
        previous = self.seconds_per_query
        self.seconds_per_query = latest if previous is None else (previous + latest) / 2

    def _resolve(self, batch: list[_Job], outcomes: list) -> None:
        self._add_pending(-sum(len(job.queries) for job in batch))
        # One wake-up of each event loop per batch, not one per request.
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for job, outcome in zip(batch, outcomes):
            by_loop.setdefault(job.loop, []).append((job.future, outcome))
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, settled)
            except RuntimeError:  # that loop has closed (the server is stopping): nobody waits
                log.debug("dropped %d answers: their event loop is closed", len(settled))


def _settle(settled: list[tuple[asyncio.Future, object]]) -> None:
    for future, outcome in settled:
        if future.done():  # the client went away and the handler was cancelled
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
