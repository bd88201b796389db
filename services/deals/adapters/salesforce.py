"""Salesforce Opportunity Change Data Capture, in each form a subscriber relays it: the
CometD/Streaming form (`{"data": {"schema", "payload", "event": {"replayId"}}}` or its `data`
alone) and the Pub/Sub API form decoded from Avro (the event record itself, with
`ChangeEventHeader` at the top, every field present and unchanged ones null, dates as epoch
milliseconds and `CloseDate` as days since the epoch).

Change-event semantics followed: a field absent or null did not change, unless the header's
`nulledFields` names it (then the CRM cleared it); `sequenceNumber` (with `commitNumber`)
orders a record's changes of one commit timestamp; UNDELETE restores the record; another
entity of the same transaction (a lead conversion's Lead, Account, Contact) is ignored, except
an Account's deletion, which may be a merge (`_account_change`). Whether a stage is won, lost
or open is Salesforce's own `IsWon`/`IsClosed` when the change carries them (`_stage`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.deals.adapters import common
from services.deals.adapters.common import (
    MAX_PRODUCTS,
    NO_CUSTOM_STAGES,
    OUTCOME_STAGES,
    AdapterError,
    Ignored,
    ResyncNeeded,
)
from shared.events.crm import CrmDealChanged, CrmSource, Customer, DealStage, DealStatus

S = DealStage
SALESFORCE_STAGES = {
    "prospecting": S.PROSPECTING,
    "qualification": S.QUALIFICATION,
    "needs analysis": S.QUALIFICATION,
    "value proposition": S.VALIDATION,
    "id. decision makers": S.VALIDATION,
    "perception analysis": S.VALIDATION,
    "proposal/price quote": S.PROPOSAL,
    "negotiation/review": S.NEGOTIATION,
    "closed won": S.CLOSED_WON,
    "closed lost": S.CLOSED_LOST,
}
# Where a deployment maps its own stage names (those IsWon/IsClosed do not come with).
STAGES_SETTING = "DEALS_SALESFORCE_STAGES"
CHANGE_TYPES = {
    "CREATE": "created",
    "UPDATE": "updated",
    "DELETE": "deleted",
    "UNDELETE": "updated",
}
# Salesforce field -> the canonical field it clears when `nulledFields` names it.
CLEARED_AS = {
    "Name": "name",
    "Amount": "amount",
    "CurrencyIsoCode": "currency",
    "CloseDate": "close_date",
    "OwnerId": "owner",
    "Partner_Account__c": "partner_ref",
    "Products__c": "products",
    "Account_Name__c": "customer.name",
    "Account_Website__c": "customer.domain",
    "BillingCountry__c": "customer.country",
}
# A resync request for an Account (a possible merge), not an Opportunity: `Account/<id>`.
ACCOUNT_RECORD = "Account/"
_CUSTOMER_FIELDS = ("Account_Name__c", "Account_Website__c", "BillingCountry__c")
# An Avro `date` is days since the epoch; anything this small cannot be epoch milliseconds of
# a moment after 1970-01-01T02:46 (no CRM record is older), so it is read as days.
_DAYS_MAX = 10_000_000


def _unwrap(message: Any) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(the event record, the event's delivery metadata, the record's path) of any form."""
    message = common.obj(message, "event")
    if isinstance(message.get("data"), dict):
        message = message["data"]  # CometD: {"channel", "data": {...}}
    if "ChangeEventHeader" in message:
        return message, message, "event"  # Pub/Sub API, decoded from Avro
    payload = common.obj(common.require(message, "payload", "event"), "payload")
    return payload, common.obj(message.get("event"), "event"), "payload"


# What the REST API is asked for (SOQL names its fields): the fields the change events carry.
RECORD_FIELDS = (
    "Id",
    "Name",
    "Amount",
    "CurrencyIsoCode",
    "StageName",
    "IsClosed",
    "IsWon",
    "CloseDate",
    "OwnerId",
    "Partner_Account__c",
    "Account_Name__c",
    "Account_Website__c",
    "BillingCountry__c",
    "Products__c",
    "CreatedDate",
    "LastModifiedDate",
    "SystemModstamp",
    "IsDeleted",
)


