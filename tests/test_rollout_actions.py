from searchr1.rollout.actions import Action, first_stop_tag_end, parse_action


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
