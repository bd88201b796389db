"""Notifications' e-mail through a real local SMTP server (aiosmtpd): each recipient's
preference decides which kinds go by mail and how (at once, or gathered in a digest); a rep's
mail goes to the rep; a mail server down for a while gets the mail when it is back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from services.notifications import email_repository, inbox
from services.notifications.domain.addressing import Recipient
from services.notifications.domain.email import EmailMode, EmailPreference
from services.notifications.domain.messages import Message
from services.notifications.emailing import Smtp, gather_digests, send_due
from services.notifications.repository import file_messages
from services.notifications.settings import NotificationsSettings
from shared.clock import now
from shared.db import Pool
from shared.events.notifications import NotificationKind
from tests.support.factories import partner_notification
from tests.support.infra import ROOT, Infra, scratch_pool_fixture
from tests.support.notifications import Mail, MailServer, partner_message, tell
from tests.support.polling import eventually
from tests.support.processes import ADMIN, auth, service_processes
from tests.support.tokens import partner_admin

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mail_server() -> Iterator[MailServer]:
    with MailServer() as server:
        yield server


@pytest.fixture(scope="module")
async def notifications(infra: Infra, mail_server: MailServer) -> AsyncIterator[str]:
    env = {
        "NOTIFICATIONS_SMTP_HOST": "127.0.0.1",
        "NOTIFICATIONS_SMTP_PORT": str(mail_server.port),
        "NOTIFICATIONS_EMAIL_POLL_SECONDS": "0.2",
        "NOTIFICATIONS_EMAIL_DIGEST_SECONDS": "1",
        "NOTIFICATIONS_EMAIL_RETRY_INITIAL_SECONDS": "0.2",
        "NOTIFICATIONS_EMAIL_RETRY_MAX_SECONDS": "0.5",
    }
    async with service_processes(infra, "notifications", env=env) as urls:
        yield urls[0]


def new_partner() -> str:
    return f"ptn_mail_{uuid.uuid4().hex[:8]}"


async def mails(server: MailServer, address: str, count: int) -> list[Mail]:
    async def arrived() -> list[Mail] | None:
        got = server.to(address)
        return got if len(got) >= count else None

    found: list[Mail] = await eventually(arrived, what=f"{count} mail(s) to {address}")
    return found


async def test_each_recipient_gets_the_kinds_it_asked_for_at_once(
    infra: Infra, notifications: str, mail_server: MailServer
) -> None:
    partner, quiet = new_partner(), new_partner()
    rep = f"rep-{uuid.uuid4().hex[:6]}@vendor.example"
    address = f"alerts-{partner}@partner.example"
    async with httpx.AsyncClient(timeout=10) as client:
        set_ = await client.put(
            f"{notifications}/partners/{partner}/email-preference",
            json={"address": address, "mode": "immediate", "kinds": ["registration_approved"]},
            headers=partner_admin(partner),
        )
        assert set_.status_code == 200, set_.text
        read = await client.get(
            f"{notifications}/partners/{partner}/email-preference", headers=auth(partner)
        )
        assert read.json()["address"] == address
        assert read.json()["mode"] == "immediate"
        owner = await client.put(
            f"{notifications}/owners/{rep}/email-preference",
            json={"address": rep, "mode": "immediate"},
            headers=ADMIN,
        )
        assert owner.status_code == 200
    approved = partner_notification(partner_id=partner, subject="Registration Acme approved")
    credit = partner_notification(partner_id=partner, kind=NotificationKind.CREDIT_ISSUED)
    to_rep = partner_notification(
        partner_id=partner,
        recipient=rep,
        kind=NotificationKind.CO_SELL,
        subject=f"Co-sell: {partner} is approved on Acme",
    )
    await tell(infra, partner, approved, credit, to_rep)
    await tell(infra, quiet, partner_notification(partner_id=quiet))
    [mail] = await mails(mail_server, address, 1)
    assert mail.subject == "[Pollinate] Registration Acme approved"
    assert mail.message["To"] == address
    assert "registration_approved" in mail.body
    [rep_mail] = await mails(mail_server, rep, 1)
    assert rep_mail.subject == f"[Pollinate] Co-sell: {partner} is approved on Acme"
    # The partner's mail never carries the rep's message, nor the kinds it did not ask for.
    assert len(mail_server.to(address)) == 1
    assert all(partner not in m.to[0] for m in mail_server.mails if m is not mail)


async def test_a_digest_gathers_what_waited_since_the_last_one(
    infra: Infra, notifications: str, mail_server: MailServer
) -> None:
    partner = new_partner()
    address = f"digest-{partner}@partner.example"
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.put(
            f"{notifications}/partners/{partner}/email-preference",
            json={"address": address, "mode": "digest"},
            headers=partner_admin(partner),
        )
        assert answer.status_code == 200
    await tell(
        infra,
        partner,
        *(partner_notification(partner_id=partner, subject=f"d{i}") for i in range(3)),
    )

    # The digest job runs every second, so the three may straddle a run: whatever waited when
    # it ran is one mail, and together the mails carry each note once, in order.
    async def all_three() -> list[Mail] | None:
        got = mail_server.to(address)
        return got if sum(len(digest_lines(m)) for m in got) >= 3 else None

    digests: list[Mail] = await eventually(all_three, what=f"digests of 3 notes to {address}")
    assert [note for m in digests for note in digest_lines(m)] == ["d0", "d1", "d2"]
    for digest in digests:
        count = len(digest_lines(digest))
        assert digest.subject == f"[Pollinate] {count} notification{'s' if count != 1 else ''}"


def digest_lines(mail: Mail) -> list[str]:
    """The subjects a digest mail lists, one per `- ...` line."""
    return [line.rsplit(" ", 1)[-1] for line in mail.body.splitlines() if line.startswith("- ")]


async def test_a_mail_server_down_for_a_while_gets_the_mail_when_back(
    infra: Infra, notifications: str, mail_server: MailServer, admin_db: Any
) -> None:
    partner = new_partner()
    address = f"later-{partner}@partner.example"
    async with httpx.AsyncClient(timeout=10) as client:
        await client.put(
            f"{notifications}/partners/{partner}/email-preference",
            json={"address": address, "mode": "immediate"},
            headers=partner_admin(partner),
        )
    mail_server.stop()
    try:
        await tell(infra, partner, partner_notification(partner_id=partner, subject="late"))

        async def failed_twice() -> bool:
            row = await admin_db.fetchrow(
                "SELECT status, attempts, last_error FROM notifications.emails WHERE address = $1",
                address,
            )
            return row is not None and row["status"] == "pending" and row["attempts"] >= 2

        await eventually(failed_twice, what="the mail to fail while the server is away")
    finally:
        mail_server.start()
    [mail] = await mails(mail_server, address, 1)
    assert mail.subject == "[Pollinate] late"


async def test_preferences_are_checked_and_the_partner_admins(notifications: str) -> None:
    partner, other = new_partner(), new_partner()
    url = f"{notifications}/partners/{partner}/email-preference"
    good = {"address": "ops@partner.example", "mode": "immediate"}
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.put(url, json=good, headers=auth(partner))).status_code == 403
        assert (await client.put(url, json=good, headers=partner_admin(other))).status_code == 404
        for body in (
            {**good, "address": "ops@partner.example\r\nBcc: x@evil.example"},
            {**good, "address": "Ops <ops@partner.example>"},
            {**good, "mode": "hourly"},
            {**good, "kinds": ["nope"]},
        ):
            answer = await client.put(url, json=body, headers=partner_admin(partner))
            assert answer.status_code == 422, (body, answer.text)
        unset = await client.get(url, headers=auth(partner))
        assert unset.json() == {"address": None, "mode": "off", "kinds": [], "updated_at": None}


email_pool = scratch_pool_fixture(
    "notifications", ROOT / "services" / "notifications" / "migrations"
)


async def test_mails_not_begun_within_the_claims_lease_are_given_back(
    email_pool: Pool, mail_server: MailServer
) -> None:
    """A run begins a mail after its first only while the lease outlasts the slowest send
    (eleven SMTP replies at the timeout each): begun later, the lease could lapse mid-send and
    another instance claim the mail and send it too (50 mails a claim, one connection each,
    a slow server). Here the lease (0.5 s) is shorter than one slowest send (11 x 0.2 s): one
    mail goes, the other two are due again at once, for the next run. The lease itself must
    outlast a slowest send: counted as four replies, it did not (found in review)."""
    address = f"lease-{uuid.uuid4().hex[:8]}@partner.example"
    async with email_pool.acquire() as conn:
        for n in range(3):
            await email_repository.queue_mail(
                conn, uuid.uuid4(), Recipient.partner("p-lease"), address, f"m{n}", "body", [n]
            )
    smtp = Smtp("127.0.0.1", mail_server.port, "pollinate@vendor.example", timeout_seconds=0.2)
    policy = NotificationsSettings().email_retry_policy()
    assert await send_due(email_pool, smtp, policy, lease_seconds=0.5) == 1
    waiting = await email_pool.fetch(
        "SELECT next_attempt_at <= now() AS due FROM emails WHERE status = 'pending'"
    )
    assert [row["due"] for row in waiting] == [True, True]
    assert await send_due(email_pool, smtp, policy, lease_seconds=30) == 2
    assert len(await mails(mail_server, address, 3)) == 3
    assert smtp.slowest_send == pytest.approx(2.2)
    with pytest.raises(ValidationError, match=r"must exceed a mail's slowest send \(110.0 s\)"):
        NotificationsSettings(email_lease_seconds=60)


async def test_a_mail_refused_for_now_is_kept_until_it_is_old_one_refused_for_good_spends_its_budget(
    email_pool: Pool, mail_server: MailServer
) -> None:
    """Found in review: every failure spent the mail's budget, so a relay down for an hour and
    a half or more dropped every mail queued meanwhile, for good. A 4xx (or a refused
    connection) is the relay's moment: retried until the mail is three days old; a 5xx spends
    the budget (one try, here)."""
    smtp = Smtp("127.0.0.1", mail_server.port, "pollinate@vendor.example", timeout_seconds=5)
    policy = NotificationsSettings(email_failure_budget=1).email_retry_policy()
    address = f"refused-{uuid.uuid4().hex[:8]}@partner.example"

    async def one_try(reply: str) -> str:
        async with email_pool.acquire() as conn:
            await conn.execute(
                "UPDATE emails SET next_attempt_at = now() WHERE address = $1", address
            )
        mail_server.refusing = reply
        assert await send_due(email_pool, smtp, policy, lease_seconds=30) == 0
        status: str = await email_pool.fetchval(
            "SELECT status FROM emails WHERE address = $1", address
        )
        return status

    async with email_pool.acquire() as conn:
        await email_repository.queue_mail(
            conn, uuid.uuid4(), Recipient.partner("p-refused"), address, "s", "body", [1]
        )
    try:
        # Queued four days ago and never tried (held while its partner was suspended, say):
        # its first failure is not its last (found in review: it was given up at once).
        await email_pool.execute(
            "UPDATE emails SET created_at = now() - interval '4 days' WHERE address = $1",
            address,
        )
        assert await one_try("451 4.3.0 try again later") == "pending"
        assert await one_try("451 4.3.0 try again later") == "pending"  # past a budget of 1
        await email_pool.execute(
            "UPDATE emails SET first_attempt_at = now() - interval '73 hours' WHERE address = $1",
            address,
        )
        assert await one_try("451 4.3.0 try again later") == "failed"  # three days: given up
        await email_pool.execute(
            """UPDATE emails SET status = 'pending', attempts = 0, created_at = now(),
                   first_attempt_at = NULL
               WHERE address = $1""",
            address,
        )
        assert await one_try("550 5.1.1 no such mailbox") == "failed"  # for good: at once
    finally:
        mail_server.refusing = None
    error = await email_pool.fetchval("SELECT last_error FROM emails WHERE address = $1", address)
    assert "550" in error


async def test_a_recipient_refused_for_good_is_not_sent_again(
    email_pool: Pool, mail_server: MailServer
) -> None:
    """Found in review: a mail to a mistyped address (550 at RCPT) was sent again for the
    failure budget's ten tries; RFC 5321 says a 5xx is not to be repeated as it was."""
    smtp = Smtp("127.0.0.1", mail_server.port, "pollinate@vendor.example", timeout_seconds=5)
    policy = NotificationsSettings(email_failure_budget=10).email_retry_policy()
    address = f"nobody-{uuid.uuid4().hex[:8]}@partner.example"
    async with email_pool.acquire() as conn:
        await email_repository.queue_mail(
            conn, uuid.uuid4(), Recipient.partner("p-nobody"), address, "s", "body", [1]
        )
    asked_before = mail_server.recipients_asked
    try:
        mail_server.refusing_recipient = "550 5.1.1 no such mailbox"
        assert await send_due(email_pool, smtp, policy, lease_seconds=30) == 0
    finally:
        mail_server.refusing_recipient = None
    row = await email_pool.fetchrow(
        "SELECT status, last_error FROM emails WHERE address = $1", address
    )
    assert row is not None
    assert row["status"] == "failed"
    assert "550" in row["last_error"]
    assert mail_server.recipients_asked - asked_before == 1


