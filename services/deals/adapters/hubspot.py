"""HubSpot webhooks (v3 subscriptions): a POST body is a JSON array of events, possibly from
several portals. Each portal numbers its deals itself, so the portal is part of the deal key
(`hubspot:<portal>:<deal>`) and of the event's own id (`<portal>:<eventId>:<content digest>`:
HubSpot documents `eventId` as not guaranteed to be unique, `event_identity`).

Semantics followed: a property set to '' was cleared; `deal.restore` undoes a deletion;
`deal.merge` deletes the merged deals into the survivor (`newObjectId`, else
`primaryObjectId`), whose registrations follow it; association changes carry no deal field and
are ignored (never a reason to drop the stage change beside them)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from services.deals.adapters import common
from services.deals.adapters.common import (
    MAX_PRODUCTS,
    NO_CUSTOM_STAGES,
    AdapterError,
    Ignored,
    ResyncNeeded,
)
from shared.events.crm import CrmDealChanged, CrmSource, Customer, DealStage

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
# Where a deployment maps the stages of its other pipelines and custom stages.
STAGES_SETTING = "DEALS_HUBSPOT_STAGES"
# HubSpot property -> the canonical field it sets (and clears when set to '').
PROPERTY_FIELDS = {
    "amount": "amount",
    "dealstage": "stage",
    "dealname": "name",
    "closedate": "close_date",
    "hubspot_owner_id": "owner",
    "deal_currency_code": "currency",
}


# What an event says happened: every field naming the change. Not `attemptNumber` (a
# redelivery of the same notification counts up) nor the app's bookkeeping.
IDENTITY_FIELDS = (
    "subscriptionType",
    "objectId",
    "propertyName",
    "propertyValue",
    "occurredAt",
    "primaryObjectId",
    "mergedObjectIds",
    "newObjectId",
    "associationType",
    "fromObjectId",
    "toObjectId",
    "associationRemoved",
)


def from_hubspot(
    batch: Any, stages: Mapping[str, DealStage] = NO_CUSTOM_STAGES
) -> list[CrmDealChanged]:
    """A HubSpot webhook POST body (a JSON array of subscription events), every event valid."""
    return [
        change
        for index, event in enumerate(hubspot_events(batch))
        for change in from_hubspot_event(event, f"[{index}]", stages)
    ]


def hubspot_events(batch: Any) -> list[Any]:
    """The events of a HubSpot webhook POST body, which must be a JSON array."""
    if not isinstance(batch, list):
        raise AdapterError("HubSpot delivers a JSON array of events; got " + type(batch).__name__)
    return common.array(batch, "batch")


def from_hubspot_event(
    event: Any, where: str, stages: Mapping[str, DealStage] = NO_CUSTOM_STAGES
) -> list[CrmDealChanged]:
    """One subscription event of a HubSpot batch; `where` is its path (`[index]`), `stages`
    the deployment's own stage ids (DEALS_HUBSPOT_STAGES)."""
    kind = common.string(
        common.require(event, "subscriptionType", where), f"{where}.subscriptionType", 64
    )
    kind = _deal_subscription(event, kind, where)
    portal = common.ident(common.require(event, "portalId", where), f"{where}.portalId")
    event_id = event_identity(
        portal, common.ident(common.require(event, "eventId", where), f"{where}.eventId"), event
    )
    at = common.from_epoch_ms(common.require(event, "occurredAt", where), f"{where}.occurredAt")
    if kind == "deal.associationChange":
        _association(event, where, portal, at)
    if kind == "deal.merge":
        return _merge(event, where, portal, event_id, at)
    identity: dict[str, Any] = {
        "source": CrmSource.HUBSPOT,
        "source_id": f"{portal}:"
        + _object_id(common.require(event, "objectId", where), f"{where}.objectId"),
        "source_event_id": event_id,
        "source_timestamp": at,
    }
    if kind == "deal.creation":
        return [CrmDealChanged(**identity, change_type="created", created_at=at)]
    if kind == "deal.deletion":
        return [CrmDealChanged(**identity, change_type="deleted")]
    if kind == "deal.restore":
        return [CrmDealChanged(**identity, change_type="updated", deleted=False)]
    if kind == "deal.propertyChange":
        # Properties we do not model are accepted and carry no field change.
        changed = _property(event, where, stages)
        return [CrmDealChanged(**identity, change_type="updated", **changed)]
    raise AdapterError(f"{where}.subscriptionType {kind!r} is not supported")


# The object type id HubSpot's generic subscriptions (`object.*`) name deals by.
DEAL_OBJECT_TYPE = "0-3"


