"""The partner programmes' opportunities: AWS Partner Central (ACE) `GetOpportunity`
answers and Microsoft Partner Center referrals, each read whole (a snapshot of the record: a
field it does not hold is cleared), and the events that name a record to fetch: Partner
Central's through EventBridge, Partner Center's webhooks."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from services.deals.adapters import common
from services.deals.adapters.common import MAX_PRODUCTS, AdapterError, Ignored, ResyncNeeded
from shared.events.crm import CrmDealChanged, CrmSource, Customer, DealStage
from shared.inputs import IDENT_MAX

S = DealStage

ACE_STAGES = {
    "prospect": S.PROSPECTING,
    "qualified": S.QUALIFICATION,
    "technical validation": S.VALIDATION,
    "business validation": S.PROPOSAL,
    "committed": S.COMMITTED,
    "launched": S.CLOSED_WON,
    "closed lost": S.CLOSED_LOST,
}
MICROSOFT_SUBSTATUS = {
    "pending": S.PROSPECTING,
    "received": S.PROSPECTING,
    "accepted": S.QUALIFICATION,
    "engaged": S.VALIDATION,
    "won": S.CLOSED_WON,
    "lost": S.CLOSED_LOST,
    "declined": S.CLOSED_LOST,
    "expired": S.CLOSED_LOST,
}


# The fields a programme's snapshot reads and clears when the record no longer holds them
# (the customer's parts are cleared alike).
SNAPSHOT_FIELDS = ("name", "products", "amount", "currency", "close_date", "partner_ref")
# Partner Central's EventBridge events (`source`), and the prefix of those about an opportunity.
ACE_EVENT_SOURCE = "aws.partnercentral-selling"
ACE_OPPORTUNITY_EVENTS = "Opportunity "
# Partner Center's webhook events about a referral (`EventName`, `{resource}-{action}`).
MICROSOFT_REFERRAL_EVENTS = frozenset({"referral-created", "referral-updated"})
# The Referrals API (DEALS_MICROSOFT_REFERRALS_URL's default), and the collection a referral
# event's `ResourceUri` names as Partner Center's webhook documentation writes it
# (`{baseURL}/engagements/v1/referrals/{ReferralID}`): a referral is `<either>/<id>`.
MICROSOFT_REFERRALS_API = "https://api.partner.microsoft.com/v1.0/engagements/referrals"
MICROSOFT_EVENT_REFERRALS = "https://api.partnercenter.microsoft.com/engagements/v1/referrals"
# A referral id taken from a URI: one path segment of unreserved characters (RFC 3986), so
# nothing in it is decoded, and no dot segment.
_REFERRAL_SEGMENT = re.compile(r"(?!\.{1,2}$)[A-Za-z0-9._~-]+")


def from_ace_event(event: Any, catalog: str) -> list[CrmDealChanged]:
    """A Partner Central event as an EventBridge API destination delivers it (`detail-type`,
    `time`, `detail`). It carries no opportunity, only its identifier: an opportunity event
    ('Opportunity Created', 'Opportunity Updated', ...) is a request to fetch the opportunity
    (`GetOpportunity`, ResyncNeeded), as of the event's `time`; an event of another kind
    (engagement invitations, snapshots) or of another catalog than `catalog` (the one deals
    reads, DEALS_ACE_CATALOG) is ignored."""
    event = common.obj(event, "event")
    kind = common.string(common.require(event, "detail-type", "event"), "event.detail-type", 128)
    at = common.parse_datetime(common.require(event, "time", "event"), "event.time")
    source = event.get("source")
    if source is not None and source != ACE_EVENT_SOURCE:
        raise Ignored(f"event.source {str(source)[:64]!r} is not {ACE_EVENT_SOURCE!r}")
    if not kind.startswith(ACE_OPPORTUNITY_EVENTS):
        raise Ignored(f"event.detail-type {kind!r} carries nothing Pollinate keeps")
    detail = common.obj(common.require(event, "detail", "event"), "event.detail")
    sent_in = detail.get("catalog")
    if sent_in is not None and sent_in != catalog:
        raise Ignored(
            f"event.detail.catalog {str(sent_in)[:64]!r} is not the catalog deals reads "
            f"(DEALS_ACE_CATALOG {catalog!r})"
        )
    where = "event.detail.opportunity"
    opportunity = common.obj(common.require(detail, "opportunity", "event.detail"), where)
    identifier = common.ident(
        common.require(opportunity, "identifier", where), f"{where}.identifier"
    )
    raise ResyncNeeded(
        f"event.detail-type {kind!r} names opportunity {identifier} without its fields: it is"
        " fetched (GetOpportunity)",
        (identifier,),
        at,
    )


def from_microsoft_event(event: Any, referrals_url: str) -> list[CrmDealChanged]:
    """A Partner Center webhook event (`EventName`, `ResourceUri`, `ResourceChangeUtcDate`, ...).
    It carries no referral, only where to get it: a referral event ('referral-created',
    'referral-updated') is a request to fetch the referral (ResyncNeeded), as of the event's
    `ResourceChangeUtcDate`; an event of another kind (a test event, invoices, customers) is
    ignored. The referral is fetched from `referrals_url` (the configured Referrals API), never
    from the URI the event gives: only the id is taken from it."""
    event = common.obj(event, "event")
    kind = common.ident(common.require(event, "EventName", "event"), "event.EventName")
    if kind.lower() not in MICROSOFT_REFERRAL_EVENTS:
        raise Ignored(f"event.EventName {kind!r} carries nothing Pollinate keeps")
    at = common.parse_datetime(
        common.require(event, "ResourceChangeUtcDate", "event"), "event.ResourceChangeUtcDate"
    )
    uri = common.string(common.require(event, "ResourceUri", "event"), "event.ResourceUri", 2048)
    referral_id = _referral_id(uri, (MICROSOFT_EVENT_REFERRALS, referrals_url))
    raise ResyncNeeded(
        f"event.EventName {kind!r} names referral {referral_id} without its fields: it is"
        " fetched (GET engagements/referrals/<id>)",
        (referral_id,),
        at,
    )


def _referral_id(uri: str, collections: tuple[str, ...]) -> str:
    """The id of the referral `uri` names: `<collection>/<id>` for one of `collections` (same
    scheme and host, no user or other port; the path compared without case, as the
    documentation writes it both ways), the id one path segment, no query or fragment. The URI
    itself is not echoed: it is the sender's text, and only its id is used."""
    where = "event.ResourceUri"
    expected = " or ".join(f"{collection}/<id>" for collection in dict.fromkeys(collections))
    try:
        parts = urlsplit(uri)
    except ValueError as error:
        raise AdapterError(f"{where} is not a URI (expected {expected})") from error
    for collection in collections:
        base = urlsplit(collection)
        prefix = base.path.rstrip("/").lower() + "/"
        same = (parts.scheme.lower(), parts.netloc.lower()) == (
            base.scheme.lower(),
            base.netloc.lower(),
        )
        if same and parts.path.lower().startswith(prefix):
            segment = parts.path[len(prefix) :]
            break
    else:
        raise AdapterError(
            f"{where} does not name a referral of the Partner Center Referrals API (expected "
            f"{expected})"
        )
    if parts.query or parts.fragment or "?" in uri or "#" in uri:
        raise AdapterError(f"{where}: a referral's URI has no query or fragment")
    if len(segment) > IDENT_MAX or not _REFERRAL_SEGMENT.fullmatch(segment):
        raise AdapterError(
            f"{where}: the referral id must be one path segment of at most {IDENT_MAX} "
            "letters, digits, '-', '.', '_' or '~' (expected "
            f"{expected})"
        )
    return segment


