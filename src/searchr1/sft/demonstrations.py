"""Demonstrations for a warm start: what a searching policy would write, rolled out by the real loop.

An oracle knows, for each synthetic question, which entity to search at each hop and the answer.
It plays the policy's part through ``run_trajectory`` (the same loop, token accounting and masks as
an RL rollout) against the real search backend, so every ``<information>`` block is what the
retriever returns for that query, never the gold passage pasted in. A demonstration is kept only
when the retriever really surfaced what the next step needs (the bridge name, then the answer; for a
question with a calculation, the fact it computes from, then the calculator's result): a
demonstration that answers from nothing would teach the policy to invent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from dataclasses import dataclass
from typing import Literal, Optional, Sequence

from searchr1.config.schema import SearchR1Config
from searchr1.data.prompt import prompt_messages, styled_messages
from searchr1.data.synthetic import Calculation, Question
from searchr1.engines.base import EngineOutput, SamplingParams, Tokenizer
from searchr1.rollout.loop import run_trajectory
from searchr1.rollout.tokens import SegmentEncoder, policy_prompt_ids
from searchr1.rollout.trajectory import Trajectory
from searchr1.tools.calculator import TOOL as CALCULATOR
from searchr1.tools.chat_format import TagFormat
from searchr1.tools.grammar import ANSWER
from searchr1.tools.registry import tool_spec
from searchr1.tools.toolbox import ActionFormat, Toolbox


# How each relation of the synthetic book reads in a sentence ("the founder of X").
RELATION_WORDS = {
    "birthplace": "birthplace",
    "born": "birth year",
    "capital": "capital",
    "country": "country",
    "founded": "founding year",
    "founder": "founder",
    "headquarters": "headquarters",
    "independence": "independence year",
    "inventor": "inventor",
    "river": "river",
    "source": "source",
    "year": "invention year",
}


def relation_words(question: Question) -> list[str]:
    """Each hop's relation in words, e.g. ["founder", "birthplace"] for "company.founder>person.birthplace"."""
    return [RELATION_WORDS[hop.split(".")[1]] for hop in question.relation.split(">")]


def planned_turns(
    question: Question, thoughts: str = "brief", action_format: Optional[ActionFormat] = None
) -> list[str]:
    """Search each hop's entity in order, compute (a question with a calculation), then answer with the
    first gold answer (sft.thoughts says how the searches think), each call written as ``action_format``
    writes one (``rollout.action_format``; Search-R1's tags by default)."""
    steps = _chain_turns(question) if thoughts == "planned" else _brief_turns(question)
    if question.calculation is not None:
        steps = steps[:-1] + _calculation_turns(question, question.calculation)
    return [_turn(*step, action_format or TagFormat([])) for step in steps]


def tool_turns(question: Question) -> int:
    """The tool calls a question's planned turns make: one search per hop, and the calculation if any."""
    return len(question.hop_queries) + (question.calculation is not None)


Step = tuple[str, str, str]
"""(thought, tool name or "answer", its argument or the answer)"""


def _brief_turns(question: Question) -> list[Step]:
    turns, previous = [], None
    for query in question.hop_queries:
        thought = (
            f"I need to search for {query}."
            if previous is None
            else f"The information about {previous} names {query}. Now I need to search for {query}."
        )
        turns.append((thought, "search", query))
        previous = query
    answer = question.answers[0]
    return turns + [(f"The information says the answer is {answer}.", ANSWER, answer)]


def _chain_turns(question: Question) -> list[Step]:
    """The first thought spells out the whole chain of relations: whether a second search follows the
    first passage is then written in the policy's own context, instead of being re-derived from the
    question's wording after every passage (one word tells "In which city is X headquartered?" from
    "In which country ..." apart)."""
    words, entities, answer = relation_words(question), question.hop_queries, question.answers[0]
    plan = f"I need the {' of the '.join(reversed(words))} of {entities[0]}"
    first = f"{plan}." if len(words) == 1 else f"{plan}, so first the {words[0]} of {entities[0]}."
    turns = [(first, "search", entities[0])]
    for i in range(1, len(entities)):
        found = f"The {words[i - 1]} of {entities[i - 1]} is {entities[i]}."
        turns.append((f"{found} Now I need the {words[i]} of {entities[i]}.", "search", entities[i]))
    return turns + [(f"The {words[-1]} of {entities[-1]} is {answer}.", ANSWER, answer)]


