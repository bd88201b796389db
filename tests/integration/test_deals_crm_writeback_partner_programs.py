"""Write-back to AWS Partner Central (ACE) and Microsoft Partner Center on real Kafka records and
Postgres, against local servers speaking their documented shapes: `UpdateOpportunity` takes the
whole opportunity read at its `LastModifiedDate` (nothing else of it is lost; a writer in
between is retried), a referral is PATCHed with a JSON Patch document (status and substatus for
an approval, a rejection, a win); an outage delays the write-back and never loses it, and a
write refused for good (AWS reviewing the opportunity) is dead-lettered with AWS's reason."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from faststream.exceptions import NackMessage
from pydantic import SecretStr

from services.deals.handlers import on_registration_for_crm
from services.deals.settings import DealsSettings
from shared.consumer import EventConsumer, Outcome
from shared.events import Envelope
from shared.events.registrations import (
    RegistrationDecided,
    RegistrationStatus,
    RegistrationStatusChanged,
)
from shared.outbox import Outbox
from shared.provisions import Provisions
from shared.topics import DEAL_REGISTRATIONS
from tests.support.crm import AcePartnerCentral, PartnerCenterReferrals
from tests.support.factories import registration_decided
from tests.support.infra import ROOT, Infra, migrated_pool, scratch_schema
from tests.support.kafka import as_records

pytestmark = pytest.mark.integration
DEALS_MIGRATIONS = ROOT / "services" / "deals" / "migrations"
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _envelope(payload: RegistrationDecided | RegistrationStatusChanged) -> Envelope[object]:
    return Envelope.wrap(payload, source="pollinate/deals", subject=payload.registration_id)


async def test_ace_and_partner_center_write_backs_wait_out_an_outage_and_keep_the_rest(
    infra: Infra,
) -> None:
    run = uuid.uuid4().hex[:8]
    opportunity, reviewed, referral, declined = (
        f"O-{run}",
        f"O-rev-{run}",
        f"R-{run}",
        f"R-no-{run}",
    )
    with AcePartnerCentral() as ace, PartnerCenterReferrals() as partner_center:
        ace.put(opportunity, AT - timedelta(days=1))
        ace.put(reviewed, AT - timedelta(days=1))
        ace.opportunities[reviewed]["LifeCycle"]["ReviewStatus"] = "In-Review"
        before = copy.deepcopy(ace.opportunities[opportunity])
        partner_center.put(referral, AT - timedelta(days=1), substatus="Received")
        partner_center.put(declined, AT - timedelta(days=1), substatus="Received")
        settings = DealsSettings(
            ace_endpoint=ace.url,
            ace_access_key_id="AKIAIOSFODNN7EXAMPLE",
            ace_secret_access_key=SecretStr("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            microsoft_referrals_url=partner_center.url + partner_center.PATH,
            microsoft_access_token=SecretStr(partner_center.TOKEN),
        )
        on_ace = registration_decided(
            registration_id=f"reg-ace-{run}", crm_deal_key=f"aws_ace:{opportunity}"
        )
        in_review = registration_decided(
            registration_id=f"reg-rev-{run}", crm_deal_key=f"aws_ace:{reviewed}"
        )
        accepted = registration_decided(
            registration_id=f"reg-ms-{run}", crm_deal_key=f"microsoft:{referral}"
        )
        won = RegistrationStatusChanged(
            registration_id=f"reg-ms-{run}",
            partner_id=accepted.partner_id,
            previous_status=RegistrationStatus.APPROVED,
            status=RegistrationStatus.WON,
            reason="linked CRM opportunity closed won",
            changed_at=AT,
            crm_deal_key=f"microsoft:{referral}",
        )
        rejected = registration_decided(
            registration_id=f"reg-no-{run}",
            crm_deal_key=f"microsoft:{declined}",
            status=RegistrationStatus.REJECTED,
            reasons=("customer already registered by another partner p-other",),
        )
        records = await as_records(
            infra, [_envelope(e) for e in (on_ace, in_review, accepted, won, rejected)]
        )
        async with (
            scratch_schema(infra) as service,
            migrated_pool(service, "deals", DEALS_MIGRATIONS) as pool,
        ):
            provisions = Provisions()
            provisions.provide(settings)
            consumer = EventConsumer(
                name="crm-writeback",
                service="deals",
                topics=[DEAL_REGISTRATIONS],
                pool=pool,
                outbox=Outbox("deals", source="pollinate/deals"),
                provisions=provisions,
                max_attempts=3,
                backoff_initial_seconds=0.01,
            )
            consumer.handles(RegistrationDecided)(on_registration_for_crm)
            consumer.handles(RegistrationStatusChanged)(on_registration_for_crm)

            ace.down = partner_center.down = True
            with pytest.raises(NackMessage):  # not processed, not skipped: delivered again
                await consumer.process_batch(records)
            assert await pool.fetchval("SELECT count(*) FROM inbox") == 0
            assert (ace.updates, partner_center.patches) == ([], [])

            ace.down = partner_center.down = False
            ace.conflicts = 1  # someone changes the opportunity between our read and write
            outcomes = await consumer.process_batch(records)
            reasons = await pool.fetch(
                "SELECT headers->>'dlq.reason' AS reason FROM outbox WHERE topic = 'deals.dlq.v1'"
            )
    assert outcomes == [
        Outcome.PROCESSED,
        Outcome.DEAD_LETTERED,
        Outcome.PROCESSED,
        Outcome.PROCESSED,
        Outcome.PROCESSED,
    ]
    assert [r["reason"] for r in reasons] == [
        "rejected by handler: CRM write-back refused: AWS Partner Central UpdateOpportunity "
        "answered 400 ValidationException: updates are blocked while the opportunity is under "
        "review"
    ]
    now = ace.opportunities[opportunity]
    assert now["PartnerOpportunityIdentifier"] == f"reg-ace-{run}"
    assert now["LifeCycle"]["NextSteps"].startswith(
        f"Pollinate registration reg-ace-{run} of partner {on_ace.partner_id}: approved"
    )
    # The whole opportunity went back: nothing AWS holds was nulled by the update.
    for kept in ("Customer", "Project", "OpportunityType", "PrimaryNeedsFromAws"):
        assert now[kept] == before[kept], kept
    assert {k: v for k, v in now["LifeCycle"].items() if k != "NextSteps"} == {
        k: v for k, v in before["LifeCycle"].items() if k != "NextSteps"
    }
    assert now["LastModifiedDate"] != before["LastModifiedDate"]
    assert ace.opportunities[reviewed]["LifeCycle"]["ReviewStatus"] == "In-Review"
    # Partner Center: accepted, then won; the declined one says nothing of the other partner.
    assert (
        partner_center.referrals[referral]["status"],
        partner_center.referrals[referral]["substatus"],
        partner_center.referrals[referral]["externalReferenceId"],
    ) == ("Closed", "Won", f"reg-ms-{run}")
    no = partner_center.referrals[declined]
    assert (no["status"], no["substatus"]) == ("Closed", "Declined")
    assert "p-other" not in no["statusReason"]
    assert {op["op"] for _, ops in partner_center.patches for op in ops} == {"replace"}
    assert next(ops for r, ops in partner_center.patches if r == referral) == [
        {"op": "replace", "path": "/externalReferenceId", "value": f"reg-ms-{run}"},
        {"op": "replace", "path": "/status", "value": "Active"},
        {"op": "replace", "path": "/substatus", "value": "Accepted"},
    ]