# The key a pulled page's stand-in carries for a record its API would not answer for (AWS's
# fields are PascalCase: no answer has it).
FETCH_REFUSED = "$fetchRefused"


def fetch_refused(identifier: Any, reason: str) -> dict[str, Any]:
    """What stands in a pulled page for a listed record its API would not answer for: read, it
    is refused with the reason (kept in crm_refused), and the page goes on."""
    return {"Id": identifier, FETCH_REFUSED: reason}


def from_aws_ace(opportunity: Any) -> list[CrmDealChanged]:
    """The GetOpportunity response fetched after an EventBridge 'Opportunity Updated' event.
    Expected spend in several currencies has no exact sum: the amount (and currency) is then
    unknown, and cleared with the rest of what the record does not hold. The API requires only
    the ids and times: an opportunity without a `Customer` account (a draft) leaves the
    customer as it was, and one without a `LifeCycle` (or its `Stage`) its stage and close
    date (or its stage)."""
    if isinstance(opportunity, dict) and FETCH_REFUSED in opportunity:
        raise AdapterError(
            f"GetOpportunity of {str(opportunity.get('Id'))[:64]!r} was refused: "
            f"{opportunity[FETCH_REFUSED]}"
        )
    opp_id = common.ident(common.require(opportunity, "Id", "opportunity"), "opportunity.Id")
    lifecycle = common.obj(opportunity.get("LifeCycle"), "opportunity.LifeCycle")
    told: dict[str, Any] = {}
    account = common.obj(
        common.obj(opportunity.get("Customer"), "opportunity.Customer").get("Account"),
        "opportunity.Customer.Account",
    )
    if account:
        told["customer"] = _customer(
            account,
            "opportunity.Customer.Account",
            "CompanyName",
            "WebsiteUrl",
            common.domain,
            "CountryCode",
        )
    if lifecycle.get("Stage") is not None:
        told["stage"] = common.map_stage(
            ACE_STAGES, lifecycle["Stage"], "opportunity.LifeCycle.Stage"
        )
    if lifecycle:
        told["close_date"] = common.parse_date(
            lifecycle.get("TargetCloseDate"), "opportunity.LifeCycle.TargetCloseDate"
        )
    project = common.obj(opportunity.get("Project"), "opportunity.Project")
    amount, in_currency = _ace_spend(project)
    needs = common.array(opportunity.get("PrimaryNeedsFromAws"), "opportunity.PrimaryNeedsFromAws")
    modified = common.parse_datetime(
        common.require(opportunity, "LastModifiedDate", "opportunity"),
        "opportunity.LastModifiedDate",
    )
    return _snapshot(
        CrmSource.AWS_ACE,
        str(opp_id),
        modified.isoformat(),
        modified,
        (opportunity, "opportunity", "CreatedDate"),
        name=common.name(project.get("Title"), "opportunity.Project.Title"),
        **told,
        amount=amount,
        currency=in_currency,
        partner_ref=common.optional_ident(
            opportunity.get("PartnerOpportunityIdentifier"),
            "opportunity.PartnerOpportunityIdentifier",
        ),
        co_sell=any(
            "Co-Sell" in common.string(need, f"opportunity.PrimaryNeedsFromAws[{index}]")
            for index, need in enumerate(needs)
        ),
    )


