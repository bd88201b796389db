"""Reconciliation: what differs between Pollinate's copy of a CRM deal and the CRM's own
current state of it (fetched as a snapshot), judged by the projection's own merge rules.

No I/O: the use case fetches a window of records from the CRM, loads the projected rows and
their field times, and asks these rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from services.deals.domain.crm import merge_crm_change
from shared.events.crm import CrmDealChanged

# Derived columns a merge also sets: not drift of their own.
_DERIVED = frozenset({"status", "name_key"})


class DriftKind(StrEnum):
    MISSING_HERE = "missing_here"  # the CRM has the deal, Pollinate never heard of it
    STALE_HERE = "stale_here"  # Pollinate holds older values than the CRM's current ones
    DELETED_UPSTREAM = "deleted_upstream"  # the CRM deleted it, Pollinate holds it live


@dataclass(frozen=True)
class Drift:
    deal_key: str
    kind: DriftKind
    fields: tuple[str, ...] = ()  # stale: the fields whose values differ


def drift_of(
    snapshot: CrmDealChanged, stored: Mapping[str, Any] | None, stamps: Mapping[str, str]
) -> Drift | None:
    """How Pollinate's copy (`stored`, its field times `stamps`; None: unknown) drifted from
    the CRM's state `snapshot`, or None when it agrees. A field Pollinate holds from a change
    newer than the snapshot is not drift (the snapshot is what is behind); a field the
    snapshot would change under the merge rules is."""
    key = snapshot.deal_key
    gone = snapshot.deleted is True or snapshot.change_type == "deleted"
    if stored is None:
        return None if gone else Drift(key, DriftKind.MISSING_HERE)
    if gone:
        return None if stored["deleted"] else Drift(key, DriftKind.DELETED_UPSTREAM)
    updates = merge_crm_change(stored, dict(stamps), snapshot)  # a copy: nothing is kept
    fields = tuple(sorted(set(updates) - _DERIVED))
    return Drift(key, DriftKind.STALE_HERE, fields) if fields else None


@dataclass(frozen=True)
class Tally:
    checked: int
    in_sync: int
    missing_here: int
    stale_here: int
    deleted_upstream: int


def tally(checked: int, drifts: Sequence[Drift]) -> Tally:
    kinds = [d.kind for d in drifts]
    return Tally(
        checked,
        checked - len(drifts),
        kinds.count(DriftKind.MISSING_HERE),
        kinds.count(DriftKind.STALE_HERE),
        kinds.count(DriftKind.DELETED_UPSTREAM),
    )
