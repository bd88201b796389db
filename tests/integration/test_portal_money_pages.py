"""A partner's money pages in process, in front of a local HTTP server answering as incentives,
attribution and programme do (each answer built from that service's own response models), as
an outside probe found them: the MDF page said "(expired)" of every lot (the lot's `expired`
is an amount, "0.00" when nothing expired), and the earnings page offered only quarters while
incentives answers 422 to a period not in the programme's form (a monthly programme)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from services.attribution.schemas import RevenueOut
from services.incentives.domain.programs import IncentivePrograms
from services.incentives.domain.quarters import check_period
from services.incentives.schemas import (
    BalanceOut,
    EarningsOut,
    FundOut,
    LotOut,
    ProgramsOut,
    QuarterEarningsOut,
    StatementOut,
)
from shared.identity import Role
from tests.support.local_http import LocalServer, QuietHandler
from tests.support.portal_in_process import portal_settings, signed_in
from tests.support.tokens import token

PARTNER = "ptn_money"
D = Decimal
PAST = datetime(2020, 3, 31, 12, tzinfo=UTC)
FUTURE = datetime(2099, 9, 30, 12, tzinfo=UTC)


def lot(lot_id: str, amount: str, remaining: str, expired: str, expires_at: datetime) -> LotOut:
    return LotOut(
        lot_id=lot_id,
        credit_id=f"credit-{lot_id}",
        amount=D(amount),
        remaining=D(remaining),
        expired=D(expired),
        expires_at=expires_at,
    )


def fund(*lots: LotOut) -> FundOut:
    return FundOut(
        partner_id=PARTNER,
        available=D("60.00"),
        ledger_balance=D("60.00"),
        deficit=D("0.00"),
        reserved=D("0.00"),
        lots=list(lots),
        lots_since="2026-09-01T00:00:00+00:00",
    )


class Services(QuietHandler):
    """Incentives, attribution and programme on one port, for partner ptn_money: the
    programme books by `Services.form`, now in `Services.current`; its statement route refuses
    a period in another form as incentives does (422, incentives' own check)."""

    form: ClassVar[Literal["month", "quarter"]] = "quarter"
    current: ClassVar[str] = "2026-Q4"
    lots: ClassVar[list[LotOut]] = []
    spiffs: ClassVar[list[str]] = []
    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        Services.asked.append(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        base = f"/partners/{PARTNER}"
        answers: dict[str, Any] = {
            "/programs": ProgramsOut(
                programs=IncentivePrograms(period=Services.form),
                active_spiffs=Services.spiffs,
                current_period=Services.current,
            ),
            f"{base}/mdf": fund(*Services.lots),
            f"{base}/balance": BalanceOut(
                partner_id=PARTNER,
                currency="USD",
                balance=D("0.00"),
                earned=D("0.00"),
                reversed=D("0.00"),
                paid=D("0.00"),
                mdf=fund(),
            ),
            f"{base}/earnings": EarningsOut(
                partner_id=PARTNER,
                currency="USD",
                quarters=[
                    QuarterEarningsOut(
                        quarter="2026-Q4", earned=D("0.00"), reversed=D("0.00"), net=D("0.00")
                    )
                ],
            ),
            f"{base}/revenue": RevenueOut(
                partner_id=PARTNER,
                currency="USD",
                sourced="0.00",
                influenced="0.00",
                total="0.00",
                by_period=[],
            ),
            "/mdf/claims": [],
            "/mdf/preapprovals": [],
            "/campaigns": [],
        }
        if url.path == f"{base}/statement":
            self.statement(query.get("period"))
        elif url.path in answers:
            answer = answers[url.path]
            body = [] if isinstance(answer, list) else answer.model_dump(mode="json")
            self.send_json(200, body)
        else:
            self.send_json(404, {"detail": f"no {url.path}"})

    def statement(self, period: str | None) -> None:
        if period is not None:
            try:
                check_period(period, Services.form)
            except ValueError as refused:
                self.send_json(422, {"detail": str(refused)})
                return
        stated = StatementOut(
            partner_id=PARTNER,
            period=period or Services.current,
            currency="USD",
            opening_balance=D("0.00"),
            entries=[],
            totals_by_type={},
            totals_by_rule={},
            closing_balance=D("0.00"),
            mdf_entries=[],
        )
        self.send_json(200, stated.model_dump(mode="json"))


@pytest.fixture
def partner() -> Iterator[TestClient]:
    Services.form, Services.current, Services.lots, Services.asked = "quarter", "2026-Q4", [], []
    Services.spiffs = []
    with LocalServer(Services) as services:
        urls = dict.fromkeys(("incentives", "attribution", "programme"), services.url)
        signed = token("p/u", Role.PARTNER_USER, partner_id=PARTNER)
        with signed_in(portal_settings(urls), signed) as client:
            yield client


def lot_lines(html: str) -> dict[str, str]:
    """Each lot's line on the MDF page, its markup dropped."""
    found = re.findall(r'<li id="lot-([^"]+)">(.*?)</li>', html, re.S)
    return {lot_id: re.sub(r"<[^>]+>", "", line).strip() for lot_id, line in found}


def test_the_mdf_page_says_expired_only_of_what_expired(partner: TestClient) -> None:
    Services.lots = [
        lot("live", "60.00", "60.00", "0.00", FUTURE),  # nothing expired: no "(expired)"
        lot("spent", "40.00", "0.00", "0.00", PAST),  # spent before its expiry
        lot("lapsed", "1.00", "0.00", "0.50", PAST),  # half spent, half expired unused
        lot("unswept", "5.00", "5.00", "0.00", PAST),  # past expiry, the job not yet run
    ]
    answer = partner.get("/mdf")
    assert answer.status_code == 200, answer.text
    assert answer.text.count("(expired)") == 0  # the probe's: every lot said "(expired)"
    assert lot_lines(answer.text) == {
        "live": "60.00 of 60.00 left, expires 2099-09-30",
        "spent": "0.00 of 40.00 left, expired 2020-03-31",
        "lapsed": "0.00 of 1.00 left, expired 2020-03-31 (0.50 expired)",
        "unswept": "5.00 of 5.00 left, expired 2020-03-31",
    }


def options(html: str) -> list[tuple[str, bool]]:
    """The statement's period choices: (value, selected)."""
    select = re.search(r'<select id="period" name="period">(.*?)</select>', html, re.S)
    assert select, "the period choice"
    found = re.findall(r'<option value="([^"]*)" (selected)?', select.group(1))
    return [(value, bool(selected)) for value, selected in found]


def test_a_monthly_programme_is_offered_months_and_each_one_is_stated(
    partner: TestClient,
) -> None:
    Services.form, Services.current = "month", "2026-11"
    answer = partner.get("/earnings")
    assert answer.status_code == 200, answer.text
    offered = options(answer.text)
    # Every period offered is one incentives states (none answers its 422).
    for period in [value for value, _ in offered if value]:
        chosen = partner.get("/earnings", params={"period": period})
        assert chosen.status_code == 200, (period, chosen.text)
        assert (period, True) in options(chosen.text)
        assert f"Statement {period}" in chosen.text
    # This month (the statement's when none is asked) and the two years before it.
    assert offered[:3] == [("2026-11", True), ("2026-10", False), ("2026-09", False)]
    assert (len(offered), offered[-1]) == (24, ("2024-12", False))
    assert f"/partners/{PARTNER}/statement?period=2026-10" in Services.asked
    # A quarter (a link from before) is incentives' refusal, with its reason.
    refused = partner.get("/earnings", params={"period": "2026-Q4"})
    assert refused.status_code == 422
    assert "the programme books by month: ask for a month (YYYY-MM), e.g. 2026-10" in refused.text


def test_a_quarterly_programme_is_still_offered_quarters(partner: TestClient) -> None:
    answer = partner.get("/earnings")
    assert answer.status_code == 200, answer.text
    offered = options(answer.text)
    assert offered[:2] == [("2026-Q4", True), ("2026-Q3", False)]
    assert len(offered) == 8
    assert partner.get("/earnings", params={"period": "2025-Q1"}).status_code == 200


def test_a_current_period_the_portal_cannot_read_is_a_503_naming_incentives(
    partner: TestClient,
) -> None:
    Services.current = "2026-W48"
    answer = partner.get("/earnings")
    assert answer.status_code == 503
    assert "incentives is unavailable: answered a current period this portal cannot" in (
        answer.text
    )


def test_the_what_if_page_names_the_spiffs_running(partner: TestClient) -> None:
    """Incentives names a running SPIFF by its id (a string): the page read it as a mapping
    and answered 500 whenever a SPIFF ran."""
    Services.spiffs = ["q2-cloud-push", "renewals"]
    answer = partner.get("/what-if")
    assert answer.status_code == 200, answer.text
    assert "SPIFFs running now: q2-cloud-push, renewals." in answer.text
