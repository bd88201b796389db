"""One adapter per upstream source; each returns canonical changes in delivery order."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from services.deals.adapters.common import (
    MAX_PRODUCTS,
    AdapterError,
    Ignored,
    array,
    country,
    currency,
    from_epoch_ms,
    ident,
    map_stage,
    money,
    name,
    obj,
    optional_ident,
    parse_date,
    parse_datetime,
    require,
    string,
)
from services.deals.domain.customers import normalise_domain
from shared.events.crm import CrmDealChanged, CrmSource, Customer, DealStage

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
HUBSPOT_STAGES = {
    "appointmentscheduled": S.PROSPECTING,
    "qualifiedtobuy": S.QUALIFICATION,
    "presentationscheduled": S.VALIDATION,
    "decisionmakerboughtin": S.PROPOSAL,
    "contractsent": S.NEGOTIATION,
    "closedwon": S.CLOSED_WON,
    "closedlost": S.CLOSED_LOST,
}
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


def _domain(value: Any, where: str) -> str | None:
    return None if value in (None, "") else normalise_domain(string(value, where, 2048))


def _products(value: Any, where: str) -> tuple[str, ...] | None:
    """Salesforce's multi-select picklist: 'a;b;c'."""
    if value in (None, ""):
        return None
    items = [item for item in string(value, where, 10_000).split(";") if item]
    if len(items) > MAX_PRODUCTS:
        raise AdapterError(f"{where}: at most {MAX_PRODUCTS} products")
    return tuple(ident(item, where) for item in items) or None


def from_salesforce_cdc(message: Any) -> list[CrmDealChanged]:
    """One OpportunityChangeEvent (as delivered by the Pub/Sub API / CometD)."""
    payload = require(message, "payload", "event")
    header = obj(require(payload, "ChangeEventHeader", "payload"), "payload.ChangeEventHeader")
    if header.get("entityName") != "Opportunity":
        # A lead conversion's transaction carries Lead, Account and Contact changes beside the
        # Opportunity's: those are valid, just not ours.
        raise Ignored(
            f"payload.ChangeEventHeader.entityName is {str(header.get('entityName'))[:64]!r}, "
            "not 'Opportunity'"
        )
    where = "payload.ChangeEventHeader"
    record_ids = [
        ident(record_id, f"{where}.recordIds[{index}]")
        for index, record_id in enumerate(
            array(require(header, "recordIds", where), f"{where}.recordIds")
        )
    ]
    change = string(require(header, "changeType", where), f"{where}.changeType", 64).upper()
    change_type = {
        "CREATE": "created",
        "UPDATE": "updated",
        "DELETE": "deleted",
        "UNDELETE": "updated",
    }.get(change)
    if change_type is None:
        raise AdapterError(
            f"payload.ChangeEventHeader.changeType {change!r} is not supported (gap and overflow events need a resync)"
        )
    timestamp = from_epoch_ms(
        require(header, "commitTimestamp", "payload.ChangeEventHeader"),
        "payload.ChangeEventHeader.commitTimestamp",
    )
    replay_id = optional_ident(obj(message.get("event"), "event").get("replayId"), "event.replayId")
    transaction = optional_ident(header.get("transactionKey"), f"{where}.transactionKey")
    sequence = optional_ident(header.get("sequenceNumber"), f"{where}.sequenceNumber")
    event_id = f"{transaction or ''}:{sequence or ''}:{replay_id or ''}"
    in_currency = currency(payload.get("CurrencyIsoCode"), "payload.CurrencyIsoCode")
    stage = (
        map_stage(SALESFORCE_STAGES, payload["StageName"], "payload.StageName")
        if "StageName" in payload
        else None
    )
    customer = None
    if any(k in payload for k in ("Account_Name__c", "Account_Website__c", "BillingCountry__c")):
        customer = Customer(
            name=name(payload.get("Account_Name__c"), "payload.Account_Name__c"),
            domain=_domain(payload.get("Account_Website__c"), "payload.Account_Website__c"),
            country=country(payload.get("BillingCountry__c"), "payload.BillingCountry__c"),
        )
    return [
        CrmDealChanged(
            source=CrmSource.SALESFORCE,
            source_id=str(record_id),
            source_event_id=f"{event_id}:{record_id}",
            source_timestamp=timestamp,
            change_type=change_type,
            name=name(payload.get("Name"), "payload.Name"),
            customer=customer,
            products=_products(payload.get("Products__c"), "payload.Products__c"),
            amount=money(payload["Amount"], "payload.Amount", in_currency)
            if payload.get("Amount") is not None
            else None,
            currency=in_currency,
            stage=stage,
            close_date=parse_date(payload.get("CloseDate"), "payload.CloseDate"),
            owner=optional_ident(payload.get("OwnerId"), "payload.OwnerId"),
            partner_ref=optional_ident(
                payload.get("Partner_Account__c"), "payload.Partner_Account__c"
            ),
            created_at=parse_datetime(payload["CreatedDate"], "payload.CreatedDate")
            if payload.get("CreatedDate")
            else None,
        )
        for record_id in record_ids
    ]


