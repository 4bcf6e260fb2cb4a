"""searchr1-eval: per-sample scores, the paper table, the periodic hook, and the CLI over the SGLang protocol."""

from __future__ import annotations

import asyncio
import json
import threading
from contextlib import contextmanager

import aiohttp
import pytest

from searchr1.config import to_typed
from searchr1.tools.search import search_toolbox
from searchr1.config.schema import RewardConfig
from searchr1.data import ensure_data
from searchr1.data.dataset import QAExample, load_split
from searchr1.eval import evaluate
from searchr1.eval.identity import file_identity
from searchr1.eval.runner import EvalResult, select_examples
from searchr1.eval.scoring import SampleScore, score_sample
from searchr1.eval.table import AVERAGE, build_table, markdown, pass_at_k
from searchr1.reward import score_response, token_f1
from searchr1.engines.sglang import SGLangEngine
from searchr1.rollout.trajectory import Trajectory
from searchr1.tools.base import ToolCall
from tests.support.compose import compose_config
from tests.support.scripted import ScriptedSearch, smollm2_tokenizer
from tests.support.sglang_server import serve_fake_sglang


def _example(source: str, i: int) -> QAExample:
    return QAExample(
        question=f"q{source}{i}",
        prompt_messages=[{"role": "user", "content": f"Question: q{i}"}],
        golden_answers=[f"a{i}"],
        data_source=source,
        index=i,
    )


def _score(source: str, prompt: int, em: float, turns: int = 2) -> SampleScore:
    return SampleScore(
        data_source=source,
        prompt_index=prompt,
        answer="x",
        golden_answers=["x"],
        exact_match=em,
        sub_exact_match=em,
        f1=em,
        turns=turns,
        search_calls=turns - 1,
        status="completed",
    )


@pytest.mark.parametrize(
    "prediction,gold,expected",
    [
        ("Barack Obama", ["Obama"], 2 / 3),
        ("the Eiffel Tower", ["Eiffel Tower"], 1.0),
        ("Paris", ["London", "paris!"], 1.0),
        ("", ["x"], 0.0),
        ("blue whale", ["red panda"], 0.0),
    ],
)
def test_token_f1(prediction, gold, expected):
    assert token_f1(prediction, gold) == pytest.approx(expected)


def test_sample_em_is_the_reward_functions_em():
    cfg = RewardConfig(kind="em_format", format_score=0.2)
    traj = Trajectory(prompt_ids=[1], response_text="<think>t</think>\n<answer> The Nile </answer>", turns=1)
    score = score_sample(traj, ["Nile river", "nile"], "nq", 0, cfg)
    assert score.exact_match == score_response(traj.response_text, ["Nile river", "nile"], cfg).exact_match == 1.0
    assert (score.answer, score.sub_exact_match) == ("The Nile", 1.0)
    unanswered = score_sample(Trajectory(prompt_ids=[1], response_text="no tags"), ["x"], "nq", 0, cfg)
    assert (unanswered.answer, unanswered.exact_match, unanswered.f1) == (None, 0.0, 0.0)


def test_select_examples_round_robins_over_sources():
    examples = [_example("nq", i) for i in range(5)] + [_example("hotpotqa", i) for i in range(5)]
    picked = select_examples(examples, 4)
    assert [(e.data_source, e.index) for e in picked] == [("nq", 0), ("hotpotqa", 0), ("nq", 1), ("hotpotqa", 1)]
    assert select_examples(examples, None) == examples


def test_table_uses_paper_order_and_unweighted_average():
    scores = [
        _score("hotpotqa", 0, 1.0),
        _score("synthetic_1hop", 1, 0.0),
        _score("nq", 2, 1.0),
        _score("nq", 3, 0.0),
        _score("nq", 4, 0.0),
        _score("nq", 5, 0.0),
    ]
    table = build_table(scores)
    assert table.columns == ["nq", "hotpotqa", "synthetic_1hop"]
    assert table.cells["EM"] == {"nq": 0.25, "hotpotqa": 1.0, "synthetic_1hop": 0.0, AVERAGE: pytest.approx(1.25 / 3)}
    text = markdown(table, "model")
    assert "|  | NQ | HotpotQA | synthetic_1hop | Avg. |" in text
    assert "| EM | 0.250 | 1.000 | 0.000 | 0.417 |" in text
    assert "| turns/sample | 2.00 | 2.00 | 2.00 | 2.00 |" in text
    assert "| n | 4 | 1 | 1 | 6 |" in text


