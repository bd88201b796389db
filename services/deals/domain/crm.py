"""The CRM opportunity projection's rules: field-by-field merge (newest source time wins) and
what a linked registration becomes when its opportunity closes.

No I/O: the service layer loads the stored opportunity and its field times, applies the merge
and stores the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from services.deals.domain.customers import name_key
from services.deals.domain.lifecycle import close_with_opportunity
from shared.events import as_utc
from shared.events.crm import CrmDealChanged, DealStatus
from shared.events.registrations import RegistrationStatus

# Plain fields a change may carry, stored under the same name.
CRM_FIELDS = (
    "name",
    "owner",
    "partner_ref",
    "co_sell",
    "currency",
    "amount",
    "close_date",
    "created_at",
)

# Linked registrations that close with their opportunity.
CLOSING_WITH_DEAL = (RegistrationStatus.APPROVED, RegistrationStatus.PENDING_REVIEW)


# What a change may clear (`CrmDealChanged.cleared`) -> the stored column. A stage is never
# cleared: every CRM requires one.
CLEARABLE = {
    **{field: field for field in CRM_FIELDS if field != "created_at"},
    "products": "products",
    "customer.name": "customer_name",
    "customer.domain": "customer_domain",
    "customer.country": "customer_country",
}


def stamp_of(change: CrmDealChanged) -> str:
    """What a field's held source time is stored as: the ISO time, with Salesforce's commit
    and sequence numbers when the change has them (`time|commit|sequence`), which order the
    changes of one moment."""
    at = change.source_timestamp.isoformat()
    if change.source_sequence is None and change.source_commit is None:
        return at
    commit = "" if change.source_commit is None else str(change.source_commit)
    sequence = "" if change.source_sequence is None else str(change.source_sequence)
    return f"{at}|{commit}|{sequence}"


def _newer_held(held: str, change: CrmDealChanged) -> bool:
    """Whether the held stamp is newer than `change`: a later source time, or the same time
    with a later (commit, sequence) when both know theirs. At the same moment with nothing to
    order them, the later delivery wins (as before)."""
    at, _, order = held.partition("|")
    # Times held from before events were read as UTC may lack an offset.
    held_time = as_utc(datetime.fromisoformat(at))
    if held_time != change.source_timestamp:
        return held_time > change.source_timestamp
    if not order or change.source_sequence is None:
        return False
    commit, _, sequence = order.partition("|")
    if not sequence:
        return False
    held_order = (int(commit) if commit else -1, int(sequence))
    change_order = (
        change.source_commit if change.source_commit is not None else -1,
        change.source_sequence,
    )
    return held_order > change_order


def merge_crm_change(
    stored: Mapping[str, Any], stamps: dict[str, str], change: CrmDealChanged
) -> dict[str, Any]:
    """The columns `change` changes on the stored opportunity (empty: nothing changed).

    A field is taken only if its source time is not older than the one held for it in `stamps`
    (field -> stamp, see `stamp_of`), which is updated in place for every field taken, even
    when the value is the same (a repeat), so an older delivery cannot undo it later. A field
    the change clears is taken as empty under the same rule."""
    at = stamp_of(change)
    updates: dict[str, Any] = {}

    def offer(field: str, value: Any) -> None:
        held = stamps.get(field)
        if held is not None and _newer_held(held, change):
            return  # a newer value is already held: this delivery is stale for this field
        stamps[field] = at
        if stored.get(field) != value:  # the same value again (a repeat) is not a change
            updates[field] = value

    for field, value in _offered(change).items():
        offer(field, value)
    stage = change.stage
    if stage is not None and "stage" in updates and stored["status"] != stage.status.value:
        updates["status"] = stage.status.value
        # When it closed, by the CRM's clock: a registration submitted after that may not
        # link it (services/deals/domain/links.py). Won to lost is still the same close.
        if stage.status is DealStatus.OPEN:
            updates["closed_at"] = None
        elif stored["status"] == DealStatus.OPEN.value:
            updates["closed_at"] = change.source_timestamp
    if "customer_name" in updates:
        updates["name_key"] = name_key(updates["customer_name"]) if updates["customer_name"] else ""
    return updates


def _offered(change: CrmDealChanged) -> dict[str, Any]:
    """Stored column -> the value `change` offers for it (None: cleared)."""
    offered: dict[str, Any] = {
        field: getattr(change, field) for field in CRM_FIELDS if getattr(change, field) is not None
    }
    if change.products is not None:
        offered["products"] = list(change.products)
    if change.stage is not None:
        offered["stage"] = change.stage.value
    if change.customer is not None:
        for part in ("name", "domain", "country"):
            if getattr(change.customer, part) is not None:
                offered[f"customer_{part}"] = getattr(change.customer, part)
    for field in change.cleared:
        column = CLEARABLE.get(field)
        if column is not None and column not in offered:
            offered[column] = None
    if change.deleted is not None:
        offered["deleted"] = change.deleted
    elif change.change_type == "deleted":
        offered["deleted"] = True
    if change.merged_into is not None:  # the survivor's key, downstream moves to it
        offered["merged_into"] = f"{change.source.value}:{change.merged_into}"
    elif change.deleted is False:  # restored: merged into nothing any more
        offered["merged_into"] = None
    return offered


def is_stale(stamps: Mapping[str, str], change: CrmDealChanged) -> bool:
    """Whether `change` can take nothing: it carries at least one field, and a newer source
    time is already held for every field it carries (so merging it would change nothing)."""
    fields = offered_fields(change)
    return bool(fields) and all(
        field in stamps and _newer_held(stamps[field], change) for field in fields
    )


def offered_fields(change: CrmDealChanged) -> list[str]:
    """The stored fields `change` offers a value for (what the merge compares times of)."""
    return list(_offered(change))


def closed_outcome(updates: Mapping[str, Any]) -> DealStatus | None:
    """The outcome when the merged change closed the opportunity (won or lost), else None."""
    status = updates.get("status")
    if status is None or status == DealStatus.OPEN.value:
        return None
    return DealStatus(status)


def close_linked_registration(
    status: RegistrationStatus, deal_key: str, outcome: DealStatus
) -> tuple[RegistrationStatus, str]:
    """A linked registration when its opportunity closes (services/deals/domain/lifecycle.py
    decides: one awaiting review is not rejected with its old reasons)."""
    return close_with_opportunity(status, deal_key, outcome)
