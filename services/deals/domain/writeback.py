"""What Pollinate tells a CRM about one of its deals: the registration decided on it, its
status and the partner attached. Pure: the write-back use case sends it.

A CRM deal key names where to write: `salesforce:<Opportunity id>`,
`hubspot:<portal>:<deal id>`, `aws_ace:<opportunity id>` or `microsoft:<referral id>`.

AWS ACE has no field for a partner programme's decision: Pollinate writes its registration id
as the opportunity's `PartnerOpportunityIdentifier` (the partner's own record of it) and the
decision in `LifeCycle.NextSteps`, leaving the stage and AWS's review to their owners. A
Microsoft referral has a status of its own: the vendor accepting it (a registration approved:
Active/Accepted) and the deal's end (won or lost: Closed/Won, Closed/Lost); a review, an expiry
of the protection window or a submission is not a change of the referral, so only its
`externalReferenceId` is written then, and a registration rejected writes nothing (a partner
refused is not the vendor declining Microsoft's referral). What Microsoft is told never names
another partner."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.events.registrations import RegistrationStatus

SALESFORCE_FIELDS = {
    "status": "Pollinate_Registration_Status__c",
    "partner": "Pollinate_Partner_Id__c",
    "registration": "Pollinate_Registration_Id__c",
    "at": "Pollinate_Decided_At__c",
}
# Microsoft's ReferralStatus / ReferralSubstatus for the registration statuses that change
# the referral.
MICROSOFT_STATUS = {
    RegistrationStatus.APPROVED: ("Active", "Accepted"),
    RegistrationStatus.WON: ("Closed", "Won"),
    RegistrationStatus.LOST: ("Closed", "Lost"),
}
ACE_NEXT_STEPS_MAX = 255  # LifeCycle.NextSteps
HUBSPOT_PROPERTIES = {
    "status": "pollinate_registration_status",
    "partner": "pollinate_partner_id",
    "registration": "pollinate_registration_id",
    "at": "pollinate_decided_at",
}


@dataclass(frozen=True)
class WriteBack:
    source: str  # salesforce | hubspot | aws_ace | microsoft
    portal: str | None  # HubSpot's account
    record_id: str
    # The CRM's own field (property) names -> values: ACE's as dotted paths in the opportunity
    # (`LifeCycle.NextSteps`), Microsoft's as JSON Patch paths (`/substatus`).
    fields: dict[str, str]


def write_back_for(
    crm_deal_key: str | None,
    registration_id: str,
    partner_id: str,
    status: RegistrationStatus,
    at: datetime,
) -> WriteBack | None:
    """The write-back of a registration's status on its CRM deal (None: nothing to write)."""
    if not crm_deal_key:
        return None
    source, _, rest = crm_deal_key.partition(":")
    values = {
        "status": status.value,
        "partner": partner_id,
        "registration": registration_id,
        "at": at.isoformat(),
    }
    if source == "salesforce" and rest:
        return WriteBack(source, None, rest, {SALESFORCE_FIELDS[k]: v for k, v in values.items()})
    if source == "aws_ace" and rest:
        return WriteBack(source, None, rest, _ace_fields(registration_id, partner_id, status, at))
    if source == "microsoft" and rest:
        if status is RegistrationStatus.REJECTED:
            # A partner's registration refused is not the vendor declining Microsoft's
            # referral: declined, it closed the vendor's co-sell opportunity (and the next sync
            # closed as lost the registration that held it; found in review).
            return None
        return WriteBack(source, None, rest, _microsoft_fields(registration_id, status))
    portal, _, deal = rest.partition(":")
    if source == "hubspot" and portal and deal:
        return WriteBack(
            source, portal, deal, {HUBSPOT_PROPERTIES[k]: v for k, v in values.items()}
        )
    return None


def _ace_fields(
    registration_id: str, partner_id: str, status: RegistrationStatus, at: datetime
) -> dict[str, str]:
    said = f"Pollinate registration {registration_id} of partner {partner_id}: {status.value}"
    return {
        "PartnerOpportunityIdentifier": registration_id,
        "LifeCycle.NextSteps": f"{said} ({at.isoformat()})"[:ACE_NEXT_STEPS_MAX],
    }


def _microsoft_fields(registration_id: str, status: RegistrationStatus) -> dict[str, str]:
    fields = {"/externalReferenceId": registration_id}
    if status in MICROSOFT_STATUS:
        fields["/status"], fields["/substatus"] = MICROSOFT_STATUS[status]
    return fields
