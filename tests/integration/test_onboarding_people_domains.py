"""Whose people a partner registers, on a real onboarding process (Kafka + Postgres): its own
admin names only addresses in the domain it holds (verified by the well-known file, partners'
sites served locally), a channel manager anyone. Found from outside: the learning system
reported exams passed by Lima's people before Lima registered them; Mike registered them as its
own (201), gained the competency their certifications made, and Lima got a 409 for its own
people."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.onboarding import (
    PartnerSites,
    active_partner,
    exam_passed,
    onboarding_proving_domains_fixtures,
    partner_view,
    send_statements,
    verify_domain,
)
from tests.support.processes import ADMIN
from tests.support.tokens import partner_admin

pytestmark = pytest.mark.integration

SHARED_LMS = "https://lms.pollinate.example"


sites, onboarding = onboarding_proving_domains_fixtures("people-domains")


async def test_a_partner_registers_only_people_at_the_domain_it_holds(
    onboarding: str, sites: PartnerSites
) -> None:
    run = uuid.uuid4().hex[:8]
    lima_domain, mike_domain = f"lima-{run}.example", f"mïke-{run}.example"
    async with httpx.AsyncClient(timeout=30) as client:
        lima = await active_partner(client, onboarding, lima_domain, ADMIN)
        mike = await active_partner(client, onboarding, mike_domain, ADMIN)
        lima_admin, mike_admin = partner_admin(lima), partner_admin(mike)

        async def register(pid: str, headers: dict[str, str], **body: Any) -> httpx.Response:
            return await client.post(
                f"{onboarding}/partners/{pid}/people", headers=headers, json=body
            )

        # Before its domain is held a partner registers nobody, not even at its own domain (its
        # claim is anyone's word: Mike could have claimed lima's domain as well).
        early = await register(mike, mike_admin, email=f"eve@{mike_domain}", role="sales")
        assert early.status_code == 403, early.text
        assert "does not hold its domain xn--" in early.json()["detail"]
        await verify_domain(client, onboarding, lima, sites, lima_admin)
        await verify_domain(client, onboarding, mike, sites, mike_admin)

        # The learning system reports Lima's people's passes before Lima registers them.
        passed_at = datetime.now(UTC) - timedelta(hours=1)
        for who, role in (("carol", "sales"), ("dave", "technical")):
            statement = exam_passed(f"{who}@{lima_domain}", "data", role, passed_at)
            await send_statements(client, onboarding, statement)

        # Mike names them, however written: refused, naming the rule; nothing of theirs moves.
        for email, role in (
            (f"carol@{lima_domain}", "sales"),
            (f"dave@{lima_domain.upper()}", "technical"),
            (f"dave@mail.{lima_domain}", "technical"),
        ):
            taken = await register(mike, mike_admin, email=email, role=role)
            assert taken.status_code == 403, taken.text
            assert taken.json()["detail"].startswith(f"{email} is not in xn--mke-")
            assert (
                "a partner registers only people with addresses in its own domain"
                in (taken.json()["detail"])
            )
        assert await partner_view(client, onboarding, mike, "/people") == []
        assert (await partner_view(client, onboarding, mike))["competencies"] == []

        # Lima registers its own (its domain in capitals, a mailbox under it): the passes apply.
        for email, role in (
            (f"Carol@{lima_domain.upper()}", "sales"),
            (f"dave@{lima_domain}", "technical"),
        ):
            mine = await register(lima, lima_admin, email=email, role=role)
            assert mine.status_code == 201, mine.text
        under = await register(lima, lima_admin, email=f"erin@eu.{lima_domain}", role="sales")
        assert under.status_code == 201, under.text
        assert (await partner_view(client, onboarding, lima))["competencies"] == ["data"]
        certified = await partner_view(client, onboarding, lima, "/certifications")
        assert sorted(c["person"] for c in certified) == [
            f"carol@{lima_domain}",
            f"dave@{lima_domain}",
        ]

        # An IDN domain compares by its A-labels: Mike's mailbox in Unicode and capitals.
        idn = await register(mike, mike_admin, email=f"eve@{mike_domain.upper()}", role="sales")
        assert idn.status_code == 201, idn.text

        # A learning-system account: on a shared learning system it proves nothing about whose
        # it is (a channel manager links those); on the partner's own domain's, it is Lima's.
        shared = await register(
            lima,
            lima_admin,
            email=f"gus@{lima_domain}",
            role="technical",
            lms_account={"homePage": SHARED_LMS, "name": "carol-at-lima"},
        )
        assert shared.status_code == 403, shared.text
        assert shared.json()["detail"].startswith(
            "learning-system account at lms.pollinate.example is not in"
        )
        own = await register(
            lima,
            lima_admin,
            email=f"gus@{lima_domain}",
            role="technical",
            lms_account={"homePage": f"https://learn.{lima_domain}", "name": "gus"},
        )
        assert own.status_code == 201, own.text

        # A channel manager registers anyone (a person with another address), recorded as such.
        other = await register(
            mike,
            ADMIN,
            email=f"frank@contractor-{run}.example",
            role="technical",
            lms_account={"homePage": SHARED_LMS, "name": f"frank-{run}"},
        )
        assert other.status_code == 201, other.text
        assert other.json()["added_by"] == "channel-manager@tests"
