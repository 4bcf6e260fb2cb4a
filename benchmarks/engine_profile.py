"""Where the embedded engine's time goes, as a fraction of what this CPU's matmuls allow.

1. The machine: matmul GFLOP/s at SmolLM2-135M's shapes (hidden 576, 30 layers, 9/3 heads of 64,
   MLP 1536, vocabulary 49152) for the row counts a decode step or a prefill sends through them, and
   from those the matmul-only limit of a decode step: tokens/s at batch B if nothing but the model's
   matmuls ran.
2. A quickstart-sized rollout: the quickstart's first step (its 2 prompts x 5 samples, seed 0, the
   shipped warm start with LoRA rank 16, up to 2 search turns and an answer turn of 64 tokens, T=1.0)
   driven through ``generate`` as the rollout loop drives it (stop at a closing tag, search the query,
   continue with the observation), searching the synthetic corpus's BM25 index in process. Printed: wall time, generated
   tokens/s, time per engine phase (prefill, decode forward, sampling, cache bookkeeping, search), and
   a split of the engine's CPU time by tensor operation (every aten op timed as it is dispatched):
   base matmuls, LoRA adapter matmuls, attention, KV-cache copies, other ops, and the Python between
   them, with the number of ops dispatched per decoder layer and decode step.
3. ``--baseline REV``: the same rollout through the engine module at git revision REV, in the same
   process and under the same load, for the side-by-side ratio; ``--baseline-threads`` and
   ``--baseline-dtype`` give it other settings (issue 23's "today": ``--baseline 4f6d5ef
   --baseline-threads 1 --baseline-dtype float32``, the engine and threads the quickstart had then).

    python benchmarks/engine_profile.py [--threads 0] [--dtype float32] [--baseline REV] [--baseline-threads N]
                                        [--baseline-dtype D] [--repeats 1] [--no-op-split] [--no-machine]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from searchr1.config.compose import compose_config
from searchr1.config.schema import SearchR1Config
from searchr1.data import ensure_data
from searchr1.data.dataset import load_split
from searchr1.models.loading import load_policy, load_policy_tokenizer, torch_dtype
from searchr1.retriever.corpus import Corpus
from searchr1.retriever.index import build_index, open_index
from searchr1.engines.base import SamplingParams
from searchr1.rollout import prompt_ids
from searchr1.trainers.local.sampler import PromptSampler

ENGINE_PATH = "src/searchr1/engines/local.py"
STOP_TAGS = ("</search>", "</answer>")
QUERY = re.compile(r"<search>(.*?)</search>", re.S)
HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM, MLP, VOCAB = 576, 30, 9, 3, 64, 1536, 49152
LAYER_SHAPES = {  # (in, out) of every projection of one decoder layer
    "q": (HIDDEN, HEADS * HEAD_DIM),
    "k": (HIDDEN, KV_HEADS * HEAD_DIM),
    "v": (HIDDEN, KV_HEADS * HEAD_DIM),
    "o": (HEADS * HEAD_DIM, HIDDEN),
    "gate": (HIDDEN, MLP),
    "up": (HIDDEN, MLP),
    "down": (MLP, HIDDEN),
}
HEAD_SHAPE = (HIDDEN, VOCAB)
LORA_RANK = 16  # the quickstart's trainer.lora_rank: an adapter matmul has it as a weight dimension
ROWS = (1, 4, 10, 16, 64, 256)
# Engine methods timed as phases, by the names the engine revisions use (absent names are skipped).
PHASES = {
    "prefill": ("_prefill", "_extend"),
    "decode forward": ("_decode",),
    "sampling": ("_sample",),
    "cache bookkeeping": ("_select", "_merge", "_retire", "_keep_prefix", "_take_prefix"),
}
KV_COPY_OPS = ("cat", "index_select", "constant_pad_nd", "index_put_", "_index_put_impl_", "index_copy_")
ATTENTION_OPS = ("attention", "softmax", "bmm", "baddbmm")
MATMUL_OPS = ("mm", "addmm", "matmul", "linear")
OTHER = "other ops"


def flops_per_token() -> float:
    layer = sum(i * o for i, o in LAYER_SHAPES.values())
    return 2.0 * (LAYERS * layer + HEAD_SHAPE[0] * HEAD_SHAPE[1])


def time_matmul(rows: int, shape: tuple[int, int], dtype: torch.dtype, clock: Callable[[], float]) -> float:
    """Seconds per ``[rows, in] @ [in, out]`` by ``clock``: the best of several timed batches."""
    x = torch.randn(rows, shape[0], dtype=dtype)
    w = torch.randn(shape[1], shape[0], dtype=dtype)
    torch.nn.functional.linear(x, w)
    best, spent = float("inf"), 0.0
    while spent < 0.1:
        start = clock()
        for _ in range(4):
            torch.nn.functional.linear(x, w)
        took = clock() - start
        best, spent = min(best, took / 4), spent + took
    return best


def decode_step_matmul_s(rows: int, dtype: torch.dtype, clock: Callable[[], float]) -> float:
    """Seconds the model's matmuls alone take for one decode step of ``rows`` sequences."""
    layer = sum(time_matmul(rows, shape, dtype, clock) for shape in LAYER_SHAPES.values())
    return LAYERS * layer + time_matmul(rows, HEAD_SHAPE, dtype, clock)


