"""HubSpot webhooks (v3 subscriptions): a POST body is a JSON array of events, possibly from
several portals. Each portal numbers its deals itself, so the portal is part of the deal key
(`hubspot:<portal>:<deal>`) and of the event's own id (`<portal>:<eventId>`).

Semantics followed: a property set to '' was cleared; `deal.restore` undoes a deletion;
`deal.merge` deletes the merged deals into the survivor (`newObjectId`, else
`primaryObjectId`), whose registrations follow it; association changes carry no deal field and
are ignored (never a reason to drop the stage change beside them)."""

from __future__ import annotations

from typing import Any

from services.deals.adapters.common import (
    AdapterError,
    Ignored,
    array,
    currency,
    from_epoch_ms,
    ident,
    map_stage,
    money,
    name,
    optional_ident,
    require,
    string,
)
from shared.events.crm import CrmDealChanged, CrmSource, DealStage

S = DealStage
HUBSPOT_STAGES = {
    "appointmentscheduled": S.PROSPECTING,
    "qualifiedtobuy": S.QUALIFICATION,
    "presentationscheduled": S.VALIDATION,
    "decisionmakerboughtin": S.PROPOSAL,
    "contractsent": S.NEGOTIATION,
    "closedwon": S.CLOSED_WON,
    "closedlost": S.CLOSED_LOST,
}
# HubSpot property -> the canonical field it sets (and clears when set to '').
PROPERTY_FIELDS = {
    "amount": "amount",
    "dealstage": "stage",
    "dealname": "name",
    "closedate": "close_date",
    "hubspot_owner_id": "owner",
    "deal_currency_code": "currency",
}


def from_hubspot(batch: Any) -> list[CrmDealChanged]:
    """A HubSpot webhook POST body (a JSON array of subscription events), every event valid."""
    return [
        change
        for index, event in enumerate(hubspot_events(batch))
        for change in from_hubspot_event(event, f"[{index}]")
    ]


def hubspot_events(batch: Any) -> list[Any]:
    """The events of a HubSpot webhook POST body, which must be a JSON array."""
    if not isinstance(batch, list):
        raise AdapterError("HubSpot delivers a JSON array of events; got " + type(batch).__name__)
    return array(batch, "batch")


def from_hubspot_event(event: Any, where: str) -> list[CrmDealChanged]:
    """One subscription event of a HubSpot batch; `where` is its path (`[index]`)."""
    kind = string(require(event, "subscriptionType", where), f"{where}.subscriptionType", 64)
    if not kind.startswith("deal."):
        raise Ignored(f"{where}.subscriptionType {kind!r} is not a deal subscription")
    portal = ident(require(event, "portalId", where), f"{where}.portalId")
    if kind == "deal.associationChange":
        raise Ignored(f"{where}: deal associations carry no deal field Pollinate keeps")
    event_id = f"{portal}:" + ident(require(event, "eventId", where), f"{where}.eventId")
    at = from_epoch_ms(require(event, "occurredAt", where), f"{where}.occurredAt")
    if kind == "deal.merge":
        return _merge(event, where, portal, event_id, at)
    common: dict[str, Any] = {
        "source": CrmSource.HUBSPOT,
        "source_id": f"{portal}:" + ident(require(event, "objectId", where), f"{where}.objectId"),
        "source_event_id": event_id,
        "source_timestamp": at,
    }
    if kind == "deal.creation":
        return [CrmDealChanged(**common, change_type="created", created_at=at)]
    if kind == "deal.deletion":
        return [CrmDealChanged(**common, change_type="deleted")]
    if kind == "deal.restore":
        return [CrmDealChanged(**common, change_type="updated", deleted=False)]
    if kind == "deal.propertyChange":
        # Properties we do not model are accepted and carry no field change.
        return [CrmDealChanged(**common, change_type="updated", **_property(event, where))]
    raise AdapterError(f"{where}.subscriptionType {kind!r} is not supported")


def _merge(
    event: dict[str, Any], where: str, portal: str, event_id: str, at: Any
) -> list[CrmDealChanged]:
    """The survivor (kept, or created by the merge) and each merged deal, deleted into it."""
    primary = ident(require(event, "primaryObjectId", where), f"{where}.primaryObjectId")
    survivor = optional_ident(event.get("newObjectId"), f"{where}.newObjectId") or primary
    merged = [
        ident(merged_id, f"{where}.mergedObjectIds[{index}]")
        for index, merged_id in enumerate(
            array(require(event, "mergedObjectIds", where), f"{where}.mergedObjectIds")
        )
    ]
    if primary != survivor:
        merged.append(primary)
    into = f"{portal}:{survivor}"
    kept = CrmDealChanged(
        source=CrmSource.HUBSPOT,
        source_id=into,
        source_event_id=f"{event_id}:{survivor}",
        source_timestamp=at,
        change_type="updated",
        deleted=False,
    )
    return [kept] + [
        CrmDealChanged(
            source=CrmSource.HUBSPOT,
            source_id=f"{portal}:{loser}",
            source_event_id=f"{event_id}:{loser}",
            source_timestamp=at,
            change_type="deleted",
            merged_into=into,
        )
        for loser in dict.fromkeys(merged)
        if loser != survivor
    ]


def _property(event: dict[str, Any], where: str) -> dict[str, Any]:
    """The field a HubSpot property change sets, or clears when the value is '' (none for a
    property not modelled)."""
    prop = string(require(event, "propertyName", where), f"{where}.propertyName")
    value = event.get("propertyValue")
    at = f"{where}.propertyValue"
    field = PROPERTY_FIELDS.get(prop)
    if field is None:
        return {}
    if value == "":
        if field == "stage":
            raise AdapterError(f"{at}: a deal stage cannot be cleared")
        return {"cleared": (field,)}
    if field == "amount":
        return {"amount": money(value, at, None)}
    if field == "stage":
        return {"stage": map_stage(HUBSPOT_STAGES, value, at)}
    if field == "name":
        return {"name": name(value, at)}
    if field == "close_date":
        return {"close_date": from_epoch_ms(value, at).date()}
    if field == "owner":
        return {"owner": optional_ident(value, at)}
    return {"currency": currency(value, at)}
