"""The programme dashboard in process, in front of local HTTP servers answering as programme,
incentives and onboarding do (the report built from programme's own response models): what the
page draws from a report in two currencies, names that cannot be had, and answers the portal
cannot read (a 503 naming the service, never a 500)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from services.programme.schemas import (
    AutomationOut,
    DecisionShare,
    Durations,
    KpiFiltersOut,
    KpiReport,
    NpsOut,
    NpsReport,
    PartnersOut,
    RevenueRow,
    RevenueTotal,
    SpendRow,
    TopPartner,
)
from shared.identity import Role
from tests.support.local_http import LocalServer, QuietHandler
from tests.support.portal_in_process import portal_settings, signed_in
from tests.support.tokens import token

MANAGER = token("cm", Role.CHANNEL_MANAGER)
D = Decimal


def share(decisions: int, approved: int, automatic: int, p50: float | None) -> DecisionShare:
    return DecisionShare(
        decisions=decisions,
        approved=approved,
        rejected=decisions - approved,
        approval_share=D(approved) / decisions if decisions else None,
        automatic=automatic,
        automatic_share=D(automatic) / decisions if decisions else None,
        time_to_decision=Durations(count=decisions, p50_hours=p50, p90_hours=p50),
    )


def revenue(quarter: str, tier: str, currency: str, sourced: str, region: str) -> RevenueRow:
    return RevenueRow(
        quarter=quarter,
        tier=tier,
        partner_type="reseller",
        region=region,
        currency=currency,
        sourced=D(sourced),
        influenced=D(0),
    )


def top(partner_id: str, currency: str, total: str) -> TopPartner:
    return TopPartner(
        partner_id=partner_id,
        currency=currency,
        tier="gold",
        sourced=D(total),
        influenced=D(0),
        total=D(total),
    )


def report(**asked: str) -> dict[str, Any]:
    """A report in EUR and JPY, as programme's response models write it."""
    built = KpiReport(
        filters=KpiFiltersOut(
            from_quarter=asked.get("from_quarter"),
            to_quarter=asked.get("to_quarter"),
            tier=None,
            partner_type=None,
            region=None,
            partner_ids=[],
        ),
        revenue=[
            revenue("2026-Q3", "gold", "EUR", "100.00", "DE"),
            revenue("2026-Q3", "gold", "EUR", "50.00", "FR"),
            revenue("2026-Q3", "gold", "JPY", "90000", "JP"),
        ],
        revenue_totals=[
            RevenueTotal(currency="EUR", sourced=D("150.00"), influenced=D(0)),
            RevenueTotal(currency="JPY", sourced=D("90000"), influenced=D(0)),
        ],
        spend=[
            SpendRow(
                quarter="2026-Q3",
                currency=currency,
                attributed_revenue=D(income),
                incentives=D(paid),
                mdf_claimed=D(0),
                mdf_accrued=D(0),
                return_per_dollar=None,
            )
            for currency, income, paid in (("EUR", "150.00", "15.00"), ("JPY", "90000", "900"))
        ],
        automation=AutomationOut(
            onboarding=share(4, 3, 1, 26.0),
            registrations=share(3, 2, 2, 0.5),
            target_share=D("0.70"),
            automatic_share=D("0.4286"),
            target_met=False,
        ),
        partners=PartnersOut(
            active=3,
            suspended=0,
            churned=0,
            time_to_first_deal=Durations(count=0, p50_hours=None, p90_hours=None),
        ),
        nps=NpsReport(
            overall=NpsOut(responses=0, promoters=0, passives=0, detractors=0, nps=None),
            by_quarter_and_tier=[],
        ),
        top_partners=[
            top("ptn_known", "EUR", "150.00"),
            top("ptn_unknown", "JPY", "60000"),
            top("ptn_broken", "JPY", "30000"),
        ],
        computed_at=datetime(2026, 12, 5, 9, tzinfo=UTC),
    )
    return built.model_dump(mode="json")


