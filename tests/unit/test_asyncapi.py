"""The AsyncAPI document is generated from the code, committed, and only changes compatibly."""

from __future__ import annotations

import copy
import json
import subprocess
from typing import Any

import pytest

from shared.asyncapi import DOCUMENT, breaking_changes, build_document, render
from tests.support.infra import ROOT, missing_capability

RELATIVE = DOCUMENT.relative_to(ROOT).as_posix()


def test_the_committed_document_matches_the_code() -> None:
    assert DOCUMENT.read_text() == render(build_document()), (
        "docs/asyncapi.json drifted from the contracts: run `python -m shared.asyncapi`"
    )


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            # safe.directory: a checkout another user owns (CI as root) is still read.
            ["git", "-c", f"safe.directory={ROOT}", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout


def previous_version() -> dict[str, Any] | None:
    """The document as last committed before the current one (git history)."""
    commits = (_git("log", "--format=%H", "-n", "2", "--", RELATIVE) or "").split()
    if not commits:
        return None
    head_text = _git("show", f"{commits[0]}:{RELATIVE}")
    if head_text is not None and head_text != DOCUMENT.read_text():
        return dict(json.loads(head_text))  # uncommitted edits: compare with the last commit
    if len(commits) < 2:
        return None
    older = _git("show", f"{commits[1]}:{RELATIVE}")
    return dict(json.loads(older)) if older else None


def test_contracts_stay_compatible_with_their_previous_version() -> None:
    previous = previous_version()
    if previous is None:
        missing_capability("no earlier committed version of docs/asyncapi.json in this checkout")
    assert breaking_changes(previous, build_document()) == []


CURRENT = build_document()


def changed(edit: Any) -> dict[str, Any]:
    document = copy.deepcopy(CURRENT)
    edit(document["components"]["schemas"], document)
    return document


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (
            lambda s, d: s["CreditIssued"]["properties"].pop("share"),
            "credit.issued.v1.share: field removed",
        ),
        (
            lambda s, d: s["CreditIssued"]["required"].append("reasons"),
            "credit.issued.v1.reasons: field became required",
        ),
        (
            lambda s, d: s["PartnerStateChanged"]["properties"].update(version={"type": "string"}),
            "partner.state_changed.v1.version: type changed from ['integer'] to ['string']",
        ),
        (
            lambda s, d: s["DealStatus"]["enum"].append("abandoned"),
            "deal.state_changed.v1.status: enum value(s) added ['abandoned']",
        ),
        # Found in review: accepted, though a consumer of the current version refuses the
        # null (dead-lettered), and a bound moved either way breaks one side.
        (
            lambda s, d: s["PartnerStateChanged"]["properties"].update(
                version={"anyOf": [{"type": "integer"}, {"type": "null"}]}
            ),
            "partner.state_changed.v1.version: type changed from ['integer'] to "
            "['integer', 'null']",
        ),
        (
            lambda s, d: s["PartnerStateChanged"]["properties"]["version"].update(minimum=5),
            "partner.state_changed.v1.version: minimum changed from",
        ),
        (
            lambda s, d: s["Customer"]["properties"].pop("country"),
            "deal.state_changed.v1.customer.country: field removed",
        ),
        (
            lambda s, d: d["components"]["messages"].pop("credit.reversed.v1"),
            "event credit.reversed.v1: removed",
        ),
    ],
)
def test_breaking_changes_are_named(edit: Any, problem: str) -> None:
    assert any(p.startswith(problem) for p in breaking_changes(CURRENT, changed(edit)))


@pytest.mark.parametrize(
    "edit",
    [
        lambda s, d: s["CreditIssued"]["properties"].update(note={"type": "string"}),
        lambda s, d: d["components"]["messages"].update(
            {"credit.adjusted.v1": d["components"]["messages"]["credit.issued.v1"]}
        ),
    ],
)
def test_compatible_changes_pass(edit: Any) -> None:
    assert breaking_changes(CURRENT, changed(edit)) == []


def test_a_free_string_that_becomes_an_enum_of_strings_is_compatible_but_not_the_reverse() -> None:
    def free_kind(s: dict[str, Any], d: dict[str, Any]) -> None:
        s["PartnerNotification"]["properties"]["kind"] = {"type": "string"}

    free = changed(free_kind)
    assert breaking_changes(free, CURRENT) == []
    assert breaking_changes(CURRENT, free) == [
        "notification.partner.v1.kind: enum value(s) removed "
        f"{sorted(CURRENT['components']['schemas']['NotificationKind']['enum'])}"
    ]
