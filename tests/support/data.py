"""Synthetic-data helpers for tests: small data configs, a no-search baseline and a search oracle."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

from searchr1.config.schema import DataConfig
from searchr1.data.synthetic import Question

SMALL_ENTITIES = 200

TINY_ROLLOUT = [
    "trainer.prompts_per_step=1",
    "rollout.n_samples_per_prompt=2",
    "rollout.max_turn_tokens=16",
    "rollout.max_turns=1",
    f"data.num_entities={SMALL_ENTITIES}",
]
"""Overrides for the smallest real-model rollout: one prompt, two samples, one short turn, a small book."""
"""Enough for every relation kind, small enough to generate and index in well under a second."""


def synthetic_data_config(root: Path, *, seed: int = 0, num_entities: int = SMALL_ENTITIES) -> DataConfig:
    """A synthetic DataConfig whose files live under ``root`` (generate them with ensure_data)."""
    return DataConfig(
        name="synthetic",
        seed=seed,
        num_entities=num_entities,
        train_path=str(root / "train.parquet"),
        test_path=str(root / "test.parquet"),
        corpus_path=str(root / "corpus.jsonl"),
    )


def prior_baseline(train: Sequence[Question], test: Sequence[Question]) -> list[str]:
    """Answer without searching: the most frequent training answer for the question's relation."""
    by_relation: dict[str, Counter] = {}
    for q in train:
        by_relation.setdefault(q.relation, Counter())[q.answers[0]] += 1
    return [by_relation[q.relation].most_common(1)[0][0] if q.relation in by_relation else "" for q in test]


def echo_baseline(test: Sequence[Question]) -> list[str]:
    """Answer without searching: repeat the entity the question is about."""
    return [q.hop_queries[0] for q in test]


def oracle_answers(questions: Sequence[Question], top_passage: Callable[[list[str]], list[str]]) -> list[str]:
    """Search the right entity at each hop and copy the answer out of the top passage.

    ``top_passage`` maps a batch of queries to the contents of each query's first hit. The bridge
    of a two-hop question must be readable in the first hop's passage, else the oracle gives up.
    """
    queries = sorted({query for q in questions for query in q.hop_queries})
    passages = dict(zip(queries, top_passage(queries)))
    answers = []
    for q in questions:
        hops = [passages[query] for query in q.hop_queries]
        bridges_found = all(nxt in prev for prev, nxt in zip(hops, q.hop_queries[1:]))
        found = [a for a in q.answers if a in hops[-1]] if bridges_found else []
        answers.append(found[0] if found else "")
    return answers