def _ace_spend(project: dict[str, Any]) -> tuple[Decimal | None, str | None]:
    """The expected spend, annualised, summed over its entries, and its currency (None, None
    without one). An entry without an Amount (spend given as a pricing-calculator link,
    `EstimationUrl`) adds nothing; entries in several currencies have no exact sum, so the
    amount is then left unknown rather than converted."""
    where = "opportunity.Project.ExpectedCustomerSpend"
    totals: dict[str | None, Decimal] = {}
    for index, entry in enumerate(common.array(project.get("ExpectedCustomerSpend"), where)):
        at = f"{where}[{index}]"
        entry = common.obj(entry, at)
        in_currency = common.currency(entry.get("CurrencyCode"), f"{at}.CurrencyCode")
        if entry.get("Amount") in (None, ""):
            continue
        amount = common.money(entry["Amount"], f"{at}.Amount", in_currency)
        # ACE reports expected spend per period; annualise monthly figures for a deal amount.
        frequency = entry.get("Frequency", "Annual")
        factor = {"Monthly": 12, "Annual": 1}.get(frequency, 1) if isinstance(frequency, str) else 1
        totals[in_currency] = totals.get(in_currency, Decimal(0)) + amount * factor
    if len(totals) != 1:
        return None, None
    [(in_currency, total)] = totals.items()
    return common.money(total, f"{where} (annualised, summed)", in_currency), in_currency