async def test_a_relay_refusing_every_sender_keeps_the_mail_and_a_late_quit_sends_it_once(
    email_pool: Pool, mail_server: MailServer
) -> None:
    """Found in review: a 5xx to MAIL FROM (530: STARTTLS first; likewise a rotated password)
    is the relay's state, met by every mail: charged to each, it dropped them all within
    hours. And a QUIT answered 421 after DATA was accepted made a sent mail a failure, sent
    again at each retry."""
    smtp = Smtp("127.0.0.1", mail_server.port, "Pollinate <mail@vendor.example>", timeout_seconds=5)
    policy = NotificationsSettings(email_failure_budget=1).email_retry_policy()
    address = f"relay-{uuid.uuid4().hex[:8]}@partner.example"
    async with email_pool.acquire() as conn:
        await email_repository.queue_mail(
            conn, uuid.uuid4(), Recipient.partner("p-relay"), address, "s", "body", [1]
        )
    try:
        mail_server.refusing_sender = "530 5.7.0 Must issue a STARTTLS command first"
        for _ in range(2):  # past a budget of 1
            assert await send_due(email_pool, smtp, policy, lease_seconds=30) == 0
            await email_pool.execute(
                "UPDATE emails SET next_attempt_at = now() WHERE address = $1", address
            )
        assert (
            await email_pool.fetchval("SELECT status FROM emails WHERE address = $1", address)
            == "pending"
        )
        mail_server.refusing_sender = None
        mail_server.quit_reply = "421 4.4.2 closing"
        assert await send_due(email_pool, smtp, policy, lease_seconds=30) == 1
    finally:
        mail_server.refusing_sender = mail_server.quit_reply = None
    assert (
        await email_pool.fetchval("SELECT status FROM emails WHERE address = $1", address) == "sent"
    )
    [mail] = await mails(mail_server, address, 1)
    assert mail.message["Date"]
    assert str(mail.message["Message-ID"]).endswith("@vendor.example>")


