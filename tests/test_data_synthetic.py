import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from searchr1.config.schema import SYNTHETIC_QUESTIONS, RetrieverConfig
from searchr1.data.synthetic import (
    QUESTION_SETS,
    REFERENCE_YEAR,
    SINGLE_HOP_SOURCE,
    TWO_HOP_SOURCE,
    YEARS_SOURCE,
    generate,
    render_passage,
    write_encyclopedia,
)
from searchr1.reward import exact_match
from tests.support.data import SMALL_ENTITIES, echo_baseline, oracle_answers, prior_baseline

FILES = ("train.parquet", "test.parquet", "corpus.jsonl")


def _digests(root: Path) -> dict[str, str]:
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in FILES}


def _write(root: Path, seed: int, n: int = SMALL_ENTITIES) -> dict[str, str]:
    write_encyclopedia(generate(seed, n), **{f"{k}_path": root / f for k, f in zip(("train", "test", "corpus"), FILES)})
    return _digests(root)


def test_same_seed_gives_same_bytes_and_another_seed_does_not(tmp_path):
    first, second, other = (_write(tmp_path / name, seed) for name, seed in (("a", 7), ("b", 7), ("c", 8)))
    assert first == second
    assert all(first[name] != other[name] for name in FILES)


def test_bytes_do_not_depend_on_the_interpreter_hash_seed(tmp_path):
    # Set iteration order changes with PYTHONHASHSEED; the generator must never depend on it.
    script = (
        "import sys; from pathlib import Path; from searchr1.data.synthetic import generate, write_encyclopedia;"
        "r = Path(sys.argv[1]); write_encyclopedia(generate(3, 120), train_path=r / 'train.parquet',"
        " test_path=r / 'test.parquet', corpus_path=r / 'corpus.jsonl')"
    )
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", script, str(tmp_path / hash_seed)], check=True, env=env)
    assert _digests(tmp_path / "1") == _digests(tmp_path / "2")


def test_default_size_is_a_few_thousand_questions_over_unique_titles():
    book = generate(0, 2000)
    titles = [e.name for e in book.entities]
    assert len(titles) == len(set(titles)) == 2000
    assert len(book.train) > 4000 and len(book.test) > 400
    assert {q.data_source for q in book.test} == {SINGLE_HOP_SOURCE, TWO_HOP_SOURCE}
    train_texts = {q.text for q in book.train}
    assert not any(q.text in train_texts for q in book.test)


def test_corpus_rows_are_search_r1_jsonl_with_quoted_titles(tmp_path):
    _write(tmp_path, 0)
    rows = [json.loads(line) for line in (tmp_path / "corpus.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [str(i) for i in range(SMALL_ENTITIES)]
    for row in rows:
        title, text = row["contents"].split("\n", 1)
        assert title.startswith('"') and title.endswith('"') and title.strip('"') in text


@pytest.fixture(scope="module")
def book_and_search(tmp_path_factory):
    """The default-size encyclopedia behind a real BM25 index built by our retriever."""
    from searchr1.retriever.corpus import Corpus
    from searchr1.retriever.index import build_index, open_index

    root = tmp_path_factory.mktemp("encyclopedia")
    book = generate(0, 2000)
    write_encyclopedia(book, train_path=root / FILES[0], test_path=root / FILES[1], corpus_path=root / FILES[2])
    cfg = RetrieverConfig(kind="bm25")
    index = open_index(build_index(root / FILES[2], cfg, show_progress=False), cfg)
    corpus = Corpus(root / FILES[2])

    def top_passage(queries: list[str]) -> list[str]:
        _, rows = index.search(queries, 1)
        return [corpus.doc(int(r[0]))["contents"] if r[0] >= 0 else "" for r in rows]

    yield book, top_passage
    corpus.close()


def _em(predictions, questions) -> float:
    return sum(exact_match(p, q.answers) for p, q in zip(predictions, questions)) / len(questions)


def test_answering_without_search_scores_about_zero(book_and_search):
    book, _ = book_and_search
    assert _em(prior_baseline(book.train, book.test), book.test) < 0.05
    assert _em(echo_baseline(book.test), book.test) == 0.0


def test_searching_the_right_entity_and_copying_the_answer_scores_about_one(book_and_search):
    book, top_passage = book_and_search
    for source in (SINGLE_HOP_SOURCE, TWO_HOP_SOURCE):
        questions = [q for q in book.test if q.data_source == source]
        assert _em(oracle_answers(questions, top_passage), questions) > 0.97, source


def test_the_question_text_itself_is_a_good_enough_query(book_and_search):
    # What a policy would most naively search: the first hop's passage should still come first.
    book, top_passage = book_and_search
    firsts = top_passage([q.text for q in book.test])
    hits = sum(f.startswith(f'"{q.hop_queries[0]}"') for f, q in zip(firsts, book.test))
    assert hits / len(book.test) > 0.9


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(10, 80))
def test_any_seed_and_size_gives_short_answerable_questions_that_do_not_give_the_answer_away(seed, n):
    book = generate(seed, n)
    passages = {e.name: render_passage(e) for e in book.entities}
    assert len(passages) == n and book.train and book.test
    for q in book.train + book.test:
        hops = [passages[name] for name in q.hop_queries]
        assert all(bridge in prev for prev, bridge in zip(hops, q.hop_queries[1:]))
        assert any(answer in hops[-1] for answer in q.answers)
        assert q.hop_queries[0] in q.text and not any(answer in q.text for answer in q.answers)
        assert all(len(answer.split()) <= 3 for answer in q.answers)


def test_years_questions_ask_about_the_same_book_for_one_search_and_a_subtraction():
    from searchr1.tools.calculator_engine import CalculatorLimits, evaluate_expression

    lookup, years = generate(0, 2000), generate(0, 2000, "years")
    assert years.entities == lookup.entities  # the same corpus: only the questions differ
    assert all(q.calculation is None for q in lookup.train + lookup.test)
    passages = {e.name: render_passage(e) for e in years.entities}
    limits = CalculatorLimits(max_chars=100, max_digits=10, decimals=0, timeout=1.0)
    for q in years.train + years.test:
        assert q.data_source == YEARS_SOURCE and len(q.hop_queries) == 1 and q.calculation is not None
        fact, expression = q.calculation.fact, q.calculation.expression
        assert f"in {fact}" in passages[q.hop_queries[0]]  # the one search finds the year
        assert expression == f"{REFERENCE_YEAR} - {fact}" and evaluate_expression(expression, limits) == q.answers[0]
        assert int(q.answers[0]) >= 0 and re.findall(r"\d+", q.text) == [str(REFERENCE_YEAR)]  # no year given away
    assert {q.relation for q in years.test} == {
        "person.born",
        "city.founded",
        "country.independence",
        "company.founded",
        "invention.year",
    }
    assert 150 < len(years.test) < 250 and not {q.text for q in years.test} & {q.text for q in years.train}


def test_a_years_answer_is_not_guessable_from_the_question_alone():
    # Without the passage the best a policy can do is a typical answer: a few percent at most.
    book = generate(0, 2000, "years")
    assert _em(prior_baseline(book.train, book.test), book.test) < 0.05


def test_the_question_sets_are_the_ones_the_schema_allows():
    assert tuple(QUESTION_SETS) == SYNTHETIC_QUESTIONS
    with pytest.raises(ValueError, match="questions='dates' is unknown; allowed: lookup, years"):
        generate(0, 20, "dates")