def machine_table() -> dict[int, float]:
    """Matmul-only decode tokens per CPU-second per batch size (fp32, one thread); prints the table.

    One thread by CPU time (what load does not stretch), and two threads by wall time (meaningful
    only on a quiet machine), each in fp32 and bf16."""
    limits: dict[int, float] = {}
    flops = flops_per_token()
    print(f"\n== matmul limit at SmolLM2-135M's shapes ({flops / 1e9:.3f} GFLOP a token): GFLOP/s and tokens/s")
    print(f"{'rows':>5} | {'1 thread, CPU time: fp32':>26} {'bf16':>18} | {'2 threads, wall: fp32':>23} {'bf16':>18}")
    for rows in ROWS:
        cells = []
        for threads, clock in ((1, time.process_time), (2, time.perf_counter)):
            torch.set_num_threads(threads)
            for dtype in (torch.float32, torch.bfloat16):
                seconds = decode_step_matmul_s(rows, dtype, clock)
                cells.append(f"{flops * rows / seconds / 1e9:7.1f} {rows / seconds:7.0f} tok/s")
                if threads == 1 and dtype == torch.float32:
                    limits[rows] = rows / seconds
        print(f"{rows:>5} | {cells[0]:>26} {cells[1]:>18} | {cells[2]:>23} {cells[3]:>18}")
    return limits


class InProcessSearch:
    """The synthetic corpus's BM25 index searched in this process (no retriever server)."""

    def __init__(self, cfg: SearchR1Config) -> None:
        corpus_path = Path(cfg.data.corpus_path)
        self._index = open_index(build_index(corpus_path, cfg.retriever, show_progress=False), cfg.retriever)
        self._corpus = Corpus(corpus_path)
        self.seconds = 0.0
        """CPU seconds spent searching."""

    def observation(self, query: str, topk: int) -> str:
        """Search-R1's observation block for the top ``topk`` passages ('"Title"\\ntext' each)."""
        start = time.process_time()
        _, rows = self._index.search([query], topk)
        docs = [self._corpus.doc(int(r))["contents"].split("\n", 1) for r in rows[0] if r >= 0]
        self.seconds += time.process_time() - start
        titles = [doc[0].strip('"') for doc in docs]
        body = "".join(f"Doc {i + 1}(Title: {t}) {doc[-1]}\n" for i, (t, doc) in enumerate(zip(titles, docs)))
        return f"\n\n<information>{body}</information>\n\n"


@dataclass
class Workload:
    cfg: SearchR1Config
    tokenizer: Any
    policy: Any
    prompts: list[list[int]]
    search: InProcessSearch


