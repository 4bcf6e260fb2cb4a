"""Client for retriever servers speaking Search-R1's ``POST /retrieve`` API (ours or theirs)."""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import aiohttp

from searchr1.search.base import Passage
from searchr1.search.fetcher import MalformedResponseError
from searchr1.search.transport import post_json

RETRIEVE_PATH = "/retrieve"


def retrieve_url(url: str) -> str:
    """Accept a base URL (``http://host:8000``) or Search-R1's full ``search_url`` (``.../retrieve``)."""
    url = url.rstrip("/")
    return url if url.endswith(RETRIEVE_PATH) else url + RETRIEVE_PATH


class LocalRetrieverClient:
    """One ``/retrieve`` request per query, round-robin over replicas.

    Each query goes out alone: the server micro-batches concurrent requests, and a retry lands on
    the next replica, so one dead replica costs an attempt, not the search.
    """

    name = "local"

    def __init__(self, urls: Sequence[str], *, session: aiohttp.ClientSession, timeout_s: float) -> None:
        if not urls:
            raise ValueError("LocalRetrieverClient needs at least one retriever URL")
        self.urls = tuple(retrieve_url(u) for u in urls)
        self._next_url = itertools.cycle(self.urls)
        self._session = session
        self._timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"LocalRetrieverClient(urls={list(self.urls)}, timeout_s={self._timeout_s})"

    async def fetch(self, query: str, topk: int) -> tuple[Passage, ...]:
        url = next(self._next_url)
        payload = {"queries": [query], "topk": topk, "return_scores": True}
        body = await post_json(self._session, url, payload, timeout_s=self._timeout_s)
        return parse_retrieve_response(body, url)[:topk]


def parse_retrieve_response(body: Any, url: str) -> tuple[Passage, ...]:
    """Hits of the one query in ``{"result": [[hit, ...]]}``; any other number of lists is malformed
    (a server answering two lists for one query is answering some other request).

    A hit is ``{"document": doc, "score": s}`` (return_scores=true), a bare ``doc`` dict
    (``{id, contents}`` or BM25's ``{title, text, contents}``), or a ``"Title"\\ntext`` string
    (Search-R1's rerank server).
    """
    result = body.get("result") if isinstance(body, dict) else None
    if not isinstance(result, list) or not result or not isinstance(result[0], list):
        raise MalformedResponseError(f"{url} answered without a 'result' list of hit lists: {str(body)[:200]}")
    if len(result) != 1:
        raise MalformedResponseError(f"{url} answered {len(result)} result lists for one query: {str(body)[:200]}")
    return tuple(_parse_hit(hit, url) for hit in result[0])


def _parse_hit(hit: Any, url: str) -> Passage:
    if isinstance(hit, str):
        return Passage(contents=hit)
    if not isinstance(hit, dict):
        raise MalformedResponseError(f"{url} returned a hit that is neither an object nor a string: {hit!r:.200}")
    doc, score = (hit["document"], hit.get("score")) if "document" in hit else (hit, None)
    if isinstance(doc, str):
        return Passage(contents=doc, score=_float_or_none(score))
    contents = doc.get("contents") if isinstance(doc, dict) else None
    if not isinstance(contents, str):
        raise MalformedResponseError(f"{url} returned a hit without 'contents': {hit!r:.200}")
    doc_id = doc.get("id")
    return Passage(contents=contents, id=None if doc_id is None else str(doc_id), score=_float_or_none(score))


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