async def test_a_partner_that_lost_access_is_mailed_the_notice_saying_so_and_nothing_else(
    email_pool: Pool, mail_server: MailServer
) -> None:
    """Found in review: the notice of a suspension (or an expulsion) waited with the partner's
    other mails, so it reached the partner only if it went before notifications heard of the
    change, and an expelled partner never learned why it lost access."""
    smtp = Smtp("127.0.0.1", mail_server.port, "pollinate@vendor.example", timeout_seconds=5)
    policy = NotificationsSettings().email_retry_policy()
    partner = f"p-cut-{uuid.uuid4().hex[:8]}"
    address = f"{partner}@partner.example"
    recipient = Recipient.partner(partner)
    kinds = (NotificationKind.PARTNER_STATUS, NotificationKind.CREDIT_ISSUED)
    async with email_pool.acquire() as conn, conn.transaction():
        filed = await file_messages(
            conn,
            [
                Message(uuid.uuid4(), recipient, partner, kind, kind, "b", None, None, now(), None)
                for kind in kinds
            ],
        )
        for one in filed:
            await email_repository.queue_mail(
                conn, uuid.uuid4(), recipient, address, one.message.kind, "b", [one.position]
            )
        await conn.execute(
            """INSERT INTO partner_access (partner_id, status, version, changed_at)
               VALUES ($1, 'expelled', 3, now())""",
            partner,
        )
    assert await send_due(email_pool, smtp, policy, lease_seconds=30) == 1
    [mail] = await mails(mail_server, address, 1)
    assert mail.subject == NotificationKind.PARTNER_STATUS
    waiting = await email_pool.fetchval(
        "SELECT array_agg(subject) FROM emails WHERE address = $1 AND status = 'pending'", address
    )
    assert waiting == [NotificationKind.CREDIT_ISSUED]


