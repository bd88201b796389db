"""CRM write-back on real Kafka records and Postgres, against local servers speaking
Salesforce's and HubSpot's documented REST shapes: a registration decided on a CRM deal is
written to that deal; while the CRM is down its write waits in the queue, never skipped, and is
written once the CRM is back; a write the CRM refuses for good is dead-lettered with the CRM's
reason."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from services.deals.crm_writeback import run_write_backs
from services.deals.settings import DealsSettings
from shared.consumer import Outcome
from shared.events.registrations import RegistrationStatus
from shared.topics import DEAL_REGISTRATIONS
from tests.support.crm import HUBSPOT_PORTAL, HubSpotCrm, SalesforceServer
from tests.support.deals import (
    crm_writeback,
    dead_letter_reasons,
    deals_outbox,
    deals_pool,
    registration_records,
    registration_won,
    write_back_through_an_outage,
)
from tests.support.factories import registration_decided
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.polling import eventually
from tests.support.processes import service_processes

pytestmark = pytest.mark.integration
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def writing_to(salesforce: SalesforceServer, hubspot: HubSpotCrm, **more: Any) -> DealsSettings:
    """Deals' settings for writing back to the local Salesforce org and HubSpot account."""
    return DealsSettings(
        salesforce_instance_url=salesforce.url,
        salesforce_access_token=SecretStr(salesforce.TOKEN),
        hubspot_api_url=hubspot.url,
        hubspot_access_tokens=SecretStr(f"{HUBSPOT_PORTAL}={hubspot.TOKEN}"),
        **more,
    )


async def test_a_write_back_waits_out_a_crm_outage_and_a_refused_one_is_dead_lettered(
    infra: Infra,
) -> None:
    run = uuid.uuid4().hex[:8]
    with SalesforceServer() as salesforce, HubSpotCrm() as hubspot:
        salesforce.put(f"006W{run}", AT)
        hubspot.deals["555"] = {}
        settings = writing_to(salesforce, hubspot)
        decided = registration_decided(
            registration_id=f"reg-sf-{run}", crm_deal_key=f"salesforce:006W{run}"
        )
        on_hubspot = registration_decided(
            registration_id=f"reg-hs-{run}",
            crm_deal_key=f"hubspot:{HUBSPOT_PORTAL}:555",
            status=RegistrationStatus.PENDING_REVIEW,
        )
        won_at = decided.decided_at + timedelta(days=30)
        won = registration_won(decided, won_at)
        gone = registration_decided(
            registration_id=f"reg-gone-{run}", crm_deal_key=f"salesforce:006Gone{run}"
        )
        unlinked = registration_decided(registration_id=f"reg-none-{run}")
        outcomes, reasons = await write_back_through_an_outage(
            infra,
            settings,
            [decided, on_hubspot, won, gone, unlinked],
            [salesforce],
            nothing_written=lambda: salesforce.updates == [],
        )
    assert outcomes == [Outcome.PROCESSED] * 5  # the consumer only queues
    assert reasons == ["CRM write-back refused: Salesforce answered 404 NOT_FOUND"]
    # One write per record, the newest decision's: the approval waiting behind the outage was
    # replaced by the win before it was sent (the consumer used to send both, and each retry
    # of its batch sent them again).
    assert salesforce.updates == [
        (
            f"006W{run}",
            {
                "Pollinate_Registration_Status__c": "won",
                "Pollinate_Partner_Id__c": decided.partner_id,
                "Pollinate_Registration_Id__c": f"reg-sf-{run}",
                "Pollinate_Decided_At__c": won_at.isoformat(),
            },
        ),
    ]
    assert salesforce.records[f"006W{run}"]["Pollinate_Registration_Status__c"] == "won"
    assert hubspot.deals["555"]["pollinate_registration_status"] == "pending_review"


async def test_a_record_the_crm_keeps_failing_holds_back_no_other_and_is_given_up(
    infra: Infra,
) -> None:
    """One Opportunity whose update Salesforce keeps failing (500): the other Opportunity and
    HubSpot's deal are written in the same run (the consumer sending them held every write of
    every CRM behind it, for ever); it is retried with backoff, and once it has failed for
    DEALS_WRITEBACK_GIVE_UP_HOURS its event is dead-lettered with the CRM's last answer."""
    run = uuid.uuid4().hex[:8]
    stuck, fine = f"006S{run}", f"006F{run}"
    with SalesforceServer() as salesforce, HubSpotCrm() as hubspot:
        salesforce.put(stuck, AT)
        salesforce.put(fine, AT)
        salesforce.failing.add(stuck)
        hubspot.deals["777"] = {}
        settings = writing_to(salesforce, hubspot, writeback_give_up_hours=1)
        events = [
            registration_decided(registration_id=f"reg-{n}-{run}", crm_deal_key=key)
            for n, key in enumerate(
                (f"salesforce:{stuck}", f"salesforce:{fine}", f"hubspot:{HUBSPOT_PORTAL}:777")
            )
        ]
        records = await registration_records(infra, events)
        async with deals_pool(infra) as pool:
            assert (
                await crm_writeback(pool, settings).process_batch(records)
                == [Outcome.PROCESSED] * 3
            )
            first = await run_write_backs(pool, deals_outbox(), settings, 10)
            assert (first.sent, first.retried, first.dead_lettered) == (2, 1, 0)
            assert [record for record, _ in salesforce.updates] == [fine]
            assert hubspot.deals["777"]["pollinate_registration_status"] == "approved"
            waiting = await pool.fetchrow(
                "SELECT attempts, last_error, due_at > now() AS later FROM crm_writebacks"
                " WHERE due_at IS NOT NULL"
            )
            assert dict(waiting) == {
                "attempts": 1,
                "last_error": "Salesforce answered 500 UNKNOWN_EXCEPTION",
                "later": True,
            }
            # An hour of failures later: given up, the event parked with why.
            await pool.execute(
                "UPDATE crm_writebacks SET due_at = now(), queued_at = now() - interval '1 hour'"
                " WHERE due_at IS NOT NULL"
            )
            last = await run_write_backs(pool, deals_outbox(), settings, 10)
            assert (last.sent, last.retried, last.dead_lettered) == (0, 0, 1)
            assert await dead_letter_reasons(pool) == [
                "CRM write-back given up after 1 h: Salesforce answered 500 UNKNOWN_EXCEPTION"
            ]
            assert (
                await pool.fetchval("SELECT count(*) FROM crm_writebacks WHERE due_at IS NOT NULL")
                == 0
            )