class Services(QuietHandler):
    """Programme, incentives and onboarding on one port: `/kpis` answers `Services.kpis` (a
    function of the query), `/payouts` `Services.payouts`; onboarding knows one partner,
    refuses another and fails on a third."""

    kpis: ClassVar[Any] = staticmethod(report)
    payouts: ClassVar[dict[str, Any]] = {"currency": "EUR", "totals": {"paid": "12.50"}}
    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        Services.asked.append(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/kpis":
            self.send_json(200, Services.kpis(**query))
        elif url.path == "/payouts":
            self.send_json(200, Services.payouts)
        elif url.path == "/partners/ptn_known":
            self.send_json(200, {"partner_id": "ptn_known", "company_name": "Known <b>GmbH</b>"})
        elif url.path == "/partners/ptn_broken":
            self.send_json(500, {"detail": "boom"})
        else:
            self.send_json(404, {"detail": "no such partner"})


@pytest.fixture
def manager() -> Iterator[TestClient]:
    Services.kpis = staticmethod(report)
    Services.payouts = {"currency": "EUR", "totals": {"paid": "12.50"}}
    Services.asked = []
    with LocalServer(Services) as services:
        urls = dict.fromkeys(("onboarding", "incentives", "programme"), services.url)
        with signed_in(portal_settings(urls), MANAGER) as client:
            yield client


def text_of(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</', html, re.S)
    assert found, element_id
    return found.group(1).strip()


def test_the_page_draws_the_report_per_currency_with_names_where_they_can_be_had(
    manager: TestClient,
) -> None:
    answer = manager.get("/console/dashboard", params={"from_quarter": "2026-Q3"})
    assert answer.status_code == 200, answer.text
    html = answer.text
    assert "/kpis?from_quarter=2026-Q3" in Services.asked  # the quarters go on to programme
    # each kind of decision as the report counts it, in percent
    assert text_of(html, "registrations-approval-rate") == "66.7 %"
    assert text_of(html, "registrations-approved-rejected") == "2 / 1"
    assert text_of(html, "onboarding-approval-rate") == "75.0 %"
    assert text_of(html, "onboarding-p50-hours") == "26.0 h"
    # revenue summed over regions, never over currencies
    rows = re.findall(
        r"<tr><td>(2026-Q3)</td><td>gold</td><td>(\w+)</td>.*?total\">([\d.]+)<", html
    )
    assert rows == [("2026-Q3", "EUR", "150.00"), ("2026-Q3", "JPY", "90000")]
    assert text_of(html, "paid-out") == "12.50 EUR"
    # names: onboarding's (escaped), else the id (a 404 and a 500 alike cost nothing else)
    assert "Known &lt;b&gt;GmbH&lt;/b&gt;" in html
    assert ">ptn_unknown</a>" in html
    assert ">ptn_broken</a>" in html
    # each currency's bars against its own largest: EUR's one bar and JPY's first are full
    widths = re.findall(r'<rect [^>]*width="([\d.]+)" class="bar-fill"', html)
    top_widths = widths[-3:]
    assert top_widths == ["260.0", "260.0", "130.0"]


def test_a_report_without_a_figure_the_page_draws_is_a_503_naming_programme(
    manager: TestClient,
) -> None:
    def stale(**asked: str) -> dict[str, Any]:
        older = report(**asked)
        del older["top_partners"]
        return older

    Services.kpis = staticmethod(stale)
    answer = manager.get("/console/dashboard")
    assert answer.status_code == 503
    assert "programme is unavailable: answered a report this portal cannot read" in answer.text

    def garbled(**asked: str) -> dict[str, Any]:
        odd = report(**asked)
        odd["automation"]["registrations"]["approved"] = "lots"
        return odd

    Services.kpis = staticmethod(garbled)
    assert manager.get("/console/dashboard").status_code == 503


def test_payouts_the_page_cannot_read_are_a_503_naming_incentives(manager: TestClient) -> None:
    Services.payouts = {"currency": "EUR", "totals": {}}
    answer = manager.get("/console/dashboard")
    assert answer.status_code == 503
    assert "incentives is unavailable: answered payouts this portal cannot read" in answer.text
