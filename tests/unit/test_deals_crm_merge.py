"""The CRM projection's pure rules: field-by-field merge, newest source time wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.deals.domain.crm import (
    close_linked_registration,
    closed_outcome,
    merge_crm_change,
)
from shared.events.crm import CrmDealChanged, CrmSource, Customer, DealStage, DealStatus
from shared.events.registrations import RegistrationStatus

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EMPTY: dict[str, Any] = {
    "name": None,
    "owner": None,
    "partner_ref": None,
    "co_sell": None,
    "currency": None,
    "amount": None,
    "close_date": None,
    "created_at": None,
    "products": None,
    "stage": None,
    "status": "open",
    "customer_name": None,
    "customer_domain": None,
    "customer_country": None,
    "deleted": False,
}


def change(seconds: int, change_type: str = "updated", **fields: Any) -> CrmDealChanged:
    return CrmDealChanged(
        source=CrmSource.SALESFORCE,
        source_id="006x",
        source_event_id=f"e{seconds}",
        source_timestamp=T0 + timedelta(seconds=seconds),
        change_type=change_type,
        **fields,
    )


def test_a_new_value_is_taken_with_its_source_time_and_derived_columns() -> None:
    stamps: dict[str, str] = {}
    updates = merge_crm_change(
        EMPTY,
        stamps,
        change(
            10,
            "created",
            stage=DealStage.CLOSED_WON,
            customer=Customer(name="Northwind Traders Inc."),
            products=("data",),
        ),
    )
    assert updates["stage"] == "closed_won"
    assert updates["status"] == "won"
    assert updates["products"] == ["data"]
    assert updates["customer_name"] == "Northwind Traders Inc."
    assert updates["name_key"]
    assert set(stamps) == {"stage", "customer_name", "products"}
    assert closed_outcome(updates) is DealStatus.WON


def test_the_close_remembers_when_it_happened_by_the_crms_clock() -> None:
    """A registration submitted after this moment may not link the deal; one submitted before
    closes with it (services/deals/domain/links.py)."""
    closing = merge_crm_change(EMPTY, {}, change(10, stage=DealStage.CLOSED_WON))
    assert closing["closed_at"] == T0 + timedelta(seconds=10)
    won = EMPTY | {"stage": "closed_won", "status": "won", "closed_at": T0}
    # Won to lost is the same close: it happened when it first closed.
    assert "closed_at" not in merge_crm_change(won, {}, change(20, stage=DealStage.CLOSED_LOST))
    # A later delivery of the same stage is no close at all.
    assert merge_crm_change(won, {}, change(30, stage=DealStage.CLOSED_WON)) == {}
    reopened = merge_crm_change(won, {}, change(40, stage=DealStage.NEGOTIATION))
    assert reopened["status"] == "open"
    assert reopened["closed_at"] is None


def test_a_stale_field_loses_while_a_new_field_of_the_same_change_lands() -> None:
    stamps = {"stage": (T0 + timedelta(seconds=30)).isoformat()}
    stored = EMPTY | {"stage": "proposal"}
    updates = merge_crm_change(stored, stamps, change(20, stage=DealStage.PROSPECTING, name="R"))
    assert updates == {"name": "R"}
    assert stamps["stage"] == (T0 + timedelta(seconds=30)).isoformat()
    assert closed_outcome(updates) is None


def test_a_repeat_moves_the_field_time_but_changes_nothing() -> None:
    stamps: dict[str, str] = {}
    stored = EMPTY | {"amount": Decimal("10.0000")}
    assert merge_crm_change(stored, stamps, change(40, amount=Decimal("10"))) == {}
    assert stamps == {"amount": (T0 + timedelta(seconds=40)).isoformat()}


def test_a_deletion_is_a_change_once() -> None:
    assert merge_crm_change(EMPTY, {}, change(10, "deleted")) == {"deleted": True}
    assert merge_crm_change(EMPTY | {"deleted": True}, {}, change(10, "deleted")) == {}


def test_linked_registrations_close_with_the_outcome() -> None:
    won = close_linked_registration(RegistrationStatus.APPROVED, "sf:1", DealStatus.WON)
    lost = close_linked_registration(RegistrationStatus.APPROVED, "sf:1", DealStatus.LOST)
    review = close_linked_registration(RegistrationStatus.PENDING_REVIEW, "sf:1", DealStatus.WON)
    assert won == (RegistrationStatus.WON, "linked CRM opportunity sf:1 closed won")
    assert lost == (RegistrationStatus.LOST, "linked CRM opportunity sf:1 closed lost")
    # Awaiting review: not rejected with its old reasons; the review decides, knowing the outcome.
    assert review == (
        RegistrationStatus.PENDING_REVIEW,
        "linked CRM opportunity sf:1 closed won while the registration awaited review:"
        " the review decides it (approved: won, rejected: rejected)",
    )
    assert close_linked_registration(
        RegistrationStatus.PENDING_REVIEW, "sf:1", DealStatus.LOST
    ) == (
        RegistrationStatus.LOST,
        "linked CRM opportunity sf:1 closed lost while the registration awaited review",
    )


def test_a_crm_event_without_a_utc_offset_is_read_as_utc_and_merges_with_aware_times() -> None:
    # An upstream publishing straight onto crm.deals.v1 may leave the offset out; comparing a
    # naive time with the aware stamps held would raise TypeError and stall the partition.
    body = change(0).model_dump(mode="json") | {"source_timestamp": "2026-03-02T09:00:20"}
    naive = CrmDealChanged.model_validate(body)
    assert naive.source_timestamp == T0 + timedelta(seconds=20)
    stamps: dict[str, str] = {}
    merge_crm_change(EMPTY, stamps, change(10, name="First"))
    updates = merge_crm_change(EMPTY, stamps, naive.model_copy(update={"name": "Second"}))
    assert updates["name"] == "Second"
    older = CrmDealChanged.model_validate(
        body | {"source_timestamp": "2026-03-02T09:00:05", "name": "Stale"}
    )
    assert "name" not in merge_crm_change(EMPTY, stamps, older)


def test_a_held_source_time_without_an_offset_is_read_as_utc() -> None:
    # Stamps stored before events were read as UTC may lack an offset; comparing them with an
    # aware source time must not raise.
    stamps = {"name": "2026-03-02T09:00:10"}
    assert "name" not in merge_crm_change(EMPTY, stamps, change(5, name="Stale"))
    assert merge_crm_change(EMPTY, stamps, change(15, name="Newer"))["name"] == "Newer"


def test_after_a_merge_the_first_registered_keeps_the_survivor_and_other_live_ones_are_reviewed() -> (
    None
):
    from services.deals.domain.links import links_after_merge

    approved, pending = RegistrationStatus.APPROVED, RegistrationStatus.PENDING_REVIEW
    verdict = links_after_merge(
        [
            ("late", approved, T0 + timedelta(days=2)),
            ("first", pending, T0),
            ("expired", RegistrationStatus.EXPIRED, T0 - timedelta(days=200)),
            ("middle", RegistrationStatus.SUBMITTED, T0 + timedelta(days=1)),
        ]
    )
    assert (verdict.keeper, verdict.displaced) == ("first", ("middle", "late"))


def test_after_a_merge_a_won_registration_keeps_the_survivor_and_a_lone_holder_stays() -> None:
    from services.deals.domain.links import links_after_merge

    won = RegistrationStatus.WON
    verdict = links_after_merge(
        [
            ("early", RegistrationStatus.APPROVED, T0),
            ("won", won, T0 + timedelta(days=3)),
            ("also-won", won, T0 + timedelta(days=4)),
        ]
    )
    # A second won registration cannot be reviewed again: it keeps its link as history.
    assert (verdict.keeper, verdict.displaced) == ("won", ("early",))
    alone = links_after_merge([("only", RegistrationStatus.APPROVED, T0)])
    assert (alone.keeper, alone.displaced) == ("only", ())
    assert links_after_merge([("lost", RegistrationStatus.LOST, T0)]).keeper is None


def test_reconciliation_judges_drift_by_the_merge_rules() -> None:
    from services.deals.domain.crm import stamp_of
    from services.deals.domain.reconcile import DriftKind, drift_of, tally

    crm_now = change(60, stage=DealStage.NEGOTIATION, amount=Decimal("100"))
    assert drift_of(crm_now, None, {}).kind is DriftKind.MISSING_HERE  # type: ignore[union-attr]
    gone = change(60, "deleted")
    assert drift_of(gone, None, {}) is None
    held = {**EMPTY, "stage": "prospecting", "amount": Decimal("100")}
    older = {"stage": stamp_of(change(0)), "amount": stamp_of(change(0))}
    stale = drift_of(crm_now, held, older)
    assert stale is not None
    assert (stale.kind, stale.fields) == (DriftKind.STALE_HERE, ("stage",))
    # A stage Pollinate holds from a change newer than the CRM's snapshot is not drift.
    newer = {"stage": stamp_of(change(120)), "amount": stamp_of(change(0))}
    assert drift_of(crm_now, held, newer) is None
    deleted = drift_of(gone, held, older)
    assert deleted is not None
    assert deleted.kind is DriftKind.DELETED_UPSTREAM
    assert drift_of(gone, {**held, "deleted": True}, older) is None
    counts = tally(5, [stale, deleted])
    assert (counts.in_sync, counts.stale_here, counts.deleted_upstream) == (3, 1, 1)
