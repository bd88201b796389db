"""What tests of onboarding (and the demo story) share: a small program whose tiers a few
credits move, a partner's standing under it, a strong application body, and an active partner
made through onboarding's own use cases, onboarding as a process run by a given program (and
a test module's fixtures running it), a learning system's xAPI statements, attribution's
credits, and what onboarding answers and writes to its outbox."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.onboarding.applications import apply_for
from services.onboarding.certifications import add_certification
from services.onboarding.checklist import complete_item
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.programme import EXAM_BASE
from services.onboarding.domain.qualification import Application
from services.onboarding.domain.requalification import Standing
from services.onboarding.domain.tiers import Certification, CertificationRole
from services.onboarding.domain.verification import WELL_KNOWN_PATH
from services.onboarding.review import decide_review
from shared.db import Pool
from shared.events import Envelope
from shared.events.attribution import CreditIssued
from shared.events.partners import PartnerStateChanged, PartnerStatus, PartnerType
from shared.outbox import Outbox
from shared.topics import ATTRIBUTION_CREDITS, PARTNER_LIFECYCLE, Topic
from tests.support import kafka
from tests.support.factories import credit_issued
from tests.support.infra import Infra
from tests.support.local_http import LocalServer, QuietHandler
from tests.support.outbox import event_bytes
from tests.support.paging import every_page
from tests.support.processes import service_processes
from tests.support.tokens import ADMIN, ENABLEMENT_SYSTEM

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
AGREEMENT = NOW + timedelta(days=200)

# Silver at 1 000 and gold at 5 000 (each with a competency), "ai" deals only for partners
# holding the ai competency, 10 days of grace.
SMALL_PROGRAM: dict[str, Any] = {
    "version": "small-program-1",
    "tiers": [
        {"name": "registered", "min_revenue": 0},
        {"name": "silver", "min_revenue": 1000, "min_competencies": 1},
        {"name": "gold", "min_revenue": 5000, "min_competencies": 1},
    ],
    "competencies": [{"name": "data"}, {"name": "ai"}],
    "gated_products": {"ai": "ai"},
    "grace_days": 10,
}
SMALL = OnboardingConfig.model_validate(SMALL_PROGRAM)


def standing(**overrides: object) -> Standing:
    """An active silver partner with the data competency and 2 000 of revenue under the small
    program, its agreement valid until AGREEMENT; `overrides` change any of it."""
    values: dict[str, object] = {
        "status": PartnerStatus.ACTIVE,
        "tier": "silver",
        "revenue": Decimal(2000),
        "competencies": frozenset({"data"}),
        "agreement_valid_until": AGREEMENT,
    }
    values.update(overrides)
    return Standing(**values)  # type: ignore[arg-type]


def strong_application(domain: str, **overrides: Any) -> dict[str, Any]:
    """A `POST /applications` body that qualifies: a large GSI across three regions."""
    body: dict[str, Any] = {
        "company_name": f"Contoso {domain}",
        "domain": domain,
        "partner_type": "gsi",
        "regions": ["US", "DE", "GB"],
        "products": ["data", "ai"],
        "competencies_claimed": ["data", "ai", "cloud"],
        "industries": ["financial_services", "healthcare"],
        "segments": ["enterprise"],
        "annual_revenue": "25000000",
        "years_in_business": 10,
        "certified_staff": 12,
        "contacts": [{"name": "Ada", "email": "ada@" + domain, "role": "alliances"}],
    }
    body.update(overrides)
    return body


async def certify(
    client: Any,
    url: str,
    partner_id: str,
    person_email: str,
    role: str,
    track: str,
    issued_at: datetime,
    expires_at: datetime,
) -> None:
    """A channel manager records one of the partner's people as certified (`client`: an
    httpx.AsyncClient, `url`: onboarding's); onboarding must accept it."""
    recorded = await client.post(
        f"{url}/partners/{partner_id}/certifications",
        headers=ADMIN,
        json={
            "person_email": person_email,
            "role": role,
            "track": track,
            "issued_at": issued_at.isoformat(),
            "expires_at": expires_at.isoformat(),
        },
    )
    assert recorded.status_code == 201, recorded.text


