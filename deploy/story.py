"""The scripted story of the demo and of the end-to-end test, against running services.

A small ecosystem is seeded through the services' own APIs (partners apply to onboarding, a
channel manager approves them, and they complete their checklist, the manager confirming the
evidence they submit), then upstream-shaped CRM payloads and partner calls tell a story: a
clean registration, a partner-vs-partner conflict, a direct-sales conflict, a multi-partner won
deal, a correction after close and an expiry. Every step waits for the events it caused to
arrive where they are needed (bounded polling of the services' APIs; no sleeps as
synchronisation). Ids carry a run id, so the story can run again on the same stack.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from services.deals.settings import LOCAL_SALESFORCE_WEBHOOK_SECRET
from shared.identity import Role, TokenIssuer
from tests.support.crm import salesforce_cdc, salesforce_delivery
from tests.support.onboarding import strong_application
from tests.support.polling import eventually

# Where deploy/services.sh starts the services: ports from HTTP_PORT_BASE (8000) up, the portal
# on the base itself.
HTTP_PORT_BASE = int(os.environ.get("HTTP_PORT_BASE") or 8000)
DEFAULT_URLS = {
    service: f"http://127.0.0.1:{HTTP_PORT_BASE + offset}"
    for offset, service in enumerate(
        ("onboarding", "deals", "attribution", "incentives", "notifications"), start=1
    )
}


class StoryFailed(RuntimeError):
    pass


@dataclass
class Partner:
    key: str  # the story's name for it: alpine, birch, ...
    company: str
    partner_type: str
    partner_id: str = ""
    token: str = ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class StoryResult:
    run: str
    partners: dict[str, Partner]
    decisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    won_deal_key: str = ""
    won_amount: Decimal = Decimal(0)
    corrected_amount: Decimal = Decimal(0)
    credits_before: dict[str, Any] = field(default_factory=dict)
    credits_after: dict[str, Any] = field(default_factory=dict)
    balances: dict[str, dict[str, Any]] = field(default_factory=dict)
    expired_registration: str = ""
    rep: str = ""


class Story:
    def __init__(
        self,
        client: httpx.AsyncClient,
        urls: dict[str, str],
        admin_token: str,
        joined: Callable[[Partner], Awaitable[None]] | None = None,
    ):
        self.client = client
        self.urls = urls
        self.admin = {"Authorization": f"Bearer {admin_token}"}
        self.run = uuid.uuid4().hex[:10]  # long enough that names of two runs never look alike
        self.log: list[str] = []
        # Told each partner once it is onboarded (the demo starts its partner apps there).
        self.joined = joined

    def say(self, line: str) -> None:
        self.log.append(line)

    async def call(
        self, method: str, service: str, path: str, expect: int | tuple[int, ...], **kwargs: Any
    ) -> Any:
        response = await self.client.request(method, f"{self.urls[service]}{path}", **kwargs)
        allowed = (expect,) if isinstance(expect, int) else expect
        if response.status_code not in allowed:
            raise StoryFailed(
                f"{method} {service}{path}: {response.status_code} {response.text[:300]}"
            )
        return response.json()

    # ---- the ecosystem ---------------------------------------------------------------------

    async def onboard(self, partner: Partner, products: list[str]) -> None:
        domain = f"{partner.key}-{self.run}.example"
        applied = await self.call(
            "POST",
            "onboarding",
            "/applications",
            201,
            json=strong_application(
                domain,
                company_name=f"{partner.company} {self.run}",
                partner_type=partner.partner_type,
                products=products,
                contacts=[{"name": "Alliances", "email": f"alliances@{domain}"}],
            ),
        )
        partner.partner_id = applied["partner_id"]
        score = applied["qualification"]["total"]
        # Self-declared figures only recommend: a channel manager approves the application.
        await self.call(
            "POST",
            "onboarding",
            f"/applications/{partner.partner_id}/decision",
            200,
            headers=self.admin,
            json={"approve": True, "note": "demo: references checked"},
        )
        token = await self.call(
            "POST",
            "onboarding",
            f"/admin/partner-tokens/{partner.partner_id}",
            200,
            headers=self.admin,
        )
        partner.token = token["token"]
        # The partner completes its profile and submits evidence for the agreement and the
        # enablement; the channel manager confirms both (the last activates the partner).
        checklist = f"/partners/{partner.partner_id}/checklist"
        await self.call(
            "POST", "onboarding", f"{checklist}/profile_complete", 200, headers=partner.auth
        )
        for item in ("agreement_signed", "first_enablement_done"):
            await self.call(
                "POST",
                "onboarding",
                f"{checklist}/{item}",
                202,
                headers=partner.auth,
                json={"evidence": f"demo:{item}:{self.run}"},
            )
            await self.call("POST", "onboarding", f"{checklist}/{item}", 200, headers=self.admin)
        state = await self.call(
            "GET", "onboarding", f"/partners/{partner.partner_id}", 200, headers=partner.auth
        )
        self.say(
            f"onboarding: {partner.company} ({partner.partner_type}) scored {score}, "
            f"{state['status']} as {partner.partner_id}, tier {state['tier']}"
        )

    async def known_to_deals(self, partner: Partner) -> None:
        async def active() -> bool:
            answer = await self.check(partner, f"Probe {self.run} Ltd", None)
            # Deals may know the partner before its activation reaches it (still onboarding):
            # only an active partner may register.
            return not any(
                "unknown to deals" in r or "partners that may register" in r
                for r in answer["reasons"]
            )

        await eventually(active, 45, what=f"deals to learn that {partner.partner_id} is active")

    async def crm_linked(self, partner: Partner, source: str = "salesforce") -> None:
        """A channel manager confirms that the CRM names this partner by its partner id (a CRM
        partner reference credits no one until such a link is confirmed)."""
        link = {"source": source, "external_id": partner.partner_id}
        await self.call(
            "POST",
            "attribution",
            "/crm-links",
            201,
            headers=self.admin,
            json={**link, "partner_id": partner.partner_id},
        )
        await self.call(
            "POST",
            "attribution",
            f"/crm-links/{source}/{partner.partner_id}/confirm",
            200,
            headers=self.admin,
            json={"partner_id": partner.partner_id},
        )

    async def check(self, partner: Partner, customer: str, domain: str | None) -> Any:
        """What deals would decide now if `partner` registered `customer`."""
        return await self.call(
            "POST",
            "deals",
            "/registrations/check",
            200,
            headers=partner.auth,
            json=self.registration(customer, domain),
        )

    def registration(
        self, customer: str, domain: str | None, amount: str = "18000.00", **extra: Any
    ) -> dict[str, Any]:
        return {
            "customer_name": customer,
            "customer_domain": domain,
            "customer_country": "US",
            "products": ["data"],
            "amount": amount,
            "currency": "USD",
            **extra,
        }

    async def register(self, partner: Partner, label: str, body: dict[str, Any]) -> Any:
        decision = await self.call(
            "POST", "deals", "/registrations", 201, headers=partner.auth, json=body
        )
        self.say(
            f"deals: {label}: {partner.company} registered {body['customer_name']} -> "
            f"{decision['status']} ({'; '.join(decision['reasons'])})"
        )
        return decision

    async def link(self, partner: Partner, registration_id: str, deal_key: str) -> None:
        """Link the partner's registration to a CRM deal once deals' CRM projection knows it
        (deals verifies the deal's customer and amount; 409 until then)."""

        async def linked() -> bool:
            answer = await self.client.post(
                f"{self.urls['deals']}/registrations/{registration_id}/crm-link",
                headers=partner.auth,
                json={"crm_deal_key": deal_key},
            )
            if answer.status_code == 200:
                self.say(
                    f"deals: {partner.company} linked {registration_id}: {answer.json()['reason']}"
                )
            return answer.status_code == 200

        await eventually(linked, 45, what=f"deals to link {registration_id} to {deal_key}")

    async def crm(self, record_id: str, change: str, at: datetime, fields: dict[str, Any]) -> None:
        """A Salesforce change as the CDC relay delivers it: signed with Standard Webhooks
        (the deals service's relay secret: DEALS_SALESFORCE_WEBHOOK_SECRET, or the local one)."""
        await self.call(
            "POST",
            "deals",
            "/crm/salesforce",
            202,
            **salesforce_delivery(
                salesforce_cdc(record_id, change, at, fields),
                secret=os.environ.get(
                    "DEALS_SALESFORCE_WEBHOOK_SECRET", LOCAL_SALESFORCE_WEBHOOK_SECRET
                ),
            ),
        )

    async def opportunity_opened(
        self,
        record_id: str,
        customer: str,
        domain: str,
        amount: float,
        opened: datetime,
        closes_on: date,
    ) -> None:
        """A data-platform opportunity for `customer` (its website on `domain`) created in
        Salesforce at `opened`, in USD, at the qualification stage."""
        await self.crm(
            record_id,
            "CREATE",
            opened,
            {
                "Name": f"{customer} - data platform",
                "StageName": "Qualification",
                "Amount": amount,
                "CurrencyIsoCode": "USD",
                "CloseDate": closes_on.isoformat(),
                "Account_Name__c": customer,
                "Account_Website__c": f"https://www.{domain}",
                "Products__c": "data",
                "CreatedDate": opened.isoformat().replace("+00:00", "Z"),
            },
        )

    async def touchpoint_reported(
        self,
        partner: Partner,
        deal_key: str,
        kind: str,
        expect: int | tuple[int, ...] = 201,
        **fields: str,
    ) -> Any:
        """`partner` reports a `kind` touchpoint on the deal from its partner app, now (one of
        each kind per run: its external id is the kind's); `fields` are the kind's own."""
        return await self.call(
            "POST",
            "attribution",
            "/touchpoints",
            expect,
            headers=partner.auth,
            json={
                "deal_key": deal_key,
                "kind": kind,
                **fields,
                "occurred_at": datetime.now(UTC).isoformat(),
                "source": "partner-app",
                "external_id": f"{kind}-{self.run}",
            },
        )

    async def attribution_of(self, deal_key: str) -> Any:
        return await self.call(
            "GET", "attribution", f"/deals/{deal_key}/attribution", (200, 404), headers=self.admin
        )

    # ---- the story -------------------------------------------------------------------------

    async def tell(self) -> StoryResult:
        cast = {
            "alpine": Partner("alpine", "Alpine Systems Integrators", "gsi"),
            "birch": Partner("birch", "Birch Software", "isv"),
            "cobalt": Partner("cobalt", "Cobalt Managed Services", "msp"),
            "delta": Partner("delta", "Delta Resellers", "var_reseller"),
            "ember": Partner("ember", "Ember Cloud Consulting", "consultant_influencer"),
        }
        result = StoryResult(self.run, cast, rep=f"rep-dana-{self.run}")
        for partner in cast.values():
            await self.onboard(partner, ["data", "ai"])
            if self.joined is not None:
                await self.joined(partner)
        for partner in cast.values():
            await self.known_to_deals(partner)
        alpine, birch, cobalt, delta, ember = cast.values()
        now = datetime.now(UTC)

        # 1. A clean registration; it links to the CRM opportunity it becomes (step 4).
        northwind = f"Northwind {self.run} Traders Ltd."
        northwind_domain = f"northwind-{self.run}.example"
        record = f"006NW{self.run}"
        result.won_deal_key = f"salesforce:{record}"
        result.decisions["clean"] = await self.register(
            alpine,
            "clean registration",
            self.registration(northwind, f"https://www.{northwind_domain}"),
        )

        # 2. Another partner registers the same customer, spelt differently, no domain.
        result.decisions["partner_conflict"] = await self.register(
            birch,
            "partner-vs-partner conflict",
            self.registration(f"NORTHWIND {self.run} TRADERS, INC", None),
        )

        # 3. A direct rep already works Fabrikam in Salesforce; a partner registers it.
        fabrikam = f"Fabrikam {self.run} Foods"
        await self.crm(
            f"006FB{self.run}",
            "CREATE",
            now - timedelta(days=3),
            {
                "Name": f"{fabrikam} - analytics",
                "StageName": "Qualification",
                "Amount": 90000.0,
                "CurrencyIsoCode": "USD",
                "OwnerId": result.rep,
                "Account_Name__c": fabrikam,
                "Account_Website__c": f"https://fabrikam-{self.run}.example",
                "CreatedDate": (now - timedelta(days=3)).isoformat().replace("+00:00", "Z"),
            },
        )

        async def direct_conflict_visible() -> bool:
            answer = await self.check(cobalt, fabrikam, f"fabrikam-{self.run}.example")
            return any(c["kind"] == "direct_sales" for c in answer["conflicts"])

        await eventually(
            direct_conflict_visible, 45, what="deals to project the direct opportunity"
        )
        result.decisions["direct_conflict"] = await self.register(
            cobalt,
            "direct-sales conflict",
            self.registration(fabrikam, f"fabrikam-{self.run}.example"),
        )

        # 4. Northwind progresses in Salesforce; two more partners report touchpoints; it closes won.
        await self.opportunity_opened(
            record, northwind, northwind_domain, 18000.0, now - timedelta(days=20), now.date()
        )
        await self.link(alpine, result.decisions["clean"]["registration_id"], result.won_deal_key)
        # Reported as they happen, after the registration: first touch is the sourcing partner.
        # They are not linked to the deal (no registration, not the CRM's partner): a channel
        # manager approves their touchpoints before they count.
        for partner, kind in ((delta, "technical_validation"), (ember, "co_sell_meeting")):
            reported = await self.touchpoint_reported(
                partner, result.won_deal_key, kind, partner_id=partner.partner_id
            )
            await self.call(
                "POST",
                "attribution",
                f"/touchpoints/{reported['touchpoint_id']}/approve",
                200,
                headers=self.admin,
            )
            self.say(
                f"attribution: {partner.company} reported {kind} on {result.won_deal_key}, "
                "approved by the channel manager"
            )
        result.won_amount = Decimal("20000.00")
        await self.crm(
            record,
            "UPDATE",
            now - timedelta(seconds=30),
            # Whole dollars: exact as a JSON number (a float of a Decimal need not be).
            {"StageName": "Closed Won", "Amount": int(result.won_amount)},
        )
        self.say(f"crm: {result.won_deal_key} closed won at {result.won_amount} USD")

        async def credited(expected_total: Decimal) -> Any:
            answer = await self.attribution_of(result.won_deal_key)
            credits = answer.get("credits", []) if isinstance(answer, dict) else []
            total = sum((Decimal(c["amount"]) for c in credits), Decimal(0))
            return answer if credits and total == expected_total else None

        result.credits_before = await eventually(
            lambda: credited(result.won_amount), 45, what="attribution to credit the won deal"
        )

        # 5. A correction after close: the amount is revised in Salesforce.
        result.corrected_amount = Decimal("16000.00")
        await self.crm(
            record,
            "UPDATE",
            now - timedelta(seconds=10),
            {"Amount": int(result.corrected_amount)},
        )
        self.say(f"crm: {result.won_deal_key} amount corrected to {result.corrected_amount} USD")
        result.credits_after = await eventually(
            lambda: credited(result.corrected_amount), 45, what="attribution to correct the credits"
        )

        # 6. An approved registration runs out of protection (channel manager runs expiry). The
        # reseller's: ember, an influencer, refers deals and registers none (rules of
        # engagement by partner type).
        expiring = await self.register(
            delta,
            "registration that will expire",
            self.registration(f"Litware {self.run} Labs", f"litware-{self.run}.example"),
        )
        result.expired_registration = expiring["registration_id"]
        later = datetime.fromisoformat(expiring["expires_at"]) + timedelta(seconds=1)
        ran = await self.call(
            "POST",
            "deals",
            "/admin/expiry/run",
            200,
            headers=self.admin,
            params={"as_of": later.isoformat()},
        )
        self.say(f"deals: expiry run as of {later.date()} expired {ran['expired']} registration(s)")

        # Earnings settle once the corrections have flowed through incentives: the partner's
        # reversed credit is clawed back and its current credit is booked.
        active = {c["partner_id"]: c["credit_id"] for c in result.credits_after["credits"]}
        for partner in cast.values():
            if partner.partner_id not in active:
                continue

            async def booked(partner: Partner = partner) -> Any:
                statement = await self.call(
                    "GET",
                    "incentives",
                    f"/partners/{partner.partner_id}/statement",
                    200,
                    headers=partner.auth,
                )
                entries = statement.get("entries", [])
                clawed_back = any(e["entry_type"] == "reversal" for e in entries)
                current = any(e["credit_id"] == active[partner.partner_id] for e in entries)
                if not (clawed_back and current):
                    return None
                balance = await self.call(
                    "GET",
                    "incentives",
                    f"/partners/{partner.partner_id}/balance",
                    200,
                    headers=partner.auth,
                )
                return {"balance": balance, "statement": statement}

            result.balances[partner.key] = await eventually(
                booked, 45, what=f"incentives to book and claw back {partner.company}'s earnings"
            )
        return result


def channel_manager_token() -> str:
    """The demo plays a channel manager, with a token the platform's key signs (as an operator
    would issue one: python -m shared.identity issue)."""
    signing = os.environ.get("TOKEN_SIGNING_KEY", "")
    if not signing:
        raise SystemExit('set TOKEN_SIGNING_KEY: eval "$(deploy/local-stack.sh env)"')
    issuer = TokenIssuer.from_json(signing)
    return issuer.issue("demo-channel-manager", [Role.CHANNEL_MANAGER], ttl=timedelta(hours=1))


async def tell_story(
    urls: dict[str, str] | None = None,
    admin_token: str | None = None,
    joined: Callable[[Partner], Awaitable[None]] | None = None,
) -> tuple[StoryResult, list[str]]:
    async with httpx.AsyncClient(timeout=30) as client:
        story = Story(client, urls or DEFAULT_URLS, admin_token or channel_manager_token(), joined)
        result = await story.tell()
        return result, story.log
