"""Which prompts each GRPO step trains on: one seeded shuffle, or turns over data sources (data.balance_sources)."""

from __future__ import annotations

import collections

import pytest

from searchr1.config import to_typed
from searchr1.config.checks import ConfigError
from searchr1.trainers.local.sampler import PromptSampler
from tests.support.compose import compose_config

# 7 one-hop prompts, 3 two-hop ones: one shuffle of them often puts 3 or 4 of a kind in a step of 4.
SOURCES = ["1hop"] * 7 + ["2hop"] * 3


def _steps(sampler: PromptSampler, n: int) -> list[list[int]]:
    return [sampler.next_batch() for _ in range(n)]


def test_balanced_steps_take_turns_over_sources_until_the_smaller_one_is_used_up():
    sampler = PromptSampler(len(SOURCES), 2, seed=3, sources=SOURCES, balance=True)
    steps = _steps(sampler, 5)
    kinds = [sorted(SOURCES[i] for i in step) for step in steps]
    assert kinds[:3] == [["1hop", "2hop"]] * 3  # one of each while both last
    assert kinds[3:] == [["1hop", "1hop"]] * 2  # then the rest of the epoch
    assert sorted(i for step in steps for i in step) == list(range(10))  # every prompt once an epoch
    assert sampler.epoch == 1


def test_balanced_order_keeps_each_sources_shuffle_and_changes_with_the_epoch():
    sampler = PromptSampler(len(SOURCES), 2, seed=3, sources=SOURCES, balance=True)
    plain = PromptSampler(len(SOURCES), 2, seed=3)
    for epoch in (0, 1):
        two_hop_plain = [i for i in plain.order(epoch) if SOURCES[i] == "2hop"]
        assert [i for i in sampler.order(epoch) if SOURCES[i] == "2hop"] == two_hop_plain
    assert sampler.order(0) != sampler.order(1)


def test_unbalanced_steps_follow_one_shuffle_of_the_whole_split():
    counts = collections.Counter()
    for seed in range(50):
        sampler = PromptSampler(len(SOURCES), 4, seed=seed)
        counts[sum(SOURCES[i] == "2hop" for i in sampler.next_batch())] += 1
    assert len(counts) > 1  # what balancing is for: the mix of a step varies with the shuffle


def test_a_resumed_balanced_sampler_continues_where_it_stopped():
    first = PromptSampler(len(SOURCES), 3, seed=1, sources=SOURCES, balance=True)
    _steps(first, 2)
    resumed = PromptSampler(len(SOURCES), 3, seed=1, sources=SOURCES, balance=True)
    resumed.restore(first.state())
    assert _steps(resumed, 3) == _steps(first, 3)


def test_balancing_needs_a_source_per_prompt():
    with pytest.raises(ValueError, match="one data_source per prompt: 2 for 10"):
        PromptSampler(10, 2, seed=0, sources=["a", "b"], balance=True)


def test_balance_sources_composes_for_the_embedded_trainer_and_is_refused_for_miles():
    assert to_typed(compose_config(["data.balance_sources=true"])).data.balance_sources is True
    with pytest.raises(ConfigError, match="data.balance_sources is not supported with trainer=miles"):
        to_typed(compose_config(["trainer=miles", "data.balance_sources=true"]))
    assert compose_config([]).data.balance_sources is False