def _deal_subscription(event: dict[str, Any], kind: str, where: str) -> str:
    """The event's subscription as `deal.<action>`: its legacy name (`deal.propertyChange`),
    or its generic one (`object.propertyChange`, the object's type in `objectTypeId`: a deal
    is 0-3), which an app subscribed with `crmObjects` receives. A generic association change
    names its objects' types in its association type (DEAL_TO_COMPANY), read as the legacy
    one. Another object's event is ignored."""
    if kind.startswith("deal."):
        return kind
    if not kind.startswith("object."):
        raise Ignored(f"{where}.subscriptionType {kind!r} is not a deal subscription")
    action = kind.removeprefix("object.")
    if action == "associationChange":
        return "deal.associationChange"
    type_id = common.string(
        common.require(event, "objectTypeId", where), f"{where}.objectTypeId", 64
    )
    if type_id != DEAL_OBJECT_TYPE:
        raise Ignored(f"{where}.objectTypeId {type_id!r} is not a deal ({DEAL_OBJECT_TYPE})")
    return f"deal.{action}"


def event_identity(portal: str, event_id: str, event: dict[str, Any]) -> str:
    """An event's own id: `<portal>:<eventId>:<digest of what it says happened>`. HubSpot
    documents `eventId` as not guaranteed to be unique, and distinct notifications do share
    one (three changes of two deals under one id were answered `duplicate` but the first, and
    lost: HubSpot never resends a batch answered 2xx). The same notification delivered again
    (another `attemptNumber`) has the same id, so it is still absorbed."""
    said = [event.get(field) for field in IDENTITY_FIELDS]
    text = json.dumps(said, separators=(",", ":"), ensure_ascii=False, default=str)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return f"{portal}:{event_id}:{digest}"


def _association(event: dict[str, Any], where: str, portal: str, at: datetime) -> None:
    """A deal's company or line items changed: the deal is fetched with them (the event says
    only which objects were linked). Other associations carry nothing Pollinate keeps."""
    kind = common.string(event.get("associationType") or "", f"{where}.associationType", 64).upper()
    if kind in ("DEAL_TO_COMPANY", "DEAL_TO_LINE_ITEM"):
        deal = common.require(event, "fromObjectId", where)
    elif kind in ("COMPANY_TO_DEAL", "LINE_ITEM_TO_DEAL"):
        deal = common.require(event, "toObjectId", where)
    else:
        raise Ignored(f"{where}: a {kind or 'deal'} association carries nothing Pollinate keeps")
    record = f"{portal}:{_object_id(deal, f'{where}.objectId')}"
    raise ResyncNeeded(f"{where}: {kind} changed: the deal is fetched with it", (record,), at)


def _object_id(value: Any, where: str) -> str:
    """A HubSpot object id: a positive integer, as a JSON number or its digits (" " and "0"
    made deal keys such as hubspot:44556677: )."""
    text = common.ident(value, where)
    if not (text.isascii() and text.isdigit() and text[0] != "0"):
        raise AdapterError(
            f"{where}: {text[:64]!r} is not a HubSpot object id (a positive integer)"
        )
    return text