async def test_a_digest_reader_is_mailed_a_change_of_its_standing_at_once(
    email_pool: Pool,
) -> None:
    """Found in review: in digest mode the notice of a suspension or expulsion joined the
    digest with the other messages, and a partner without access has such a mail held, the
    notice with it, for good."""
    partner = f"p-dig-{uuid.uuid4().hex[:8]}"
    recipient = Recipient.partner(partner)
    kinds = (NotificationKind.CREDIT_ISSUED, NotificationKind.PARTNER_STATUS)
    async with email_pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """INSERT INTO email_preferences (recipient_kind, recipient, address, mode)
               VALUES ('partner', $1, $2, 'digest')""",
            partner,
            f"{partner}@partner.example",
        )
        filed = await file_messages(
            conn,
            [
                Message(uuid.uuid4(), recipient, partner, kind, kind, "b", None, None, now(), None)
                for kind in kinds
            ],
        )
        assert await email_repository.route(conn, filed) == 2
    mailed = await email_pool.fetch("SELECT subject FROM emails WHERE recipient = $1", partner)
    assert [m["subject"] for m in mailed] == [f"[Pollinate] {NotificationKind.PARTNER_STATUS}"]
    waiting = await email_pool.fetchval(
        "SELECT count(*) FROM email_digest_queue WHERE recipient = $1", partner
    )
    assert waiting == 1  # the credit, for the digest