def quickstart_workload(dtype: str) -> Workload:
    cfg: SearchR1Config = compose_config([], return_hydra_config=False)  # type: ignore[assignment]
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    ensure_data(cfg.data)
    examples = load_split(cfg.data.train_path, cfg.data.prompt_style)
    sampler = PromptSampler(len(examples), cfg.trainer.prompts_per_step, cfg.seed, cfg.data.shuffle)
    tokenizer = load_policy_tokenizer(cfg.model)
    policy = load_policy(cfg.model, cfg.trainer.init_from, cfg.trainer.lora_rank).eval().requires_grad_(False)
    policy = policy.to(torch_dtype(dtype))  # what trainer.engine_dtype gives the engine (a cast copy)
    prompts = [prompt_ids(tokenizer, examples[i].prompt_messages) for i in sampler.next_batch()]
    n = cfg.rollout.n_samples_per_prompt
    return Workload(cfg, tokenizer, policy, [p for p in prompts for _ in range(n)], InProcessSearch(cfg))


def engine_class(revision: Optional[str]) -> type:
    """``LocalEngine`` from this checkout, or from ``ENGINE_PATH`` at a git revision."""
    if revision is None:
        from searchr1.engines.local import LocalEngine

        return LocalEngine
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "show", f"{revision}:{ENGINE_PATH}"], cwd=root, check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / f"engine_{revision[:12]}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module.LocalEngine


@dataclass
class RolloutResult:
    label: str
    wall_s: float
    cpu_s: float
    """CPU seconds this process used: on a shared machine, the measure that load does not stretch."""
    tokens: int
    turns: int
    decode_steps: int
    prefill_tokens: int
    phases: dict[str, float] = field(default_factory=dict)
    """CPU seconds per engine phase."""
    trajectories: list[Any] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s

    @property
    def tokens_per_cpu_s(self) -> float:
        return self.tokens / self.cpu_s