@dataclass(frozen=True)
class SalesforceOrg:
    """What a deployment says of its Salesforce org: its own stage names
    (DEALS_SALESFORCE_STAGES) and, when the org has multiple currencies off (Salesforce's
    default), its one currency (DEALS_SALESFORCE_CURRENCY). Such an org has no
    `CurrencyIsoCode` field: its change events carry none, and a REST read asking for it is
    refused."""

    stages: Mapping[str, DealStage] = dataclasses.field(default_factory=lambda: NO_CUSTOM_STAGES)
    currency: str | None = None

    @property
    def record_fields(self) -> tuple[str, ...]:
        """The fields a REST read asks for."""
        if self.currency is None:
            return RECORD_FIELDS
        return tuple(name for name in RECORD_FIELDS if name != "CurrencyIsoCode")

    def currency_of(self, named: str | None, amount: Any) -> str | None:
        """An amount's currency: the one the change names, else the org's own (a single-
        currency org names none)."""
        if named is None and amount is not None:
            return self.currency
        return named


MULTI_CURRENCY_ORG = SalesforceOrg()


def from_salesforce_cdc(
    message: Any, org: SalesforceOrg = MULTI_CURRENCY_ORG
) -> list[CrmDealChanged]:
    """One OpportunityChangeEvent, as a relay delivers it: one change per record it names;
    `org` what the deployment says of its org (its stage names, its currency)."""
    payload, delivery, at = _unwrap(message)
    where = f"{at}.ChangeEventHeader"
    header = common.obj(common.require(payload, "ChangeEventHeader", at), where)
    entity = header.get("entityName")
    if entity == "Account":
        _account_change(header, where)
    if entity != "Opportunity":
        raise Ignored(f"{where}.entityName is {str(entity)[:64]!r}, not 'Opportunity'")
    record_ids = _record_ids(header, where)
    change = common.string(
        common.require(header, "changeType", where), f"{where}.changeType", 64
    ).upper()
    if any(record.endswith("*") for record in record_ids):
        # A field's type converted (a multi-select picklist changed, say): one event for every
        # record, named by the entity's key prefix and `*`, with no values. It is no deal.
        raise ResyncNeeded(
            f"{where}.recordIds names every Opportunity ({record_ids[0][:16]!r}: a field's "
            "type was converted): the changes since it are fetched (a conversion that leaves "
            "SystemModstamp alone needs POST /admin/crm/reconciliations/run?source=salesforce)",
            (),
            common.from_epoch_ms(
                common.require(header, "commitTimestamp", where), f"{where}.commitTimestamp"
            ),
        )
    if change.startswith("GAP_"):
        # An overflow names no record (or Salesforce's wildcard id): the whole entity's
        # changes since its commit are fetched.
        named = (
            ()
            if change == "GAP_OVERFLOW"
            else tuple(r for r in record_ids if r.strip("0") not in ("AAA", ""))
        )
        raise ResyncNeeded(
            f"{where}.changeType {change!r} stands for changes it does not carry: "
            + ("its records are fetched" if named else "the changes since it are fetched"),
            named,
            common.from_epoch_ms(
                common.require(header, "commitTimestamp", where), f"{where}.commitTimestamp"
            ),
        )
    change_type = CHANGE_TYPES.get(change)
    if change_type is None:
        raise AdapterError(f"{where}.changeType {change!r} is not supported")
    header_fields = _header(header, delivery, where)
    event_id = header_fields.pop("event_id")
    fields = _fields(payload, at, _names(header, "nulledFields", where), org)
    return [
        CrmDealChanged(
            source=CrmSource.SALESFORCE,
            source_id=record_id,
            source_event_id=f"{event_id}:{record_id}",
            change_type=change_type,
            deleted={"DELETE": True, "UNDELETE": False}.get(change),
            **header_fields,
            **fields,
        )
        for record_id in record_ids
    ]


def _record_ids(header: dict[str, Any], where: str) -> tuple[str, ...]:
    """The records the event names, each once, in its order: a record named twice answered 500
    (its resync was scheduled twice in one statement; found in review)."""
    named = (
        common.ident(record_id, f"{where}.recordIds[{index}]")
        for index, record_id in enumerate(
            common.array(common.require(header, "recordIds", where), f"{where}.recordIds")
        )
    )
    return tuple(dict.fromkeys(named))


