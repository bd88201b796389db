"""E-mail rules, pure: a recipient's preference, which messages it wants by mail and how, and
what an immediate mail or a digest says."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from services.notifications.domain.messages import Message
from shared.addresses import ascii_host
from shared.inputs import check_email


class EmailMode(StrEnum):
    IMMEDIATE = "immediate"  # one mail per message, as it arrives
    DIGEST = "digest"  # one mail per digest period with everything since the last
    OFF = "off"


# One address, deliberately plain (local@domain.tld, no quoting, no comments, no display
# name): it goes into an SMTP envelope and a header, where anything cleverer is a risk.
ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$"
)
ADDRESS_MAX = 254


def check_address(value: str) -> str:
    """The address as mail is sent to it: a domain in another script by its A-labels
    (info@bücher.de is info@xn--bcher-kva.de; it was refused)."""
    local, at, domain = value.rpartition("@")
    if at and not domain.isascii():
        try:
            value = f"{local}@{ascii_host(domain)}"
        except ValueError:
            raise ValueError("address must be a plain e-mail address (local@domain)") from None
    if len(value) > ADDRESS_MAX or not ADDRESS.fullmatch(value):
        raise ValueError("address must be a plain e-mail address (local@domain)")
    # The pattern keeps out what SMTP headers must not carry; email-validator the rest that is
    # no address (a..b@x.example, .a@-x-.example, a reserved domain such as .local).
    return check_email(value, "address", ascii_only=True)


@dataclass(frozen=True)
class EmailPreference:
    address: str
    mode: EmailMode
    kinds: frozenset[str] = frozenset()  # none: every kind

    def wants(self, kind: str) -> EmailMode:
        """How a message of `kind` goes by mail (OFF: not at all)."""
        if self.mode is EmailMode.OFF or (self.kinds and kind not in self.kinds):
            return EmailMode.OFF
        return self.mode


def one_line(text: str) -> str:
    """A header value: no line breaks (a message's subject must not add headers)."""
    return " ".join(text.split())[:200]


def immediate(message: Message) -> tuple[str, str]:
    return (
        one_line(f"[Pollinate] {message.subject}"),
        f"{message.subject}\n\n{message.body}\n\nkind: {message.kind}\n"
        f"at: {message.created_at.isoformat()}\n",
    )


def digest(messages: Sequence[Message]) -> tuple[str, str]:
    lines = [
        f"- {m.created_at:%Y-%m-%d %H:%M} UTC [{m.kind}] {one_line(m.subject)}" for m in messages
    ]
    count = len(messages)
    return (
        f"[Pollinate] {count} notification{'s' if count != 1 else ''}",
        "Since the last digest:\n\n" + "\n".join(lines) + "\n",
    )
