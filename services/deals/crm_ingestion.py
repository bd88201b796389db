"""CRM ingestion: payloads exactly as each upstream source delivers them (Salesforce CDC,
HubSpot webhooks, AWS ACE, Microsoft referrals) become canonical changes on crm.deals.v1.

Each delivered item is read alone and answered alone (accepted, duplicate, stale, ignored,
refused with its reason and index): a bad item never takes a valid neighbour with it, and a
refused one is kept with its reason for operators. The event id of a change derives from the
source's own event id, so a repeated delivery is recorded (and counted) once.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import partial
from typing import Any

from services.deals import crm_repository, repository
from services.deals.adapters import (
    AdapterError,
    Ignored,
    ResyncNeeded,
    from_aws_ace,
    from_hubspot_event,
    from_microsoft_referral,
    from_salesforce_cdc,
    hubspot_events,
)
from services.deals.adapters.common import (
    NO_CUSTOM_STAGES,
    array,
    obj,
    parse_datetime,
    require,
)
from services.deals.adapters.partner_programs import (
    MICROSOFT_REFERRALS_API,
    from_ace_event,
    from_microsoft_event,
)
from services.deals.adapters.salesforce import ACCOUNT_RECORD, MULTI_CURRENCY_ORG, SalesforceOrg
from services.deals.crm_at_intake import ProjectionAtIntake
from services.deals.domain.crm import is_stale
from shared.db import Connection
from shared.errors import Unprocessable
from shared.events.crm import CrmDealChanged, CrmRawReceived, CrmSource, DealStage
from shared.inputs import MalformedJson as MalformedJson  # the CRM routes answer 400 with it
from shared.inputs import parse_json as parse_json
from shared.name_ids import NameIds
from shared.outbox import Outbox, OutgoingEvent
from shared.topics import CRM_DEALS, group_id_of, raw_crm_topic

# Deals' consumer of crm.deals.v1: its inbox holds the event ids of a week.
CRM_PROJECTION = "crm-projection"
CRM_EVENT_IDS = NameIds(uuid.UUID("0b6d3f0e-5a7c-4a43-9d0e-2b1f6c9a8e21"))
# A source's clock may run a little ahead of ours; a moment further ahead is refused (it would
# win every later change of the fields it sets).
MAX_FUTURE_SKEW = timedelta(minutes=5)


def event_id(change: CrmDealChanged) -> uuid.UUID:
    """The id of a change's event: named by its source and the source's own event id, so a
    repeated delivery is the same event and no source can take another source's ids (a source
    name never contains the separator); it begins with the change's source time, which every
    delivery of the event carries, so the keys of deals' outbox and inbox grow at their right
    edge instead of taking each insert at a random page. (A source event id sent again with
    another source time is another event.)"""
    return CRM_EVENT_IDS.ordered(change.source_timestamp, _change_name(change))


def _change_name(change: CrmDealChanged) -> str:
    return f"{change.source.value}/{change.source_event_id}"


def _raw_name(source: CrmSource, text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{source.value}/raw/{digest}"


def _earlier_id(event: OutgoingEvent) -> uuid.UUID | None:
    """The id versions before session 28 gave the event (name-based alone: uuid5)."""
    payload = event.payload
    if isinstance(payload, CrmDealChanged):
        return CRM_EVENT_IDS.uuid(_change_name(payload))
    if isinstance(payload, CrmRawReceived):
        return CRM_EVENT_IDS.uuid(_raw_name(payload.source, payload.item))
    return None


async def not_recorded_earlier(
    conn: Connection, outbox: Outbox, events: list[OutgoingEvent]
) -> list[OutgoingEvent]:
    """`events` without those recorded under the id an earlier version gave them (the outbox
    keeps a day of events, the CRM projection's inbox a week), so a change or item recorded
    before an upgrade and delivered again after it is not recorded or applied twice. This
    can go a week after the last instance of a version before session 28 stopped."""
    earlier = {event.event_id: _earlier_id(event) for event in events}
    ids = [i for i in earlier.values() if i is not None]
    group = group_id_of(outbox.schema, CRM_PROJECTION)
    held = await crm_repository.recorded_earlier(conn, ids, group) if ids else set()
    return [event for event in events if earlier[event.event_id] not in held]


class Outcome(StrEnum):
    """What became of one delivered item (or of one record of it)."""

    ACCEPTED = "accepted"  # recorded on crm.deals.v1 now
    DUPLICATE = "duplicate"  # recorded before (or earlier in the same delivery)
    STALE = "stale"  # the projection holds newer values for every field it carries
    IGNORED = "ignored"  # valid, but nothing Pollinate keeps (another entity, an association)
    RESYNC = "resync"  # stands for changes it does not carry: the records are fetched
    REFUSED = "refused"  # cannot be read: kept with the reason for operators, never dropped


@dataclass(frozen=True)
class Item:
    """One delivered item (a Salesforce message, a HubSpot event, an opportunity, a referral)
    as its adapter read it: its changes, or why it is ignored or refused."""

    index: int
    raw: Any
    changes: tuple[CrmDealChanged, ...] = ()
    ignored: str | None = None
    refused: str | None = None
    resync: ResyncNeeded | None = None


@dataclass(frozen=True)
class Delivery:
    """How a CRM's items arrived (kept with each on its raw topic): `transport` http (a
    CRM's delivery to `route`) or pull (from the API `route`), and the sender's id of it."""

    transport: str
    route: str
    delivery_id: str | None = None


@dataclass(frozen=True)
class ItemOutcome:
    index: int
    outcome: Outcome
    deal_key: str | None = None
    reason: str | None = None


def read_item(
    index: int, raw: Any, read: Callable[[Any], list[CrmDealChanged]], prefix: str = ""
) -> Item:
    """Read one item; an item that cannot be read is refused with the reason (its path
    prefixed with `prefix`), never taking its neighbours with it."""
    try:
        return Item(index, raw, tuple(read(raw)))
    except ResyncNeeded as gap:
        return Item(index, raw, resync=gap)
    except Ignored as why:
        return Item(index, raw, ignored=_at(prefix, str(why)))
    except (AdapterError, Unprocessable) as error:
        return Item(index, raw, refused=_at(prefix, str(error)))
    except ValueError as error:  # pydantic validation of the canonical change
        return Item(index, raw, refused=_at(prefix, f"cannot build canonical deal: {error}"))
    except ArithmeticError as error:  # a value past what date or Decimal arithmetic holds
        return Item(index, raw, refused=_at(prefix, f"a value is out of range: {error}"))


def _at(prefix: str, message: str) -> str:
    return message if not prefix or message.startswith(prefix) else f"{prefix}.{message}"


async def record_items(
    conn: Connection,
    outbox: Outbox,
    source: CrmSource,
    items: Sequence[Item],
    at: datetime,
    delivery: Delivery | None = None,
    at_intake: ProjectionAtIntake | None = None,
) -> list[ItemOutcome]:
    """Record every readable change on crm.deals.v1, every refused item (with its reason) and
    every resync asked for, in the caller's transaction, and answer each item's outcome, in
    delivery order. A change the projection already holds newer values for is stale, not
    recorded. Every item read (not refused) is also published as delivered on its source's
    raw topic. With `at_intake`, the changes recorded now are projected in the same
    transaction (services/deals/crm_at_intake.py)."""
    changes = [change for item in items for change in item.changes]
    keys = sorted({change.deal_key for change in changes})
    # The deals' locks first, in ascending order: two deliveries of the same changes in
    # opposite orders otherwise met on the outbox's event-id index in opposite orders and one
    # was a deadlock (a 503; found from outside).
    await repository.lock_crm_deal_keys(conn, changes)
    stamps = await repository.field_stamps(conn, keys) if keys else {}
    stale = {id(c) for c in changes if is_stale(stamps.get(c.deal_key, {}), c)}
    fresh = [
        OutgoingEvent(CRM_DEALS, change, change.deal_key, event_id=event_id(change))
        for change in changes
        if id(change) not in stale
    ]
    fresh = await not_recorded_earlier(conn, outbox, fresh)
    recorded_now = await outbox.publish_many(conn, fresh)
    if at_intake is not None:
        await at_intake.apply(conn, outbox, recorded_now)
    recorded = {envelope.id for envelope in recorded_now}
    await _schedule_resyncs(conn, source, items, at)
    survivors = sorted({c.merged_into for c in changes if c.merged_into is not None})
    if survivors:  # a merge moves fields onto the survivor that no event carries: fetch it
        requests: list[tuple[str, datetime | None]] = [(s, None) for s in survivors]
        await crm_repository.schedule_resyncs(conn, source.value, requests, "merged into", at)
    refused = [item for item in items if item.refused is not None]
    if refused:
        await crm_repository.record_refused(
            conn,
            source.value,
            at,
            [(item.index, item.refused or "", _raw(item.raw)) for item in refused],
        )
    outcomes = _outcomes(source, items, stale, recorded)
    if delivery is not None:
        raws = raw_events(source, items, outcomes, delivery, at)
        await outbox.publish_many(conn, await not_recorded_earlier(conn, outbox, raws))
    return outcomes


def raw_events(
    source: CrmSource,
    items: Sequence[Item],
    outcomes: Sequence[ItemOutcome],
    delivery: Delivery,
    at: datetime,
) -> list[OutgoingEvent]:
    """Each item read (a refused one is kept in crm_refused instead) as delivered, for its
    source's raw topic."""
    events = []
    for item in items:
        mine = [o for o in outcomes if o.index == item.index]
        if item.refused is not None or not mine:
            continue
        said = tuple(dict.fromkeys(o.outcome.value for o in mine))
        keys = tuple(dict.fromkeys(o.deal_key for o in mine if o.deal_key))
        moment = min((change.source_timestamp for change in item.changes), default=None)
        events.append(raw_event(source, item.raw, item.index, said, keys, delivery, at, moment))
    return events


def raw_event(
    source: CrmSource,
    raw: Any,
    index: int,
    outcomes: tuple[str, ...],
    deal_keys: tuple[str, ...],
    delivery: Delivery,
    at: datetime,
    moment: datetime | None,
) -> OutgoingEvent:
    """One item as delivered, for its source's raw topic. Its id derives from the source and
    the item's text, so the same item delivered again is recorded once, and begins with
    `moment`, the earliest source time of the changes read from it (None: it carries none)."""
    text = exact_json(raw)
    payload = CrmRawReceived(
        source=source,
        transport=delivery.transport,
        route=delivery.route,
        delivery_id=delivery.delivery_id,
        index=index,
        received_at=at,
        item=text,
        outcomes=outcomes,
        deal_keys=deal_keys,
    )
    name = _raw_name(source, text)
    ident = CRM_EVENT_IDS.uuid(name) if moment is None else CRM_EVENT_IDS.ordered(moment, name)
    subject = deal_keys[0] if deal_keys else source.value
    return OutgoingEvent(raw_crm_topic(source.value), payload, subject, ident)


def exact_json(value: Any) -> str:
    """JSON text of a parsed item with its numbers as sent (parse_json reads fractions as
    exact Decimals, which the json module cannot write as numbers). The json module's C encoder
    writes it all: each Decimal goes in as a string holding a marker made for this call, which
    no item can contain, and its digits then replace that string (a walk in Python took
    140 us a Salesforce change)."""
    numbers: list[str] = []
    marker = secrets.token_hex(16)

    def placeholder(number: Any) -> str:
        if not isinstance(number, Decimal):
            raise TypeError(f"{type(number).__name__} is not JSON")
        numbers.append(str(number))
        return f"{marker}{len(numbers) - 1}"

    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=placeholder)
    if _LONE_SURROGATE.search(text):
        # JSON lets a string escape half of a UTF-16 pair alone ("\ud800"); such a character
        # has no UTF-8 form, so the raw event could not be written (found from outside: a
        # signed delivery with one in any field answered 500). It is written escaped, as sent.
        text = _LONE_SURROGATE.sub(lambda found: f"\\u{ord(found[0]):04x}", text)
    if not numbers:
        return text
    return re.sub(f'"{marker}([0-9]+)"', lambda found: numbers[int(found[1])], text)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


