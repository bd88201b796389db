"""Upstream CRM adapters: payloads exactly as each source delivers them -> canonical changes.

Pure functions. They raise AdapterError with a precise message for anything they cannot map
(unknown stage, missing required field, wrong shape); the HTTP edge turns that into a 4xx.
"""

from services.deals.adapters.common import AdapterError, Ignored
from services.deals.adapters.sources import (
    from_aws_ace,
    from_hubspot,
    from_hubspot_event,
    from_microsoft_referral,
    from_salesforce_cdc,
    hubspot_events,
)

__all__ = [
    "AdapterError",
    "Ignored",
    "from_aws_ace",
    "from_hubspot",
    "from_hubspot_event",
    "from_microsoft_referral",
    "from_salesforce_cdc",
    "hubspot_events",
]