async def test_a_running_deals_writes_a_decision_back_to_the_crm(infra: Infra) -> None:
    """The wiring: deals' crm-writeback group queues the decision it consumes and the job
    sends it, in a running deals process."""
    run = uuid.uuid4().hex[:8]
    record = f"006R{run}"
    with SalesforceServer() as salesforce:
        salesforce.put(record, AT)
        decided = registration_decided(
            registration_id=f"reg-run-{run}", crm_deal_key=f"salesforce:{record}"
        )
        env = {**salesforce.env(), "DEALS_WRITEBACK_EVERY_SECONDS": "0.2"}
        async with service_processes(infra, "deals", env=env):
            await publish(
                infra,
                DEAL_REGISTRATIONS,
                [decided],
                subject=decided.registration_id,
                source="deals",
            )

            async def written() -> bool:
                return record in {r for r, _ in salesforce.updates}

            await eventually(written, what="the decision written to the Opportunity")
    assert salesforce.records[record]["Pollinate_Registration_Id__c"] == f"reg-run-{run}"


async def test_an_older_decision_consumed_later_does_not_roll_the_crm_back(infra: Infra) -> None:
    """Found in review: the write queued for a CRM record was the last one consumed. One
    record's registrations travel on different partitions (keyed by registration), and a
    replayed dead letter comes after what followed it: an expired registration's write then
    replaced the newer approval of another partner's, sent or not."""
    run = uuid.uuid4().hex[:8]
    record = f"006O{run}"
    with SalesforceServer() as salesforce, HubSpotCrm() as hubspot:
        salesforce.put(record, AT)
        settings = writing_to(salesforce, hubspot)
        deal = f"salesforce:{record}"
        approved = registration_decided(
            registration_id=f"reg-new-{run}", crm_deal_key=deal, decided_at=AT + timedelta(days=3)
        )
        expired = registration_decided(
            registration_id=f"reg-old-{run}",
            crm_deal_key=deal,
            status=RegistrationStatus.EXPIRED,
            decided_at=AT,
        )
        async with deals_pool(infra) as pool:
            consumer = crm_writeback(pool, settings)
            await consumer.process_batch(await registration_records(infra, [approved, expired]))
            assert (await run_write_backs(pool, deals_outbox(), settings, 10)).sent == 1
            # The older one again (a dead letter replayed) after the newer was sent.
            await consumer.process_batch(await registration_records(infra, [expired]))
            assert (await run_write_backs(pool, deals_outbox(), settings, 10)).sent == 0
    assert [fields["Pollinate_Registration_Id__c"] for _, fields in salesforce.updates] == [
        f"reg-new-{run}"
    ]


async def test_writes_not_begun_within_the_lease_are_given_back(infra: Infra) -> None:
    """A run begins a write after its first only while its lease outlasts the slowest write:
    begun later, the lease could lapse mid-write and another instance send it too (found in
    review). With a lease of a second, one write goes and the others are due again at once,
    their attempt not counted; the next run sends them."""
    run = uuid.uuid4().hex[:8]
    records = [f"006L{n}{run}" for n in range(3)]
    with SalesforceServer() as salesforce, HubSpotCrm() as hubspot:
        for record in records:
            salesforce.put(record, AT)
        settings = writing_to(salesforce, hubspot)
        events = [
            registration_decided(registration_id=f"reg-l{n}-{run}", crm_deal_key=f"salesforce:{r}")
            for n, r in enumerate(records)
        ]
        async with deals_pool(infra) as pool:
            await crm_writeback(pool, settings).process_batch(
                await registration_records(infra, events)
            )
            first = await run_write_backs(pool, deals_outbox(), settings, 10, timedelta(seconds=1))
            assert (first.sent, first.retried) == (1, 0)
            given_back = await pool.fetch(
                "SELECT attempts, due_at <= now() AS due FROM crm_writebacks WHERE sent_at IS NULL"
            )
            assert [tuple(r) for r in given_back] == [(0, True), (0, True)]
            rest = await run_write_backs(pool, deals_outbox(), settings, 10)
            assert rest.sent == 2
    assert sorted(record for record, _ in salesforce.updates) == sorted(records)
