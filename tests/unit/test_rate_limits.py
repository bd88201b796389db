"""The token buckets behind the request rate limits (shared/rate_limits.py), on a clock the test
moves."""

from __future__ import annotations

import pytest

from shared.rate_limits import TokenBuckets, client_key


class Clock:
    def __init__(self) -> None:
        self.at = 1000.0

    def __call__(self) -> float:
        return self.at


def test_a_key_takes_a_minutes_allowance_at_once_then_one_as_each_refills() -> None:
    clock = Clock()
    buckets = TokenBuckets(6, clock=clock)  # one every 10 s
    assert [buckets.take("a") for _ in range(6)] == [None] * 6
    assert buckets.take("a") == pytest.approx(10.0)
    clock.at += 4
    assert buckets.take("a") == pytest.approx(6.0)  # a refusal takes nothing
    clock.at += 6
    assert buckets.take("a") is None
    assert buckets.take("a") == pytest.approx(10.0)


def test_refilling_stops_at_a_minutes_allowance() -> None:
    clock = Clock()
    buckets = TokenBuckets(2, clock=clock)
    assert buckets.take("a") is None
    clock.at += 3600
    assert [buckets.take("a") for _ in range(3)][:2] == [None, None]
    assert buckets.take("a") is not None


def test_keys_do_not_share_and_zero_lets_everything_through() -> None:
    buckets = TokenBuckets(1, clock=Clock())
    assert buckets.take("a") is None
    assert buckets.take("a") is not None
    assert buckets.take("b") is None
    unlimited = TokenBuckets(0)
    assert all(unlimited.take("a") is None for _ in range(1000))
    assert len(unlimited) == 0


def test_the_keys_kept_are_bounded_dropping_the_least_recently_used() -> None:
    buckets = TokenBuckets(1, max_keys=2, clock=Clock())
    assert buckets.take("a") is None
    assert buckets.take("b") is None
    assert buckets.take("a") is not None  # a is now the most recently used
    assert buckets.take("c") is None  # b is dropped
    assert len(buckets) == 2
    assert buckets.take("a") is not None  # still kept, still empty
    assert buckets.take("b") is None  # dropped earlier: starts full again


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("testclient", "not an address"),
        ("evil-invented-1", "not an address"),
        (None, "unknown"),
        ("", "unknown"),
    ],
)
def test_a_client_is_keyed_by_its_address_and_an_ipv6_one_by_its_64(
    host: str | None, key: str
) -> None:
    assert client_key(host) == key


def test_a_negative_allowance_is_refused() -> None:
    with pytest.raises(ValueError, match="per_minute"):
        TokenBuckets(-1)
