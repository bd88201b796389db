"""Upstream CRM adapters: payloads exactly as each source delivers them -> canonical changes.

Pure functions. They raise AdapterError with a precise message for anything they cannot map
(unknown stage, missing required field, wrong shape), Ignored for a valid event that carries
nothing Pollinate keeps, and ResyncNeeded for an event that stands for changes it does not
carry; the ingestion answers each item with its outcome.
"""

from services.deals.adapters.common import AdapterError, Ignored, ResyncNeeded
from services.deals.adapters.hubspot import from_hubspot, from_hubspot_event, hubspot_events
from services.deals.adapters.partner_programs import from_aws_ace, from_microsoft_referral
from services.deals.adapters.salesforce import from_salesforce_cdc

__all__ = [
    "AdapterError",
    "Ignored",
    "ResyncNeeded",
    "from_aws_ace",
    "from_hubspot",
    "from_hubspot_event",
    "from_microsoft_referral",
    "from_salesforce_cdc",
    "hubspot_events",
]
