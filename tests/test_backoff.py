import random
from datetime import datetime, timedelta, timezone

import pytest

from harmony_pipeline.acquisition.backoff import attempts_exhausted, next_attempt_at, retry_delay_seconds

DRAWS = 2000


@pytest.mark.parametrize("attempt", [1, 2, 3, 6, 7, 10, 50])
def test_delay_stays_in_its_envelope_and_fills_it(attempt):
    rng = random.Random(attempt)
    base, jitter = 60.0, 0.2
    nominal = base * 2 ** min(attempt, 6)
    delays = [retry_delay_seconds(attempt, base, jitter, rng) for _ in range(DRAWS)]
    assert min(delays) >= nominal * 0.8
    assert max(delays) <= nominal * 1.2
    # the draws spread over the whole band, not just one side of it
    assert min(delays) < nominal * 0.82
    assert max(delays) > nominal * 1.18
    assert nominal * 0.97 < sum(delays) / DRAWS < nominal * 1.03


def test_first_retry_waits_twice_the_base_and_growth_is_capped_at_2_to_the_6():
    assert retry_delay_seconds(1, 60, 0) == 120
    assert retry_delay_seconds(2, 60, 0) == 240
    assert retry_delay_seconds(6, 60, 0) == 60 * 64
    assert retry_delay_seconds(7, 60, 0) == 60 * 64
    assert retry_delay_seconds(1000, 60, 0) == 60 * 64


def test_same_seed_same_delay():
    first = retry_delay_seconds(3, 60, 0.2, random.Random(42))
    again = retry_delay_seconds(3, 60, 0.2, random.Random(42))
    other = retry_delay_seconds(3, 60, 0.2, random.Random(43))
    assert first == again
    assert first != other


def test_full_jitter_never_goes_negative():
    rng = random.Random(7)
    delays = [retry_delay_seconds(2, 1.5, 1.0, rng) for _ in range(DRAWS)]
    assert all(0 <= delay <= 1.5 * 4 * 2 for delay in delays)


@pytest.mark.parametrize(
    "attempt, base, jitter",
    [
        (0, 60, 0.2),
        (-1, 60, 0.2),
        (1.5, 60, 0.2),
        (True, 60, 0.2),
        (1, 0, 0.2),
        (1, -5, 0.2),
        (1, float("inf"), 0.2),
        (1, float("nan"), 0.2),
        (1, 60, -0.1),
        (1, 60, 1.5),
        (1, 60, 20),
        (1, 60, float("nan")),
    ],
)
def test_invalid_inputs_refused(attempt, base, jitter):
    with pytest.raises(ValueError):
        retry_delay_seconds(attempt, base, jitter)


def test_next_attempt_at_adds_the_delay():
    now = datetime(2026, 11, 25, 20, 0, tzinfo=timezone.utc)
    due = next_attempt_at(now, 1, 60, 0.2, random.Random(5))
    expected = retry_delay_seconds(1, 60, 0.2, random.Random(5))
    assert due - now == timedelta(seconds=expected)
    assert due.tzinfo is timezone.utc


def test_attempts_exhausted_counts_the_first_attempt():
    # RETRY_MAX_ATTEMPTS=3: attempts 1 and 2 fail and are retried, the third failure dead-letters.
    assert not attempts_exhausted(1, 3)
    assert not attempts_exhausted(2, 3)
    assert attempts_exhausted(3, 3)
    assert attempts_exhausted(1, 1)
    with pytest.raises(ValueError):
        attempts_exhausted(1, 0)
    with pytest.raises(ValueError):
        attempts_exhausted(0, 3)
