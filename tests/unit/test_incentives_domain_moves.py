"""Incentive rules that used to live in the service layer and routes: checking a credit and a
reversal against the ledger, payouts, balance and statement totals, claim decisions, MDF
deficits and clawbacks, what-if evaluation and the SPIFFs running on a day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from services.incentives.domain.claims import ClaimConflict, check_request, decide
from services.incentives.domain.evaluation import evaluate, refusal
from services.incentives.domain.ledger import (
    BalanceTotals,
    BookedCredit,
    PayoutConflict,
    PayoutRefused,
    RecordedPayout,
    StatementTotals,
    check_one_currency,
    check_retry,
    entry_id,
    payout_amount,
    reversal_mismatches,
)
from services.incentives.domain.mdf import Fund, Lot, MdfAccrual, claw_back
from services.incentives.domain.programs import IncentivePrograms, Spiff
from services.incentives.domain.surroundings import Context
from shared.errors import Conflict

D = Decimal
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PROGRAMS = IncentivePrograms()


def lot(lot_id: str, remaining: str, days: int) -> Lot:
    return Lot(lot_id, D(remaining), NOW + timedelta(days=days))


def accrual(amount: str, note: str = "") -> MdfAccrual:
    return MdfAccrual(
        "mdf:gold", D("10000.00"), D("0.02"), D(amount), D(amount), note, NOW + timedelta(days=365)
    )


# ---- the ledger


def test_entry_ids_are_deterministic_per_cause() -> None:
    assert entry_id("c-1", "base:gold") == entry_id("c-1", "base:gold")
    assert entry_id("c-1", "base:gold") != entry_id("c-1", "kicker:co_sell")
    assert entry_id("c-1", "mdf") != entry_id("c-2", "mdf")


def test_a_credit_in_another_currency_or_negative_is_refused() -> None:
    assert refusal(PROGRAMS, credit_id="c-1", amount=D("10.00"), currency="USD") is None
    assert refusal(PROGRAMS, credit_id="c-1", amount=D("0.00"), currency="USD") is None
    euro = refusal(PROGRAMS, credit_id="c-1", amount=D("10.00"), currency="EUR")
    assert euro == (
        "credit c-1 is in EUR; the incentive programs pay in USD "
        "(attribution credits in the reporting currency)"
    )
    assert refusal(PROGRAMS, credit_id="c-1", amount=D("-1.00"), currency="USD") == (
        "credit c-1 has a negative amount -1.00"
    )


def test_a_reversal_must_name_its_credits_partner_amount_and_currency() -> None:
    booked = BookedCredit("p-1", D("10.00"), "USD")
    assert reversal_mismatches(booked, partner_id="p-1", amount=D("10.00"), currency="USD") == []
    assert reversal_mismatches(booked, partner_id="p-2", amount=D("9.99"), currency="EUR") == [
        "partner p-2 != credit's p-1",
        "amount 9.99 != credit's 10.00",
        "currency EUR != credit's USD",
    ]


def test_a_payout_pays_the_balance_by_default_and_never_more() -> None:
    assert payout_amount(D("900.00"), None) == D("900.00")
    assert payout_amount(D("900.00"), D("400.00")) == D("400.00")
    assert payout_amount(D("900.00"), D("900.00")) == D("900.00")
    with pytest.raises(PayoutRefused, match=r"^payout of 900.01 exceeds the balance of 900.00$"):
        payout_amount(D("900.00"), D("900.01"))
    with pytest.raises(PayoutRefused, match=r"^nothing to pay: the balance is 0$"):
        payout_amount(D("0"), None)
    with pytest.raises(PayoutRefused, match=r"^nothing to pay: the balance is -5.00$"):
        payout_amount(D("-5.00"), None)
    assert issubclass(PayoutRefused, Conflict)  # answered 409


def test_a_payout_waits_while_the_ledger_holds_another_currency() -> None:
    """The programme's currency changed from USD to EUR: the USD still owed is not paid as
    euros (summed across currencies, it was)."""
    check_one_currency({"EUR": D("10.00")}, "EUR")
    check_one_currency({"EUR": D("10.00"), "USD": D("0.00")}, "EUR")  # settled: no matter
    with pytest.raises(PayoutRefused, match=r"^the ledger holds 1000.00 USD besides EUR, the"):
        check_one_currency({"EUR": D("10.00"), "USD": D("1000.00")}, "EUR")


def test_a_payout_reference_is_retried_only_for_the_same_money() -> None:
    asked_400 = RecordedPayout("e-1", "wire-123", D("400.00"), D("400.00"), "USD")
    check_retry(asked_400, D("400.00"), "USD")
    check_retry(asked_400, D("4E+2"), "USD")  # the same amount, written another way
    conflicts = {
        (D("400.01"), "USD"): "this request asks for 400.01 USD",
        (None, "USD"): "this request asks for the whole balance",
        (D("400.00"), "EUR"): "this request asks for 400.00 EUR",
    }
    for (requested, currency), asks in conflicts.items():
        with pytest.raises(PayoutConflict) as refused:
            check_retry(asked_400, requested, currency)
        assert refused.value.message == (
            "reference wire-123 already names payout e-1 of 400.00 USD (asked for 400.00 USD); "
            f"{asks}: a new payout needs a new reference"
        )
    # The whole balance, asked again (the balance has moved since) or as exactly what it paid.
    whole = RecordedPayout("e-2", "wire-9", None, D("900.00"), "USD")
    check_retry(whole, None, "USD")
    check_retry(whole, D("900"), "USD")
    with pytest.raises(PayoutConflict, match=r"\(asked for the whole balance\); this request"):
        check_retry(whole, D("100.00"), "USD")
    assert issubclass(PayoutConflict, Conflict)  # answered 409


def test_balance_totals_by_entry_type() -> None:
    totals = BalanceTotals.of(
        {
            "accrual": D("500.00"),
            "kicker": D("300.00"),
            "spiff": D("100.00"),
            "reversal": D("-300.00"),
            "payout": D("-400.00"),
        }
    )
    assert totals == BalanceTotals(
        balance=D("200.00"), earned=D("900.00"), reversed=D("-300.00"), paid=D("-400.00")
    )
    empty = BalanceTotals.of({})
    assert [str(v) for v in (empty.balance, empty.earned, empty.reversed, empty.paid)] == [
        "0.00"
    ] * 4


def test_statement_totals_by_type_and_rule_and_the_closing_balance() -> None:
    totals = StatementTotals.of(
        D("100.00"),
        [
            ("accrual", "base:gold", D("500.00")),
            ("kicker", "kicker:co_sell", D("100.00")),
            ("reversal", "base:gold", D("-500.00")),
            ("reversal", "kicker:co_sell", D("-100.00")),
            ("accrual", "base:gold", D("400.00")),
        ],
    )
    assert totals.by_type == {
        "accrual": D("900.00"),
        "kicker": D("100.00"),
        "reversal": D("-600.00"),
    }
    assert totals.by_rule == {"base:gold": D("400.00"), "kicker:co_sell": D("0.00")}
    assert totals.closing_balance == D("500.00")
    nothing = StatementTotals.of(D("0"), [])
    assert (nothing.by_type, nothing.by_rule, str(nothing.closing_balance)) == ({}, {}, "0.00")


# ---- MDF claims


def test_a_claim_is_requested_only_for_what_the_fund_has_now() -> None:
    check_request(D("100.00"), D("100.00"))
    with pytest.raises(
        ClaimConflict, match=r"^claim of 100.01 exceeds the available fund of 100.00$"
    ):
        check_request(D("100.00"), D("100.01"))
    with pytest.raises(ClaimConflict, match="positive amount"):
        check_request(D("100.00"), D("0"))


def test_only_a_requested_claim_is_decided_and_an_approval_never_overdraws() -> None:
    def decision(status: str, approve: bool, available: str, note: str = "") -> tuple[str, str]:
        made = decide(
            "cl-1",
            status,
            approve=approve,
            amount=D("300.00"),
            available_now=D(available),
            note=note,
        )
        return made.status, made.reason

    assert decision("requested", True, "300.00") == ("approved", "approved")
    assert decision("requested", True, "300.00", "receipts checked") == (
        "approved",
        "receipts checked",
    )
    assert decision("requested", False, "0.00") == ("rejected", "rejected")  # no fund needed
    assert decision("requested", False, "0.00", "no proof") == ("rejected", "no proof")
    assert decide(
        "cl-1", "requested", approve=True, amount=D("1"), available_now=D("1"), note=""
    ).debits
    assert not decide(
        "cl-1", "requested", approve=False, amount=D("1"), available_now=D("1"), note=""
    ).debits
    with pytest.raises(
        ClaimConflict, match=r"^claim of 300.00 exceeds the available fund of 200.00$"
    ):
        decision("requested", True, "200.00")
    for decided in ("approved", "rejected"):
        with pytest.raises(ClaimConflict, match=f"^claim cl-1 is already {decided}$"):
            decision(decided, False, "1000.00")


# ---- MDF fund movements


def test_an_accrual_repays_a_deficit_first_and_says_so() -> None:
    fund = Fund("p-1", D("150.00"), [lot("old", "50.00", 30)])
    after, absorbed, note = fund.accrue("new", accrual("200.00"))
    assert (absorbed, after.deficit, note) == (
        D("150.00"),
        D("0.00"),
        "150.00 repaid an MDF deficit",
    )
    assert after.lots[-1] == Lot("new", D("50.00"), NOW + timedelta(days=365))
    assert after.available(NOW) == D("100.00")
    # A deficit larger than the accrual: all of it repays, the lot is empty.
    deep = Fund("p-1", D("500.00"), [])
    after, absorbed, note = deep.accrue("new", accrual("200.00", "capped"))
    assert (absorbed, after.deficit, after.lots[-1].remaining) == (D("200.00"), D("300.00"), D(0))
    assert note == "capped; 200.00 repaid an MDF deficit"
    # No deficit: the lot is the whole accrual and the note unchanged.
    clear = Fund("p-1", D("0.00"), [])
    after, absorbed, note = clear.accrue("new", accrual("200.00", "capped"))
    assert (absorbed, note, after.available(NOW)) == (D("0.00"), "capped", D("200.00"))


def test_a_clawback_takes_its_own_lot_first_then_others_then_owes_the_rest() -> None:
    others = [lot("a", "30.00", 10), lot("b", "40.00", 20)]
    own = lot("own", "50.00", 5)
    whole = claw_back([*others, own], own, D(0), D("50.00"), NOW)
    assert (whole.restored, whole.takes, whole.shortfall) == (D(0), [("own", D("50.00"))], D(0))
    assert whole.note == "clawback: the credit behind this accrual was reversed"
    # Half of its own lot was spent: the rest comes from the soonest-expiring others, and what
    # no lot covers becomes a deficit.
    spent = lot("own", "20.00", 5)
    short = claw_back([*others, spent], spent, D(0), D("100.00"), NOW)
    assert short.takes == [("own", D("20.00")), ("a", D("30.00")), ("b", D("40.00"))]
    assert short.shortfall == D("10.00")
    assert short.note.endswith("; 10.00 already spent becomes a deficit repaid by future accruals")


def test_what_expired_of_its_own_lot_is_restored_before_the_clawback() -> None:
    # The lot expired with 30.00 unused (swept by the expiry job: remaining 0, expired 30).
    own = lot("own", "0.00", -1)
    clawback = claw_back([lot("a", "100.00", 10)], own, D("30.00"), D("50.00"), NOW)
    assert clawback.restored == D("30.00")
    assert clawback.takes == [("own", D("30.00")), ("a", D("20.00"))]
    assert clawback.shortfall == D(0)


# ---- what-if and programs


def context(**overrides: object) -> Context:
    values: dict[str, object] = {
        "tier": "silver",
        "status": "active",
        "customer_key": "domain:acme.example",
        "region": "NA",
        "new_logo": True,
        "new_region": True,
        "earned_in_period": D("0"),
        "mdf_accrued_in_period": D("0"),
    }
    return Context(**(values | overrides))  # type: ignore[arg-type]


def outlook(known: Context, **credit: object) -> tuple[list[tuple[str, Decimal]], object]:
    values: dict[str, object] = {
        "credit_id": "what-if",
        "partner_id": "p-1",
        "kind": "sourced",
        "amount": D("10000.00"),
        "currency": "USD",
        "products": frozenset({"mainframe-migration"}),
        "co_sell": False,
        "close_date": date(2026, 11, 20),
        "at": NOW,
    }
    earnings, accrual = evaluate(PROGRAMS, known, **(values | credit))  # type: ignore[arg-type]
    return [(line.rule, line.amount) for line in earnings.lines], accrual


def test_evaluation_gives_the_earnings_and_mdf_accrual_of_a_credit() -> None:
    lines, accrual = outlook(context())
    assert lines == [
        ("base:silver", D("300.00")),
        ("kicker:new_logo", D("300.00")),
        ("kicker:legacy_migration", D("200.00")),
        ("kicker:new_region", D("100.00")),
    ]
    assert isinstance(accrual, MdfAccrual)
    assert (accrual.amount, accrual.expires_at) == (D("200.00"), NOW + timedelta(days=365))


def test_evaluation_counts_what_the_period_already_holds_and_the_partners_status() -> None:
    lines, accrual = outlook(
        context(earned_in_period=D("249500.00"), mdf_accrued_in_period=D("49900.00"))
    )
    assert sum(amount for _, amount in lines) == D("500.00")  # the 250 000.00 cap
    assert isinstance(accrual, MdfAccrual)
    assert accrual.amount == D("100.00")  # the 50 000.00 MDF cap
    suspended, nothing = outlook(context(status="suspended"))
    assert (suspended, nothing) == ([], None)


def test_active_spiffs_on_a_day_dates_inclusive() -> None:
    def spiff(spiff_id: str, starts: date, ends: date) -> Spiff:
        return Spiff(id=spiff_id, name=spiff_id, starts=starts, ends=ends, rate=D("0.01"))

    programs = IncentivePrograms(
        spiffs=(
            spiff("q4", date(2026, 10, 1), date(2026, 12, 31)),
            spiff("nov", date(2026, 11, 1), date(2026, 11, 30)),
            spiff("q1", date(2027, 1, 1), date(2027, 3, 31)),
        )
    )
    assert programs.active_spiffs(date(2026, 11, 30)) == ["q4", "nov"]
    assert programs.active_spiffs(date(2026, 12, 31)) == ["q4"]
    assert programs.active_spiffs(date(2027, 1, 1)) == ["q1"]
    assert programs.active_spiffs(date(2026, 9, 30)) == []