def test_pass_at_k_counts_prompts_with_any_hit():
    scores = [_score("nq", 0, 0.0), _score("nq", 0, 1.0), _score("nq", 1, 0.0), _score("nq", 1, 0.0)]
    assert pass_at_k(scores) == 0.5
    table = build_table(scores, pass_k=2)
    assert table.cells["pass@2"]["nq"] == 0.5 and table.cells["EM"]["nq"] == 0.25


def test_eval_metrics_give_each_tools_calls_per_sample_also_for_an_unused_tool():
    searched = Trajectory(prompt_ids=[1], tool_calls=[ToolCall("search", "X"), ToolCall("calculator", "1/0", True)])
    answered = Trajectory(prompt_ids=[1], tool_calls=[ToolCall("search", "Y")])
    scores = [_score("synthetic_years", 0, 1.0), _score("synthetic_years", 1, 0.0)]
    result = EvalResult(build_table(scores), scores, [searched, answered], tools=("search", "calculator", "python"))
    metrics = result.metrics()
    assert metrics["eval/tool/search/calls_per_sample"] == 1.0
    assert metrics["eval/tool/calculator/calls_per_sample"] == 0.5
    assert metrics["eval/tool/calculator/failure_rate"] == 1.0
    assert metrics["eval/tool/python/calls_per_sample"] == 0.0
    assert metrics["eval/exact_match"] == 0.5