async def attribute_revenue(
    infra: Infra, partner_id: str, amount: str, at: datetime | None = None
) -> CreditIssued:
    """Attribution credits the partner with `amount` (USD) for a deal of its own closing `at`
    (now), published on Kafka as attribution does; the credit."""
    at = at or datetime.now(UTC)
    deal = f"hubspot:{uuid.uuid4().hex[:10]}"
    credit = credit_issued(
        credit_id=f"cr_{uuid.uuid4().hex[:12]}",
        deal_key=deal,
        partner_id=partner_id,
        amount=amount,
        currency="USD",
        close_date=at.date(),
        issued_at=at,
        ingested_at=at,
    )
    await kafka.publish(infra, ATTRIBUTION_CREDITS, [credit], subject=deal, source="attribution")
    return credit


async def publish_resource(
    client: Any, url: str, kind: str, title: str, address: str, **audience: list[str]
) -> dict[str, Any]:
    """A channel manager publishes a resource to onboarding's library at `address` (`audience`:
    the partner_types or tiers it is meant for; everyone without); onboarding must take it
    (201). The resource as stored."""
    answer = await client.post(
        f"{url}/admin/resources",
        headers=ADMIN,
        json={"kind": kind, "title": title, "url": address, **audience},
    )
    assert answer.status_code == 201, answer.text
    published: dict[str, Any] = answer.json()
    return published


# Figures SMALL_PROGRAM scores between its bars: the application waits for a manager's review.
MIDDLING = {
    "partner_type": "var_reseller",
    "regions": ["US"],
    "products": ["data", "widgets"],
    "competencies_claimed": ["data"],
    "industries": ["retail", "gaming"],
    "segments": ["mid_market"],
    "annual_revenue": "2000000",
    "years_in_business": 5,
    "certified_staff": 3,
}


def weak_application(domain: str) -> dict[str, Any]:
    """A `POST /applications` body the scoring rejects at once: a one-year-old affiliate with
    no certified staff, selling what no program sells where no program looks."""
    return strong_application(
        domain,
        partner_type="referral_affiliate",
        regions=["AQ"],  # a real country code no program targets
        products=["widgets"],
        competencies_claimed=[],
        industries=["gaming"],
        segments=["smb"],
        annual_revenue="100000",
        years_in_business=1,
        certified_staff=0,
    )


