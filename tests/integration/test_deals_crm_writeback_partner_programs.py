"""Write-back to AWS Partner Central (ACE) and Microsoft Partner Center on real Kafka records and
Postgres, against local servers speaking their documented shapes: `UpdateOpportunity` takes the
whole opportunity read at its `LastModifiedDate` (nothing else of it is lost; a writer in
between is retried), a referral is PATCHed with a JSON Patch document (status and substatus for
an approval and a win; a rejection leaves the referral as it is); an outage delays the
write-back and never loses it, and a write refused for good (AWS reviewing the opportunity) is
dead-lettered with AWS's reason."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from services.deals.settings import DealsSettings
from shared.consumer import Outcome
from shared.events.registrations import RegistrationStatus
from tests.support.crm import AcePartnerCentral, PartnerCenterReferrals
from tests.support.deals import (
    registration_won,
    write_back_through_an_outage,
)
from tests.support.factories import registration_decided
from tests.support.infra import Infra

pytestmark = pytest.mark.integration
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


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
        before_declined = (
            partner_center.referrals[declined]["status"],
            partner_center.referrals[declined]["substatus"],
        )
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
        won = registration_won(accepted, accepted.decided_at + timedelta(days=30))
        rejected = registration_decided(
            registration_id=f"reg-no-{run}",
            crm_deal_key=f"microsoft:{declined}",
            status=RegistrationStatus.REJECTED,
            reasons=("customer already registered by another partner p-other",),
        )

        def someone_writes_between_our_read_and_write() -> None:
            ace.conflicts = 1

        outcomes, reasons = await write_back_through_an_outage(
            infra,
            settings,
            [on_ace, in_review, accepted, won, rejected],
            [ace, partner_center],
            nothing_written=lambda: (ace.updates, partner_center.patches) == ([], []),
            when_back=someone_writes_between_our_read_and_write,
        )
    assert outcomes == [Outcome.PROCESSED] * 5  # the consumer only queues
    assert reasons == [
        "CRM write-back refused: AWS Partner Central UpdateOpportunity "
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
    # Partner Center: won (the acceptance waiting behind the outage was replaced by the win
    # before it was sent).
    assert (
        partner_center.referrals[referral]["status"],
        partner_center.referrals[referral]["substatus"],
        partner_center.referrals[referral]["externalReferenceId"],
    ) == ("Closed", "Won", f"reg-ms-{run}")
    # A partner's registration refused leaves the vendor's referral as it was (declined, it
    # closed the co-sell opportunity; found in review).
    no = partner_center.referrals[declined]
    assert (no["status"], no["substatus"]) == before_declined
    assert declined not in {r for r, _ in partner_center.patches}
    assert {op["op"] for _, ops in partner_center.patches for op in ops} == {"replace"}
    assert [ops for r, ops in partner_center.patches if r == referral] == [
        [
            {"op": "replace", "path": "/externalReferenceId", "value": f"reg-ms-{run}"},
            {"op": "replace", "path": "/status", "value": "Closed"},
            {"op": "replace", "path": "/substatus", "value": "Won"},
        ]
    ]