def _timed(method: Callable, phase: str, totals: dict[str, float], inner: list[float]) -> Callable:
    """``method`` adding its CPU time to ``totals[phase]``, less that of timed methods it calls (``inner``:
    the calls in progress, each one's nested time): a phase that calls another (``_prefill`` looks up cached
    prefixes) is not counted twice."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        inner.append(0.0)
        try:
            return method(*args, **kwargs)
        finally:
            spent = time.process_time() - start
            totals[phase] += spent - inner.pop()
            if inner:
                inner[-1] += spent

    return wrapper


def rollout(work: Workload, engine_cls: type, label: str, *, ops: Optional[OpTimer] = None) -> RolloutResult:
    cfg = work.cfg
    engine = engine_cls(work.policy, work.tokenizer, max_batch=cfg.trainer.engine_max_batch, seed=cfg.seed)
    engine.reseed(cfg.seed * 1_000_003 + 1)  # the quickstart's step 1
    phases: dict[str, float] = defaultdict(float)
    in_progress: list[float] = []
    for phase, names in PHASES.items():
        for name in names:
            if hasattr(engine, name):
                setattr(engine, name, _timed(getattr(engine, name), phase, phases, in_progress))
    work.search.seconds = 0.0

    rcfg = cfg.rollout
    params = SamplingParams(
        max_new_tokens=rcfg.max_turn_tokens, temperature=rcfg.temperature, top_p=rcfg.top_p, stop=STOP_TAGS
    )

    async def sample(prompt: list[int]) -> tuple[list[int], int]:
        """Up to max_turns searches, then an answer turn; the ids after the prompt and the turns taken."""
        ids = list(prompt)
        for turn in range(rcfg.max_turns + 1):
            out = await engine.generate(ids, params)
            ids += out.token_ids
            query = QUERY.search(work.tokenizer.decode(out.token_ids))
            if query is None or turn == rcfg.max_turns:
                return ids[len(prompt) :], turn + 1
            ids += work.tokenizer.encode(work.search.observation(query.group(1).strip(), cfg.search.topk))
        raise AssertionError("unreachable")

    async def go() -> list[tuple[list[int], int]]:
        try:
            return list(await asyncio.gather(*(sample(p) for p in work.prompts)))
        finally:
            await engine.close()

    start, cpu = time.perf_counter(), time.process_time()
    with ops if ops is not None else contextlib.nullcontext():
        trajectories = asyncio.run(go())
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    phases["search"] = work.search.seconds
    return RolloutResult(
        label=label,
        wall_s=wall,
        cpu_s=cpu,
        tokens=engine.stats.generated_tokens,
        turns=sum(turns for _, turns in trajectories),
        decode_steps=engine.stats.decode_steps,
        prefill_tokens=engine.stats.prefill_tokens,
        phases=dict(phases),
        trajectories=trajectories,
    )


@contextlib.contextmanager
def engine_steps_inline() -> Iterator[None]:
    """Run the engine's worker-thread steps on the event loop's thread, where the op timer sees them
    (dispatch modes are per thread)."""

    async def inline(function: Callable, *args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    threaded = asyncio.to_thread
    asyncio.to_thread = inline  # type: ignore[assignment]
    try:
        yield
    finally:
        asyncio.to_thread = threaded


class OpTimer(TorchDispatchMode):
    """CPU seconds and calls per op category, every aten op timed as it is dispatched (constant memory,
    unlike a profiler trace of the old engine's ~10^6 ops)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: dict[str, float] = defaultdict(float)
        self.others: dict[str, float] = defaultdict(float)
        """Seconds per op name within 'other ops'."""
        self.calls = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        start = time.process_time()
        out = func(*args, **(kwargs or {}))
        seconds, name = time.process_time() - start, func.overloadpacket.__name__
        category = _category(name, args)
        self.seconds[category] += seconds
        if category == OTHER:
            self.others[name] += seconds
        self.calls += 1
        return out


def _category(name: str, args: Any) -> str:
    if name in MATMUL_OPS:
        weight = args[2] if name == "addmm" else args[1]  # (input, weight, ...), addmm(bias, input, weight)
        lora = weight.dim() == 2 and LORA_RANK in weight.shape  # (rotary's position matmul is 3-d)
        return "LoRA adapter matmuls" if lora else "base matmuls"
    if any(tag in name for tag in ATTENTION_OPS):
        return "attention"
    if name in KV_COPY_OPS:
        return "KV-cache copies (cat/index/pad)"
    if name == "copy_":
        return "copy_ (casts, contiguous, cache writes)"
    return OTHER


def report(result: RolloutResult, limits: dict[int, float]) -> None:
    batch = result.tokens / max(result.decode_steps, 1)
    print(
        f"\n== rollout [{result.label}]: {result.tokens} tokens generated, {result.turns} turns, "
        f"{result.decode_steps} decode steps (mean batch {batch:.1f}), {result.prefill_tokens} tokens prefilled\n"
        f"   {result.wall_s:.1f} s wall ({result.tokens_per_s:.1f} tokens/s), {result.cpu_s:.1f} CPU-s "
        f"({result.tokens_per_cpu_s:.1f} tokens per CPU-s)"
    )
    for phase, seconds in sorted(result.phases.items(), key=lambda kv: -kv[1]):
        print(f"   {phase:<20} {seconds:7.2f} CPU-s  {seconds / result.cpu_s:6.1%}")
    if not any(limits.values()):
        return
    decode_rate = result.tokens / result.phases["decode forward"]
    limit = _interpolate(limits, batch)
    print(
        f"   decode: {decode_rate:.1f} tokens per decode CPU-s = {decode_rate / limit:.0%} of the matmul-only "
        f"limit at batch {batch:.1f} ({limit:.0f})"
    )
    prefill_gflops = result.prefill_tokens * (flops_per_token() - 2.0 * HEAD_SHAPE[0] * HEAD_SHAPE[1])
    prefill_gflops /= result.phases["prefill"] * 1e9
    peak = limits[ROWS[-1]] * flops_per_token() / 1e9
    print(f"   prefill: {prefill_gflops:.0f} GFLOP/s = {prefill_gflops / peak:.0%} of the {ROWS[-1]}-row matmul rate")


def _interpolate(limits: dict[int, float], rows: float) -> float:
    """The limit at a fractional batch size, linear between the measured row counts."""
    points = sorted(limits.items())
    for (low, at_low), (high, at_high) in zip(points, points[1:]):
        if rows <= high:
            return at_low + (at_high - at_low) * (max(rows, low) - low) / (high - low)
    return points[-1][1]


def report_ops(timed: RolloutResult, ops: OpTimer) -> None:
    """``ops`` from a second run of the same rollout, as fractions of the timed run's engine time (the
    op timer's own cost inflates each op a little, so the Python between ops cannot be told from it)."""
    engine_s = sum(v for k, v in timed.phases.items() if k != "search")
    op_s = sum(ops.seconds.values())
    print(
        f"   engine phases {engine_s:.1f} CPU-s, ops {op_s:.1f} CPU-s, {ops.calls} aten ops dispatched "
        f"({ops.calls / max(timed.decode_steps, 1) / LAYERS:.0f} per decoder layer per decode step, prefill included)"
    )
    for name, seconds in sorted(ops.seconds.items(), key=lambda kv: -kv[1]):
        print(f"   {name:<40} {seconds:7.2f} CPU-s  {seconds / engine_s:6.1%} of engine CPU")
    largest = sorted(ops.others.items(), key=lambda kv: -kv[1])[:6]
    print(f"   {OTHER}, largest: " + ", ".join(f"{name} {seconds:.2f}" for name, seconds in largest))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default, as the quickstart)")
    parser.add_argument(
        "--dtype", choices=("float32", "bfloat16"), default="float32", help="the engine's trainer.engine_dtype"
    )
    parser.add_argument("--baseline", help="git revision whose engine runs the same rollout, side by side")
    parser.add_argument("--baseline-threads", type=int, help="the baseline's torch threads (default: --threads)")
    parser.add_argument("--baseline-dtype", choices=("float32", "bfloat16"), help="the baseline's (default: --dtype)")
    parser.add_argument("--repeats", type=int, default=1, help="timed rollouts per engine (best counts)")
    parser.add_argument("--no-op-split", action="store_true", help="skip the rollout timed op by op")
    parser.add_argument("--no-machine", action="store_true", help="skip the matmul table")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} on {os.cpu_count()} cores")
    limits = dict.fromkeys(ROWS, 0.0) if args.no_machine else machine_table()
    threads = args.threads or torch.get_num_threads()
    workloads = {args.dtype: quickstart_workload(args.dtype)}
    engines = [(f"this checkout, {args.dtype}, {threads} thread(s)", engine_class(None), threads, args.dtype)]
    if args.baseline:
        base_threads, base_dtype = args.baseline_threads or threads, args.baseline_dtype or args.dtype
        if base_dtype not in workloads:  # a second model copy only for another dtype
            workloads[base_dtype] = quickstart_workload(base_dtype)
        label = f"engine at {args.baseline}, {base_dtype}, {base_threads} thread(s)"
        engines.append((label, engine_class(args.baseline), base_threads, base_dtype))
    results: dict[str, RolloutResult] = {}
    with torch.inference_mode():
        for _ in range(args.repeats):
            for label, cls, count, dtype in engines:
                torch.set_num_threads(count)
                result = rollout(workloads[dtype], cls, label)
                if label not in results or result.cpu_s < results[label].cpu_s:
                    results[label] = result
    for result in results.values():
        report(result, limits)
    if len(results) == 2:
        ours, base = results.values()
        same = [ids for ids, _ in ours.trajectories] == [ids for ids, _ in base.trajectories]
        print(
            f"\n== ratio: x{ours.tokens_per_s / base.tokens_per_s:.2f} tokens/s (wall), "
            f"x{ours.tokens_per_cpu_s / base.tokens_per_cpu_s:.2f} tokens per CPU-s; "
            f"same sampled trajectories: {same}"
        )
    if not args.no_op_split:
        for label, cls, count, dtype in engines:
            torch.set_num_threads(count)
            ops = OpTimer()
            with torch.inference_mode(), engine_steps_inline():
                rollout(workloads[dtype], cls, label, ops=ops)
            print(f"\n== op split [{label}]: CPU time per op category (a second run of the same rollout)")
            report_ops(results[label], ops)
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
