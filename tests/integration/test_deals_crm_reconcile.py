"""Periodic reconciliation against a deals process on real Kafka and Postgres, with a local
Salesforce org and a local HubSpot account speaking their documented REST shapes: a run reports
what drifted (missing here, stale here, deleted upstream), shows it on /metrics, queues resyncs
that repair it, and the next run finds everything in sync."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.crm import (
    HUBSPOT_PORTAL,
    HubSpotCrm,
    SalesforceServer,
    hubspot_headers,
    hubspot_property_change,
    salesforce_cdc,
    salesforce_delivery,
)
from tests.support.deals import projected_crm_deal
from tests.support.infra import Infra
from tests.support.polling import eventually
from tests.support.processes import service_processes
from tests.support.tokens import ADMIN, auth

pytestmark = pytest.mark.integration


async def reconcile(client: httpx.AsyncClient, source: str) -> httpx.Response:
    """A channel manager runs the reconciliation of `source` now."""
    return await client.post(
        "/admin/crm/reconciliations/run", params={"source": source}, headers=ADMIN
    )


def _drift_gauge(text: str) -> dict[tuple[str, str], float]:
    [family] = [
        f for f in text_string_to_metric_families(text) if f.name == "pollinate_crm_drift_records"
    ]
    return {(s.labels["source"], s.labels["kind"]): s.value for s in family.samples}


async def test_reconciliation_reports_drift_repairs_it_and_then_finds_none(
    infra: Infra, deals_crm_env: dict[str, str]
) -> None:
    run = uuid.uuid4().hex[:8]
    stale, missing, deleted, same = (f"006{c}{run}0000000"[:18] for c in "SMDQ")
    deal = uuid.uuid4().int % 10**9
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    later = t0 + timedelta(minutes=1)
    created = {"CreatedDate": t0.isoformat().replace("+00:00", "Z")}
    with SalesforceServer() as org, HubSpotCrm() as hubspot:
        # What the CRMs hold now: the stage moved (its change never reached us), a deal we
        # never heard of, a deletion we missed, and one we hold exactly.
        org.put(
            stale,
            later,
            StageName="Negotiation/Review",
            Amount=100,
            CreatedDate=created["CreatedDate"],
        )
        org.put(missing, later, StageName="Prospecting")
        org.put(deleted, later, StageName="Prospecting", IsDeleted=True)
        org.put(same, t0, StageName="Prospecting", CreatedDate=created["CreatedDate"])
        hubspot.deals[str(deal)] = {"dealstage": "contractsent"}
        hubspot.updated_at[str(deal)] = later.isoformat().replace("+00:00", "Z")
        what_we_heard = [
            salesforce_cdc(
                stale, "CREATE", t0, {"StageName": "Prospecting", "Amount": 100, **created}
            ),
            salesforce_cdc(deleted, "CREATE", t0, {"StageName": "Prospecting", **created}),
            salesforce_cdc(same, "CREATE", t0, {"StageName": "Prospecting", **created}),
        ]
        batch = [hubspot_property_change(deal, "dealstage", "qualifiedtobuy", t0)]
        body = httpx.Request("POST", "/", json=batch).content
        env = {
            **deals_crm_env,
            **org.env(),
            **hubspot.env(),
            "DEALS_RECONCILE_EVERY_SECONDS": "3600",
        }
        async with (
            service_processes(infra, "deals", env=env) as [url],
            httpx.AsyncClient(base_url=url, timeout=30) as client,
        ):
            sent = await client.post("/crm/salesforce", **salesforce_delivery(what_we_heard))
            assert sent.json()["accepted"] == 3, sent.text
            sent = await client.post("/crm/hubspot", content=body, headers=hubspot_headers(body))
            assert sent.json()["accepted"] == 1, sent.text
            for key in (stale, deleted, same):
                await eventually(
                    lambda key=key: projected_crm_deal(infra, f"salesforce:{key}"), what=key
                )
            hubspot_key = f"hubspot:{HUBSPOT_PORTAL}:{deal}"
            await eventually(
                lambda: projected_crm_deal(infra, hubspot_key), what="the HubSpot deal"
            )

            refused = await client.post(
                "/admin/crm/reconciliations/run",
                params={"source": "salesforce"},
                headers=auth("p-1"),
            )
            assert refused.status_code == 403, refused.text
            first = await reconcile(client, "salesforce")
            assert first.status_code == 200, first.text
            report = first.json()
            mine = {d["deal_key"]: d for d in report["drift"] if run in d["deal_key"]}
            assert mine == {
                f"salesforce:{stale}": {
                    "deal_key": f"salesforce:{stale}",
                    "kind": "stale_here",
                    "fields": ["stage"],
                },
                f"salesforce:{missing}": {
                    "deal_key": f"salesforce:{missing}",
                    "kind": "missing_here",
                    "fields": [],
                },
                f"salesforce:{deleted}": {
                    "deal_key": f"salesforce:{deleted}",
                    "kind": "deleted_upstream",
                    "fields": [],
                },
            }
            assert report["error"] is None
            gauge = _drift_gauge((await client.get("/metrics")).text)
            assert gauge[("salesforce", "stale_here")] == report["stale_here"] >= 1

            hubspot_report = (await reconcile(client, "hubspot")).json()
            assert {
                (d["deal_key"], d["kind"], tuple(d["fields"])) for d in hubspot_report["drift"]
            } >= {(hubspot_key, "stale_here", ("stage",))}

            # The resyncs the runs queued repair what drifted.
            async def repaired() -> bool:
                rows = {
                    key: await projected_crm_deal(infra, key)
                    for key in (
                        f"salesforce:{stale}",
                        f"salesforce:{missing}",
                        f"salesforce:{deleted}",
                        hubspot_key,
                    )
                }
                return bool(
                    rows[f"salesforce:{stale}"]["stage"] == "negotiation"
                    and rows[f"salesforce:{missing}"] is not None
                    and rows[f"salesforce:{deleted}"]["deleted"]
                    and rows[hubspot_key]["stage"] == "negotiation"
                )

            await eventually(repaired, what="the drifted deals resynced")
            second = (await reconcile(client, "salesforce")).json()
            assert [d for d in second["drift"] if run in d["deal_key"]] == []
            reports = (
                await client.get(
                    "/admin/crm/reconciliations", params={"source": "salesforce"}, headers=ADMIN
                )
            ).json()
            assert [r["id"] for r in reports[:2]] == [second["id"], report["id"]]
            gauge = _drift_gauge((await client.get("/metrics")).text)
            assert gauge[("salesforce", "stale_here")] == second["stale_here"]
