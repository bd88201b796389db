"""Who a message is for. Every notification travels keyed by its partner, but some are
addressed to someone else: the direct account owner (a rep) of a direct-sales conflict or a
co-sell approval. The inbox files each message under its recipient, so a partner never reads a
rep's message (which names the rep and the rep's opportunity)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.events.notifications import AnyPartnerNotification


class RecipientKind(StrEnum):
    PARTNER = "partner"  # the partner's people and apps
    OWNER = "owner"  # a direct account owner on the vendor's side, addressed via the partner


@dataclass(frozen=True)
class Recipient:
    kind: RecipientKind
    id: str

    @classmethod
    def partner(cls, partner_id: str) -> Recipient:
        return cls(RecipientKind.PARTNER, partner_id)

    @classmethod
    def owner(cls, owner: str) -> Recipient:
        return cls(RecipientKind.OWNER, owner)


def addressee(note: AnyPartnerNotification) -> Recipient:
    """The recipient of a notification: the partner when it names the partner itself (or no
    one else), otherwise the owner it names."""
    if note.recipient in ("", note.partner_id):
        return Recipient.partner(note.partner_id)
    return Recipient.owner(note.recipient)
