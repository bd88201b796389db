"""Write-back: the originating CRM learns what Pollinate decided about a registration on one
of its deals (status, partner attached, registration id, when).

It is driven by deals' own registration events, which the outbox publishes in the decision's
transaction, and consumed by the `crm-writeback` group: a CRM that is down (or rate-limits)
makes the consumer retry and then redeliver the event, so an outage delays a write-back and
never loses it; a CRM refusing the write for good (an unknown field, a deleted record)
dead-letters the event with the CRM's reason, to replay after the fix. The writes set values
(PATCH), so a redelivery writes the same thing again."""

from __future__ import annotations

import logging

from services.deals.crm_clients import (
    CrmRefused,
    CrmUnavailable,
    HubSpotClient,
    SalesforceClient,
)
from services.deals.domain.writeback import WriteBack, write_back_for
from services.deals.partner_program_clients import AceClient, MicrosoftReferralsClient
from services.deals.settings import DealsSettings
from shared.consumer import TransientError
from shared.events import InvalidEvent
from shared.events.registrations import RegistrationDecided, RegistrationStatusChanged

log = logging.getLogger(__name__)


async def write_back(
    settings: DealsSettings, event: RegistrationDecided | RegistrationStatusChanged
) -> WriteBack | None:
    """Tell the CRM the registration's status on its deal; returns what was written."""
    at = event.decided_at if isinstance(event, RegistrationDecided) else event.changed_at
    writing = write_back_for(
        event.crm_deal_key, event.registration_id, event.partner_id, event.status, at
    )
    if writing is None:
        return None
    configured = {
        "salesforce": settings.salesforce_rest,
        "hubspot": bool(settings.hubspot_tokens),
        "aws_ace": settings.ace_pull,
        "microsoft": settings.microsoft_pull,
    }
    if not configured[writing.source]:
        log.warning(
            "%s write-back not configured", writing.source, extra={"record": writing.record_id}
        )
        return None
    try:
        if writing.source == "salesforce":
            client = SalesforceClient.from_settings(settings)
            await client.update_opportunity(writing.record_id, writing.fields)
        elif writing.source == "aws_ace":
            ace = AceClient.from_settings(settings)
            await ace.update_opportunity(writing.record_id, writing.fields)
        elif writing.source == "microsoft":
            referrals = MicrosoftReferralsClient.from_settings(settings)
            await referrals.update_referral(writing.record_id, writing.fields)
        else:
            await HubSpotClient.from_settings(settings).update_deal(
                writing.portal or "", writing.record_id, writing.fields
            )
    except CrmUnavailable as error:
        raise TransientError(f"CRM write-back postponed: {error}") from error
    except CrmRefused as error:
        raise InvalidEvent(f"CRM write-back refused: {error}") from error
    return writing
