import pytest

from searchr1.data.prompt import (
    DEMO_QUESTION,
    DEMO_RESPONSE,
    make_prompt,
    normalize_question,
    prompt_messages,
    styled_messages,
)
from searchr1.reward import is_valid_format

# Search-R1's make_prefix(template_type='base') output for "who wrote hamlet?", copied from
# scripts/data_process/qa_search_train_merge.py (typo "as your want" included).
EXPECTED = (
    "Answer the given question. You must conduct reasoning inside <think> and </think> first every time you "
    "get new information. After reasoning, if you find you lack some knowledge, you can call a search engine "
    "by <search> query </search> and it will return the top searched results between <information> and "
    "</information>. You can search as many times as your want. If you find no further external knowledge "
    "needed, you can directly provide the answer inside <answer> and </answer>, without detailed "
    "illustrations. For example, <answer> Beijing </answer>. Question: who wrote hamlet?\n"
)


def test_prompt_is_search_r1_text_byte_for_byte():
    assert make_prompt("who wrote hamlet?") == EXPECTED


@pytest.mark.parametrize("raw", ["who wrote hamlet", "  who wrote hamlet \n", "who wrote hamlet?"])
def test_question_is_stripped_and_gets_one_question_mark(raw):
    assert make_prompt(raw) == EXPECTED


def test_existing_question_mark_is_not_doubled():
    assert normalize_question("really?") == "really?"


def test_empty_question_is_rejected():
    with pytest.raises(ValueError):
        normalize_question("   ")


def test_prompt_is_a_single_user_message():
    assert prompt_messages("who wrote hamlet") == [{"role": "user", "content": EXPECTED}]


def test_searchr1_style_keeps_the_stored_messages():
    messages = prompt_messages("who wrote hamlet")
    assert styled_messages(messages, "searchr1") is messages


def test_demo_style_puts_one_worked_exchange_before_the_question():
    messages = prompt_messages("who wrote hamlet")
    demo = styled_messages(messages, "demo")
    assert [m["role"] for m in demo] == ["user", "assistant", "user"]
    assert demo[0]["content"] == make_prompt(DEMO_QUESTION) and demo[2:] == messages
    # the demonstration itself follows the grammar the reward checks
    assert is_valid_format(demo[1]["content"]) and demo[1]["content"] == DEMO_RESPONSE


def test_unknown_prompt_style_is_refused():
    with pytest.raises(ValueError, match="prompt style"):
        styled_messages(prompt_messages("x"), "fewshot")