async def test_a_queued_mail_goes_as_the_recipients_preference_stands_when_it_is_sent(
    email_pool: Pool, mail_server: MailServer
) -> None:
    """Found in review: mails queued during an outage went to the address, and for the kinds,
    of the moment they were queued; turned off since, they went anyway."""
    smtp = Smtp("127.0.0.1", mail_server.port, "pollinate@vendor.example", timeout_seconds=5)
    policy = NotificationsSettings().email_retry_policy()
    partner = f"p-pref-{uuid.uuid4().hex[:8]}"
    old, new = f"old-{partner}@partner.example", f"new-{partner}@partner.example"
    recipient = Recipient.partner(partner)

    async def queue(subject: str) -> None:
        kind = NotificationKind.CREDIT_ISSUED
        message = Message(
            uuid.uuid4(), recipient, partner, kind, subject, "b", None, None, now(), None
        )
        async with email_pool.acquire() as conn, conn.transaction():
            [one] = await file_messages(conn, [message])
            await email_repository.queue_mail(
                conn, uuid.uuid4(), recipient, old, subject, "b", [one.position]
            )

    async def prefer(address: str, mode: str, kinds: list[str]) -> None:
        await email_pool.execute(
            """INSERT INTO email_preferences (recipient_kind, recipient, address, kinds, mode)
               VALUES ('partner', $1, $2, $3, $4)
               ON CONFLICT (recipient_kind, recipient) DO UPDATE
               SET address = $2, kinds = $3, mode = $4""",
            partner,
            address,
            kinds,
            mode,
        )

    await prefer(old, "immediate", [])
    await queue("first")
    await prefer(new, "immediate", [])  # the person at the old address has left
    assert await send_due(email_pool, smtp, policy, lease_seconds=30) == 1
    [mail] = await mails(mail_server, new, 1)
    assert mail.subject == "first"
    assert mail_server.to(old) == []
    await queue("unwanted kind")
    await prefer(new, "immediate", [NotificationKind.CO_SELL])
    await queue("turned off")
    await prefer(new, "off", [])
    assert await send_due(email_pool, smtp, policy, lease_seconds=30) == 0
    given_up = await email_pool.fetch(
        "SELECT subject, status, last_error FROM emails WHERE recipient = $1 AND subject <> 'first'",
        partner,
    )
    assert {(r["subject"], r["status"]) for r in given_up} == {
        ("unwanted kind", "failed"),
        ("turned off", "failed"),
    }
    assert all(r["last_error"].startswith("not sent: the recipient turned") for r in given_up)