async def admitted_partner(client: Any, url: str, domain: str, admin: dict[str, str]) -> str:
    """A strong application, approved by a channel manager (`admin`'s headers): the partner
    is onboarding (`client`: an httpx.AsyncClient)."""
    applied = await client.post(f"{url}/applications", json=strong_application(domain))
    assert applied.status_code == 201, applied.text
    pid: str = applied.json()["partner_id"]
    decided = await client.post(
        f"{url}/applications/{pid}/decision", headers=admin, json={"approve": True}
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "onboarding"
    return pid


async def active_partner(client: Any, url: str, domain: str, admin: dict[str, str]) -> str:
    """An admitted partner with its checklist completed: an active partner in the base tier."""
    pid = await admitted_partner(client, url, domain, admin)
    for item in ("profile_complete", "agreement_signed", "first_enablement_done"):
        done = await client.post(
            f"{url}/partners/{pid}/checklist/{item}", headers=admin, json={"evidence": "ref-1"}
        )
        assert done.status_code == 200, done.text
    assert done.json()["status"] == "active"
    return pid


async def add_people(
    client: Any, url: str, pid: str, people: Sequence[tuple[str, str]], headers: dict[str, str]
) -> dict[str, str]:
    """Register each (email, role) as one of the partner's people (onboarding must answer 201);
    their person ids by email."""
    ids = {}
    for email, role in people:
        added = await client.post(
            f"{url}/partners/{pid}/people", headers=headers, json={"email": email, "role": role}
        )
        assert added.status_code == 201, added.text
        ids[email] = str(added.json()["person_id"])
    return ids


async def activated_partner(
    pool: Pool, outbox: Outbox, name: str, *, certified: bool = True
) -> str:
    """An active partner of the small program, made through onboarding's own use cases; with
    `certified`, holding the data competency (products: data; ai is gated)."""
    domain = f"{name.lower().replace(' ', '-')}-{uuid.uuid4().hex[:8]}.example"
    at = datetime.now(UTC)
    application = Application(
        company_name=name,
        domain=domain,
        partner_type=PartnerType.GSI,
        regions=frozenset({"US", "DE", "GB"}),
        products=frozenset({"data", "ai"}),
        competencies_claimed=frozenset({"data", "ai", "cloud"}),
        industries=frozenset({"financial_services", "healthcare"}),
        segments=frozenset({"enterprise"}),
        annual_revenue=Decimal(25_000_000),
        years_in_business=10,
        certified_staff=12,
    )
    async with pool.acquire() as conn, conn.transaction():
        # What the applicant sent: the same figures (a manager's decision re-reads them).
        row = await apply_for(conn, outbox, SMALL, application, strong_application(domain), at)
        partner_id: str = row["partner_id"]
        manager = "channel-manager@tests"
        await decide_review(
            conn,
            outbox,
            SMALL,
            partner_id,
            approve_it=True,
            note="",
            cultural_fit=None,
            by=manager,
            at=at,
        )
        for item in SMALL.checklist:
            await complete_item(
                conn,
                outbox,
                SMALL,
                partner_id,
                item,
                at,
                by=manager,
                confirms=True,
                reference=f"ref:{item}",
            )
        for role in CertificationRole if certified else ():
            held = Certification(
                f"{role.value}@{domain}",
                role,
                "data",
                at - timedelta(days=1),
                at + timedelta(days=90),
            )
            await add_certification(
                conn, outbox, SMALL, partner_id, held, None, at, by="enablement-system"
            )
    state = await pool.fetchrow(
        "SELECT status, tier, products FROM partners WHERE partner_id = $1", partner_id
    )
    assert state is not None
    # The data product is not gated: an uncertified partner sells it too.
    assert (state["status"], state["tier"], state["products"]) == ("active", "registered", ["data"])
    return partner_id


class PartnerSites(LocalServer):
    """A local web server playing partners' sites: `/<domain>/<path>` serves what `files` holds
    for that domain and path (404 otherwise)."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, str], str] = {}
        sites = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                domain, _, path = self.path.lstrip("/").partition("/")
                body = sites.files.get((domain, "/" + path))
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                self.wfile.write((body or "").encode())

        super().__init__(Handler)

    @property
    def template(self) -> str:
        return f"{self.url}/{{domain}}"

    def publish(self, domain: str, text: str) -> None:
        self.files[(domain, WELL_KNOWN_PATH)] = text


async def verify_domain(
    client: Any, url: str, pid: str, sites: PartnerSites, headers: dict[str, str]
) -> None:
    """The partner's site publishes its verification record and the platform checks it: the
    partner holds its domain (onboarding run with `ONBOARDING_VERIFICATION_SITE=sites.template`;
    `headers`: the partner's or a channel manager's)."""
    view = await client.get(f"{url}/partners/{pid}", headers=ADMIN)
    assert view.status_code == 200, view.text
    claimed = view.json()["domain_verification"]  # the domain as stored: A-labels, lower case
    sites.publish(claimed["domain"], claimed["record"] + "\n")
    verified = await client.post(f"{url}/partners/{pid}/domain-verification", headers=headers)
    assert verified.status_code == 200, verified.text
    assert verified.json()["domain_verification"]["state"] == "held"


XAPI_VERBS = "http://adlnet.gov/expapi/verbs/"
# What the learning system sends on onboarding's xAPI routes: its token, the xAPI version.
XAPI = {**ENABLEMENT_SYSTEM, "X-Experience-API-Version": "1.0.3"}


def learner(email: str) -> dict[str, str]:
    """An xAPI actor known by e-mail address, as learning systems name a partner's people."""
    return {"mbox": f"mailto:{email}"}


def xapi_statement(
    actor: dict[str, Any],
    verb: str,
    activity: str,
    at: datetime,
    *,
    success: bool | None = None,
    statement_id: str | None = None,
) -> dict[str, Any]:
    """One xAPI statement as a learning system sends it: `actor` did ADL's `verb` to
    `activity` at `at`; with `success`, a result (a pass scores 0.9, a failure 0.3)."""
    body: dict[str, Any] = {
        "id": statement_id or str(uuid.uuid4()),
        "actor": {"objectType": "Agent", **actor},
        "verb": {"id": XAPI_VERBS + verb, "display": {"en-US": verb}},
        "object": {"objectType": "Activity", "id": activity},
        "timestamp": at.isoformat(),
    }
    if success is not None:
        body["result"] = {"success": success, "score": {"scaled": 0.9 if success else 0.3}}
    return body


def exam_passed(email: str, track: str, role: str, at: datetime) -> dict[str, Any]:
    """The learning system's statement that the person at `email` passed the exam of `track`
    for `role` (sales or technical) at `at`."""
    return xapi_statement(learner(email), "passed", f"{EXAM_BASE}{track}/{role}", at, success=True)


async def send_statements(client: Any, url: str, statements: Any) -> None:
    """The learning system sends `statements` (one statement or a list) to onboarding at `url`,
    which must take them (200)."""
    posted = await client.post(f"{url}/xapi/statements", headers=XAPI, json=statements)
    assert posted.status_code == 200, posted.text


@asynccontextmanager
async def onboarding_process(
    infra: Infra, folder: Path, program: dict[str, Any], **env: str
) -> AsyncIterator[str]:
    """One onboarding process run by `program` (written into `folder`), with `env` on top;
    yields its URL. Requalification waits a day: tests drive it through the admin endpoint
    with an explicit as_of."""
    config = folder / "program.json"
    config.write_text(json.dumps(program))
    settings = {
        "ONBOARDING_CONFIG_FILE": str(config),
        "ONBOARDING_REQUALIFICATION_PERIOD_SECONDS": "86400",
    }
    async with service_processes(infra, "onboarding", env=settings | env) as urls:
        yield urls[0]


@asynccontextmanager
async def onboarding_proving_domains(
    infra: Infra, folder: Path, sites: PartnerSites
) -> AsyncIterator[str]:
    """Onboarding on SMALL_PROGRAM proving held domains by the well-known file, the partners'
    sites served locally by `sites` (a partner's admins register people once it holds its
    domain)."""
    async with onboarding_process(
        infra,
        folder,
        SMALL_PROGRAM,
        ONBOARDING_DOMAIN_VERIFICATION="well_known",
        ONBOARDING_VERIFICATION_SITE=sites.template,
    ) as url:
        yield url


async def applications(client: Any, url: str, outcome: str = "review") -> list[Any]:
    """Every application `GET /applications?outcome=` lists, page after page (the database is
    shared by the tests and kept between runs: a new one may lie past the first page)."""
    pages = await every_page(
        client, f"{url}/applications", lambda a: a["partner_id"], outcome=outcome
    )
    return [application for page in pages for application in page]


def onboarding_fixture(folder: str, program: dict[str, Any] = SMALL_PROGRAM) -> Callable[..., Any]:
    """A test module's module-scoped `onboarding` fixture: the URL of one onboarding process run
    by `program` from a temporary `folder` (`onboarding = onboarding_fixture("name")`)."""

    @pytest.fixture(scope="module")
    async def onboarding(
        infra: Infra, tmp_path_factory: pytest.TempPathFactory
    ) -> AsyncIterator[str]:
        async with onboarding_process(infra, tmp_path_factory.mktemp(folder), program) as url:
            yield url

    return onboarding


def onboarding_proving_domains_fixtures(folder: str) -> tuple[Callable[..., Any], ...]:
    """A test module's fixtures `sites` (partners' sites, served locally) and `onboarding` (the
    URL of onboarding proving domains on them, run from a temporary `folder`), both
    module-scoped: `sites, onboarding = onboarding_proving_domains_fixtures("name")`."""

    @pytest.fixture(scope="module")
    def sites() -> Iterator[PartnerSites]:
        with PartnerSites() as served:
            yield served

    @pytest.fixture(scope="module")
    async def onboarding(
        infra: Infra, tmp_path_factory: pytest.TempPathFactory, sites: PartnerSites
    ) -> AsyncIterator[str]:
        async with onboarding_proving_domains(infra, tmp_path_factory.mktemp(folder), sites) as url:
            yield url

    return sites, onboarding


async def partner_view(client: Any, url: str, pid: str, what: str = "") -> Any:
    """What onboarding answers a channel manager for the partner (or for `what` below it, e.g.
    "/programme"); it must answer 200 (`client`: an httpx.AsyncClient)."""
    answer = await client.get(f"{url}/partners/{pid}{what}", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def onboarding_outbox(db: Any, topic: Topic, key: str) -> list[bytes]:
    """The events onboarding's outbox holds for `key` on `topic`, in the order written (`db`: an
    admin connection or pool)."""
    rows = await db.fetch(
        "SELECT value, value_codec FROM onboarding.outbox WHERE topic = $1 AND message_key = $2 "
        "ORDER BY position",
        topic.name,
        key,
    )
    return [event_bytes(row) for row in rows]


async def lifecycle_changes(db: Any, partner_id: str) -> list[PartnerStateChanged]:
    """The partner's lifecycle events onboarding has written, in order."""
    values = await onboarding_outbox(db, PARTNER_LIFECYCLE, partner_id)
    return [Envelope[PartnerStateChanged].model_validate_json(v).data for v in values]