async def _schedule_resyncs(
    conn: Connection, source: CrmSource, items: Sequence[Item], at: datetime
) -> None:
    for item in items:
        if item.resync is None:
            continue
        gap = item.resync
        # `since`: when the event happened (a window's start; a snapshot is not older).
        requests: list[tuple[str, datetime | None]] = [(r, gap.since) for r in gap.record_ids]
        await crm_repository.schedule_resyncs(
            conn, source.value, requests or [("*", gap.since)], str(gap), at
        )


def _outcomes(
    source: CrmSource, items: Sequence[Item], stale: set[int], recorded: set[uuid.UUID]
) -> list[ItemOutcome]:
    outcomes: list[ItemOutcome] = []
    for item in items:
        if item.refused is not None:
            outcomes.append(ItemOutcome(item.index, Outcome.REFUSED, reason=item.refused))
        elif item.resync is not None:
            reason = str(item.resync)
            outcomes += [
                ItemOutcome(item.index, Outcome.RESYNC, _deal_key(source, record), reason)
                for record in item.resync.record_ids
            ] or [ItemOutcome(item.index, Outcome.RESYNC, reason=reason)]
        elif item.ignored is not None or not item.changes:
            reason = item.ignored or "no record named"
            outcomes.append(ItemOutcome(item.index, Outcome.IGNORED, reason=reason))
        for change in item.changes:
            key = change.deal_key
            if id(change) in stale:
                outcomes.append(ItemOutcome(item.index, Outcome.STALE, key))
                continue
            ident = event_id(change)
            # The first of repeats within a delivery is the one recorded now.
            accepted = ident in recorded
            recorded.discard(ident)
            outcome = Outcome.ACCEPTED if accepted else Outcome.DUPLICATE
            outcomes.append(ItemOutcome(item.index, outcome, key))
    return outcomes