def _merge(
    event: dict[str, Any], where: str, portal: str, event_id: str, at: Any
) -> list[CrmDealChanged]:
    """The survivor (kept, or created by the merge) and each merged deal, deleted into it."""
    primary = _object_id(
        common.require(event, "primaryObjectId", where), f"{where}.primaryObjectId"
    )
    new = event.get("newObjectId")
    survivor = primary if new in (None, "") else _object_id(new, f"{where}.newObjectId")
    merged = [
        _object_id(merged_id, f"{where}.mergedObjectIds[{index}]")
        for index, merged_id in enumerate(
            common.array(
                common.require(event, "mergedObjectIds", where), f"{where}.mergedObjectIds"
            )
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


def _property(event: dict[str, Any], where: str, stages: Mapping[str, DealStage]) -> dict[str, Any]:
    """The field a HubSpot property change sets, or clears when the value is '' (none for a
    property not modelled); a stage is read with the deployment's own `stages` first."""
    prop = common.string(common.require(event, "propertyName", where), f"{where}.propertyName")
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
        return {"amount": common.money(value, at, None)}
    if field == "stage":
        return {"stage": common.map_stage(HUBSPOT_STAGES, value, at, stages, STAGES_SETTING)}
    if field == "name":
        return {"name": common.name(value, at)}
    if field == "close_date":
        return {"close_date": common.from_epoch_ms(value, at).date()}
    if field == "owner":
        return {"owner": common.optional_ident(value, at)}
    return {"currency": common.currency(value, at)}


# What the CRM API is asked for, and the deal properties a snapshot offers (and clears).
DEAL_PROPERTIES = (*PROPERTY_FIELDS, "hs_lastmodifieddate", "createdate")
COMPANY_PROPERTIES = ("name", "domain", "country")
LINE_ITEM_PROPERTIES = ("hs_sku", "hs_product_id", "name")


def from_hubspot_deal(
    portal: str,
    deal: Any,
    company: Any | None,
    line_items: list[Any],
    at_least: datetime | None = None,
    stages: Mapping[str, DealStage] = NO_CUSTOM_STAGES,
    associations: bool = True,
) -> CrmDealChanged:
    """A deal as HubSpot's CRM API returns it (`GET /crm/v3/objects/deals/<id>`), with its
    associated company and line items: a snapshot of the whole deal (a property empty or null
    is cleared), its customer from the company (name, domain, country) and its products from
    the line items (SKU, else product id, else name). Taken as of the deal's `updatedAt`, or
    `at_least` (when the association change that asked for it happened) if later: associating a
    company does not always move the deal's own modification time. With `associations` (the
    deal was read with them), no company or no line items is none now: the customer or the
    products are cleared (a removed company's name and domain stayed, and kept counting in
    conflict checks); without (a search answers no associations), they are left as they are."""
    deal = common.obj(deal, "deal")
    deal_id = common.ident(common.require(deal, "id", "deal"), "deal.id")
    properties = common.obj(deal.get("properties"), "deal.properties")
    updated = common.parse_datetime(common.require(deal, "updatedAt", "deal"), "deal.updatedAt")
    at = max(updated, at_least) if at_least is not None else updated
    fields: dict[str, Any] = {}
    cleared: list[str] = []
    for prop, field in PROPERTY_FIELDS.items():
        value = properties.get(prop)
        where = f"deal.properties.{prop}"
        if value in (None, ""):
            if prop in properties and field != "stage":
                cleared.append(field)
            continue
        if field == "close_date":
            fields[field] = common.parse_date(value, where)
        else:
            change = {"propertyName": prop, "propertyValue": value}
            fields.update(_property(change, "deal", stages))
    customer = None
    if company is not None:
        company_properties = common.obj(
            common.obj(company, "company").get("properties"), "company.properties"
        )
        customer = Customer(
            name=common.name(company_properties.get("name"), "company.properties.name"),
            domain=common.domain(company_properties.get("domain"), "company.properties.domain"),
            country=common.country(company_properties.get("country"), "company.properties.country"),
        )
    products = tuple(
        common.ident(_product(item, index), f"line_items[{index}]")
        for index, item in enumerate(line_items[:MAX_PRODUCTS])
    )
    if associations:
        parts = ("name", "domain", "country")
        cleared += [
            f"customer.{part}"
            for part in parts
            if customer is None or getattr(customer, part) is None
        ]
        cleared += [] if products else ["products"]
    return _read_through_api(
        portal,
        deal_id,
        at,
        "updated",
        deleted=bool(deal.get("archived")),
        customer=customer,
        products=products or None,
        cleared=tuple(cleared),
        **fields,
    )


def archived_deal(portal: str, deal_id: str, at: datetime) -> CrmDealChanged:
    """A deal the CRM API no longer has (404): deleted as of `at`."""
    return _read_through_api(portal, deal_id, at, "deleted", version_suffix=":gone")


def _read_through_api(
    portal: str,
    deal_id: str,
    at: datetime,
    change_type: str,
    version_suffix: str = "",
    **fields: Any,
) -> CrmDealChanged:
    """A deal's change as the CRM API read it (not a webhook's event): its own event id names
    the read (`<portal>:rest:<deal>@<as of>`, with `version_suffix`)."""
    return CrmDealChanged(
        source=CrmSource.HUBSPOT,
        source_id=f"{portal}:{deal_id}",
        source_event_id=f"{portal}:rest:{deal_id}@{at.isoformat()}{version_suffix}",
        source_timestamp=at,
        change_type=change_type,
        **fields,
    )


def _product(item: Any, index: int) -> Any:
    item_properties = common.obj(
        common.obj(item, f"line_items[{index}]").get("properties"), "properties"
    )
    for key in LINE_ITEM_PROPERTIES:
        if item_properties.get(key) not in (None, ""):
            return item_properties[key]
    raise AdapterError(f"line_items[{index}]: no hs_sku, hs_product_id or name")
