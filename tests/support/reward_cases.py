"""Hand-derived reward cases: expected values come from reading Search-R1's ``qa_em.py`` and
``qa_em_format.py`` (PeterGriffinJin/Search-R1 @ a14dc3a), not from running them.

Each table is a list of plain tuples / dataclasses so tests can parametrize over it. The Search-R1
prompt below is the chat-templated training prompt: it holds two ``<answer>`` blocks
(``<answer> and </answer>``, ``<answer> Beijing </answer>``) and one ``<information> and
</information>`` block, which is what makes the reference scoring quirky.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from searchr1.data.prompt import make_prompt

SEARCH_R1_INSTRUCTION = make_prompt("What is the capital of France")
"""The training prompt text (the question gets its '?' from make_prompt)."""


def chat(user: str) -> str:
    """A Qwen-style chat-templated prompt ending in the assistant header (add_generation_prompt)."""
    return (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    )


SR1_PROMPT = chat(SEARCH_R1_INSTRUCTION)
"""Two <answer> blocks and one <information> block live in here."""
PLAIN_PROMPT = chat("What is the capital of France?")
"""A chat prompt with no tags at all."""
ONE_EXAMPLE_PROMPT = chat("Answer inside tags, e.g. <answer> Beijing </answer>. Question: capital of France?")
"""A chat prompt with exactly one <answer> block."""

CORRECTION = (
    "\nMy previous action is invalid. If I want to search, I should put the query between <search> and "
    "</search>. If I want to give the final answer, I should put the answer between <answer> and </answer>. "
    "Let me try again.\n"
)


def good(answer: str) -> str:
    return f"<think>reasoning</think>\n<answer>{answer}</answer>"


def searched(answer: str, doc: str) -> str:
    """One search round with a Search-R1 style observation, then an answer."""
    return (
        "<think>I need to look this up.</think>\n<search>capital of France</search>\n\n"
        f'<information>Doc 1(Title: "{doc}") {doc} is mentioned here.\n</information>\n\n'
        f"<think>Now I know.</think>\n<answer>{answer}</answer>"
    )


# --------------------------------------------------------------------------- normalize_answer
NORMALIZE_CASES: list[tuple[str, str]] = [
    ("Paris", "paris"),
    ("  The  Eiffel   Tower ", "eiffel tower"),
    ("the", ""),
    ("A", ""),
    ("an", ""),
    ("An apple", "apple"),
    ("a an the", ""),
    ("the the the", ""),
    ("theater", "theater"),
    ("anna", "anna"),
    ("Then a man", "then man"),
    ("THE END", "end"),
    ("the end", "end"),
    ("the-end", "theend"),  # punctuation goes first, so no article is left
    ("a-team", "ateam"),
    ("the_end", "theend"),  # underscore is ASCII punctuation
    ("A_B", "ab"),
    ("(the) answer", "answer"),
    ("a.b.c", "abc"),
    ("U.S.A.", "usa"),
    ("e.g.", "eg"),
    ("Mr. Smith", "mr smith"),
    ("The Beatles!", "beatles"),
    ("rock & roll", "rock roll"),
    ("AT&T", "att"),
    ("it's", "its"),
    ("O'Neil", "oneil"),
    ("Tom's the best", "toms best"),
    ("\tNew\nYork\r\n", "new york"),
    ("1,000,000", "1000000"),
    ("3.14", "314"),
    ("#1 hit", "1 hit"),
    ("$100", "100"),
    ("50%", "50"),
    ("C++", "c"),
    ("C#", "c"),
    ("a1", "a1"),
    ("a 1", "1"),
    ("", ""),
    ("   ", ""),
    ("café", "café"),
    ("Café", "café"),
    ("ÉCOLE", "école"),
    ("naïve—dash", "naïve—dash"),  # the em dash is not ASCII punctuation
    ("“quoted”", "“quoted”"),  # nor are curly quotes
    ("¿Qué?", "¿qué"),
    ("北京", "北京"),
    ("the 北京", "北京"),
    ("théa", "théa"),  # é is a word character: no boundary before the a
    ("a\u00a0b", "b"),  # a no-break space is whitespace for \b and split()
    ("x\u2003y", "x y"),
    ("İ", "i\u0307"),  # lower() of dotted capital I is two code points
    ("ß", "ß"),
    ("Σ", "σ"),
]

# --------------------------------------------------------------------------- exact / substring match
# (prediction, golden_answers, em_check, subem_check)
MATCH_CASES: list[tuple[str, Union[str, list[str], tuple[str, ...]], int, int]] = [
    ("Paris", ["Paris"], 1, 1),
    ("paris", ["Paris"], 1, 1),
    ("The Paris", ["paris"], 1, 1),
    ("  Paris  ", ["paris"], 1, 1),
    ("Paris\n", ["paris"], 1, 1),
    ("'Paris'", ["Paris"], 1, 1),
    ("“Paris”", ["Paris"], 0, 1),
    ("Paris, France", ["Paris"], 0, 1),
    ("Paris", ["Paris, France"], 0, 0),
    ("Paris", ["London", "Paris"], 1, 1),
    ("Lyon", ["Paris", "Lyon", "Nice"], 1, 1),
    ("nice", ["Paris", "Lyon", "Nice"], 1, 1),
    ("Paris", [], 0, 0),
    ("", [""], 1, 1),
    ("", ["Paris"], 0, 0),
    ("the", [""], 1, 1),
    ("Paris", [""], 0, 1),  # an empty gold is a substring of everything
    ("A", ["an"], 1, 1),
    ("Paris", "Paris", 1, 1),  # a bare string is one answer
    ("Paris", "Par", 0, 1),
    ("Paris", ("Paris",), 1, 1),
    ("U.S.A.", ["USA"], 1, 1),
    ("usa", ["U. S. A."], 0, 0),
    ("New York City", ["new york"], 0, 1),
    ("york", ["New York"], 0, 0),
    ("café", ["cafe"], 0, 0),
    ("CAFÉ", ["café"], 1, 1),
    ("1,000", ["1000"], 1, 1),
    ("1 000", ["1000"], 0, 0),
    ("the beatles", ["Beatles", "The Beatles"], 1, 1),
    ("An Apple", ["apple"], 1, 1),
    ("apple pie", ["apple"], 0, 1),
    ("pineapple", ["apple"], 0, 1),
    ("Barack Obama", ["Obama", "Barack Hussein Obama"], 0, 1),
    ("42", ["forty-two", "42"], 1, 1),
    ("forty two", ["forty-two"], 0, 0),
    ("北京", ["北京"], 1, 1),
    ("北京市", ["北京"], 0, 1),
    ("The Who", ["Who"], 1, 1),
    ("Mount Everest", ["Everest"], 0, 1),
    ("Everest", ["Mount Everest"], 0, 0),
    ("George Washington.", ["george washington"], 1, 1),
]

# --------------------------------------------------------------------------- <answer> extraction
# (text, last block with >= 1 match, last block with >= 2 matches as in Search-R1)
EXTRACT_CASES: list[tuple[str, Optional[str], Optional[str]]] = [
    ("", None, None),
    ("Paris", None, None),
    ("<answer>Paris</answer>", "Paris", None),
    ("<answer> Paris </answer>", "Paris", None),
    ("<answer>\n Paris \n</answer>", "Paris", None),
    ("<answer></answer>", "", None),
    ("<answer></answer><answer></answer>", "", ""),
    ("<answer>a</answer><answer>b</answer>", "b", "b"),
    ("<answer>a</answer> text <answer> b </answer> more", "b", "b"),
    ("<answer>x</answer>\n<answer>y</answer>\n<answer>z</answer>", "z", "z"),
    ("pre <answer> 1 </answer> mid <answer> 2 </answer>", "2", "2"),
    ("<answer>a</answer><answer>\t</answer>", "", ""),
    ("<answer>Paris", None, None),
    ("Paris</answer>", None, None),
    ("<answer>a</answer><answer>", "a", None),
    ("<answer>a</answer></answer>", "a", None),
    ("<answer>a<answer>b</answer>", "a<answer>b", None),  # lazy, non-overlapping from the first tag
    ("<answer><answer>a</answer></answer>", "<answer>a", None),
    ("<answer>line1\nline2</answer>", "line1\nline2", None),  # DOTALL
    ("<ANSWER>Paris</ANSWER>", None, None),
    ("<answer >Paris</answer>", None, None),
    ("< answer>Paris</answer>", None, None),
    ("<answer>\u3000北京\u3000</answer>", "北京", None),
    ("<think><answer>x</answer></think>", "x", None),
    (SR1_PROMPT, "Beijing", "Beijing"),
    (SR1_PROMPT + good("Paris"), "Paris", "Paris"),
    (PLAIN_PROMPT + good("Paris"), "Paris", None),
    (ONE_EXAMPLE_PROMPT + good("Paris"), "Paris", "Paris"),
    (CORRECTION, "and", None),
]

# --------------------------------------------------------------------------- structure
# (response, is_valid_format(response) [ours], is_valid_sequence("<|im_start|>assistant\n" + response))
_T = "<think>t</think>"
FORMAT_CASES: list[tuple[str, bool, bool]] = [
    (_T + "<answer>a</answer>", True, True),
    (_T + "\n<answer>a</answer>", True, True),
    ("  " + _T + "  <answer>a</answer>  \n", True, True),
    ("<think></think><answer></answer>", True, True),
    ("<think>a < b</think><answer>c</answer>", True, True),
    (_T + "<answer>a <b>bold</b></answer>", True, True),
    (_T + "<answer>a</answer>\u00a0", True, True),
    (_T + "<search>q</search><information>d</information><think>u</think><answer>a</answer>", True, True),
    (_T + "<search>q</search> \n <information>d</information>\n<think>u</think><answer>a</answer>", True, True),
    (_T + "<search>q</search><information></information><think>u</think><answer>a</answer>", True, True),
    (searched("Paris", "Paris"), True, True),
    (
        _T + "<search>q</search><information>d</information><think>u</think>"
        "<search>q2</search><information>d2</information><think>v</think><answer>a</answer>",
        True,
        True,
    ),
    # trailing special tokens: ours drops them, the reference rejects them
    (_T + "<answer>a</answer><|im_end|>", True, False),
    (_T + "<answer>a</answer><|endoftext|>", True, False),
    (_T + "<answer>a</answer>\n<|im_end|>\n", True, False),
    (_T + "<answer>a</answer> <|im_end|>", True, False),
    (_T + "<answer>a</answer></s>", True, False),
    (_T + "<answer>a</answer><|im_end|><|endoftext|>", True, False),
    (_T + "<answer>a</answer>\n<|endoftext|><|endoftext|><|endoftext|>", True, False),
    (_T + "<answer>a</answer><|not special|>", False, False),
    (_T + "<answer>a</answer><|im_end|>junk", False, False),
    ("<|im_end|>", False, False),
    # malformed
    ("", False, False),
    ("   ", False, False),
    (_T, False, False),
    ("<answer>a</answer>", False, False),  # missing <think>
    ("<search>q</search><information>d</information>" + _T + "<answer>a</answer>", False, False),
    (_T + "<search>q</search><information>d</information><answer>a</answer>", False, False),
    (_T + "<search>q</search>" + _T + "<answer>a</answer>", False, False),
    (_T + "<search>q</search>", False, False),
    (_T + "<search>q</search><information>d</information>", False, False),
    (_T + "<information>d</information><think>u</think><answer>a</answer>", False, False),
    (_T + "<answer>a</answer> trailing", False, False),
    ("text " + _T + "<answer>a</answer>", False, False),
    (_T + "junk<answer>a</answer>", False, False),
    (_T + "\u200b<answer>a</answer>", False, False),  # zero-width space is not whitespace
    ("<think>t<think>u</think></think><answer>a</answer>", False, False),
    (_T + "<answer>a</answer><answer>b</answer>", False, False),
    (_T + _T + "<answer>a</answer>", False, False),
    (_T + "<answer>a", False, False),
    (_T + "a</answer>", False, False),
    ("<think>t<answer>a</answer>", False, False),
    ("<Think>t</Think><answer>a</answer>", False, False),
    (_T + "oops" + CORRECTION + "<think>u</think><answer>a</answer>", False, False),
    ("<think>maybe <answer>x</answer></think><answer>a</answer>", False, False),
]

# (full text, is_valid_sequence) for the reference's assistant-marker handling
SEQUENCE_CASES: list[tuple[str, bool]] = [
    ("<|im_start|>assistant" + _T + "<answer>a</answer>", True),
    ("<|im_start|>assistant   \n\n" + _T + "<answer>a</answer>", True),
    (_T + "<answer>a</answer>", False),  # no marker
    ("<|im_start|>Assistant\n" + _T + "<answer>a</answer>", False),
    (PLAIN_PROMPT + _T + "<answer>a</answer>", True),
    (SR1_PROMPT + _T + "<answer>a</answer>", True),  # the prompt's tags sit before the marker
    (SR1_PROMPT + _T + "<answer>a</answer><|im_end|>", False),
    ("<|im_start|>assistant\n" + _T + "<|im_start|>assistant\n<answer>a</answer>", False),
    ("<|im_start|>assistant\n", False),
]


# --------------------------------------------------------------------------- whole-sample scores
@dataclass(frozen=True)
class ScoreCase:
    """Expected scores for prompt + response under each scoring.

    ref_em: ``em_score(prompt + response, {"target": golds})``.
    ref_em_format: ``em_format_score(prompt + response, {"target": golds}, structure_format_score=0.2,
    final_format_score=0.1, retrieval_score=0.1)``.
    em / em_format: our ``score_response(response, golds, cfg, prompt).total`` with kind em, and
    kind em_format with format_score=0.2.
    """

    name: str
    prompt: str
    response: str
    golds: Union[str, list[str]]
    ref_em: float
    ref_em_format: float
    em: float
    em_format: float


REF_SF, REF_FF, REF_RS, FMT = 0.2, 0.1, 0.1, 0.2
P = SR1_PROMPT
PARIS = ["Paris"]
BEIJING = ["Beijing"]
_SR = _T + "<search>q</search><information>Doc about Paris\n</information>"

SCORE_CASES: list[ScoreCase] = [
    # well-formed answers after the Search-R1 prompt
    ScoreCase("correct", P, good("Paris"), PARIS, 1, 1.0, 1, 1.2),
    ScoreCase("correct-lowercase", P, good("paris"), PARIS, 1, 1.0, 1, 1.2),
    ScoreCase("correct-article-punct", P, good("The Paris."), PARIS, 1, 1.0, 1, 1.2),
    ScoreCase("correct-whitespace", P, "\n\n" + _T + "\n\n<answer>\n Paris \n</answer>\n", PARIS, 1, 1.0, 1, 1.2),
    ScoreCase("wrong", P, good("London"), PARIS, 0, 0.2, 0, 0.2),
    ScoreCase("wrong-superset", P, good("Paris, France"), PARIS, 0, 0.2, 0, 0.2),
    ScoreCase("wrong-empty-answer", P, good(""), PARIS, 0, 0.2, 0, 0.2),
    ScoreCase("empty-answer-empty-gold", P, good(""), [""], 1, 1.0, 1, 1.2),
    ScoreCase("articles-only", P, good("the"), ["a"], 1, 1.0, 1, 1.2),
    ScoreCase("no-golds", P, good("Paris"), [], 0, 0.2, 0, 0.2),
    ScoreCase("second-gold", P, good("Paris"), ["London", "paris"], 1, 1.0, 1, 1.2),
    ScoreCase("usa", P, good("U.S.A."), ["USA"], 1, 1.0, 1, 1.2),
    ScoreCase(
        "many-golds",
        P,
        good("The United States of America"),
        ["United States", "USA", "the united states of america"],
        1,
        1.0,
        1,
        1.2,
    ),
    ScoreCase("an-apple", P, good("an apple"), ["Apple"], 1, 1.0, 1, 1.2),
    ScoreCase("plural", P, good("apples"), ["apple"], 0, 0.2, 0, 0.2),
    ScoreCase("digits", P, good("1,000,000"), ["1000000"], 1, 1.0, 1, 1.2),
    ScoreCase("inner-newlines", P, good("Paris\n\nFrance"), ["paris france"], 1, 1.0, 1, 1.2),
    ScoreCase("html-in-answer", P, good("<b>Paris</b>"), PARIS, 0, 0.2, 0, 0.2),
    ScoreCase("unicode", P, good("北京"), ["北京"], 1, 1.0, 1, 1.2),
    ScoreCase("accent-case", P, good("Café"), ["café"], 1, 1.0, 1, 1.2),
    ScoreCase("accent-missing", P, good("cafe"), ["café"], 0, 0.2, 0, 0.2),
    ScoreCase("beijing-correct", P, good("Beijing"), BEIJING, 1, 1.0, 1, 1.2),
    ScoreCase("hague", P, good("Hague"), ["The Hague"], 1, 1.0, 1, 1.2),
    ScoreCase("hague-wrong", P, good("the hague"), ["Den Haag"], 0, 0.2, 0, 0.2),
    # trailing special tokens: the reference's format check fails, ours strips them
    ScoreCase("im-end-correct", P, good("Paris") + "<|im_end|>", PARIS, 1, 0.8, 1, 1.2),
    ScoreCase("im-end-wrong", P, good("London") + "<|im_end|>", PARIS, 0, 0.1, 0, 0.2),
    ScoreCase("endoftext-correct", P, good("Paris") + " <|endoftext|>", PARIS, 1, 0.8, 1, 1.2),
    ScoreCase("eos-wrong", P, good("London") + "</s>", PARIS, 0, 0.1, 0, 0.2),
    # missing <think>, unbalanced and misplaced tags
    ScoreCase("no-think-correct", P, "<answer>Paris</answer>", PARIS, 1, 0.8, 1, 1.0),
    ScoreCase("no-think-wrong", P, "<answer>London</answer>", PARIS, 0, 0.1, 0, 0),
    ScoreCase("unclosed-think", P, "<think>t<answer>Paris</answer>", PARIS, 1, 0.8, 1, 1.0),
    ScoreCase("unclosed-answer", P, _T + "<answer>Paris", PARIS, 0, 0.1, 0, 0),
    ScoreCase("unopened-answer", P, _T + "Paris</answer>", PARIS, 0, 0.1, 0, 0),
    ScoreCase("extra-close", P, good("Paris") + "</answer>", PARIS, 1, 0.8, 1, 1.0),
    ScoreCase("capital-tags", P, _T + "<Answer>Paris</Answer>", PARIS, 0, 0.1, 0, 0),
    ScoreCase(
        "answer-in-think",
        P,
        "<think>maybe <answer>London</answer></think><answer>Paris</answer>",
        PARIS,
        1,
        0.8,
        1,
        1.0,
    ),
    ScoreCase("trailing-text", P, good("Paris") + " Done.", PARIS, 1, 0.8, 1, 1.0),
    # several <answer> blocks in the response: the last one counts
    ScoreCase("two-answers-last-right", P, _T + "<answer>London</answer><answer>Paris</answer>", PARIS, 1, 0.8, 1, 1.0),
    ScoreCase("two-answers-last-wrong", P, _T + "<answer>Paris</answer><answer>London</answer>", PARIS, 0, 0.1, 0, 0),
    # no answer at all: the reference falls back on the prompt's "Beijing" example
    ScoreCase("prose-no-tags", P, "I think it's Paris.", PARIS, 0, 0.1, 0, 0),
    ScoreCase("prose-beijing-gold", P, "I don't know.", BEIJING, 1, 0.8, 0, 0),
    ScoreCase("empty-response", P, "", PARIS, 0, 0.1, 0, 0),
    ScoreCase("empty-response-beijing", P, "", BEIJING, 1, 0.8, 0, 0),
    ScoreCase("no-gold-empty-response", P, "", [], 0, 0.1, 0, 0),
    ScoreCase("search-no-answer", P, _SR, PARIS, 0, 0.1, 0, 0),
    ScoreCase("search-no-answer-beijing", P, _SR, BEIJING, 1, 0.8, 0, 0),
    ScoreCase("think-only-beijing", P, _T, BEIJING, 1, 0.8, 0, 0),
    # searches and the retrieval bonus (only for a valid format with a wrong answer)
    ScoreCase("search-correct", P, searched("Paris", "Paris"), PARIS, 1, 1.0, 1, 1.2),
    ScoreCase("search-wrong-retrieved", P, searched("London", "Paris"), PARIS, 0, 0.3, 0, 0.2),
    ScoreCase("search-wrong-not-retrieved", P, searched("London", "Berlin"), PARIS, 0, 0.2, 0, 0.2),
    ScoreCase("retrieved-substring", P, searched("London", "Parisian"), PARIS, 0, 0.3, 0, 0.2),
    ScoreCase("retrieved-normalized", P, searched("London", "the PARIS, france"), PARIS, 0, 0.3, 0, 0.2),
    ScoreCase("retrieved-unicode", P, searched("x", "北京"), ["北京"], 0, 0.3, 0, 0.2),
    ScoreCase("search-no-think-after-info", P, _SR + "<answer>Paris</answer>", PARIS, 1, 0.8, 1, 1.0),
    ScoreCase("search-no-think-after-info-wrong", P, _SR + "<answer>London</answer>", PARIS, 0, 0.1, 0, 0),
    ScoreCase(
        "search-first-no-think",
        P,
        "<search>q</search><information>Paris</information>" + good("Paris"),
        PARIS,
        1,
        0.8,
        1,
        1.0,
    ),
    ScoreCase(
        "two-searches",
        P,
        _SR + "<think>u</think><search>q2</search><information>more</information>" + good("Paris"),
        PARIS,
        1,
        1.0,
        1,
        1.2,
    ),
    # the prompt's own "<information> and </information>" counts as retrieved text for a gold "and"
    ScoreCase("prompt-information-and", P, good("x"), ["and"], 0, 0.3, 0, 0.2),
    # a bare-string gold: one answer for EM, but the reference's retrieval check iterates characters,
    # and normalize("a") == "" is inside every block (the prompt has one)
    ScoreCase("str-gold-retrieval-quirk", P, good("London"), "Paris", 0, 0.3, 0, 0.2),
    ScoreCase("str-gold-no-quirk", P, good("London"), "xyz", 0, 0.2, 0, 0.2),
    ScoreCase("str-gold-correct", P, good("paris"), "Paris", 1, 1.0, 1, 1.2),
    # the invalid-action correction text contains "<answer> and </answer>"
    ScoreCase("correction-then-answer", P, _T + "oops" + CORRECTION + good("Paris"), PARIS, 1, 0.8, 1, 1.0),
    ScoreCase("correction-no-answer", P, _T + "oops" + CORRECTION, PARIS, 0, 0.1, 0, 0),
    # a chat prompt without tags: the reference needs two <answer> blocks in the response itself
    ScoreCase("plain-correct", PLAIN_PROMPT, good("Paris"), PARIS, 0, 0.2, 1, 1.2),
    ScoreCase("plain-search-correct", PLAIN_PROMPT, searched("Paris", "Paris"), PARIS, 0, 0.3, 1, 1.2),
    ScoreCase(
        "plain-two-answers", PLAIN_PROMPT, _T + "<answer>London</answer>\n" + good("Paris"), PARIS, 1, 0.8, 1, 1.0
    ),
    ScoreCase("plain-no-think", PLAIN_PROMPT, "<answer>Paris</answer>", PARIS, 0, 0, 1, 1.0),
    ScoreCase("plain-empty", PLAIN_PROMPT, "", PARIS, 0, 0, 0, 0),
    # one example answer in the prompt: two blocks once the model answers
    ScoreCase("one-example-correct", ONE_EXAMPLE_PROMPT, good("Paris"), PARIS, 1, 1.0, 1, 1.2),
    ScoreCase("one-example-no-answer", ONE_EXAMPLE_PROMPT, "no idea", BEIJING, 0, 0, 0, 0),
    # no prompt at all: no assistant marker, so the reference format is never valid
    ScoreCase("no-prompt-correct", "", good("Paris"), PARIS, 0, 0, 1, 1.2),
    ScoreCase("no-prompt-two-answers", "", _T + "<answer>x</answer><answer>Paris</answer>", PARIS, 1, 0.8, 1, 1.0),
]