def _deal_key(source: CrmSource, record: str) -> str | None:
    """The deal a resync request names (None: another record, e.g. a Salesforce Account)."""
    return None if record.startswith(ACCOUNT_RECORD) else f"{source.value}:{record}"


def _raw(value: Any) -> bytes:
    """The refused item as delivered (JSON; numbers were read exactly, as Decimal), kept as
    bytes: it may hold what text cannot."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode(
        "utf-8", "backslashreplace"
    )


def not_ahead(moment: datetime, at: datetime, where: str) -> None:
    """A source's timestamp may lead our clock by at most MAX_FUTURE_SKEW."""
    if moment > at + MAX_FUTURE_SKEW:
        raise Unprocessable(f"{where} is more than 5 minutes in the future")


@contextmanager
def resync_not_ahead(at: datetime, where: str) -> Iterator[None]:
    """A resync an event asks for is held to the same bound as a change: the moment it names
    stamps the snapshot fetched for it, and one far ahead made every later real change of the
    deal stale (found in review: a gap or association event bypassed the bound)."""
    try:
        yield
    except ResyncNeeded as resync:
        if resync.since is not None:
            not_ahead(resync.since, at, where)
        raise


def bounded(
    read: Callable[[Any], list[CrmDealChanged]], at: datetime, where: str
) -> Callable[[Any], list[CrmDealChanged]]:
    """`read`, refusing a change whose source time leads our clock (`where` names it)."""

    def read_bounded(raw: Any) -> list[CrmDealChanged]:
        with resync_not_ahead(at, where):
            changes = read(raw)
        for change in changes:
            not_ahead(change.source_timestamp, at, where)
        return changes

    return read_bounded