def from_microsoft_referral(referral: Any) -> list[CrmDealChanged]:
    """The referral resource fetched after a Partner Center 'referral-*' webhook, in the
    documentation's PascalCase or as the REST API returns it (camelCase: its paths are named
    here in PascalCase)."""
    referral = _pascal_case(referral)
    referral_id = common.ident(common.require(referral, "Id", "referral"), "referral.Id")
    profile = common.obj(
        common.require(referral, "CustomerProfile", "referral"), "referral.CustomerProfile"
    )
    details = common.obj(referral.get("Details"), "referral.Details")
    status = common.string(common.require(referral, "Status", "referral"), "referral.Status", 64)
    substatus = common.string(referral.get("Substatus") or "", "referral.Substatus", 64)
    if status.lower() == "closed" and not substatus:
        raise AdapterError("referral.Substatus is required when Status is 'Closed'")
    stage = common.map_stage(MICROSOFT_SUBSTATUS, substatus or "pending", "referral.Substatus")
    updated = common.parse_datetime(
        common.require(referral, "UpdatedDateTime", "referral"), "referral.UpdatedDateTime"
    )
    requirements = common.obj(details.get("Requirements"), "referral.Details.Requirements")
    products = common.array(
        requirements.get("Products"), "referral.Details.Requirements.Products", MAX_PRODUCTS
    )
    in_currency = common.currency(details.get("Currency"), "referral.Details.Currency")
    etag = common.optional_ident(referral.get("ETag"), "referral.ETag")
    return _snapshot(
        CrmSource.MICROSOFT,
        str(referral_id),
        etag or updated.isoformat(),
        updated,
        (referral, "referral", "CreatedDateTime"),
        name=common.name(referral.get("Name"), "referral.Name"),
        customer=_customer(
            profile, "referral.CustomerProfile", "Name", "Ids", _customer_domain, "Country"
        ),
        products=tuple(
            common.ident(p["Id"], f"referral.Details.Requirements.Products[{index}].Id")
            for index, p in enumerate(products)
            if isinstance(p, dict) and p.get("Id")
        )
        or None,
        amount=common.money(details["DealValue"], "referral.Details.DealValue", in_currency)
        if details.get("DealValue") is not None
        else None,
        currency=in_currency,
        stage=stage,
        close_date=common.parse_date(
            details.get("ClosingDateTime"), "referral.Details.ClosingDateTime"
        ),
        partner_ref=common.optional_ident(
            referral.get("ExternalReferenceId"), "referral.ExternalReferenceId"
        ),
        co_sell=str(referral.get("ReferralType", referral.get("Type", "")))[:64].lower()
        == "shared",
    )


def _snapshot(
    source: CrmSource,
    record_id: str,
    version: str,
    at: datetime,
    created: tuple[dict[str, Any], str, str],
    **fields: Any,
) -> list[CrmDealChanged]:
    """A programme's record read whole: one 'updated' change named by the record's version
    (`<id>@<version>`), created when `created` (the record, its path, the key) says. Its team
    is the partner's, not a direct rep, so the change names no owner. Being the whole record,
    a field it read as absent is empty now: cleared (an older snapshot cannot clear a newer
    value: the merge compares the times), as a Salesforce or HubSpot snapshot does."""
    record, where, key = created
    cleared = [field for field in SNAPSHOT_FIELDS if field in fields and fields[field] is None]
    customer = fields.get("customer")
    if isinstance(customer, Customer):
        parts = ("name", "domain", "country")
        cleared += [f"customer.{part}" for part in parts if getattr(customer, part) is None]
    return [
        CrmDealChanged(
            source=source,
            source_id=record_id,
            source_event_id=f"{record_id}@{version}",
            source_timestamp=at,
            change_type="updated",
            owner=None,
            cleared=tuple(cleared),
            **fields,
            created_at=common.parse_datetime(record[key], f"{where}.{key}")
            if record.get(key)
            else None,
        )
    ]


def _customer(
    holder: dict[str, Any],
    where: str,
    name_key: str,
    domain_key: str,
    domain_of: Callable[[Any, str], str | None],
    country_key: str,
) -> Customer:
    """The customer a programme's record holds at `where`: its name (required), its domain (read
    by `domain_of` from `domain_key`) and the country in its `Address`."""
    address = f"{where}.Address"
    return Customer(
        name=common.name(common.require(holder, name_key, where), f"{where}.{name_key}"),
        domain=domain_of(holder.get(domain_key), f"{where}.{domain_key}"),
        country=common.country(
            common.obj(holder.get("Address"), address).get(country_key), f"{address}.{country_key}"
        ),
    )


def _pascal_case(value: Any) -> Any:
    """The same JSON with every object key's first letter upper-case (`customerProfile` ->
    `CustomerProfile`, `eTag` -> `ETag`): the REST API's camelCase read as documented."""
    if isinstance(value, dict):
        return {
            (key[:1].upper() + key[1:] if isinstance(key, str) else key): _pascal_case(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_pascal_case(item) for item in value]
    return value


def _customer_domain(ids: Any, where: str) -> str | None:
    """The customer's domain among its ids: an object of named ids (`External`, `Domain`) or,
    as the REST API returns them, a list (of ids, or of {type, value} objects); the first
    that reads as a domain."""
    if isinstance(ids, dict):
        candidates = [ids.get(key) for key in ("External", "Domain") if ids.get(key)]
    else:
        candidates = []
        for index, entry in enumerate(common.array(ids, where, MAX_PRODUCTS)):
            if isinstance(entry, dict):
                entry = entry.get("Value", entry.get("Id"))
            if entry not in (None, ""):
                candidates.append(common.string(entry, f"{where}[{index}]", 2048))
    for candidate in candidates:
        text = common.string(candidate, where, 2048).strip()
        if "." in text and " " not in text and "@" not in text:
            return common.domain(text, where)
    return None
