"""Invariants of the loop over random turn sequences and configs (hypothesis, scripted engine)."""

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from searchr1.config.schema import RolloutConfig
from searchr1.rollout import prompt_ids
from searchr1.tools.grammar import SEARCH_GRAMMAR
from searchr1.tools.search import search_toolbox
from searchr1.rollout.loop import run_trajectory
from tests.support.scripted import ScriptedEngine, ScriptedSearch, Turn, smollm2_tokenizer

FAILURE = "search failed"

TURN_TEXTS = st.sampled_from(
    [
        "<think>Search.</think>\n<search>Hamlet author</search>",
        "<search>please fail</search>",
        "<search>q</search>\n\n<information>invented</information><answer>x</answer>",
        "<think>Done.</think>\n<answer>Shakespeare</answer>",
        "<answer>Élodie 漢字</answer> trailing",
        "no action at all",
        "no action, then eos<|im_end|>",
        "word " * 60,
        "<search>unclosed",
        "",
    ]
)
TURNS = st.lists(st.builds(Turn, TURN_TEXTS, st.sampled_from([False] * 6 + [True])), max_size=6)
CONFIGS = st.integers(1, 80).flatmap(  # a turn's cap within the response's budget (RolloutConfig refuses more)
    lambda turn_tokens: st.builds(
        RolloutConfig,
        max_turns=st.integers(1, 4),
        final_turn=st.booleans(),
        max_turn_tokens=st.just(turn_tokens),
        max_response_len=st.integers(turn_tokens, 400),
        max_obs_tokens=st.integers(1, 120),
        stop_at_tags=st.booleans(),
    )
)


@pytest.fixture(scope="module")
def tok():
    return smollm2_tokenizer()


def model_runs(traj, engine):
    """(start, length) of each generation's tokens inside the response, from the engine's inputs."""
    starts = [len(input_ids) - len(traj.prompt_ids) for input_ids, _ in engine.calls]
    runs = []
    for start in starts:
        length = 0
        while start + length < len(traj.loss_mask) and traj.loss_mask[start + length] == 1:
            length += 1
        runs.append((start, length))
    return runs


@settings(max_examples=200, deadline=None)
@given(turns=TURNS, cfg=CONFIGS, honour_stop=st.booleans())
def test_token_accounting_invariants(tok, turns, cfg, honour_stop):
    prompt = prompt_ids(tok, [{"role": "user", "content": "Question: Who wrote Hamlet?"}])
    engine = ScriptedEngine(tok, turns, honour_stop=honour_stop)
    traj = asyncio.run(
        run_trajectory(
            prompt,
            engine=engine,
            tools=search_toolbox(ScriptedSearch(), 2, FAILURE),
            tokenizer=tok,
            rollout_cfg=cfg,
        )
    )
    ids, mask, logprobs = traj.response_ids, traj.loss_mask, traj.rollout_logprobs
    assert len(ids) == len(mask) == len(logprobs) <= cfg.max_response_len
    assert tok.decode(ids, skip_special_tokens=False) == traj.response_text
    assert set(mask) <= {0, 1}
    assert traj.turns == len(engine.calls) <= cfg.max_turns + int(cfg.final_turn)

    # Mask is 1 exactly on engine tokens: each generation's run starts where its input ended, is a
    # prefix of what the engine returned, and every 1 belongs to some run.
    covered = set()
    runs = model_runs(traj, engine)
    for (input_ids, _), output, (start, length) in zip(engine.calls, engine.outputs, runs):
        assert input_ids == prompt + ids[:start]  # token in, token out
        assert ids[start : start + length] == output.token_ids[:length]
        assert logprobs[start : start + length] == output.logprobs[:length]
        covered.update(range(start, start + length))
        text = tok.decode(ids[start : start + length], skip_special_tokens=False)
        end = SEARCH_GRAMMAR.first_stop_tag_end(text)
        # Nothing after the first closing tag: the tag ends inside the run's last token.
        assert end is None or SEARCH_GRAMMAR.first_stop_tag_end(tok.decode(ids[start : start + length - 1])) is None
    assert {i for i, m in enumerate(mask) if m == 1} == covered

    # Inserted tokens are never trained on and carry placeholder logprobs; they are observation
    # or correction text (possibly cut at max_obs_tokens or by the budget).
    inserted = [t for t, m in zip(ids, mask) if m == 0]
    assert all(lp == 0.0 for lp, m in zip(logprobs, mask) if m == 0)
    assert traj.observation_tokens <= len(inserted)
    if traj.search_calls == 0:
        assert "<information>" not in tok.decode(inserted, skip_special_tokens=False)
    if traj.status == "completed" and mask and mask[-1] == 0:
        assert runs[-1][1] == 0  # only an empty last generation leaves an observation at the end