def _account_change(header: dict[str, Any], where: str) -> None:
    """An Account change matters only as a possible merge. Salesforce merges up to three
    Accounts as a DELETE change event of the losers (no field values: nothing says it was a
    merge) and an UPDATE of the master; the losers' Opportunities are re-parented to the master
    without any Opportunity change event, so their customer changes unseen here. A deleted
    Account is therefore asked for its `MasterRecordId` (set on a merge's losers, readable
    through `queryAll` while the record is in the Recycle Bin), and a merge's surviving
    Account's Opportunities are fetched (crm_resync.py). Other Account changes are ignored."""
    change = header.get("changeType")
    if not isinstance(change, str) or change.upper() != "DELETE":
        return  # ignored, as any other entity's change
    accounts = tuple(f"{ACCOUNT_RECORD}{record}" for record in _record_ids(header, where))
    raise ResyncNeeded(
        f"{where}: a deleted Account may have been merged: its MasterRecordId is fetched and"
        " the surviving Account's Opportunities with it",
        accounts,
        common.from_epoch_ms(
            common.require(header, "commitTimestamp", where), f"{where}.commitTimestamp"
        ),
    )


def _header(header: dict[str, Any], delivery: dict[str, Any], where: str) -> dict[str, Any]:
    """The change's time, order and own id from the header (and the delivery's replay id)."""
    replay = delivery.get("replayId", delivery.get("replay_id"))
    replay_id = common.optional_ident(replay, "event.replayId")
    transaction = common.optional_ident(header.get("transactionKey"), f"{where}.transactionKey")
    sequence = _optional_int(header.get("sequenceNumber"), f"{where}.sequenceNumber")
    commit = _optional_int(header.get("commitNumber"), f"{where}.commitNumber")
    seq = "" if sequence is None else str(sequence)
    return {
        "event_id": f"{transaction or ''}:{seq}:{replay_id or ''}",
        "source_timestamp": common.from_epoch_ms(
            common.require(header, "commitTimestamp", where), f"{where}.commitTimestamp"
        ),
        "source_commit": commit,
        "source_sequence": sequence,
    }


def _fields(
    payload: dict[str, Any], at: str, nulled: set[str], org: SalesforceOrg
) -> dict[str, Any]:
    """The canonical fields the change sets (a null value did not change) and clears."""

    def value(field: str) -> Any:
        return payload.get(field)

    amount = value("Amount")
    named = common.currency(value("CurrencyIsoCode"), f"{at}.CurrencyIsoCode")
    in_currency = org.currency_of(named, amount)
    customer = None
    if any(value(field) is not None for field in _CUSTOMER_FIELDS):
        customer = Customer(
            name=common.name(value("Account_Name__c"), f"{at}.Account_Name__c"),
            domain=common.domain(value("Account_Website__c"), f"{at}.Account_Website__c"),
            country=common.country(value("BillingCountry__c"), f"{at}.BillingCountry__c"),
        )
    created = value("CreatedDate")
    return {
        "name": common.name(value("Name"), f"{at}.Name"),
        "customer": customer,
        "products": _products(value("Products__c"), f"{at}.Products__c"),
        "amount": None if amount is None else common.money(amount, f"{at}.Amount", in_currency),
        "currency": in_currency,
        "stage": _stage(payload, at, org.stages),
        "close_date": _date(value("CloseDate"), f"{at}.CloseDate"),
        "owner": common.optional_ident(value("OwnerId"), f"{at}.OwnerId"),
        "partner_ref": common.optional_ident(
            value("Partner_Account__c"), f"{at}.Partner_Account__c"
        ),
        "created_at": _moment(created, f"{at}.CreatedDate") if created else None,
        "cleared": tuple(CLEARED_AS[field] for field in sorted(nulled) if field in CLEARED_AS),
    }


def _stage(payload: dict[str, Any], at: str, stages: Mapping[str, DealStage]) -> DealStage | None:
    """The stage a change sets. Each org names its stages itself ("Closed Won - Signed"), but
    Salesforce says whether one is won, lost or open: `IsWon` and `IsClosed` come with a
    stage change that moves between them (and with every snapshot). They decide the outcome;
    the stage's name, when known (the defaults, then DEALS_SALESFORCE_STAGES), says which
    open stage. A change without them (an open stage to another, a won one to another) is
    read by its name alone, and an unknown name is refused naming the setting."""
    name = payload.get("StageName")
    if name is None:
        return None
    where = f"{at}.StageName"
    common.string(name, where)  # a stage of the wrong type is refused whatever the flags say
    outcome = _outcome(payload.get("IsWon"), payload.get("IsClosed"), at)
    try:
        named = common.map_stage(SALESFORCE_STAGES, name, where, stages, STAGES_SETTING)
    except AdapterError:
        if outcome is None:
            raise
        return OUTCOME_STAGES[outcome]
    return named if outcome is None or named.status is outcome else OUTCOME_STAGES[outcome]


