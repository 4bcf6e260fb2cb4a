"""Observation text must match Search-R1's generation loop byte for byte."""

from hypothesis import given, settings
from hypothesis import strategies as st

from searchr1.search.base import Passage, SearchResult
from searchr1.search.render import format_passages, render_observation

FAIL = "Search failed."


def test_two_passages_render_exactly_like_search_r1():
    result = SearchResult(
        query="capital of france",
        passages=(
            Passage(contents='"Paris"\nParis is the capital of France.'),
            Passage(contents='"Berlin"\nBerlin is the capital of Germany.'),
        ),
    )
    expected = (
        '\n\n<information>Doc 1(Title: "Paris") Paris is the capital of France.\n'
        'Doc 2(Title: "Berlin") Berlin is the capital of Germany.</information>\n\n'
    )
    assert render_observation(result, FAIL) == expected


def test_text_keeps_its_inner_newlines_and_a_title_only_passage_keeps_the_space():
    passages = (Passage(contents='"T"\nline one\nline two'), Passage(contents="no newline here"))
    assert format_passages(passages) == 'Doc 1(Title: "T") line one\nline two\nDoc 2(Title: no newline here) \n'
    # the outer strip removes the last passage's trailing space and newline, as Search-R1's does
    assert render_observation(SearchResult(query="q", passages=passages), FAIL).endswith(
        "Doc 2(Title: no newline here)</information>\n\n"
    )


def test_failed_search_shows_the_failure_text_inside_the_same_tags():
    failed = SearchResult(query="q", failed=True, error="HTTP 502")
    assert render_observation(failed, FAIL) == "\n\n<information>Search failed.</information>\n\n"


def test_no_passages_give_empty_information_block():
    assert render_observation(SearchResult(query="q"), FAIL) == "\n\n<information></information>\n\n"


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.text(alphabet=st.characters(blacklist_characters="\n")), st.text()), min_size=1, max_size=5)
)
def test_every_passage_is_numbered_and_titled_by_its_first_line(pairs):
    passages = tuple(Passage(contents=f"{title}\n{text}") for title, text in pairs)
    rendered = format_passages(passages)
    for number, (title, _) in enumerate(pairs, start=1):
        assert f"Doc {number}(Title: {title}) " in rendered
    observation = render_observation(SearchResult(query="q", passages=passages), FAIL)
    assert observation.startswith("\n\n<information>Doc 1(Title: ")
    assert observation.endswith("</information>\n\n")
