"""One adapter per upstream source; each returns canonical changes in delivery order."""

from __future__ import annotations

from typing import Any

from services.deals.adapters.common import (
    AdapterError,
    from_epoch_ms,
    map_stage,
    parse_date,
    parse_datetime,
    require,
    to_decimal,
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
ISO3_TO_ISO2 = {
    "USA": "US",
    "DEU": "DE",
    "GBR": "GB",
    "FRA": "FR",
    "CAN": "CA",
    "AUS": "AU",
    "JPN": "JP",
}


def _country(value: Any) -> str | None:
    if not value:
        return None
    text = str(value).strip().upper()
    return ISO3_TO_ISO2.get(text, text if len(text) == 2 else None)


def from_salesforce_cdc(message: Any) -> list[CrmDealChanged]:
    """One OpportunityChangeEvent (as delivered by the Pub/Sub API / CometD)."""
    payload = require(message, "payload", "event")
    header = require(payload, "ChangeEventHeader", "payload")
    if header.get("entityName") != "Opportunity":
        raise AdapterError(
            f"payload.ChangeEventHeader.entityName must be 'Opportunity', got {header.get('entityName')!r}"
        )
    record_ids = require(header, "recordIds", "payload.ChangeEventHeader")
    change = str(require(header, "changeType", "payload.ChangeEventHeader")).upper()
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
    replay_id = (message.get("event") or {}).get("replayId", "")
    event_id = f"{header.get('transactionKey', '')}:{header.get('sequenceNumber', '')}:{replay_id}"
    stage = (
        map_stage(SALESFORCE_STAGES, payload["StageName"], "payload.StageName")
        if "StageName" in payload
        else None
    )
    customer = None
    if any(k in payload for k in ("Account_Name__c", "Account_Website__c", "BillingCountry__c")):
        customer = Customer(
            name=payload.get("Account_Name__c"),
            domain=normalise_domain(payload.get("Account_Website__c")),
            country=_country(payload.get("BillingCountry__c")),
        )
    return [
        CrmDealChanged(
            source=CrmSource.SALESFORCE,
            source_id=str(record_id),
            source_event_id=f"{event_id}:{record_id}",
            source_timestamp=timestamp,
            change_type=change_type,
            name=payload.get("Name"),
            customer=customer,
            products=tuple(p for p in payload["Products__c"].split(";") if p)
            if payload.get("Products__c")
            else None,
            amount=to_decimal(payload["Amount"], "payload.Amount")
            if payload.get("Amount") is not None
            else None,
            currency=payload.get("CurrencyIsoCode"),
            stage=stage,
            close_date=parse_date(payload.get("CloseDate"), "payload.CloseDate"),
            owner=payload.get("OwnerId"),
            partner_ref=payload.get("Partner_Account__c"),
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
    """A HubSpot webhook POST body: a JSON array of subscription events."""
    if not isinstance(batch, list):
        raise AdapterError("HubSpot delivers a JSON array of events; got " + type(batch).__name__)
    changes: list[CrmDealChanged] = []
    for index, event in enumerate(batch):
        where = f"[{index}]"
        kind = require(event, "subscriptionType", where)
        if not str(kind).startswith("deal."):
            raise AdapterError(f"{where}.subscriptionType {kind!r} is not a deal subscription")
        common: dict[str, Any] = {
            "source": CrmSource.HUBSPOT,
            "source_id": str(require(event, "objectId", where)),
            "source_event_id": str(require(event, "eventId", where)),
            "source_timestamp": from_epoch_ms(
                require(event, "occurredAt", where), f"{where}.occurredAt"
            ),
        }
        if kind == "deal.creation":
            changes.append(
                CrmDealChanged(
                    **common, change_type="created", created_at=common["source_timestamp"]
                )
            )
        elif kind == "deal.deletion":
            changes.append(CrmDealChanged(**common, change_type="deleted"))
        elif kind == "deal.propertyChange":
            name = require(event, "propertyName", where)
            value = event.get("propertyValue")
            fields: dict[str, Any] = {}
            if name == "amount":
                fields["amount"] = to_decimal(value, f"{where}.propertyValue")
            elif name == "dealstage":
                fields["stage"] = map_stage(HUBSPOT_STAGES, value, f"{where}.propertyValue")
            elif name == "dealname":
                fields["name"] = value
            elif name == "closedate":
                fields["close_date"] = from_epoch_ms(int(value), f"{where}.propertyValue").date()
            elif name == "hubspot_owner_id":
                fields["owner"] = value
            elif name == "deal_currency_code":
                fields["currency"] = value
            # Properties we do not model are accepted and carry no field change.
            changes.append(CrmDealChanged(**common, change_type="updated", **fields))
        else:
            raise AdapterError(f"{where}.subscriptionType {kind!r} is not supported")
    return changes


def from_aws_ace(opportunity: Any) -> list[CrmDealChanged]:
    """The GetOpportunity response fetched after an EventBridge 'Opportunity Updated' event."""
    opp_id = require(opportunity, "Id", "opportunity")
    account = require(
        require(opportunity, "Customer", "opportunity"), "Account", "opportunity.Customer"
    )
    lifecycle = require(opportunity, "LifeCycle", "opportunity")
    project = opportunity.get("Project") or {}
    spend = project.get("ExpectedCustomerSpend") or []
    amount = currency = None
    if spend:
        first = spend[0]
        monthly = to_decimal(
            require(first, "Amount", "opportunity.Project.ExpectedCustomerSpend[0]"),
            "opportunity.Project.ExpectedCustomerSpend[0].Amount",
        )
        # ACE reports expected spend per period; annualise monthly figures for a deal amount.
        factor = {"Monthly": 12, "Annual": 1}.get(first.get("Frequency", "Annual"), 1)
        amount, currency = monthly * factor, first.get("CurrencyCode")
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
            name=project.get("Title"),
            customer=Customer(
                name=require(account, "CompanyName", "opportunity.Customer.Account"),
                domain=normalise_domain(account.get("WebsiteUrl")),
                country=_country((account.get("Address") or {}).get("CountryCode")),
            ),
            amount=amount,
            currency=currency,
            stage=map_stage(
                ACE_STAGES,
                require(lifecycle, "Stage", "opportunity.LifeCycle"),
                "opportunity.LifeCycle.Stage",
            ),
            close_date=parse_date(
                lifecycle.get("TargetCloseDate"), "opportunity.LifeCycle.TargetCloseDate"
            ),
            owner=None,  # OpportunityTeam is the partner's team, not a direct rep
            partner_ref=opportunity.get("PartnerOpportunityIdentifier"),
            co_sell=any("Co-Sell" in need for need in opportunity.get("PrimaryNeedsFromAws") or []),
            created_at=parse_datetime(opportunity["CreatedDate"], "opportunity.CreatedDate")
            if opportunity.get("CreatedDate")
            else None,
        )
    ]


def from_microsoft_referral(referral: Any) -> list[CrmDealChanged]:
    """The referral resource fetched after a Partner Center 'referral-*' webhook."""
    referral_id = require(referral, "Id", "referral")
    profile = require(referral, "CustomerProfile", "referral")
    details = referral.get("Details") or {}
    status = str(require(referral, "Status", "referral"))
    substatus = str(referral.get("Substatus") or "")
    if status.lower() == "closed" and not substatus:
        raise AdapterError("referral.Substatus is required when Status is 'Closed'")
    stage = map_stage(MICROSOFT_SUBSTATUS, substatus or "pending", "referral.Substatus")
    updated = parse_datetime(
        require(referral, "UpdatedDateTime", "referral"), "referral.UpdatedDateTime"
    )
    products = ((details.get("Requirements") or {}).get("Products")) or []
    return [
        CrmDealChanged(
            source=CrmSource.MICROSOFT,
            source_id=str(referral_id),
            source_event_id=f"{referral_id}@{referral.get('ETag') or updated.isoformat()}",
            source_timestamp=updated,
            change_type="updated",
            name=referral.get("Name"),
            customer=Customer(
                name=require(profile, "Name", "referral.CustomerProfile"),
                domain=normalise_domain((profile.get("Ids") or {}).get("External")),
                country=_country((profile.get("Address") or {}).get("Country")),
            ),
            products=tuple(str(p["Id"]) for p in products if isinstance(p, dict) and p.get("Id"))
            or None,
            amount=to_decimal(details["DealValue"], "referral.Details.DealValue")
            if details.get("DealValue") is not None
            else None,
            currency=details.get("Currency"),
            stage=stage,
            close_date=parse_date(
                details.get("ClosingDateTime"), "referral.Details.ClosingDateTime"
            ),
            owner=None,  # Team is the partner's team, not a direct rep
            partner_ref=referral.get("ExternalReferenceId"),
            co_sell=str(referral.get("ReferralType", "")).lower() == "shared",
            created_at=parse_datetime(referral["CreatedDateTime"], "referral.CreatedDateTime")
            if referral.get("CreatedDateTime")
            else None,
        )
    ]
