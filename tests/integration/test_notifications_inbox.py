"""Notifications' inbox as a real process on real Kafka + Postgres: each message filed under
its recipient (a rep's never in the partner's inbox), partners isolated, pages after a cursor
complete and in order, redeliveries filed once, marks read, and positions that become visible
in commit order (a reader never passes a row still to commit)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from services.notifications import repository
from services.notifications.domain.messages import Message
from shared.events.notifications import (
    NotificationKind,
    NotificationKindV3,
    PartnerNotification,
    PartnerNotificationV3,
)
from shared.topics import INCENTIVE_LEDGER, PARTNER_NOTIFICATIONS
from tests.support.factories import (
    incentive_earned,
    mdf_expired,
    partner_notification,
    payout_recorded,
)
from tests.support.infra import Infra
from tests.support.kafka import keyed_headers, publish, send_envelopes
from tests.support.notifications import inbox, tell
from tests.support.polling import eventually
from tests.support.processes import ADMIN, auth, service_fixture

pytestmark = pytest.mark.integration


notifications = service_fixture("notifications")


def new_partner() -> str:
    return f"ptn_inbox_{uuid.uuid4().hex[:8]}"


def ids(page: dict[str, Any]) -> list[str]:
    """The notification ids on an inbox page, in its order."""
    return [m["notification_id"] for m in page["items"]]


async def test_each_message_reaches_its_recipient_and_no_one_else(
    infra: Infra, notifications: str
) -> None:
    a, b = new_partner(), new_partner()
    rep = f"rep-{uuid.uuid4().hex[:6]}@vendor.example"
    approved = partner_notification(partner_id=a, subject="Registration for Acme approved")
    to_rep = partner_notification(
        partner_id=a,
        recipient=rep,
        kind=NotificationKind.DIRECT_SALES_CONFLICT,
        subject=f"Partner {a} registered Acme, your open opportunity 006-1",
    )
    later = partner_notification(partner_id=a, kind=NotificationKind.CREDIT_ISSUED)
    for_b = partner_notification(partner_id=b)
    await tell(infra, a, approved, to_rep, later)
    await tell(infra, b, for_b)
    async with httpx.AsyncClient(timeout=10) as client:
        mine = await inbox(client, notifications, a, 2)
        assert ids(mine) == [
            approved.notification_id,
            later.notification_id,
        ]
        assert mine["unread"] == 2
        assert all(rep not in m["subject"] for m in mine["items"])

        theirs = await inbox(client, notifications, b, 1)
        assert ids(theirs) == [for_b.notification_id]

        # B's people cannot read A's inbox nor mark it: exactly as a missing partner.
        other = await client.get(f"{notifications}/partners/{a}/notifications", headers=auth(b))
        assert (other.status_code, other.json()) == (404, {"detail": f"partner {a} not found"})
        marked = await client.post(
            f"{notifications}/partners/{a}/notifications/read",
            json={"through": mine["next_cursor"]},
            headers=auth(b),
        )
        assert marked.status_code == 404

        owners = f"{notifications}/owners/{rep}/notifications"
        refused = await client.get(owners, headers=auth(a))
        assert refused.status_code == 403
        owner = await client.get(owners, headers=ADMIN)
        assert ids(owner.json()) == [to_rep.notification_id]
        assert owner.json()["items"][0]["partner_id"] == a


async def test_pages_after_a_cursor_are_complete_in_order_and_marked_read(
    infra: Infra, notifications: str
) -> None:
    partner = new_partner()
    notes = [partner_notification(partner_id=partner, subject=f"message {i}") for i in range(7)]
    await tell(infra, partner, *notes)
    base = f"{notifications}/partners/{partner}/notifications"
    async with httpx.AsyncClient(timeout=10) as client:
        await inbox(client, notifications, partner, 7)
        seen: list[str] = []
        after: str | None = None
        while True:
            params = {"limit": 3} | ({"after": after} if after else {})
            page = (await client.get(base, params=params, headers=auth(partner))).json()
            if not page["items"]:
                assert page["next_cursor"] == after
                break
            seen += [m["subject"] for m in page["items"]]
            after = page["next_cursor"]
        assert seen == [f"message {i}" for i in range(7)]

        first_three = (await client.get(base, params={"limit": 3}, headers=auth(partner))).json()
        marked = await client.post(
            f"{base}/read", json={"through": first_three["next_cursor"]}, headers=auth(partner)
        )
        assert marked.json() == {"marked": 3, "unread": 4}
        again = await client.post(
            f"{base}/read",
            json={"notification_ids": [notes[3].notification_id, notes[3].notification_id]},
            headers=auth(partner),
        )
        assert again.json() == {"marked": 1, "unread": 3}
        page = (await client.get(base, headers=auth(partner))).json()
        assert [m["read"] for m in page["items"]] == [True] * 4 + [False] * 3


async def test_newest_first_pages_are_complete_and_a_later_message_follows_the_live_cursor(
    infra: Infra, notifications: str
) -> None:
    partner = new_partner()
    await tell(
        infra,
        partner,
        *[partner_notification(partner_id=partner, subject=f"m{i}") for i in range(7)],
    )
    base = f"{notifications}/partners/{partner}/notifications"
    async with httpx.AsyncClient(timeout=10) as client:
        await inbox(client, notifications, partner, 7)
        top = (
            await client.get(f"{base}/newest", params={"limit": 3}, headers=auth(partner))
        ).json()
        assert [m["subject"] for m in top["items"]] == ["m6", "m5", "m4"]
        assert top["live_after"] == top["items"][0]["cursor"]
        assert top["unread"] == 7
        seen, before = [m["subject"] for m in top["items"]], top["next_before"]
        while before is not None:
            older = (
                await client.get(
                    f"{base}/newest", params={"limit": 3, "before": before}, headers=auth(partner)
                )
            ).json()
            assert older["live_after"] is None
            seen += [m["subject"] for m in older["items"]]
            before = older["next_before"]
        assert seen == [f"m{i}" for i in reversed(range(7))]

        # Filed after the read: it follows the live cursor, once, and no older page gains it.
        await tell(infra, partner, partner_notification(partner_id=partner, subject="m7"))
        await inbox(client, notifications, partner, 8)
        after = (
            await client.get(base, params={"after": top["live_after"]}, headers=auth(partner))
        ).json()
        assert [m["subject"] for m in after["items"]] == ["m7"]
        below = (
            await client.get(
                f"{base}/newest",
                params={"before": top["items"][-1]["cursor"], "limit": 200},
                headers=auth(partner),
            )
        ).json()
        assert [m["subject"] for m in below["items"]] == ["m3", "m2", "m1", "m0"]
        assert below["next_before"] is None
        fresh = new_partner()
        empty = await client.get(
            f"{notifications}/partners/{fresh}/notifications/newest", headers=auth(fresh)
        )
        assert empty.json() == {"items": [], "next_before": None, "live_after": None, "unread": 0}
        stranger = await client.get(f"{base}/newest", headers=auth(new_partner()))
        assert stranger.status_code == 404, stranger.text
        refused = await client.get(
            f"{base}/newest", params={"before": "nope"}, headers=auth(partner)
        )
        assert refused.status_code == 422, refused.text
        assert "before is not a cursor" in refused.text


async def test_a_redelivered_notification_is_filed_once(infra: Infra, notifications: str) -> None:
    partner = new_partner()
    first, second = (partner_notification(partner_id=partner) for _ in range(2))
    envelopes = await tell_envelopes(infra, partner, first)
    await send_envelopes(infra, PARTNER_NOTIFICATIONS.name, partner, *envelopes, *envelopes)
    await tell(infra, partner, second)
    async with httpx.AsyncClient(timeout=10) as client:
        page = await inbox(client, notifications, partner, 2)
        assert ids(page) == [
            first.notification_id,
            second.notification_id,
        ]


async def test_every_contract_version_is_filed_in_one_inbox(
    infra: Infra, notifications: str
) -> None:
    """v1, v2 and v3 notifications (each names kinds the one before cannot) share one inbox, in
    the order they were told."""
    partner = new_partner()
    fields = partner_notification(partner_id=partner).model_dump()
    older = partner_notification(partner_id=partner, subject="credit")
    reminder = PartnerNotificationV3.model_validate(
        fields
        | {
            "notification_id": str(uuid.uuid4()),
            "recipient": "ada@partner.example",
            "kind": NotificationKindV3.CERTIFICATION_EXPIRING,
            "subject": "Your data sales certification expires within 30 days",
        }
    )
    manager = PartnerNotificationV3.model_validate(
        fields
        | {
            "notification_id": str(uuid.uuid4()),
            "kind": NotificationKindV3.PARTNER_MANAGER,
            "subject": "mia@vendor.example is now your account manager",
        }
    )
    await tell(infra, partner, older)
    await publish(
        infra, PARTNER_NOTIFICATIONS, [reminder, manager], subject=partner, source="onboarding"
    )
    async with httpx.AsyncClient(timeout=10) as client:
        page = await inbox(client, notifications, partner, 2)
        person = await client.get(
            f"{notifications}/owners/ada@partner.example/notifications", headers=ADMIN
        )
    assert reminder.notification_id in {m["notification_id"] for m in person.json()["items"]}
    # The person's reminder is theirs (addressed to their mailbox), not the partner's inbox.
    assert [(m["kind"], m["subject"]) for m in page["items"]] == [
        (older.kind.value, "credit"),
        ("partner_manager", "mia@vendor.example is now your account manager"),
    ]


async def tell_envelopes(infra: Infra, partner_id: str, *notes: PartnerNotification) -> list[Any]:
    return await publish(
        infra, PARTNER_NOTIFICATIONS, list(notes), subject=partner_id, source="deals"
    )


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"after": "5"}, "after is not a cursor this service handed out"),
        ({"after": "x" * 41}, None),
        ({"limit": 0}, None),
        ({"limit": 201}, None),
    ],
)
async def test_a_malformed_page_request_is_422(
    notifications: str, params: dict[str, Any], detail: str | None
) -> None:
    partner = new_partner()
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(
            f"{notifications}/partners/{partner}/notifications",
            params=params,
            headers=auth(partner),
        )
    assert answer.status_code == 422, answer.text
    if detail is not None:
        assert answer.json() == {"detail": detail}


async def test_mark_read_needs_exactly_one_selection(notifications: str) -> None:
    partner = new_partner()
    url = f"{notifications}/partners/{partner}/notifications/read"
    async with httpx.AsyncClient(timeout=10) as client:
        for body in ({}, {"notification_ids": [], "through": None}, {"through": "bad"}):
            answer = await client.post(url, json=body, headers=auth(partner))
            assert answer.status_code == 422, (body, answer.text)


async def test_positions_become_visible_in_commit_order(infra: Infra, notifications: str) -> None:
    """A filing transaction that took its positions first holds the next one back until it
    commits: a reader can never see position N+1 while N is still to commit (with a sequence,
    the later transaction could commit first and a reader paging past it would skip N)."""
    partner = new_partner()
    dsn = infra.dsn_for("notifications_svc", "notifications_svc")
    first, second, reader = [await asyncpg.connect(dsn) for _ in range(3)]
    try:
        slow = first.transaction()
        await slow.start()
        early = await repository.file_messages(first, [message(partner, "early")])
        late_tx = second.transaction()
        await late_tx.start()
        pid = second.get_server_pid()
        late = asyncio.create_task(repository.file_messages(second, [message(partner, "late")]))

        async def waiting_for_the_first() -> bool:
            state = await reader.fetchval(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid
            )
            return bool(state == "Lock")

        await eventually(waiting_for_the_first, what="the second filing to wait for the first")
        assert not late.done()
        visible = await reader.fetch(
            "SELECT subject FROM notifications.messages WHERE partner_id = $1", partner
        )
        assert visible == []
        await slow.commit()
        filed_late = await late
        await late_tx.commit()
        assert filed_late[0].position > early[0].position
    finally:
        for conn in (first, second, reader):
            await conn.close()


def message(partner_id: str, subject: str) -> Message:
    return Message.of(partner_notification(partner_id=partner_id, subject=subject))


async def test_payouts_and_expired_funds_on_the_ledger_become_the_partners_messages(
    infra: Infra, notifications: str
) -> None:
    partner, other = new_partner(), new_partner()
    paid = payout_recorded(partner_id=partner, amount="1250.00", reference="INV-77")
    expired = mdf_expired(partner_id=partner, amount="300.00")
    envelopes = await publish(
        infra,
        INCENTIVE_LEDGER,
        [paid, expired, incentive_earned(partner_id=partner)],
        subject=partner,
        source="incentives",
    )
    await send_envelopes(infra, INCENTIVE_LEDGER.name, partner, envelopes[0])  # a redelivery
    await publish(
        infra,
        INCENTIVE_LEDGER,
        [payout_recorded(partner_id=other)],
        subject=other,
        source="incentives",
    )
    async with httpx.AsyncClient(timeout=10) as client:
        page = await inbox(client, notifications, partner, 2)
        theirs = await inbox(client, notifications, other, 1)
    assert [(m["kind"], m["subject"]) for m in page["items"]] == [
        ("payout", "Payout of 1250.00 USD recorded"),
        ("mdf_expired", "300.00 USD of market development funds expired unused"),
    ]
    assert "INV-77" in page["items"][0]["body"]
    assert [m["kind"] for m in theirs["items"]] == ["payout"]


async def test_a_bad_notification_is_dead_lettered_and_its_neighbours_filed(
    infra: Infra, notifications: str
) -> None:
    partner = new_partner()
    before, after = (partner_notification(partner_id=partner, subject=s) for s in ("a", "b"))
    bad = partner_notification(partner_id=partner, notification_id="not-a-uuid")
    await tell(infra, partner, before, bad, after)
    async with httpx.AsyncClient(timeout=10) as client:
        page = await inbox(client, notifications, partner, 2)
    assert [m["subject"] for m in page["items"]] == ["a", "b"]
    dead = await keyed_headers(
        infra, "notifications.dlq.v1", partner, lambda found: len(found) >= 1
    )
    assert "notification_id 'not-a-uuid' is not a UUID" in dead[0]["dlq.reason"]