def test_file_identity_fingerprint_changes_with_content(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(b"a" * (3 << 20))
    first = file_identity(path)
    path.write_bytes(b"a" * (3 << 20 - 1) + b"b")
    assert first["size_bytes"] == 3 << 20 and first["fingerprint"] != file_identity(path)["fingerprint"]
    assert file_identity(tmp_path / "missing") == {"path": str(tmp_path / "missing"), "exists": False}


def _oracle_policy(correct: dict[str, str]):
    """Searches once, then answers; right exactly for the questions in ``correct`` (question -> gold)."""

    def policy(context: str) -> str:
        question = context.rsplit("Question:", 1)[-1].split("<|im_end|>", 1)[0].strip()
        if "<information>" not in context.rsplit("<|im_start|>assistant", 1)[-1]:
            return f"<think>Look it up.</think>\n<search>{question}</search>"
        return f"<think>Found it.</think>\n<answer>{correct.get(question, 'no idea')}</answer><|im_end|>"

    return policy


@pytest.mark.slow
async def test_periodic_evaluate_hook_reports_em_per_source(tmp_path):
    cfg = to_typed(compose_config(["rollout.max_turns=2", "eval.temperature=0"]))
    examples = [
        QAExample(
            question=q,
            prompt_messages=[{"role": "user", "content": f"Question: {q}\n"}],
            golden_answers=[a],
            data_source=src,
            index=i,
        )
        for i, (q, a, src) in enumerate([("Who?", "Ann", "nq"), ("What?", "Box", "nq"), ("Where?", "Rome", "popqa")])
    ]
    tokenizer = smollm2_tokenizer()
    async with serve_fake_sglang(tokenizer, _oracle_policy({"Who?": "Ann", "Where?": "Rome"})) as fake:
        async with aiohttp.ClientSession() as session:
            metrics = await evaluate(
                examples,
                engine=SGLangEngine(fake.url, session, 30),
                tools=search_toolbox(ScriptedSearch(), cfg.search.topk, cfg.search.failure_text),
                tokenizer=tokenizer,
                cfg=cfg,
                max_prompts=3,
            )
    assert metrics["eval/nq/exact_match"] == 0.5 and metrics["eval/popqa/exact_match"] == 1.0
    assert metrics["eval/exact_match"] == pytest.approx(2 / 3)
    assert metrics["eval/turns_per_sample"] == 2.0 and metrics["eval/search_calls_per_sample"] == 1.0
    assert all(p["sampling_params"]["temperature"] == 0.0 for p in fake.requests), "greedy by default"


@contextmanager
def fake_sglang_in_thread(tokenizer, policy):
    """The fake SGLang server on its own loop, for code that runs its own asyncio.run."""
    ready = threading.Event()
    holder: dict = {}

    async def main() -> None:
        holder["stop"], holder["loop"] = asyncio.Event(), asyncio.get_running_loop()
        async with serve_fake_sglang(tokenizer, policy) as fake:
            holder["fake"] = fake
            ready.set()
            await holder["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)

    thread.start()
    assert ready.wait(30)
    try:
        yield holder["fake"]
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(10)


@pytest.mark.slow
def test_eval_cli_on_the_synthetic_test_split(tmp_path):
    from searchr1.eval.cli import run_eval
    from searchr1.run import RunContext

    out = tmp_path / "out" / "eval.json"
    overrides = [
        "data.num_entities=200",
        "eval.max_prompts=10",
        "rollout.max_turns=2",
        "search.topk=2",
        f"eval.output={out}",
    ]
    typed = to_typed(compose_config(overrides))
    ensure_data(typed.data)
    chosen = select_examples(load_split(typed.data.test_path), 10)
    correct = {e.question: e.golden_answers[0] for i, e in enumerate(chosen) if i % 2 == 0}
    with fake_sglang_in_thread(smollm2_tokenizer(), _oracle_policy(correct)) as fake:
        cfg = compose_config([*overrides, f"eval.sglang_url={fake.url}"])
        typed = to_typed(cfg)
        result = run_eval(RunContext.build(cfg, typed, tmp_path / "run"))

    sources = sorted({e.data_source for e in chosen})
    for source in sources:
        expected = [e.question in correct for e in chosen if e.data_source == source]
        assert result["table"]["rows"]["EM"][source] == pytest.approx(sum(expected) / len(expected))
    assert result["metrics"]["eval/exact_match"] == pytest.approx(len(correct) / len(chosen))
    assert result["table"]["rows"]["searches/sample"][AVERAGE] == 1.0
    # EM is the reward function's EM on the very responses the model gave.
    samples = [json.loads(line) for line in (out.parent / "eval_samples.jsonl").read_text().splitlines()]
    assert len(samples) == 10
    for sample in samples:
        assert (
            sample["exact_match"]
            == score_response(sample["response"], sample["golden_answers"], typed.reward).exact_match
        )
    # The result names what it measured.
    assert result["model"]["engine"] == f"sglang:{fake.url}" and result["model"]["name"] == "smollm2-135m"
    assert result["data"]["split"] == "test" and result["data"]["examples_evaluated"] == 10
    assert result["retriever"]["corpus"]["fingerprint"].startswith("sha256-edges:")
    assert result["retriever"]["embedded"] is True and result["retriever"]["kind"] == "bm25"
    saved = json.loads(out.read_text())
    assert saved["table"] == json.loads(json.dumps(result["table"]))
    assert "| EM |" in out.with_suffix(".md").read_text()


def test_split_by_source_writes_one_readable_file_per_dataset(tmp_path):
    from searchr1.data.dataset import make_row, write_split
    from searchr1.eval.datasets import split_by_source

    rows = [
        make_row(row_id=str(i), question=f"q{i}", golden_answers=[f"a{i}"], data_source=src, split="test", index=i)
        for i, src in enumerate(["nq", "hotpotqa", "nq", "bamboogle"])
    ]
    write_split(rows, tmp_path / "test.parquet")
    files = split_by_source(tmp_path / "test.parquet", tmp_path / "by_source")
    assert sorted(files) == ["bamboogle", "hotpotqa", "nq"]
    nq = load_split(files["nq"])
    assert [(e.data_source, e.index, e.golden_answers) for e in nq] == [("nq", 0, ["a0"]), ("nq", 2, ["a2"])]


def test_embedded_eval_generates_in_the_trainers_engine_dtype():
    """trainer.engine_dtype reaches searchr1-eval's engine (it once ran float32 whatever was asked) and the
    result names the precision it ran in."""
    import torch

    from searchr1.eval.policy import _engine, engine_label

    cfg = to_typed(compose_config(["trainer.engine_dtype=bfloat16"]))
    engine = _engine(cfg, smollm2_tokenizer(), None, None)  # type: ignore[arg-type]  # no session: embedded
    assert {p.dtype for p in engine.model.parameters()} == {torch.bfloat16}
    assert engine_label(cfg) == "embedded:bfloat16"
    assert engine_label(to_typed(compose_config(["eval.sglang_url=http://127.0.0.1:1"]))) == "sglang:http://127.0.0.1:1"
