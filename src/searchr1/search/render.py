"""The observation text the model sees after a search, byte-identical to Search-R1's loop."""

from __future__ import annotations

from typing import Iterable

from searchr1.search.base import Passage, SearchResult

OPEN_TAG = "\n\n<information>"
CLOSE_TAG = "</information>\n\n"


def format_passages(passages: Iterable[Passage]) -> str:
    """``Doc i(Title: <first line>) <rest>`` per passage, one per line; the title keeps its quotes."""
    lines = []
    for number, passage in enumerate(passages, start=1):
        title, _, text = passage.contents.partition("\n")
        lines.append(f"Doc {number}(Title: {title}) {text}\n")
    return "".join(lines)


def render_observation(result: SearchResult, failure_text: str) -> str:
    """What is appended to the context after ``<search>`` (loss-masked by the rollout).

    Search-R1 strips the joined passages before closing the tag, so the last passage's newline
    goes; a failed search shows ``failure_text`` inside the same tags, so the model always sees
    the structure it was trained on.
    """
    body = failure_text if result.failed else format_passages(result.passages).strip()
    return f"{OPEN_TAG}{body}{CLOSE_TAG}"
