"""Backoff schedule and Retry-After parsing."""

import random
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

from searchr1.search.retry import RetryPolicy
from searchr1.search.transport import parse_retry_after


def test_full_jitter_stays_under_the_exponential_cap():
    policy = RetryPolicy(retries=5, backoff_s=0.1, max_backoff_s=0.5)
    rng = random.Random(0)
    for retry_index, cap in enumerate([0.1, 0.2, 0.4, 0.5, 0.5]):
        delays = [policy.delay(retry_index, None, rng) for _ in range(200)]
        assert 0.0 <= min(delays) and max(delays) <= cap
        assert max(delays) > 0.8 * cap  # jitter spreads over the whole range, not a fixed delay


def test_retry_after_replaces_the_backoff():
    assert RetryPolicy(retries=1, backoff_s=5.0).delay(0, 1.5, random.Random(0)) == 1.5


def test_retry_after_header_forms():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    in_three = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=3), usegmt=True)
    assert 1.5 < parse_retry_after(in_three) <= 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
