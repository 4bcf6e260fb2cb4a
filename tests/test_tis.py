"""TIS weights and ESS on hand-computed cases (Miles mis.yaml semantics)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from searchr1.config.schema import TisConfig
from searchr1.tis import ESS_FRACTION_KEY, ESS_KEY, compute_tis, effective_sample_size


def t(*values):
    return torch.tensor(values, dtype=torch.float32)


def logs(*ratios):
    """Train logprobs whose ratio to a zero rollout logprob is the given ratio."""
    return torch.log(t(*ratios))


def cfg(**kw):
    return TisConfig(enabled=True, **kw)


def close(a, b):
    assert torch.allclose(a, b, atol=1e-5), (a, b)


def test_token_truncate_caps_above_and_zeroes_observation_tokens():
    result = compute_tis([logs(1.0, 3.0, 0.25, 5.0)], [t(0, 0, 0, 0)], [t(1, 1, 1, 0)], cfg(upper_bound=2.0))
    # 3 -> 2 (truncated), 0.25 stays (truncate has no lower bound), the masked 5 -> 0
    close(result.weights[0], t(1.0, 2.0, 0.25, 0.0))
    close(result.masks[0], t(1, 1, 1, 0))
    assert result.metrics["tis/bounded_fraction"] == pytest.approx(1 / 3)
    assert result.metrics["tis/ratio_mean"] == pytest.approx((1 + 3 + 0.25) / 3)
    assert result.metrics["tis/weight_mean"] == pytest.approx((1 + 2 + 0.25) / 3)


def test_ratio_uses_train_minus_rollout():
    result = compute_tis([t(-1.0)], [t(-1.5)], [t(1)], cfg(upper_bound=5.0))
    close(result.weights[0], t(math.exp(0.5)))


def test_sequence_level_is_the_product_over_model_tokens_only():
    # ratios 2 and 1.5 on model tokens; the observation token's 100 must not enter the product
    result = compute_tis([logs(2.0, 100.0, 1.5)], [t(0, 0, 0)], [t(1, 0, 1)], cfg(level="sequence", upper_bound=5.0))
    close(result.weights[0], t(3.0, 0.0, 3.0))


def test_sequence_level_truncates_the_product():
    result = compute_tis([logs(2.0, 2.0)], [t(0, 0)], [t(1, 1)], cfg(level="sequence", upper_bound=2.0))
    close(result.weights[0], t(2.0, 2.0))


def test_geometric_level_is_the_geometric_mean():
    result = compute_tis([logs(2.0, 8.0, 50.0)], [t(0, 0, 0)], [t(1, 1, 0)], cfg(level="geometric", upper_bound=5.0))
    close(result.weights[0], t(4.0, 4.0, 0.0))


def test_clip_uses_both_bounds():
    result = compute_tis(
        [logs(0.25, 1.0, 3.0)], [t(0, 0, 0)], [t(1, 1, 1)], cfg(mode="clip", lower_bound=0.5, upper_bound=2.0)
    )
    close(result.weights[0], t(0.5, 1.0, 2.0))
    assert result.metrics["tis/bounded_fraction"] == pytest.approx(2 / 3)


def test_mask_drops_tokens_outside_the_bounds_and_keeps_raw_ratios_inside():
    result = compute_tis(
        [logs(0.25, 1.5, 3.0)], [t(0, 0, 0)], [t(1, 1, 1)], cfg(mode="mask", lower_bound=0.5, upper_bound=2.0)
    )
    close(result.masks[0], t(0, 1, 0))
    close(result.weights[0], t(0.0, 1.5, 0.0))


def test_disabled_returns_unit_weights_but_still_measures():
    result = compute_tis([logs(3.0, 1.0)], [t(0, 0)], [t(1, 0)], TisConfig(enabled=False, upper_bound=2.0))
    close(result.weights[0], t(1.0, 0.0))
    assert result.metrics["tis/weight_mean"] == pytest.approx(2.0)
    assert result.metrics[ESS_KEY] == pytest.approx(1.0)


def test_ess_from_sequence_weights():
    # sequence weights 2 and 0.5: ESS = 2.5^2 / (4 + 0.25)
    result = compute_tis([logs(2.0), logs(0.5)], [t(0), t(0)], [t(1), t(1)], cfg(level="sequence", upper_bound=4.0))
    assert result.metrics[ESS_KEY] == pytest.approx(6.25 / 4.25)
    assert result.metrics[ESS_FRACTION_KEY] == pytest.approx(6.25 / 4.25 / 2)


def test_ess_of_token_level_uses_each_sequence_mean_weight():
    # sequence 1 mean weight (1 + 2)/2 = 1.5 (3 truncated to 2); sequence 2 weight 1
    result = compute_tis([logs(1.0, 3.0), logs(1.0)], [t(0, 0), t(0)], [t(1, 1), t(1)], cfg(upper_bound=2.0))
    assert result.metrics[ESS_KEY] == pytest.approx(2.5**2 / (1.5**2 + 1.0))


def test_on_policy_batch_has_full_ess():
    lp = [t(-0.3, -1.2), t(-2.0)]
    result = compute_tis(lp, [x.clone() for x in lp], [t(1, 1), t(1)], cfg())
    assert result.metrics[ESS_KEY] == pytest.approx(2.0)
    assert result.metrics[ESS_FRACTION_KEY] == pytest.approx(1.0)


def test_sequences_without_model_tokens_do_not_count():
    result = compute_tis([t(0.0), t(0.0, 0.0)], [t(0.0), t(0.0, 0.0)], [t(0), t(1, 1)], cfg())
    assert result.metrics[ESS_KEY] == pytest.approx(1.0)
    assert result.metrics[ESS_FRACTION_KEY] == pytest.approx(1.0)


def test_batch_without_model_tokens_reports_zero_ess():
    result = compute_tis([t(0.0)], [t(0.0)], [t(0)], cfg())
    assert result.metrics[ESS_KEY] == 0.0


def test_huge_log_ratio_does_not_overflow():
    result = compute_tis([t(500.0, -500.0)], [t(0.0, 0.0)], [t(1, 1)], cfg(level="sequence", upper_bound=2.0))
    assert torch.isfinite(result.weights[0]).all()


def test_batch_normalize_token_level_gives_mean_one():
    result = compute_tis(
        [logs(2.0, 1.0), logs(1.0)], [t(0, 0), t(0)], [t(1, 1), t(1)], cfg(upper_bound=4.0, batch_normalize=True)
    )
    mean = (2 + 1 + 1) / 3
    close(result.weights[0], t(2.0, 1.0) / mean)
    close(result.weights[1], t(1.0) / mean)


def test_batch_normalize_sequence_level_averages_sequence_weights():
    result = compute_tis(
        [logs(3.0), logs(1.0)], [t(0), t(0)], [t(1), t(1)], cfg(level="sequence", upper_bound=4.0, batch_normalize=True)
    )
    close(result.weights[0], t(1.5))
    close(result.weights[1], t(0.5))


def test_batch_normalize_rejects_geometric():
    with pytest.raises(ValueError, match="geometric"):
        TisConfig(level="geometric", batch_normalize=True)


def test_mismatched_shapes_fail_with_the_sequence_index():
    with pytest.raises(ValueError, match="sequence 0"):
        compute_tis([t(0.0, 0.0)], [t(0.0)], [t(1, 1)], cfg())
    with pytest.raises(ValueError, match="one tensor per sequence"):
        compute_tis([t(0.0)], [], [t(1)], cfg())


def test_effective_sample_size_bounds():
    assert effective_sample_size([1.0, 1.0, 1.0]) == pytest.approx(3.0)
    assert effective_sample_size([5.0, 0.0, 0.0]) == pytest.approx(1.0)
    assert effective_sample_size([0.0]) == 0.0


ratios = st.floats(min_value=0.01, max_value=50.0)


@settings(max_examples=60, deadline=None)
@given(
    seqs=st.lists(st.lists(st.tuples(ratios, st.booleans()), min_size=1, max_size=6), min_size=1, max_size=5),
    level=st.sampled_from(["token", "sequence", "geometric"]),
    upper=st.floats(min_value=1.0, max_value=5.0),
)
def test_truncated_weights_are_bounded_and_ess_is_between_one_and_n(seqs, level, upper):
    train = [logs(*(r for r, _ in s)) for s in seqs]
    masks = [t(*(float(m) for _, m in s)) for s in seqs]
    result = compute_tis(train, [torch.zeros_like(x) for x in train], masks, cfg(level=level, upper_bound=upper))
    for w, m in zip(result.weights, masks):
        assert float(w.max()) <= upper + 1e-5
        assert float(w.min()) >= 0.0
        assert float((w * (1 - m)).abs().sum()) == 0.0
    live = sum(1 for m in masks if m.sum() > 0)
    ess = result.metrics[ESS_KEY]
    if live:
        assert 1.0 - 1e-6 <= ess <= live + 1e-6
        assert 0.0 < result.metrics[ESS_FRACTION_KEY] <= 1.0 + 1e-6
