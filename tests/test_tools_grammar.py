from searchr1.tools.grammar import SEARCH_GRAMMAR, Action, ActionGrammar

parse_action = SEARCH_GRAMMAR.parse
first_stop_tag_end = SEARCH_GRAMMAR.first_stop_tag_end


def test_search_and_answer_are_parsed_with_stripped_content():
    assert parse_action("<think>x</think>\n<search> capital of France </search>") == Action(
        "search", "capital of France"
    )
    assert parse_action("<answer>\nParis\n</answer>") == Action("answer", "Paris")


def test_the_first_action_wins():
    assert parse_action("<answer>a</answer><search>q</search>") == Action("answer", "a")
    assert parse_action("<search>q</search><answer>a</answer>") == Action("search", "q")


def test_content_may_span_lines():
    assert parse_action("<search>two\nlines</search>").content == "two\nlines"


def test_mismatched_missing_or_unclosed_tags_are_invalid():
    for text in ("<search>q</answer>", "no tags at all", "<search>q", "</search>", "<think>only</think>", ""):
        assert parse_action(text).kind == "invalid", text


def test_first_stop_tag_end_is_just_past_the_earliest_closing_tag():
    assert first_stop_tag_end("a</search>b</answer>") == len("a</search>")
    assert first_stop_tag_end("a</answer>b</search>") == len("a</answer>")
    assert first_stop_tag_end("<search>q") is None


def test_a_grammar_knows_every_tool_tag_and_stops_after_each():
    grammar = ActionGrammar(("search", "calculator"))
    assert grammar.stop_tags == ("</search>", "</calculator>", "</answer>")
    assert grammar.parse("<think>x</think><calculator> 2 * 21 </calculator>") == Action("calculator", "2 * 21")
    assert grammar.parse("<python>print(1)</python>").kind == "invalid"  # not a tool of this run
    assert grammar.first_stop_tag_end("a</calculator>b</search>") == len("a</calculator>")


def test_search_grammar_is_search_r1s():
    assert SEARCH_GRAMMAR.stop_tags == ("</search>", "</answer>")
