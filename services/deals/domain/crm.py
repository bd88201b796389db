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