def salesforce_items(
    payload: Any, at: datetime, org: SalesforceOrg = MULTI_CURRENCY_ORG
) -> list[Item]:
    """Opportunity Change Data Capture messages: one, or a list (each item read alone);
    `org` what the deployment says of its org (its stage names, its currency)."""
    where = "payload.ChangeEventHeader.commitTimestamp"
    read = bounded(partial(from_salesforce_cdc, org=org), at, where)
    if not isinstance(payload, list):
        return [read_item(0, payload, read)]
    messages = _whole(lambda: array(payload, "messages"))
    return [read_item(i, message, read, f"[{i}]") for i, message in enumerate(messages)]


def hubspot_items(
    payload: Any,
    at: datetime,
    portals: frozenset[str] | None = None,
    stages: Mapping[str, DealStage] = NO_CUSTOM_STAGES,
) -> list[Item]:
    """A HubSpot webhook batch (a JSON array): each event read alone; an event from a portal
    the platform does not ingest (not in `portals`; None: any) is refused, its neighbours
    are not. `stages` are the deployment's own stage ids (DEALS_HUBSPOT_STAGES)."""
    events = _whole(lambda: hubspot_events(payload))
    items = []
    for index, event in enumerate(events):
        where = f"[{index}]"

        def read(raw: Any, where: str = where) -> list[CrmDealChanged]:
            portal = raw.get("portalId") if isinstance(raw, dict) else None
            if portals is not None and portal is not None and str(portal) not in portals:
                raise AdapterError(
                    f"{where}.portalId {str(portal)[:32]!r} is not a HubSpot portal this "
                    "platform ingests"
                )
            with resync_not_ahead(at, f"{where}.occurredAt"):
                changes = from_hubspot_event(raw, where, stages)
            for change in changes:
                not_ahead(change.source_timestamp, at, f"{where}.occurredAt")
            return changes

        items.append(read_item(index, event, read))
    return items


