"""The demo's portal sign-ins, and enough enablement for a partner's pages to show it: after the
story, one partner gets two of its people registered, the learning system's statements about
them (one certified long ago, so the certification is about to lapse; one part-way through a
path), and a small resource library; then a sign-in for one of those people (a partner admin)
and one for a channel manager, both valid for a working day."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from deploy.story import Partner, StoryFailed
from services.onboarding.domain.programme import EXAM_BASE, MODULE_BASE
from shared.identity import Role, TokenIssuer
from tests.support.onboarding import learner, xapi_statement

SIGN_IN_HOURS = 8


@dataclass(frozen=True)
class SignIns:
    portal: str
    partner: Partner
    person: str  # the partner person's e-mail (their token's user)
    partner_token: str
    manager_token: str


def _issuer() -> TokenIssuer:
    signing = os.environ.get("TOKEN_SIGNING_KEY", "")
    if not signing:
        raise SystemExit('set TOKEN_SIGNING_KEY: eval "$(deploy/local-stack.sh env)"')
    return TokenIssuer.from_json(signing)


async def _call(
    client: httpx.AsyncClient, method: str, url: str, expect: tuple[int, ...], **kwargs: Any
) -> Any:
    answer = await client.request(method, url, **kwargs)
    if answer.status_code not in expect:
        raise StoryFailed(f"{method} {url}: {answer.status_code} {answer.text[:300]}")
    return answer.json() if answer.content else None


async def seed_enablement(
    client: httpx.AsyncClient, onboarding: str, partner: Partner, admin_token: str, run: str
) -> tuple[str, str]:
    """Two of the partner's people and what the learning system reported about them, and the
    resource library; answers the two people's e-mails (sales first)."""
    admin = {"Authorization": f"Bearer {admin_token}"}
    system = {
        "Authorization": f"Bearer {_issuer().issue('demo-learning-system', [Role.SYSTEM])}",
        "X-Experience-API-Version": "1.0.3",
    }
    domain = f"{partner.key}-{run}.example"
    seller, engineer = f"alex@{domain}", f"sam@{domain}"
    for email, name, role in (
        (seller, "Alex Rivera", "sales"),
        (engineer, "Sam Okafor", "technical"),
    ):
        await _call(
            client,
            "POST",
            f"{onboarding}/partners/{partner.partner_id}/people",
            (200, 201),
            headers=admin,
            json={"email": email, "name": name, "role": role},
        )
    # Alex passed the data sales exam almost two years ago: the certification lapses within
    # the reminder window. Sam has taken the data fundamentals and is on the technical module.
    long_ago = datetime.now(UTC) - timedelta(days=705)
    recent = datetime.now(UTC) - timedelta(days=3)
    alex, sam = learner(seller), learner(engineer)
    statements = [
        xapi_statement(alex, "completed", f"{MODULE_BASE}data/fundamentals", long_ago),
        xapi_statement(alex, "completed", f"{MODULE_BASE}data/sales", long_ago + timedelta(days=1)),
        xapi_statement(
            alex, "passed", f"{EXAM_BASE}data/sales", long_ago + timedelta(days=2), success=True
        ),
        xapi_statement(sam, "completed", f"{MODULE_BASE}data/fundamentals", recent),
    ]
    await _call(
        client, "POST", f"{onboarding}/xapi/statements", (200,), headers=system, json=statements
    )
    for kind, title, path, types in (
        ("playbook", "Data platform co-sell playbook", "playbooks/data-co-sell.pdf", []),
        ("collateral", "Customer pitch deck (2026)", "collateral/pitch-2026.pdf", []),
        ("technical_guide", "Migration technical guide", "guides/migration.pdf", []),
        ("early_access", "Pollinate Insights SDK early access", "sdk/insights", ["gsi", "isv"]),
    ):
        await _call(
            client,
            "POST",
            f"{onboarding}/admin/resources",
            (201,),
            headers=admin,
            json={
                "kind": kind,
                "title": f"{title} [{run}]",
                "url": f"https://partners.vendor.example/{path}?run={run}",
                "partner_types": types,
            },
        )
    return seller, engineer


async def portal_sign_ins(
    client: httpx.AsyncClient,
    urls: dict[str, str],
    portal: str,
    partner: Partner,
    admin_token: str,
    run: str,
) -> SignIns:
    """Seed the partner's enablement and issue the two sign-ins the demo prints."""
    seller, _ = await seed_enablement(client, urls["onboarding"], partner, admin_token, run)
    issued = await _call(
        client,
        "POST",
        f"{urls['onboarding']}/admin/partner-tokens/{partner.partner_id}",
        (200,),
        headers={"Authorization": f"Bearer {admin_token}"},
        params={
            "user": seller,
            "role": "partner_admin",
            "ttl_seconds": SIGN_IN_HOURS * 3600,
        },
    )
    manager = _issuer().issue(
        "demo-channel-manager", [Role.CHANNEL_MANAGER], ttl=timedelta(hours=SIGN_IN_HOURS)
    )
    return SignIns(portal, partner, seller, issued["token"], manager)
