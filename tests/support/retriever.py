"""Retriever test helpers: a small Search-R1-format corpus, its configs and plain-HTTP calls. The
fixtures that start real servers over it on 127.0.0.1 are in tests/conftest.py."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any


from searchr1.config.schema import RetrieverConfig

# (title, text); row i has id f"doc-{i}". Topics are far apart so the right hit is unambiguous.
PASSAGES = [
    ("Paris", "Paris is the capital and most populous city of France, on the Seine river."),
    ("Berlin", "Berlin is the capital of Germany and its largest city by population."),
    ("Mount Everest", "Mount Everest is Earth's highest mountain above sea level, in the Himalayas."),
    ("Nile", "The Nile is a major north-flowing river in northeastern Africa."),
    ("Ada Lovelace", "Ada Lovelace was an English mathematician who wrote the first computer program."),
    ("Python (programming language)", "Python is a programming language created by Guido van Rossum in 1991."),
    ("Photosynthesis", "Photosynthesis is how plants turn sunlight, water and carbon dioxide into sugar."),
    ("Jupiter", "Jupiter is the fifth planet from the Sun and the largest planet in the Solar System."),
    ("Mozart", "Wolfgang Amadeus Mozart was a prolific composer of the Classical period, born in Salzburg."),
    ("Great Wall of China", "The Great Wall of China is a series of fortifications built across northern China."),
    ("Penicillin", "Penicillin, discovered by Alexander Fleming in 1928, was the first widely used antibiotic."),
    ("Tokyo", "Tokyo is the capital of Japan and one of the most populous metropolitan areas."),
    ("Football", "Association football is a team sport played between two teams of eleven players with a ball."),
    ("Shakespeare", "William Shakespeare was an English playwright who wrote Hamlet and Macbeth."),
    ("Amazon rainforest", "The Amazon rainforest covers much of the Amazon basin of South America."),
    ("Moon landing", "Apollo 11 landed the first humans, Neil Armstrong and Buzz Aldrin, on the Moon in 1969."),
    ("Coffee", "Coffee is a beverage brewed from roasted coffee beans, the seeds of Coffea plants."),
    ("Chess", "Chess is a board game for two players played on a checkered board with 64 squares."),
    ("Volcano", "A volcano is a rupture in a planet's crust where lava, ash and gases escape."),
    ("DNA", "DNA is a molecule of two strands forming a double helix that carries genetic instructions."),
]


def corpus_rows() -> list[dict[str, str]]:
    return [{"id": f"doc-{i}", "contents": f'"{title}"\n{text}'} for i, (title, text) in enumerate(PASSAGES)]


def write_corpus(path: Path, rows: list[dict[str, Any]] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in (rows or corpus_rows())))
    return path


# Small limits so that tests can cross them cheaply; a long wait so that batching is visible.
TEST_CFG = RetrieverConfig(
    kind="bm25",
    max_batch_size=64,
    max_wait_ms=30.0,
    max_queries=8,
    max_topk=10,
    max_query_chars=200,
    max_body_bytes=1024,
)
DENSE_CFG = replace(TEST_CFG, kind="dense", faiss_gpu=False)


def post_json(url: str, payload: Any, timeout: float = 30.0) -> tuple[int, Any]:
    """A plain HTTP POST, as Search-R1's own client sends it; returns (status, decoded JSON body)."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def get_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())