def _calculation_turns(question: Question, calculation: Calculation) -> list[Step]:
    """After the last search: the fact it read into the calculator, then the calculator's result as the answer."""
    word, entity, answer = relation_words(question)[-1], question.hop_queries[-1], question.answers[0]
    read = f"The {word} of {entity} is {calculation.fact}. Now I compute {calculation.expression}."
    return [(read, CALCULATOR.name, calculation.expression), (f"The result is {answer}.", ANSWER, answer)]


def _turn(thought: str, tool: str, content: str, action_format: ActionFormat) -> str:
    """One turn: the thought, then the call of ``tool`` (or the final answer, the same in every format)."""
    if tool == ANSWER:
        return f"<think> {thought} </think>\n<{ANSWER}> {content} </{ANSWER}>"
    return f"<think> {thought} </think>" + action_format.call_text(tool_spec(tool), content)


class ScriptedPolicy:
    """An engine that writes planned turns, one per call, as a sampling engine would return them.

    Output is cut at ``max_new_tokens`` like any engine's, so a turn that does not fit the budget
    shows up as a broken demonstration (and is dropped) instead of being trained on.
    """

    def __init__(self, tokenizer: Tokenizer, turns: Sequence[str]) -> None:
        self._tokenizer = tokenizer
        self._turns = list(turns)

    async def generate(self, input_ids: Sequence[int], params: SamplingParams) -> EngineOutput:
        if not self._turns:
            return EngineOutput(token_ids=[], logprobs=[], finish_reason="stop")
        ids = list(self._tokenizer.encode(self._turns.pop(0), add_special_tokens=False))
        finish: Literal["stop", "length"] = "stop" if len(ids) <= params.max_new_tokens else "length"
        ids = ids[: params.max_new_tokens]
        return EngineOutput(token_ids=ids, logprobs=[0.0] * len(ids), finish_reason=finish)


@dataclass(frozen=True)
class DemonstrationSet:
    trajectories: list[Trajectory]
    questions: list[Question]
    """The question of each kept trajectory, in the same order."""
    dropped: int
    """Planned demonstrations left out: the retriever missed a hop, or a turn overran its budget."""


async def build_demonstrations(
    questions: Sequence[Question], *, tools: Toolbox, tokenizer: Tokenizer, cfg: SearchR1Config
) -> DemonstrationSet:
    """Roll out each question's planned turns with ``cfg``'s rollout settings (as many tool turns as it makes)."""
    rollout_cfg = dataclasses.replace(
        cfg.rollout, max_turns=max([tool_turns(q) for q in questions], default=1), final_turn=True
    )
    encoder = SegmentEncoder(tokenizer)
    style = cfg.data.prompt_style
    rollouts = [
        run_trajectory(
            policy_prompt_ids(tokenizer, tools, styled_messages(prompt_messages(q.text), style), q.text),
            engine=ScriptedPolicy(tokenizer, planned_turns(q, cfg.sft.thoughts, tools.format)),
            tools=tools,
            tokenizer=tokenizer,
            rollout_cfg=rollout_cfg,
            encoder=encoder,
        )
        for q in questions
    ]
    trajectories = await asyncio.gather(*rollouts)
    kept = [(t, q) for t, q in zip(trajectories, questions) if is_faithful(t, q, tokenizer)]
    return DemonstrationSet(
        trajectories=[t for t, _ in kept], questions=[q for _, q in kept], dropped=len(questions) - len(kept)
    )


def is_faithful(traj: Trajectory, question: Question, tokenizer: Tokenizer) -> bool:
    """The plan ran to its end, and each observation held what the following turn relies on."""
    if traj.status != "completed" or traj.final_answer is None or any(call.failed for call in traj.tool_calls):
        return False
    if traj.final_answer.strip() != question.answers[0] or traj.search_calls != len(question.hop_queries):
        return False
    observations = _observations(traj, tokenizer)
    needed = _needed(question)
    return len(observations) == len(needed) and all(n in o for n, o in zip(needed, observations))


def _needed(question: Question) -> list[str]:
    """What each observation must hold for the turn after it: each bridge entity, the fact a calculation
    starts from, and the answer (read off the last passage, or the calculator's result)."""
    fact = [question.calculation.fact] if question.calculation else []
    return [*question.hop_queries[1:], *fact, question.answers[0]]


def _observations(traj: Trajectory, tokenizer: Tokenizer) -> list[str]:
    """The text of each masked run of the response (observations; a demonstration has no corrections)."""
    runs = itertools.groupby(zip(traj.response_ids, traj.loss_mask), key=lambda pair: pair[1])
    return [tokenizer.decode([token for token, _ in run], skip_special_tokens=False) for mask, run in runs if not mask]