async def test_digests_are_due_once_a_period_for_every_instance_whenever_each_started(
    email_pool: Pool,
) -> None:
    """Found in review: each instance gathered digests on a timer of its own from its start,
    so three instances sent three an hour and instances restarted within every hour sent none.
    Whether they are due is one row: the first instance to ask after a period takes them, the
    next finds them not due, and a new instance asks at once, not an hour after its start."""
    hour = timedelta(hours=1)
    await email_pool.execute("UPDATE digest_schedule SET gathered_at = now() - interval '2 hours'")
    async with email_pool.acquire() as first, email_pool.acquire() as second:
        async with first.transaction():
            assert await email_repository.digests_due(first, hour) is True
        async with second.transaction():
            assert await email_repository.digests_due(second, hour) is False
    assert await gather_digests(email_pool, hour) == 0  # not due: nothing taken


async def test_what_waited_for_a_digest_goes_when_the_recipient_switches_to_immediate(
    email_pool: Pool,
) -> None:
    """Found in review: the notes waiting for the next digest were dropped when the recipient
    switched to immediate mail before it; they go in one last digest (turned off: nothing)."""
    partners = ("p-now", "p-off")
    async with email_pool.acquire() as conn:
        for partner in partners:
            recipient = Recipient.partner(partner)
            digest = EmailPreference(f"{partner}@partner.example", EmailMode.DIGEST)
            await email_repository.set_preference(conn, recipient, digest)
            await inbox.file(conn, [partner_message(partner, f"n{n}") for n in range(2)])
        await email_repository.set_preference(
            conn,
            Recipient.partner("p-now"),
            EmailPreference("p-now@partner.example", EmailMode.IMMEDIATE),
        )
        await email_repository.set_preference(
            conn,
            Recipient.partner("p-off"),
            EmailPreference("p-off@partner.example", EmailMode.OFF),
        )
        digests = await email_repository.take_digests(conn)
    assert [
        (r.id, address, [m.subject for m in carried]) for r, address, _, carried in digests
    ] == [("p-now", "p-now@partner.example", ["n0", "n1"])]
