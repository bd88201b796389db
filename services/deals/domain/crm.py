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


def merge_crm_change(
    stored: Mapping[str, Any], stamps: dict[str, str], change: CrmDealChanged
) -> dict[str, Any]:
    """The columns `change` changes on the stored opportunity (empty: nothing changed).

    A field is taken only if its source time is not older than the one held for it in `stamps`
    (field -> ISO source time), which is updated in place for every field taken, even when the
    value is the same (a repeat), so an older delivery cannot undo it later."""
    at = change.source_timestamp.isoformat()
    updates: dict[str, Any] = {}

    def offer(field: str, value: Any) -> None:
        if value is None:
            return
        # Times held from before events were read as UTC may lack an offset.
        held = stamps.get(field)
        if held is not None and as_utc(datetime.fromisoformat(held)) > change.source_timestamp:
            return  # a newer value is already held: this delivery is stale for this field
        stamps[field] = at
        if stored[field] != value:  # the same value again (a repeat) is not a change
            updates[field] = value

    for field in CRM_FIELDS:
        offer(field, getattr(change, field))
    if change.products is not None:
        offer("products", list(change.products))
    if change.stage is not None:
        offer("stage", change.stage.value)
        if "stage" in updates and stored["status"] != change.stage.status.value:
            updates["status"] = change.stage.status.value
    if change.customer is not None:
        offer("customer_name", change.customer.name)
        offer("customer_domain", change.customer.domain)
        offer("customer_country", change.customer.country)
        if "customer_name" in updates:
            updates["name_key"] = name_key(change.customer.name)
    if change.change_type == "deleted":
        offer("deleted", True)
    return updates


def is_stale(stamps: Mapping[str, str], change: CrmDealChanged) -> bool:
    """Whether `change` can take nothing: it carries at least one field, and a newer source
    time is already held for every field it carries (so merging it would change nothing)."""
    fields = offered_fields(change)
    return bool(fields) and all(
        field in stamps and as_utc(datetime.fromisoformat(stamps[field])) > change.source_timestamp
        for field in fields
    )


def offered_fields(change: CrmDealChanged) -> list[str]:
    """The stored fields `change` offers a value for (what the merge compares times of)."""
    fields = [field for field in CRM_FIELDS if getattr(change, field) is not None]
    if change.products is not None:
        fields.append("products")
    if change.stage is not None:
        fields.append("stage")
    if change.customer is not None:
        customer = change.customer
        fields += [
            f"customer_{part}"
            for part in ("name", "domain", "country")
            if getattr(customer, part) is not None
        ]
    if change.change_type == "deleted":
        fields.append("deleted")
    return fields


def closed_outcome(updates: Mapping[str, Any]) -> DealStatus | None:
    """The outcome when the merged change closed the opportunity (won or lost), else None."""
    status = updates.get("status")
    if status is None or status == DealStatus.OPEN.value:
        return None
    return DealStatus(status)


def close_linked_registration(
    status: RegistrationStatus, deal_key: str, outcome: DealStatus
) -> tuple[RegistrationStatus, str]:
    """An approved registration closes with its opportunity. One still awaiting review was
    never approved, so it cannot have won the deal: it is rejected, saying why."""
    if status is RegistrationStatus.APPROVED:
        closed = RegistrationStatus.WON if outcome is DealStatus.WON else RegistrationStatus.LOST
        return closed, f"linked CRM opportunity {deal_key} closed {outcome.value}"
    return (
        RegistrationStatus.REJECTED,
        f"linked CRM opportunity {deal_key} closed {outcome.value} before the review",
    )
