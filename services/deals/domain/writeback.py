"""What Pollinate tells a CRM about one of its deals: the registration decided on it, its
status and the partner attached. Pure: the write-back use case sends it.

A CRM deal key names where to write: `salesforce:<Opportunity id>` or
`hubspot:<portal>:<deal id>`. ACE and Microsoft opportunities are not written back (their
APIs' status updates are not modelled yet)."""

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
HUBSPOT_PROPERTIES = {
    "status": "pollinate_registration_status",
    "partner": "pollinate_partner_id",
    "registration": "pollinate_registration_id",
    "at": "pollinate_decided_at",
}


@dataclass(frozen=True)
class WriteBack:
    source: str  # salesforce | hubspot
    portal: str | None  # HubSpot's account
    record_id: str
    fields: dict[str, str]  # the CRM's own field (property) names -> values


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
    portal, _, deal = rest.partition(":")
    if source == "hubspot" and portal and deal:
        return WriteBack(
            source, portal, deal, {HUBSPOT_PROPERTIES[k]: v for k, v in values.items()}
        )
    return None
