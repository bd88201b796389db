"""Use case: mails go out. Due mails are claimed and sent over SMTP (one connection per
mail, in a worker thread: `smtplib` is the standard library's client); a failure is retried
with backoff and given up after a budget, with the reason kept. Digests gather what waited
for each recipient into one mail."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import smtplib
import ssl
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from services.notifications import email_repository
from services.notifications.domain import email
from services.notifications.domain.webhooks import RetryPolicy
from shared.clock import now
from shared.db import Pool
from shared.name_ids import NameIds

log = logging.getLogger(__name__)

DIGEST_IDS = NameIds(uuid.UUID("5e0b7c4e-2a8f-4e1b-8f3d-7b9c1a2d6e50"))
CLAIM_BATCH = 50
# The replies a send waits for, each up to the timeout: the greeting, EHLO, STARTTLS, the TLS
# handshake, EHLO again, AUTH, MAIL, RCPT, DATA, the message's end and QUIT. Counted as four
# (connect, STARTTLS, login, send), a slow relay outlasted the claim's lease mid-send and
# another instance sent the mail too (found in review).
SMTP_STEPS = 11
ERROR_MAX = 300


@dataclass(frozen=True)
class Smtp:
    host: str
    port: int
    sender: str
    username: str = ""
    password: str = ""
    starttls: bool = False
    timeout_seconds: float = 10.0

    @property
    def slowest_send(self) -> float:
        """How long one send may take before every wait times out."""
        return SMTP_STEPS * self.timeout_seconds


def send_one(smtp: Smtp, email_id: uuid.UUID, address: str, subject: str, body: str) -> None:
    """Blocking: one mail over one SMTP connection. Its Message-ID is the mail's id, so a
    mail sent twice (an instance dying mid-send) is recognisably the same mail."""
    mail = EmailMessage()
    mail["From"] = smtp.sender
    mail["To"] = address
    mail["Subject"] = subject
    # RFC 5322 requires a Date (a relay adds none for a remote client), and a Message-ID's
    # right side is a domain: the sender's.
    mail["Date"] = formatdate(usegmt=True)
    domain = parseaddr(smtp.sender)[1].rpartition("@")[2] or "pollinate.invalid"
    mail["Message-ID"] = f"<{email_id}@{domain}>"
    mail.set_content(body)
    client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds)
    try:
        if smtp.starttls:
            client.starttls(context=ssl.create_default_context())
        if smtp.username:
            client.login(smtp.username, smtp.password)
        client.send_message(mail)
        # Sent once DATA was accepted: a QUIT answered otherwise than 221 (`with` raised it)
        # made the mail a failure, sent again at every retry.
        with contextlib.suppress(smtplib.SMTPException, OSError):
            client.quit()
    finally:
        client.close()


def no_such_recipient(error: Exception) -> bool:
    """The relay refused the mail's recipient for good (550 no such mailbox): sending it again
    cannot succeed (found in review: each mail to a mistyped address was sent ten times)."""
    return isinstance(error, smtplib.SMTPRecipientsRefused) and all(
        code >= 500 for code, _ in error.recipients.values()
    )


def refused_for_good(error: Exception) -> bool:
    """Whether the server refused this mail for good: a 5xx to its recipient (no such mailbox)
    or to its content (DATA). A 5xx to the connection, EHLO, AUTH or the sender is the relay's
    own state (a rotated password, STARTTLS required, a blocked address: every mail meets it),
    retried like a 4xx or a refused connection until the mail is old; charged to each mail, a
    misconfigured relay dropped every mail in about three hours (found in review)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return no_such_recipient(error)
    return isinstance(error, smtplib.SMTPDataError) and error.smtp_code >= 500


def retry_moment(
    policy: RetryPolicy,
    error: Exception,
    failures: int,
    trying_since: datetime,
    give_up: timedelta,
) -> datetime | None:
    """When a mail that failed is tried again (None: never). A refusal for good spends the
    failure budget; a failure for now is retried, backing off, until it has been tried for
    `give_up` (from its first attempt: a mail held while its partner was suspended was given
    up at its first failure, found in review): a relay down for an hour and a half or more
    spent every mail's budget and they were dropped (found in review)."""
    at = now()
    if no_such_recipient(error):
        return None  # RFC 5321: a 5xx to RCPT is not to be sent again as it was
    spent = policy.spent(failures) if refused_for_good(error) else at - trying_since >= give_up
    return None if spent else at + policy.delay(failures, random.random())  # noqa: S311 (jitter)


async def send_due(
    pool: Pool,
    smtp: Smtp,
    policy: RetryPolicy,
    lease_seconds: float,
    give_up: timedelta = timedelta(hours=72),
) -> int:
    """Send the mails that are due; returns how many went. A mail after the first is begun
    only while the claim's lease outlasts its slowest send (each SMTP step may take the
    timeout); the rest are given back, due at once. Begun later, the lease could lapse mid-send
    and another instance send the mail too (found in review: 50 mails claimed for a 60 s lease,
    a new SMTP connection each, and a slow server)."""
    sent = 0
    await email_repository.withdraw_unwanted(pool)
    claimed = await email_repository.claim_due(pool, CLAIM_BATCH, lease_seconds)
    lease_ends = time.monotonic() + lease_seconds
    slowest = smtp.slowest_send
    for index, row in enumerate(claimed):
        if index and time.monotonic() + slowest > lease_ends:
            await email_repository.give_back(pool, [r["email_id"] for r in claimed[index:]])
            break
        try:
            await asyncio.to_thread(
                send_one, smtp, row["email_id"], row["address"], row["subject"], row["body"]
            )
        except (smtplib.SMTPException, OSError) as error:
            failures = row["attempts"] + 1
            retry_at = retry_moment(policy, error, failures, row["trying_since"], give_up)
            reason = f"{type(error).__name__}: {error}"[:ERROR_MAX]
            log.warning("mail not sent", extra={"email": str(row["email_id"]), "error": reason})
            await email_repository.settle(
                pool, row["email_id"], sent_at=None, error=reason, retry_at=retry_at
            )
        else:
            sent += 1
            await email_repository.settle(
                pool, row["email_id"], sent_at=now(), error=None, retry_at=None
            )
    return sent


async def gather_digests(pool: Pool, every: timedelta) -> int:
    """One digest mail per recipient with messages waiting, once `every` has passed since any
    instance last gathered them (digest_schedule, locked while deciding); returns how many
    were queued."""
    async with pool.acquire() as conn, conn.transaction():
        if not await email_repository.digests_due(conn, every):
            return 0
        digests = await email_repository.take_digests(conn)
        for recipient, address, positions, messages in digests:
            if not messages:
                continue
            subject, body = email.digest(messages)
            identity = f"{recipient.kind}/{recipient.id}/{positions[0]}-{positions[-1]}"
            await email_repository.queue_mail(
                conn,
                DIGEST_IDS.uuid(identity),
                recipient,
                address,
                subject,
                body,
                positions,
            )
        return len(digests)
