import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from searchr1.config.schema import RolloutConfig
from searchr1.rollout.tokens import SegmentEncoder, keep_through_stop_tag, prompt_ids
from searchr1.search.base import Passage, SearchResult
from searchr1.search.render import render_observation
from tests.support.scripted import smollm2_tokenizer


@pytest.fixture(scope="module")
def tok():
    return smollm2_tokenizer()


OBSERVATION = render_observation(
    SearchResult("q", passages=(Passage('"Paris"\nParis is the capital of France.'), Passage('"Seine"\nA river.'))), ""
)
# How model turns end in practice: at a tag, a tag plus punctuation, mid-sentence (length), a number.
TURN_ENDINGS = [
    "<think>Look it up.</think>\n<search>capital of France</search>",
    "<search>capital of France</search>.",
    "I am not sure",
    "The year was 1991",
    "Let me think:",
]


def encode(tok, text):
    return tok.encode(text, add_special_tokens=False)


@pytest.mark.parametrize("turn", TURN_ENDINGS)
@pytest.mark.parametrize("inserted", [OBSERVATION, RolloutConfig().invalid_action_text])
def test_inserted_tokens_do_not_drift_at_either_boundary(tok, turn, inserted):
    prev, after = encode(tok, turn), encode(tok, "<think>next</think>")
    ours = SegmentEncoder(tok).encode(inserted, prev)
    # Re-tokenizing the whole text gives exactly our pieces: nothing merged across a boundary.
    assert encode(tok, turn + inserted + "<think>next</think>") == prev + ours + after


def test_encoding_the_observation_alone_would_drift_on_smollm2(tok):
    """Why in-context encoding: alone, the closing blank line is one token the model never sees before '<'."""
    prev, after = encode(tok, TURN_ENDINGS[0]), encode(tok, "<think>")
    assert encode(tok, TURN_ENDINGS[0] + OBSERVATION + "<think>") != prev + encode(tok, OBSERVATION) + after


@settings(max_examples=60, deadline=None)
@given(text=st.text(min_size=1, max_size=40), left=st.sampled_from(TURN_ENDINGS + ["", "  ", "é"]))
def test_inserted_ids_always_decode_to_the_text(tok, text, left):
    assume(tok.decode(encode(tok, text)) == text)  # the vocabulary cannot spell a few code points
    ids = SegmentEncoder(tok).encode(text, encode(tok, left))
    assert tok.decode(ids, skip_special_tokens=False) == text


def test_keep_through_stop_tag_drops_everything_after_the_first_tag(tok):
    ids = encode(tok, "<search>q</search>\n\n<information>made up</information>")
    kept, text = keep_through_stop_tag(tok, ids)
    assert text == "<search>q</search>"
    assert tok.decode(ids[:kept]) == text


def test_keep_through_stop_tag_keeps_a_token_that_completes_the_tag(tok):
    ids = encode(tok, "<answer>x</answer>. More")
    kept, text = keep_through_stop_tag(tok, ids)
    assert text == "<answer>x</answer>."  # '>.' is one token: cutting it would mean re-tokenizing


def test_keep_through_stop_tag_keeps_a_turn_without_tags(tok):
    ids = encode(tok, "just thinking aloud")
    assert keep_through_stop_tag(tok, ids) == (len(ids), "just thinking aloud")


def test_prompt_ids_render_the_chat_template_with_the_generation_prompt(tok):
    ids = prompt_ids(tok, [{"role": "user", "content": "Question: who?"}])
    text = tok.decode(ids, skip_special_tokens=False)
    assert text.endswith("<|im_start|>user\nQuestion: who?<|im_end|>\n<|im_start|>assistant\n")
    assert all(isinstance(i, int) for i in ids)
