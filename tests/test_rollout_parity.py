"""The parity preset composes and carries Search-R1's original settings."""

from omegaconf import OmegaConf

from tests.support.compose import compose_config

# Search-R1 search_r1/llm_agent/generation.py, the correction after an invalid action.
ORIGINAL_INVALID_ACTION = (
    "\nMy previous action is invalid. If I want to search, I should put the query between <search> and "
    "</search>. If I want to give the final answer, I should put the answer between <answer> and "
    "</answer>. Let me try again.\n"
)


def test_parity_preset_matches_the_original_settings():
    cfg = OmegaConf.to_object(compose_config(["+experiment=parity"]))
    rollout = cfg.rollout
    assert (rollout.stop_at_tags, rollout.final_turn, rollout.max_turns) == (False, True, 2)
    assert (rollout.max_turn_tokens, rollout.max_obs_tokens, cfg.search.topk) == (500, 500, 3)
    assert rollout.invalid_action_text == ORIGINAL_INVALID_ACTION
    assert cfg.reward.kind == "searchr1_qa_em_format"
    assert cfg.tis.enabled is False


def test_defaults_keep_the_original_correction_but_stop_at_tags():
    default = OmegaConf.to_object(compose_config([]))
    assert default.rollout.stop_at_tags is True
    assert default.rollout.invalid_action_text == ORIGINAL_INVALID_ACTION
