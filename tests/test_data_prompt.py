import pytest

from searchr1.data.prompt import make_prompt, normalize_question, prompt_messages

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
