"""Every number and moment an event carries is bounded by what its consumers store it in and
compute with (shared/events/bounds.py): an event outside them is refused at decode with the
field's path and the bound, in microseconds, on the one-pass path and the general path alike.
Found from outside: a deal amount of 1E+999999 passed the contract and froze attribution for
good (85 s of `int(Decimal)` per delivery, the group kicked out, the batch back again)."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import pytest

from shared.events import Envelope, EventPayload, InvalidEvent, decode_envelope
from tests.support import factories


def raw_event(payload: EventPayload, **data: Any) -> bytes:
    """`payload` in an envelope, with the JSON values in `data` written over its fields."""
    body = json.loads(Envelope.wrap(payload, source="pollinate/test", subject="s").to_bytes())
    body["data"].update(data)
    return json.dumps(body).encode()


def refusal(payload: EventPayload, **data: Any) -> str:
    """Why decode refuses the event: the same on the one-pass path (the `ce_type` header) and
    on the general path."""
    raw = raw_event(payload, **data)
    expected = {payload.event_type: type(payload)}
    reasons = []
    for headers in ([("ce_type", payload.event_type.encode())], None):
        with pytest.raises(InvalidEvent) as refused:
            decode_envelope(raw, expected, headers)
        reasons.append(str(refused.value))
    assert reasons[0] == reasons[1]
    return reasons[0]


DEAL = factories.deal_state_changed()


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        ("1E+999999", "amount: Input should be less than 10000000000000000"),
        ("9" * 40, "amount: Input should be less than 10000000000000000"),
        ("1.123456789012345678", "amount: at most 4 decimal places"),
        ("1e-30", "amount: at most 4 decimal places"),
        ("-100.00", "amount: Input should be greater than or equal to 0"),
        ("0." + "0" * 70 + "1", "amount: a number written with more than 64 characters"),
    ],
)
def test_a_deal_amount_beyond_what_its_consumers_store_is_refused_at_decode(
    amount: str, reason: str
) -> None:
    assert refusal(DEAL, amount=amount) == f"invalid deal.state_changed.v1 payload: {reason}"


def test_the_largest_amounts_are_refused_in_microseconds() -> None:
    raw = raw_event(DEAL, amount="1E+999999")
    expected = {DEAL.event_type: type(DEAL)}
    started = time.perf_counter()
    for _ in range(100):
        with pytest.raises(InvalidEvent):
            decode_envelope(raw, expected, [("ce_type", DEAL.event_type.encode())])
    assert (time.perf_counter() - started) / 100 < 0.001


@pytest.mark.parametrize(
    ("payload", "amount"),
    [
        (factories.crm_deal_changed(), "-1.00"),
        (factories.registration_decided(), "-1.00"),
        (factories.credit_issued(), "-1.00"),
        (factories.payout_recorded(), "0.00"),
        (factories.payout_recorded(), "-10.00"),
        (factories.mdf_claim_decided(), "-10.00"),
        (factories.incentive_reversed(), "-10.00"),
    ],
)
def test_an_amount_that_is_never_negative_is_refused_negative(
    payload: EventPayload, amount: str
) -> None:
    assert "amount: Input should be greater than" in refusal(payload, amount=amount)


def test_ledger_amounts_are_cents_and_a_basis_keeps_four_places() -> None:
    assert "amount: at most 2 decimal places" in refusal(
        factories.payout_recorded(), amount="10.001"
    )
    earned = factories.incentive_earned()
    assert "basis: at most 4 decimal places" in refusal(earned, basis="1.00001")
    assert "rate: Input should be less than or equal to 1" in refusal(earned, rate="1.5")


def test_a_balance_may_be_negative_within_its_column() -> None:
    payout = factories.payout_recorded()
    decoded = decode_envelope(
        raw_event(payout, balance_after="-12.50"), {payout.event_type: type(payout)}
    )
    assert decoded is not None
    assert decoded.data.balance_after == Decimal("-12.50")
    assert "balance_after: Input should be greater than" in refusal(
        payout, balance_after="-1" + "0" * 16
    )


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (DEAL, "revision"),
        (factories.partner_state_changed(), "version"),
        (factories.credit_issued(), "deal_revision"),
        (factories.partner_enablement_measured(), "people"),
    ],
)
def test_an_integer_beyond_its_integer_column_is_refused(payload: EventPayload, field: str) -> None:
    assert refusal(payload, **{field: 10**29}).endswith(
        f"{field}: Input should be less than or equal to 2147483647"
    )


def test_a_crm_sequence_number_is_a_bigint() -> None:
    change = factories.crm_deal_changed()
    assert refusal(change, source_sequence=10**29).endswith(
        "source_sequence: Input should be less than or equal to 9223372036854775807"
    )
    assert refusal(change, source_commit=-1).endswith(
        "source_commit: Input should be greater than or equal to 0"
    )


def test_a_score_keeps_the_decimal_its_columns_keep() -> None:
    scored = factories.partner_health_scored()
    assert refusal(scored, score="50.25").endswith("score: at most 1 decimal places")
    assert refusal(scored, revenue="1.5").endswith(
        "revenue: Input should be less than or equal to 1"
    )


def test_a_campaign_ending_before_it_starts_is_refused() -> None:
    campaign = factories.campaign_changed()
    assert refusal(campaign, starts_on="2026-12-31", ends_on="2026-12-01").endswith(
        "<root>: ends_on 2026-12-01 is before starts_on 2026-12-31"
    )
    assert refusal(campaign, starts_on="2026-12-31", ends_on="9999-12-31").endswith(
        "ends_on: must be before the last day (Postgres keeps it as infinity)"
    )


def test_an_envelope_time_that_overflows_in_utc_is_refused_at_decode() -> None:
    """0001-01-01T00:00:00+23:59 parsed, then overflowed where deals converted it to UTC."""
    raw = json.loads(raw_event(DEAL))
    for time_, reason in [
        ("0001-01-01T00:00:00+23:59", "time: must convert to UTC within years 1-9999"),
        ("9999-12-31T23:59:59.999999Z", "time: must be before the last instant"),
        ("1066-10-14T09:00:00Z", "time: must lie between 1900 and 9999 in UTC"),
    ]:
        raw["time"] = time_
        with pytest.raises(InvalidEvent) as refused:
            decode_envelope(json.dumps(raw).encode(), {DEAL.event_type: type(DEAL)})
        assert str(refused.value).startswith(f"malformed CloudEvents envelope: {reason}")


def test_an_amount_is_kept_as_its_column_would_keep_it() -> None:
    """A whole number with an exponent, or trailing zeros past the places, is read as the
    column writes it back; the usual amount is read as sent."""
    expected = {DEAL.event_type: type(DEAL)}
    for sent, read in [("1E+3", "1000.0000"), ("12.50000000", "12.5000"), ("12.50", "12.50")]:
        decoded = decode_envelope(raw_event(DEAL, amount=sent), expected)
        assert decoded is not None
        assert str(decoded.data.amount) == read


def test_an_instant_in_a_payload_must_convert_to_utc_and_nothing_narrower() -> None:
    """Deals sends the first instant for "unknown" (a direct-sales conflict without its
    opportunity's creation time): only what cannot be converted is refused."""
    decided = factories.registration_decided()
    assert refusal(decided, decided_at="0001-01-01T00:00:00+23:59").endswith(
        "decided_at: must convert to UTC within years 1-9999"
    )
    expected = {decided.event_type: type(decided)}
    kept = decode_envelope(raw_event(decided, decided_at="0001-01-01T00:00:00Z"), expected)
    assert kept is not None


def test_a_day_a_consumer_keeps_is_before_the_last_one() -> None:
    """Programme keeps a credit's close date and a health score's day: asyncpg writes the last
    day as Postgres' infinity, which has no quarter (the KPIs answered 500 for everyone after
    one such credit) and is newer than every day to come (the partner's health stopped)."""
    assert refusal(factories.credit_issued(), close_date="9999-12-31").endswith(
        "close_date: must be before the last day (Postgres keeps it as infinity)"
    )
    assert refusal(factories.partner_health_scored(), day="9999-12-31").endswith(
        "day: must be before the last day (Postgres keeps it as infinity)"
    )
