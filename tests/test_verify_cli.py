from pathlib import Path

import pytest

import searchr1
from searchr1.rollout import prompt_ids
from searchr1.verify.cli import main, sample_conversation, tool_call_conversation, verify
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


SHIPPED_TOOLS_TEMPLATE = Path(searchr1.__file__).parent / "models" / "templates" / "chatml_tools.jinja"
# Qwen3-style over the shipped tools template: when the conversation is re-rendered, each assistant turn but the
# last loses its <think> block (generated for the test, no third-party template involved).
_CONTENT = "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] -}}"
_DROPPED = (
    "{%- set content = message['content'].split('</think>')[-1].lstrip('\\n') if message['role'] == 'assistant' "
    "and not loop.last else message['content'] -%}{{- '<|im_start|>' + message['role'] + '\\n' + content -}}"
)


def test_the_function_call_format_stays_aligned_with_the_shipped_template(tok, capsys):
    tok.chat_template = SHIPPED_TOOLS_TEMPLATE.read_text()
    messages, segments, conversation, tools = tool_call_conversation(tok)
    assert verify(tok, messages, segments, conversation=conversation, tools=tools) is None
    assert main(["--format", "tool_calls", "--chat-template", str(SHIPPED_TOOLS_TEMPLATE)]) == 0
    assert capsys.readouterr().out.startswith("OK")


def test_a_template_dropping_earlier_thinking_is_reported_and_explained(tok, tmp_path, capsys):
    template = SHIPPED_TOOLS_TEMPLATE.read_text()
    assert _CONTENT in template
    qwen3_like = tmp_path / "qwen3_like.jinja"
    qwen3_like.write_text(template.replace(_CONTENT, _DROPPED))
    assert main(["--format", "tool_calls", "--chat-template", str(qwen3_like)]) == 1
    out = capsys.readouterr().out
    tok.chat_template = qwen3_like.read_text()
    messages, _, _, tools = tool_call_conversation(tok)
    prompt = prompt_ids(tok, messages, tools)
    position = int(out.split("first divergence at token ")[1].split(":")[0])
    assert position in (len(prompt), len(prompt) + 1)  # the first assistant turn's <think> ("<" may be shared)
    assert "drops the <think> block of an earlier assistant turn" in out and "(as Qwen3's does)" in out


def test_a_template_without_tools_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--format", "tool_calls"])  # SmolLM2's own template has no tools section
    assert exit_info.value.code == 2 and "model.chat_template" in capsys.readouterr().err