def aws_ace_items(
    payload: Any, at: datetime, catalog: str = "AWS", fetching: bool = True
) -> list[Item]:
    """One item: a Partner Central event as an EventBridge API destination sends it (an
    opportunity event is a request to fetch it, `from_ace_event`), the fetched GetOpportunity
    response, or {event, getOpportunity} as a fetcher relays it. An event's `time` is bounded
    too. `catalog` is the one deals reads; without `fetching` (no ACE credentials) a fetch
    waits in the resync queue, and the answer says so."""

    def read(raw: Any) -> list[CrmDealChanged]:
        if isinstance(raw, dict) and "detail-type" in raw:
            not_ahead(_event_time(raw), at, "event.time")
            try:
                return from_ace_event(raw, catalog)
            except ResyncNeeded as fetch:
                if fetching:
                    raise
                raise _waiting(fetch, "ACE", ACE_CREDENTIALS) from None
        opportunity = raw.get("getOpportunity", raw) if isinstance(raw, dict) else raw
        if isinstance(raw, dict) and "event" in raw:
            not_ahead(_event_time(raw["event"]), at, "event.time")
        return bounded(from_aws_ace, at, "opportunity.LastModifiedDate")(opportunity)

    return [read_item(0, payload, read)]


# What each programme's fetch needs configured (the answer names them when it waits).
ACE_CREDENTIALS = "DEALS_ACE_ACCESS_KEY_ID, DEALS_ACE_SECRET_ACCESS_KEY"
MICROSOFT_CREDENTIALS = "DEALS_MICROSOFT_ACCESS_TOKEN"


def _waiting(fetch: ResyncNeeded, programme: str, settings: str) -> ResyncNeeded:
    """The fetch `fetch` asks for, saying why it waits: kept and recoverable, not dropped."""
    return ResyncNeeded(
        f"{fetch}; no {programme} credentials are configured ({settings}): the request waits"
        " in crm_resyncs until they are",
        fetch.record_ids,
        fetch.since,
    )


def microsoft_items(
    payload: Any,
    at: datetime,
    referrals_url: str = MICROSOFT_REFERRALS_API,
    fetching: bool = True,
) -> list[Item]:
    """One item: a Partner Center webhook event as Partner Center sends it (a referral event is
    a request to fetch the referral from `referrals_url`, `from_microsoft_event`; its
    `ResourceChangeUtcDate` is bounded), or the referral resource, bare or as
    {webhook, referral} / {referral}. Without `fetching` (no Partner Center token) a fetch
    waits in the resync queue, and the answer says so."""

    def read(raw: Any) -> list[CrmDealChanged]:
        if isinstance(raw, dict) and "EventName" in raw and "referral" not in raw:
            try:
                return from_microsoft_event(raw, referrals_url)
            except ResyncNeeded as fetch:
                if fetch.since is not None:
                    not_ahead(fetch.since, at, "event.ResourceChangeUtcDate")
                if fetching:
                    raise
                raise _waiting(fetch, "Partner Center", MICROSOFT_CREDENTIALS) from None
        referral = raw.get("referral", raw) if isinstance(raw, dict) else raw
        return bounded(from_microsoft_referral, at, "referral.UpdatedDateTime")(referral)

    return [read_item(0, payload, read)]


def _whole(read: Callable[[], list[Any]]) -> list[Any]:
    """A delivery whose whole shape is wrong has no items to answer for: 422."""
    try:
        return read()
    except AdapterError as error:
        raise Unprocessable(str(error)) from error


def _changes(items: list[Item]) -> list[CrmDealChanged]:
    """Every item's changes, or the first refusal as a 422 (for callers wanting all or none)."""
    for item in items:
        if item.refused is not None:
            raise Unprocessable(item.refused)
    return [change for item in items for change in item.changes]


def salesforce_changes(payload: Any, at: datetime) -> list[CrmDealChanged]:
    return _changes(salesforce_items(payload, at))


def hubspot_changes(payload: Any, at: datetime) -> list[CrmDealChanged]:
    return _changes(hubspot_items(payload, at))


def aws_ace_changes(payload: Any, at: datetime) -> list[CrmDealChanged]:
    return _changes(aws_ace_items(payload, at))


def microsoft_changes(payload: Any, at: datetime) -> list[CrmDealChanged]:
    return _changes(microsoft_items(payload, at))


def _event_time(event: Any) -> datetime:
    """The EventBridge event's `time` (when AWS emitted it)."""
    try:
        return parse_datetime(require(obj(event, "event"), "time", "event"), "event.time")
    except AdapterError as error:
        raise Unprocessable(str(error)) from error