def _outcome(won: Any, closed: Any, at: str) -> DealStatus | None:
    """What IsWon and IsClosed say of the stage (None: they say nothing). A change carries a
    flag only when it changed, so IsClosed alone true was an open deal closed, not won (IsWon
    stayed false); IsWon alone false was a won deal, closed, that stayed closed (reopened, it
    would carry IsClosed false too): lost."""
    for flag, field in ((won, "IsWon"), (closed, "IsClosed")):
        if flag is not None and not isinstance(flag, bool):
            raise AdapterError(f"{at}.{field}: expected a boolean, got {type(flag).__name__}")
    if won is True:
        return DealStatus.WON
    if closed is True:
        return DealStatus.LOST
    if closed is False:
        return DealStatus.OPEN
    if won is False:
        return DealStatus.LOST
    return None


def _names(header: dict[str, Any], key: str, where: str) -> set[str]:
    """Field names a header list holds. The Pub/Sub API sends these lists as bitmaps of the
    schema's field positions until the subscriber decodes them; a relay must send names."""
    names = set()
    for index, field in enumerate(common.array(header.get(key), f"{where}.{key}")):
        text = common.string(field, f"{where}.{key}[{index}]", 255)
        if text.startswith("0x"):
            raise AdapterError(
                f"{where}.{key}[{index}] is a field bitmap: the relay must decode it to names"
            )
        names.add(text)
    return names


def _optional_int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise AdapterError(f"{where}: expected a non-negative integer")
    return value


def _moment(value: Any, where: str) -> datetime:
    """A datetime field: ISO text (CometD) or epoch milliseconds (Pub/Sub API's Avro long)."""
    return (
        common.from_epoch_ms(value, where)
        if isinstance(value, int)
        else common.parse_datetime(value, where)
    )


def _date(value: Any, where: str) -> date | None:
    """A date field: ISO text, or an Avro `date` (days since the epoch), or epoch ms."""
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) < _DAYS_MAX:
            try:  # days past date's range (5000000 is year 15659) raised OverflowError: a 500
                day = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=value)).date()
            except OverflowError:
                raise AdapterError(f"{where}: {value} days from 1970 is no date") from None
            return common.in_reach(day, where)
        return common.from_epoch_ms(value, where).date()
    return common.parse_date(value, where)


def _products(value: Any, where: str) -> tuple[str, ...] | None:
    """Salesforce's multi-select picklist: 'a;b;c'."""
    if value in (None, ""):
        return None
    items = [item for item in common.string(value, where, 10_000).split(";") if item]
    if len(items) > MAX_PRODUCTS:
        raise AdapterError(f"{where}: at most {MAX_PRODUCTS} products")
    return tuple(common.ident(item, where) for item in items) or None


def from_salesforce_record(
    record: Any,
    at_least: datetime | None = None,
    org: SalesforceOrg = MULTI_CURRENCY_ORG,
) -> CrmDealChanged:
    """An Opportunity as the REST API returns it (sObject GET, or a SOQL query row): a snapshot
    of the whole record at its `SystemModstamp`, or `at_least` if later (an Account merge
    re-parents Opportunities without touching their modification stamps, so the fetched state
    is as of the merge at least). Every field it names is offered, and a null one is cleared,
    through the same merge rules as a change event (a newer change already merged keeps its
    fields)."""
    record = common.obj(record, "record")
    record_id = common.ident(common.require(record, "Id", "record"), "record.Id")
    stamp = record.get("SystemModstamp") or common.require(record, "LastModifiedDate", "record")
    at = _moment(stamp, "record.SystemModstamp")
    if at_least is not None and at_least > at:
        at = at_least
    nulled = {field for field in CLEARED_AS if field in record and record[field] is None}
    deleted = record.get("IsDeleted")
    return CrmDealChanged(
        source=CrmSource.SALESFORCE,
        source_id=record_id,
        source_event_id=f"rest:{record_id}@{at.isoformat()}",
        source_timestamp=at,
        change_type="deleted" if deleted is True else "updated",
        deleted=deleted is True,
        **_fields(record, "record", nulled, org),
    )


def deleted_record(record_id: str, at: datetime) -> CrmDealChanged:
    """A record the REST API no longer has (404 NOT_FOUND): deleted as of `at`."""
    return CrmDealChanged(
        source=CrmSource.SALESFORCE,
        source_id=record_id,
        source_event_id=f"rest:{record_id}@{at.isoformat()}:gone",
        source_timestamp=at,
        change_type="deleted",
    )
