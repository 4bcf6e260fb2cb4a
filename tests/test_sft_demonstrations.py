"""Warm-start demonstrations: the oracle's turns rolled out by the real loop against a real BM25 retriever."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import itertools
import json
from pathlib import Path

import aiohttp
import pytest

import searchr1
from searchr1.config import to_typed
from searchr1.data import ensure_data
from searchr1.data.errors import DataError
from searchr1.data.synthetic import Question
from searchr1.retriever.embedded import run_retriever
from searchr1.tools.base import ToolContext
from searchr1.tools.prompt import tool_calls_prompt
from searchr1.tools.registry import selected_nodes, tool_spec
from searchr1.tools.toolbox import open_toolbox
from searchr1.sft.cli import demonstration_questions
from searchr1.sft.demonstrations import build_demonstrations, planned_turns
from searchr1.sft.samples import rewarded_trajectories
from tests.support.compose import compose_config
from tests.support.data import SMALL_ENTITIES
from tests.support.scripted import smollm2_tokenizer

TOOLS_TEMPLATE = Path(searchr1.__file__).parent / "models" / "templates" / "chatml_tools.jinja"


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("demos")
    cfg = to_typed(
        compose_config(
            [
                f"data.num_entities={SMALL_ENTITIES}",
                f"data.train_path={root}/train.parquet",
                f"data.test_path={root}/test.parquet",
                f"data.corpus_path={root}/corpus.jsonl",
                "rollout.max_turn_tokens=64",
                "sft.num_examples=40",
            ]
        )
    )
    ensure_data(cfg.data)
    return cfg


def _build(cfg, questions, tmp_path, tokenizer=None):
    tokenizer = tokenizer or smollm2_tokenizer()

    async def build(urls):
        async with aiohttp.ClientSession() as session:
            context = ToolContext(session, backend=cfg.backend, retriever_urls=urls)
            tools = open_toolbox(
                selected_nodes(cfg), context, action_format=cfg.rollout.action_format, tokenizer=tokenizer
            )
            try:
                return await build_demonstrations(questions, tools=tools, tokenizer=tokenizer, cfg=cfg)
            finally:
                await tools.close()

    with run_retriever(cfg, tmp_path) as urls:
        return asyncio.run(build(urls))


def _runs(traj, tok):
    """(mask, decoded text) of each run of equally masked response tokens."""
    grouped = itertools.groupby(zip(traj.response_ids, traj.loss_mask), key=lambda pair: pair[1])
    return [(mask, tok.decode([t for t, _ in run], skip_special_tokens=False)) for mask, run in grouped]


def test_demonstrations_train_the_planned_turns_and_mask_the_real_observations(cfg, tmp_path):
    questions = demonstration_questions(cfg)
    assert {len(q.hop_queries) for q in questions} == {1, 2}
    demos = _build(cfg, questions, tmp_path)
    assert len(demos.trajectories) + demos.dropped == len(questions)
    assert len(demos.trajectories) >= 0.9 * len(questions)  # BM25 finds an entity by its name
    tok = smollm2_tokenizer()
    for traj, question in zip(demos.trajectories, demos.questions):
        runs = _runs(traj, tok)
        assert [text for mask, text in runs if mask] == planned_turns(question)
        observations = [text for mask, text in runs if not mask]
        assert len(observations) == traj.search_calls == len(question.hop_queries)
        assert all(o.startswith("\n\n<information>Doc 1(Title: ") for o in observations)
        assert question.answers[0] in observations[-1]
        if len(question.hop_queries) == 2:
            assert question.hop_queries[1] in observations[0]
        assert traj.final_answer.strip() == question.answers[0]


def test_planned_thoughts_spell_out_every_hop_so_look_alike_questions_get_different_plans():
    from searchr1.data.synthetic import generate
    from searchr1.sft.demonstrations import RELATION_WORDS

    book = generate(0, SMALL_ENTITIES)
    by_text = {q.text: q for q in book.train + book.test}
    company = next(q for q in by_text.values() if q.relation == "company.headquarters")
    name = company.hop_queries[0]
    two_hop = by_text[f"In which country is {name} headquartered?"]
    hq = next(q for q in book.entities if q.name == name).facts["headquarters"]
    assert planned_turns(company, "planned") == [
        f"<think> I need the headquarters of {name}. </think>\n<search> {name} </search>",
        f"<think> The headquarters of {name} is {hq}. </think>\n<answer> {hq} </answer>",
    ]
    country = two_hop.answers[0]
    assert planned_turns(two_hop, "planned") == [
        f"<think> I need the country of the headquarters of {name}, so first the headquarters of {name}. </think>"
        f"\n<search> {name} </search>",
        f"<think> The headquarters of {name} is {hq}. Now I need the country of {hq}. </think>\n<search> {hq} </search>",
        f"<think> The country of {hq} is {country}. </think>\n<answer> {country} </answer>",
    ]
    assert planned_turns(two_hop) == [  # brief thoughts (the default) only name what was read
        f"<think> I need to search for {name}. </think>\n<search> {name} </search>",
        f"<think> The information about {name} names {hq}. Now I need to search for {hq}. </think>\n<search> {hq} </search>",
        f"<think> The information says the answer is {country}. </think>\n<answer> {country} </answer>",
    ]
    relations = {hop.split(".")[1] for q in by_text.values() for hop in q.relation.split(">")}
    assert relations == set(RELATION_WORDS)  # every relation of the book has its words


def test_demonstrations_think_as_sft_thoughts_says(cfg, tmp_path):
    planned = dataclasses.replace(cfg, sft=dataclasses.replace(cfg.sft, thoughts="planned"))
    questions = [q for q in demonstration_questions(cfg) if len(q.hop_queries) == 2][:2]
    demos = _build(planned, questions, tmp_path)
    tok = smollm2_tokenizer()
    for traj, question in zip(demos.trajectories, demos.questions):
        assert [text for mask, text in _runs(traj, tok) if mask] == planned_turns(question, "planned")
    assert len(demos.trajectories) == 2


def test_a_demonstration_whose_search_finds_nothing_useful_is_dropped(cfg, tmp_path):
    real = demonstration_questions(cfg)[0]
    wrong = dataclasses.replace(real, answers=["Zzyzx Qwerty"])  # not in any passage the search returns
    demos = _build(cfg, [real, wrong], tmp_path)
    assert demos.questions == [real] and demos.dropped == 1


def test_a_turn_longer_than_the_turn_budget_is_dropped_not_cut(cfg, tmp_path):
    short = dataclasses.replace(cfg, rollout=dataclasses.replace(cfg.rollout, max_turn_tokens=12))
    demos = _build(short, demonstration_questions(cfg)[:4], tmp_path)
    assert demos.trajectories == [] and demos.dropped == 4


def test_demonstrations_come_from_the_train_split_only(cfg):
    from searchr1.data.synthetic import generate

    test_texts = {q.text for q in generate(cfg.data.seed, cfg.data.num_entities).test}
    assert not test_texts & {q.text for q in demonstration_questions(cfg)}


def test_rewarded_samples_keep_ids_and_masks_as_written(tmp_path):
    rows = [
        {"exact_match": 1.0, "prompt_ids": [1, 2], "response_ids": [3, 4, 5], "loss_mask": [1, 0, 1], "response": "a"},
        {"exact_match": 0.0, "prompt_ids": [1, 2], "response_ids": [6], "loss_mask": [1]},
        {"exact_match": 1.0, "prompt_ids": [1], "response_ids": [7], "loss_mask": [0]},  # nothing to train
    ]
    path = tmp_path / "rollouts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    kept = rewarded_trajectories([path], 1.0)
    assert [(t.prompt_ids, t.response_ids, t.loss_mask) for t in kept] == [([1, 2], [3, 4, 5], [1, 0, 1])]
    assert len(rewarded_trajectories([path], 0.0)) == 2


def test_samples_without_token_records_fail_in_one_line(tmp_path):
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps({"exact_match": 1.0, "response": "x"}) + "\n")
    with pytest.raises(DataError, match=r"old.jsonl:1 has no prompt_ids, response_ids, loss_mask"):
        rewarded_trajectories([path], 1.0)
    with pytest.raises(DataError, match="does not exist"):
        rewarded_trajectories([tmp_path / "missing.jsonl"], 1.0)


def test_demonstrations_need_synthetic_data(cfg):
    from searchr1.config.checks import ConfigError

    other = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, name="nq_hotpotqa"))
    with pytest.raises(ConfigError, match="sft.source=demonstrations needs data=synthetic"):
        demonstration_questions(other)


def test_questions_pick_the_configured_hops(cfg):
    one_hop = dataclasses.replace(cfg, sft=dataclasses.replace(cfg.sft, hops=[1]))
    assert {len(q.hop_queries) for q in demonstration_questions(one_hop)} == {1}
    assert isinstance(demonstration_questions(one_hop)[0], Question)


@pytest.fixture(scope="module")
def years_cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("years")
    cfg = to_typed(
        compose_config(
            [
                "+experiment=cpu_warmstart_tools",
                f"data.num_entities={SMALL_ENTITIES}",
                f"data.train_path={root}/train.parquet",
                f"data.test_path={root}/test.parquet",
                f"data.corpus_path={root}/corpus.jsonl",
                "sft.num_examples=6",
            ]
        )
    )
    ensure_data(cfg.data)
    return cfg


def test_a_years_demonstration_searches_computes_with_the_calculator_and_answers(years_cfg, tmp_path):
    questions = demonstration_questions(years_cfg)
    assert len(questions) == 6 and all(q.calculation for q in questions)
    demos = _build(years_cfg, questions, tmp_path)
    assert demos.questions == questions and demos.dropped == 0
    tok = smollm2_tokenizer()
    for traj, question in zip(demos.trajectories, demos.questions):
        runs = _runs(traj, tok)
        assert [text for mask, text in runs if mask] == planned_turns(question)
        search, calculation = [text for mask, text in runs if not mask]
        assert search.startswith("\n\n<information>Doc 1(Title: ") and question.calculation.fact in search
        assert calculation == f"\n\n<result>{question.answers[0]}</result>\n\n"  # the real calculator's result
        assert [call.tool for call in traj.tool_calls] == ["search", "calculator"]
        assert traj.final_answer.strip() == question.answers[0]


def test_years_turns_read_the_year_into_the_calculator_then_answer_its_result():
    from searchr1.data.synthetic import generate

    question = next(q for q in generate(0, SMALL_ENTITIES, "years").train if q.relation == "city.founded")
    (city,), year, answer = question.hop_queries, question.calculation.fact, question.answers[0]
    computed = [
        f"<think> The founding year of {city} is {year}. Now I compute 2026 - {year}. </think>\n"
        f"<calculator> 2026 - {year} </calculator>",
        f"<think> The result is {answer}. </think>\n<answer> {answer} </answer>",
    ]
    assert planned_turns(question) == [
        f"<think> I need to search for {city}. </think>\n<search> {city} </search>",
        *computed,
    ]
    assert planned_turns(question, "planned") == [
        f"<think> I need the founding year of {city}. </think>\n<search> {city} </search>",
        *computed,
    ]


def test_a_years_demonstration_whose_calculation_fails_is_dropped(years_cfg, tmp_path):
    off = dataclasses.replace(years_cfg, calculator=dataclasses.replace(years_cfg.calculator, enabled=False))
    demos = _build(off, demonstration_questions(years_cfg)[:2], tmp_path)
    assert demos.trajectories == [] and demos.dropped == 2


def test_years_demonstrations_need_the_calculator_among_the_tools(years_cfg):
    from searchr1.config.checks import ConfigError

    search_only = dataclasses.replace(years_cfg, tools=["search"])
    with pytest.raises(ConfigError, match=r"data.questions=years: the demonstrations call the calculator, which "):
        demonstration_questions(search_only)


def test_tool_calls_demonstrations_are_the_conversation_the_chat_template_renders(years_cfg, tmp_path):
    """rollout.action_format=tool_calls: each call is the template's own <tool_call> block and each result its
    tool message, so prompt + response is token for token the template's rendering of the whole conversation."""
    tok = copy.copy(smollm2_tokenizer())
    tok.chat_template = TOOLS_TEMPLATE.read_text()
    # a JSON call takes more tokens than a tag: 96 a turn, as +experiment=cpu_warmstart_tool_calls gives them
    rollout = dataclasses.replace(years_cfg.rollout, action_format="tool_calls", max_turn_tokens=96)
    cfg = dataclasses.replace(years_cfg, rollout=rollout)
    questions = demonstration_questions(cfg)[:3]
    demos = _build(cfg, questions, tmp_path, tok)
    assert demos.questions == questions and demos.dropped == 0
    for traj, question in zip(demos.trajectories, demos.questions):
        (city,), expression, answer = question.hop_queries, question.calculation.expression, question.answers[0]
        runs = _runs(traj, tok)
        turns = [text for mask, text in runs if mask]
        assert turns[0].endswith(
            f'\n<tool_call>\n{{"name": "search", "arguments": {{"query": "{city}"}}}}\n</tool_call>'
        )
        assert turns[1].endswith(f'"arguments": {{"expression": "{expression}"}}}}\n</tool_call>')
        assert turns[2].endswith(f"<answer> {answer} </answer>")
        results = [text.split("<tool_response>\n")[1].split("\n</tool_response>")[0] for mask, text in runs if not mask]
        assert results[1] == answer  # the real calculator's result
        messages = [{"role": "user", "content": tool_calls_prompt(question.text)}]
        for turn, call, result in zip(turns, traj.tool_calls, results):
            function = {"name": call.tool, "arguments": {tool_spec(call.tool).argument: call.argument}}
            thought = turn.split("\n<tool_call>")[0]
            messages.append({"role": "assistant", "content": thought, "tool_calls": [{"function": function}]})
            messages.append({"role": "tool", "content": result})
        messages.append({"role": "assistant", "content": turns[2]})
        schemas = [tool_spec(name).json_schema() for name in cfg.tools]
        rendered = tok.apply_chat_template(messages, tools=schemas, tokenize=False)
        assert tok.decode(traj.prompt_ids + traj.response_ids, skip_special_tokens=False) + "<|im_end|>\n" == rendered
