"""The partner programmes' opportunities: AWS Partner Central (ACE) `GetOpportunity`
answers and Microsoft Partner Center referrals, each read whole (a snapshot of the record)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from services.deals.adapters.common import (
    MAX_PRODUCTS,
    AdapterError,
    array,
    country,
    currency,
    domain,
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
from shared.events.crm import CrmDealChanged, CrmSource, Customer, DealStage

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
                domain=domain(account.get("WebsiteUrl"), "opportunity.Customer.Account.WebsiteUrl"),
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
    """The expected spend, annualised, summed over its entries, and its currency (None, None
    without one). An entry without an Amount (spend given as a pricing-calculator link,
    `EstimationUrl`) adds nothing; entries in several currencies have no exact sum, so the
    amount is then left unknown rather than converted."""
    where = "opportunity.Project.ExpectedCustomerSpend"
    totals: dict[str | None, Decimal] = {}
    for index, entry in enumerate(array(project.get("ExpectedCustomerSpend"), where)):
        at = f"{where}[{index}]"
        entry = obj(entry, at)
        in_currency = currency(entry.get("CurrencyCode"), f"{at}.CurrencyCode")
        if entry.get("Amount") in (None, ""):
            continue
        amount = money(entry["Amount"], f"{at}.Amount", in_currency)
        # ACE reports expected spend per period; annualise monthly figures for a deal amount.
        frequency = entry.get("Frequency", "Annual")
        factor = {"Monthly": 12, "Annual": 1}.get(frequency, 1) if isinstance(frequency, str) else 1
        totals[in_currency] = totals.get(in_currency, Decimal(0)) + amount * factor
    if len(totals) != 1:
        return None, None
    [(in_currency, total)] = totals.items()
    return money(total, f"{where} (annualised, summed)", in_currency), in_currency


def from_microsoft_referral(referral: Any) -> list[CrmDealChanged]:
    """The referral resource fetched after a Partner Center 'referral-*' webhook, in the
    documentation's PascalCase or as the REST API returns it (camelCase: its paths are named
    here in PascalCase)."""
    referral = _pascal_case(referral)
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
                domain=_customer_domain(profile.get("Ids"), "referral.CustomerProfile.Ids"),
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
            co_sell=str(referral.get("ReferralType", referral.get("Type", "")))[:64].lower()
            == "shared",
            created_at=parse_datetime(referral["CreatedDateTime"], "referral.CreatedDateTime")
            if referral.get("CreatedDateTime")
            else None,
        )
    ]


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
        for index, entry in enumerate(array(ids, where, MAX_PRODUCTS)):
            if isinstance(entry, dict):
                entry = entry.get("Value", entry.get("Id"))
            if entry not in (None, ""):
                candidates.append(string(entry, f"{where}[{index}]", 2048))
    for candidate in candidates:
        text = string(candidate, where, 2048).strip()
        if "." in text and " " not in text and "@" not in text:
            return domain(text, where)
    return None
