"""Backtest replay (pure): a stricter protection window on a seeded history changes exactly the
registrations a hand calculation says."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.deals.domain.backtest import REFUSED, Past, replay
from services.deals.domain.rules import PartnerView, RegistrationRequest, RulesOfEngagement
from shared.events.partners import PartnerStatus

DAY0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CURRENT = RulesOfEngagement()  # 90-day window, first come first served
STRICTER = replace(CURRENT, version="stricter", protection_days=30)
CUSTOMERS = {"X": ("Xylo Systems", "xylo.example"), "Y": ("Yarrow Foods", "yarrow.example")}


def past(rid: str, partner: str, customer: str, day: int, status: str) -> Past:
    name, domain = CUSTOMERS[customer]
    request = RegistrationRequest(
        partner_id=partner,
        customer_name=name,
        customer_domain=domain,
        customer_country="US",
        products=frozenset({"data"}),
        amount=Decimal("1000"),
        currency="USD",
        submitted_at=DAY0 + timedelta(days=day),
    )
    view = PartnerView(
        partner, PartnerStatus.ACTIVE, "gold", frozenset({"US"}), frozenset({"data"})
    )
    return Past(rid, request, view, (), status, (f"originally {status}",), None)


# The history as the 90-day policy decided it (by hand):
HISTORY = [
    past("r1", "A", "X", 0, "approved"),  # first on X: holds X until day 90
    past("r5", "E", "Y", 10, "approved"),  # first on Y: holds Y until day 100
    past("r2", "B", "X", 20, "rejected"),  # r1 holds X
    past("r3", "C", "X", 45, "rejected"),  # r1 holds X
    past("r6", "F", "Y", 50, "rejected"),  # r5 holds Y
    past("r4", "D", "X", 60, "rejected"),  # r1 holds X
    past("r7", "A", "X", 100, "approved"),  # r1's window ended at day 90
]


def test_the_policy_that_decided_the_history_replays_it_unchanged() -> None:
    result = replay(CURRENT, HISTORY)
    assert result.replayed == 7
    assert result.changes == []


def test_a_stricter_window_changes_exactly_what_the_hand_calculation_says() -> None:
    # 30 days: r1 holds X until day 30, r5 holds Y until day 40. r2 (day 20) is still refused;
    # r3 (day 45) and r6 (day 50) get through; r3 then holds X until day 75, so r4 (day 60)
    # stays refused (now because of r3); r7 (day 100) is approved as before.
    result = replay(STRICTER, HISTORY)
    assert [(c.registration_id, c.before, c.after) for c in result.changes] == [
        ("r3", "rejected", "approved"),
        ("r6", "rejected", "approved"),
    ]
    assert result.changes[0].reasons_before == ("originally rejected",)
    assert result.changes[0].reasons_after == (
        "no conflicts, partner active and authorised, amount within the auto-approval limit",
    )
    kinds = {k: (v.before, v.after, v.changed) for k, v in result.kinds.items()}
    assert kinds == {"approved": (3, 5, 0), "rejected": (4, 2, 2)}


def test_registrations_before_the_period_hold_customers_as_decided() -> None:
    context = replace(HISTORY[0], in_period=False, expires_at=DAY0 + timedelta(days=90))
    result = replay(STRICTER, [context, *HISTORY[2:4]])
    assert result.replayed == 2
    assert [(c.registration_id, c.after) for c in result.changes] == [("r3", "approved")]


def test_a_repeat_would_be_refused() -> None:
    again = past("r8", "A", "X", 5, "approved")
    result = replay(CURRENT, [HISTORY[0], again])
    assert [(c.registration_id, c.after) for c in result.changes] == [("r8", REFUSED)]
    assert "r1" in result.changes[0].reasons_after[0]