HUBSPOT_PROPERTIES = {
    "amount",
    "dealstage",
    "dealname",
    "closedate",
    "hubspot_owner_id",
    "deal_currency_code",
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
    # Each portal (HubSpot account) numbers its deals itself: the portal is part of the key.
    portal = ident(require(event, "portalId", where), f"{where}.portalId")
    if kind == "deal.associationChange":
        raise Ignored(f"{where}: deal associations carry no deal field Pollinate keeps")
    common: dict[str, Any] = {
        "source": CrmSource.HUBSPOT,
        "source_id": f"{portal}:" + ident(require(event, "objectId", where), f"{where}.objectId"),
        "source_event_id": f"{portal}:"
        + ident(require(event, "eventId", where), f"{where}.eventId"),
        "source_timestamp": from_epoch_ms(
            require(event, "occurredAt", where), f"{where}.occurredAt"
        ),
    }
    if kind == "deal.creation":
        return [
            CrmDealChanged(**common, change_type="created", created_at=common["source_timestamp"])
        ]
    if kind == "deal.deletion":
        return [CrmDealChanged(**common, change_type="deleted")]
    if kind == "deal.propertyChange":
        # Properties we do not model are accepted and carry no field change.
        return [CrmDealChanged(**common, change_type="updated", **_hubspot_property(event, where))]
    raise AdapterError(f"{where}.subscriptionType {kind!r} is not supported")


def _hubspot_property(event: dict[str, Any], where: str) -> dict[str, Any]:
    """The field a HubSpot property change sets (none for a property not modelled)."""
    prop = string(require(event, "propertyName", where), f"{where}.propertyName")
    value = event.get("propertyValue")
    at = f"{where}.propertyValue"
    if prop == "amount":
        return {"amount": money(value, at, None)}
    if prop == "dealstage":
        return {"stage": map_stage(HUBSPOT_STAGES, value, at)}
    if prop == "dealname":
        return {"name": name(value, at)}
    if prop == "closedate":
        return {"close_date": from_epoch_ms(value, at).date()}
    if prop == "hubspot_owner_id":
        return {"owner": optional_ident(value, at)}
    if prop == "deal_currency_code":
        return {"currency": currency(value, at)}
    return {}


def from_aws_ace(opportunity: Any) -> list[CrmDealChanged]:
    """The GetOpportunity response fetched after an EventBridge 'Opportunity Updated' event."""
    opp_id = ident(require(opportunity, "Id", "opportunity"), "opportunity.Id")
    account = obj(
        require(require(opportunity, "Customer", "opportunity"), "Account", "opportunity.Customer"),
        "opportunity.Customer.Account",
    )
    lifecycle = obj(require(opportunity, "LifeCycle", "opportunity"), "opportunity.LifeCycle")
    project = obj(opportunity.get("Project"), "opportunity.Project")
    amount, in_currency = _ace_spend(project)
    needs = array(opportunity.get("PrimaryNeedsFromAws"), "opportunity.PrimaryNeedsFromAws")
    modified = parse_datetime(
        require(opportunity, "LastModifiedDate", "opportunity"), "opportunity.LastModifiedDate"
    )
    return [
        CrmDealChanged(
            source=CrmSource.AWS_ACE,
            source_id=str(opp_id),
            source_event_id=f"{opp_id}@{modified.isoformat()}",
            source_timestamp=modified,
            change_type="updated",
            name=name(project.get("Title"), "opportunity.Project.Title"),
            customer=Customer(
                name=name(
                    require(account, "CompanyName", "opportunity.Customer.Account"),
                    "opportunity.Customer.Account.CompanyName",
                ),
                domain=_domain(
                    account.get("WebsiteUrl"), "opportunity.Customer.Account.WebsiteUrl"
                ),
                country=country(
                    obj(account.get("Address"), "opportunity.Customer.Account.Address").get(
                        "CountryCode"
                    ),
                    "opportunity.Customer.Account.Address.CountryCode",
                ),
            ),
            amount=amount,
            currency=in_currency,
            stage=map_stage(
                ACE_STAGES,
                require(lifecycle, "Stage", "opportunity.LifeCycle"),
                "opportunity.LifeCycle.Stage",
            ),
            close_date=parse_date(
                lifecycle.get("TargetCloseDate"), "opportunity.LifeCycle.TargetCloseDate"
            ),
            owner=None,  # OpportunityTeam is the partner's team, not a direct rep
            partner_ref=optional_ident(
                opportunity.get("PartnerOpportunityIdentifier"),
                "opportunity.PartnerOpportunityIdentifier",
            ),
            co_sell=any(
                "Co-Sell" in string(need, f"opportunity.PrimaryNeedsFromAws[{index}]")
                for index, need in enumerate(needs)
            ),
            created_at=parse_datetime(opportunity["CreatedDate"], "opportunity.CreatedDate")
            if opportunity.get("CreatedDate")
            else None,
        )
    ]


def _ace_spend(project: dict[str, Any]) -> tuple[Decimal | None, str | None]:
    """The first expected spend, annualised, and its currency (None, None without one)."""
    where = "opportunity.Project.ExpectedCustomerSpend"
    spend = array(project.get("ExpectedCustomerSpend"), where)
    if not spend:
        return None, None
    first = obj(spend[0], f"{where}[0]")
    in_currency = currency(first.get("CurrencyCode"), f"{where}[0].CurrencyCode")
    monthly = money(require(first, "Amount", f"{where}[0]"), f"{where}[0].Amount", in_currency)
    # ACE reports expected spend per period; annualise monthly figures for a deal amount.
    frequency = first.get("Frequency", "Annual")
    factor = {"Monthly": 12, "Annual": 1}.get(frequency, 1) if isinstance(frequency, str) else 1
    return money(monthly * factor, f"{where}[0].Amount (annualised)", in_currency), in_currency


def from_microsoft_referral(referral: Any) -> list[CrmDealChanged]:
    """The referral resource fetched after a Partner Center 'referral-*' webhook."""
    referral_id = ident(require(referral, "Id", "referral"), "referral.Id")
    profile = obj(require(referral, "CustomerProfile", "referral"), "referral.CustomerProfile")
    details = obj(referral.get("Details"), "referral.Details")
    status = string(require(referral, "Status", "referral"), "referral.Status", 64)
    substatus = string(referral.get("Substatus") or "", "referral.Substatus", 64)
    if status.lower() == "closed" and not substatus:
        raise AdapterError("referral.Substatus is required when Status is 'Closed'")
    stage = map_stage(MICROSOFT_SUBSTATUS, substatus or "pending", "referral.Substatus")
    updated = parse_datetime(
        require(referral, "UpdatedDateTime", "referral"), "referral.UpdatedDateTime"
    )
    requirements = obj(details.get("Requirements"), "referral.Details.Requirements")
    products = array(
        requirements.get("Products"), "referral.Details.Requirements.Products", MAX_PRODUCTS
    )
    in_currency = currency(details.get("Currency"), "referral.Details.Currency")
    etag = optional_ident(referral.get("ETag"), "referral.ETag")
    return [
        CrmDealChanged(
            source=CrmSource.MICROSOFT,
            source_id=str(referral_id),
            source_event_id=f"{referral_id}@{etag or updated.isoformat()}",
            source_timestamp=updated,
            change_type="updated",
            name=name(referral.get("Name"), "referral.Name"),
            customer=Customer(
                name=name(
                    require(profile, "Name", "referral.CustomerProfile"),
                    "referral.CustomerProfile.Name",
                ),
                domain=_domain(
                    obj(profile.get("Ids"), "referral.CustomerProfile.Ids").get("External"),
                    "referral.CustomerProfile.Ids.External",
                ),
                country=country(
                    obj(profile.get("Address"), "referral.CustomerProfile.Address").get("Country"),
                    "referral.CustomerProfile.Address.Country",
                ),
            ),
            products=tuple(
                ident(p["Id"], f"referral.Details.Requirements.Products[{index}].Id")
                for index, p in enumerate(products)
                if isinstance(p, dict) and p.get("Id")
            )
            or None,
            amount=money(details["DealValue"], "referral.Details.DealValue", in_currency)
            if details.get("DealValue") is not None
            else None,
            currency=in_currency,
            stage=stage,
            close_date=parse_date(
                details.get("ClosingDateTime"), "referral.Details.ClosingDateTime"
            ),
            owner=None,  # Team is the partner's team, not a direct rep
            partner_ref=optional_ident(
                referral.get("ExternalReferenceId"), "referral.ExternalReferenceId"
            ),
            co_sell=str(referral.get("ReferralType", ""))[:64].lower() == "shared",
            created_at=parse_datetime(referral["CreatedDateTime"], "referral.CreatedDateTime")
            if referral.get("CreatedDateTime")
            else None,
        )
    ]
