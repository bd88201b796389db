"""A partner's registrations a page at a time, newest first, of the statuses asked for: the
portal's home asks for the open ones, which the newest 500 of every status lost once 500 newer
ones had come in."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.deals import fresh_partners, register, registration_request
from tests.support.infra import Infra
from tests.support.paging import every_page
from tests.support.tokens import auth

pytestmark = pytest.mark.integration


async def listed(client: httpx.AsyncClient, url: str, partner: str, **query: Any) -> Any:
    answer = await client.get(f"{url}/registrations", params=query, headers=auth(partner))
    assert answer.status_code == 200, answer.text
    return [(r["registration_id"], r["status"]) for r in answer.json()]


async def test_a_partners_registrations_page_newest_first_and_filter_by_status(
    infra: Infra, deals_instances: list[str]
) -> None:
    run, (partner, other) = await fresh_partners(infra, "pages", "pages-other")
    deals = deals_instances[0]
    async with httpx.AsyncClient(timeout=30) as client:
        made = []
        for i, name in enumerate(("Alder", "Birchwood", "Cedarline", "Dogrose", "Elmstead")):
            # The third is above the auto-approval limit: it waits for a manager's review.
            amount = "900000.00" if i == 2 else "12000.00"
            body = registration_request(f"{name} {run}", f"{name.lower()}-{run}.example", amount)
            answer = await register(client, deals, partner, body)
            assert answer.status_code == 201, answer.text
            made.append((answer.json()["registration_id"], answer.json()["status"]))
        theirs = await register(
            client, deals, other, registration_request(f"Other {run}", f"other-{run}.example")
        )
        newest_first = made[::-1]
        url, headers = f"{deals}/registrations", auth(partner)
        pages = await every_page(client, url, lambda r: r["registration_id"], 2, headers)
        shown = [[(r["registration_id"], r["status"]) for r in page] for page in pages]
        assert shown == [newest_first[0:2], newest_first[2:4], newest_first[4:]]
        statuses = {status for _, status in made}
        assert len(statuses) > 1, made
        for status in statuses:
            only = await listed(client, deals, partner, status=[status])
            assert only == [r for r in newest_first if r[1] == status]
        both = await listed(client, deals, partner, status=sorted(statuses))
        assert both == newest_first
        for query, says in (
            ({"after": theirs.json()["registration_id"]}, "after names no registration of yours"),
            ({"after": "reg-nobody"}, "after names no registration of yours"),
            ({"status": "won-ish"}, "status"),
            ({"limit": 501}, "less than or equal to 500"),
        ):
            refused = await client.get(
                f"{deals}/registrations", params=query, headers=auth(partner)
            )
            assert refused.status_code == 422, (query, refused.text)
            assert says in refused.text, (query, refused.text)
