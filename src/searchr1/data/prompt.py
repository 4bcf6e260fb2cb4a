"""Search-R1's training prompt: one user message holding the instructions and the question.

The template below is data, not prose of ours: it must match Search-R1's
``scripts/data_process/qa_search_train_merge.py`` (``make_prefix``, template ``base``) byte for
byte, including its "as your want" typo, because the published checkpoints and the original
reward (which scores prompt + response) were produced with exactly this text.
"""

from __future__ import annotations

SEARCH_R1_TEMPLATE = (
    "Answer the given question. "
    "You must conduct reasoning inside <think> and </think> first every time you get new information. "
    "After reasoning, if you find you lack some knowledge, you can call a search engine by <search> query "
    "</search> and it will return the top searched results between <information> and </information>. "
    "You can search as many times as your want. "
    "If you find no further external knowledge needed, you can directly provide the answer inside <answer> "
    "and </answer>, without detailed illustrations. For example, <answer> Beijing </answer>. "
    "Question: {question}\n"
)


def normalize_question(question: str) -> str:
    """Strip the question and end it with '?', as Search-R1 does before formatting."""
    question = question.strip()
    if not question:
        raise ValueError("empty question")
    return question if question.endswith("?") else question + "?"


def make_prompt(question: str) -> str:
    """The user-message text Search-R1 trains and evaluates on for ``question``."""
    return SEARCH_R1_TEMPLATE.format(question=normalize_question(question))


def prompt_messages(question: str) -> list[dict[str, str]]:
    """The chat messages stored in the parquet ``prompt`` column (a single user turn)."""
    return [{"role": "user", "content": make_prompt(question)}]


# A made-up worked exchange for prompt_style=demo: the search, the retriever's reply in the rendered
# <information> form, then a short think and the answer. Its entity is invented, so it leaks no fact
# of any dataset; it only shows a small model the tags in use once (SmolLM2-135M copies the format
# from one demonstration far more often than from the template's instructions alone).
DEMO_QUESTION = "Who invented the Vokraigar rangefinder?"
DEMO_RESPONSE = (
    "<think> I do not know this, so I will search for it. </think>\n"
    "<search> Vokraigar rangefinder </search>\n\n"
    '<information>Doc 1(Title: "Vokraigar rangefinder") The Vokraigar rangefinder is a device invented by '
    "Bailix Stalalos in 1825.\n</information>\n\n"
    "<think> The information says it was invented by Bailix Stalalos. </think>\n"
    "<answer> Bailix Stalalos </answer>"
)
PROMPT_STYLES = ("searchr1", "demo")


def styled_messages(messages: list[dict[str, str]], style: str) -> list[dict[str, str]]:
    """The chat messages a policy sees for stored ``messages`` under ``data.prompt_style``."""
    if style == "searchr1":
        return messages
    if style != "demo":
        raise ValueError(f"unknown prompt style {style!r}; expected one of {PROMPT_STYLES}")
    demo = [{"role": "user", "content": make_prompt(DEMO_QUESTION)}, {"role": "assistant", "content": DEMO_RESPONSE}]
    return demo + messages
