import pytest

from searchr1.rollout import prompt_ids
from searchr1.verify.cli import main, sample_conversation, verify
from tests.support.scripted import smollm2_tokenizer

# Qwen3-style: earlier reasoning is dropped from assistant turns when the chat is re-rendered.
DROPS_THINKING = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n'}}"
    "{% if message['role'] == 'assistant' %}{{ message['content'].split('</think>')[-1] }}"
    "{% else %}{{ message['content'] }}{% endif %}{{'<|im_end|>\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@pytest.fixture
def tok():
    tokenizer = smollm2_tokenizer()
    original = tokenizer.chat_template
    yield tokenizer
    tokenizer.chat_template = original


def test_shipped_smollm2_tokenizer_stays_aligned(tok):
    messages, segments = sample_conversation()
    assert verify(tok, messages, segments) is None


def test_encoding_observations_alone_is_reported_at_the_first_boundary(tok):
    messages, segments = sample_conversation()
    naive = lambda text, _prev: tok.encode(text, add_special_tokens=False)  # noqa: E731
    divergence = verify(tok, messages, segments, encode_inserted=naive)
    assert divergence is not None
    prefix = prompt_ids(tok, messages) + tok.encode(segments[0].text + segments[1].text, add_special_tokens=False)
    assert divergence.position == len(prefix) - 1  # the observation's closing blank line (one token here)
    assert tok.decode(divergence.got[:1]) == "\n\n" and tok.decode(divergence.expected[:1]) == "\n"
    assert "first divergence at token" in divergence.describe(tok)


def test_a_template_that_rewrites_the_assistant_turn_is_caught(tok):
    tok.chat_template = DROPS_THINKING
    messages, segments = sample_conversation()
    divergence = verify(tok, messages, segments)
    assert divergence is not None and divergence.position == len(prompt_ids(tok, messages))


def test_cli_reports_ok_and_misalignment(tok, tmp_path, capsys):
    assert main([]) == 0
    assert capsys.readouterr().out.startswith("OK")
    template = tmp_path / "template.jinja"
    template.write_text(DROPS_THINKING)
    assert main(["--chat-template", str(template)]) == 1
    assert "MISALIGNED" in capsys.readouterr().out
