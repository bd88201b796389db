"""A partner's webhook endpoint in the portal, in process (a local HTTP server answers as the
notifications service): the delivery log goes on to older deliveries a page at a time (found in
review: it showed the newest alone, so an older delivery could not be sent again)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from shared.identity import Role
from tests.support.local_http import QuietHandler
from tests.support.portal import form_csrf
from tests.support.portal_in_process import signed_in_before
from tests.support.tokens import token

PARTNER_ID = "ptn_hooks"
PARTNER = token("ptn_hooks/u", Role.PARTNER_ADMIN, partner_id=PARTNER_ID)
ENDPOINT = uuid.UUID(int=7)
DELIVERIES = [uuid.UUID(int=1000 + n) for n in range(60)]  # the newest last


def delivery(delivery_id: uuid.UUID) -> dict[str, Any]:
    return {
        "delivery_id": str(delivery_id),
        "webhook_id": str(delivery_id),
        "event_type": f"notification.{delivery_id.int}",
        "status": "delivered",
        "attempts": 1,
        "next_attempt_at": None,
        "last_status_code": 204,
        "last_error": None,
        "created_at": "2026-12-01T00:00:00+00:00",
        "delivered_at": "2026-12-01T00:00:01+00:00",
        "attempt_log": [],
    }


class Notifications(QuietHandler):
    """The endpoint and its log, newest first, a page of `limit` after the delivery `after`,
    as notifications answers them; the log's queries as they arrived."""

    asked: ClassVar[list[dict[str, list[str]]]] = []
    changed: ClassVar[list[str]] = []  # the rotations and removals asked for

    def do_GET(self) -> None:
        path, query = urlsplit(self.path).path, parse_qs(urlsplit(self.path).query)
        base = f"/partners/{PARTNER_ID}/webhooks/{ENDPOINT}"
        if path == base:
            self.send_json(
                200,
                {
                    "endpoint_id": str(ENDPOINT),
                    "url": "https://hooks.example/p",
                    "kinds": [],
                    "description": "",
                    "enabled": True,
                    "consecutive_failures": 0,
                    "disabled_reason": None,
                    "created_at": "2026-12-01T00:00:00+00:00",
                },
            )
        elif path == f"{base}/deliveries":
            Notifications.asked.append(query)
            newest_first = DELIVERIES[::-1]
            start = newest_first.index(uuid.UUID(query["after"][0])) + 1 if "after" in query else 0
            limit = int(query["limit"][0])
            page = newest_first[start : start + limit]
            more = len(page) == limit
            self.send_json(
                200,
                {
                    "items": [delivery(d) for d in page],
                    "next_after": str(page[-1]) if more else None,
                },
            )
        elif path == f"/partners/{PARTNER_ID}/webhooks":
            self.send_json(200, {"items": []})
        else:
            self.send_json(200, [])

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.endswith("/rotate-secret"):
            Notifications.changed.append(f"POST {self.path}")
            self.send_json(
                200,
                {
                    "endpoint_id": str(ENDPOINT),
                    "secret": "whsec_bmV3IHNlY3JldCBvZiB0aGUgdGVzdA",
                    "previous_secret_valid_until": "2026-12-02T00:00:00+00:00",
                },
            )
            return
        self.send_json(422, {"detail": "url must use https"})

    def do_DELETE(self) -> None:
        Notifications.changed.append(f"DELETE {self.path}")
        self.send_response(204)
        self.end_headers()


@pytest.fixture
def partner() -> Iterator[TestClient]:
    Notifications.asked, Notifications.changed = [], []
    with signed_in_before(Notifications, PARTNER) as client:
        yield client


def test_the_delivery_log_goes_on_to_older_deliveries(partner: TestClient) -> None:
    first = partner.get(f"/webhooks/{ENDPOINT}")
    assert first.status_code == 200, first.text
    last_shown = DELIVERIES[10]  # the 50th newest of 60
    assert f'href="/webhooks/{ENDPOINT}?after={last_shown}"' in first.text
    older = partner.get(f"/webhooks/{ENDPOINT}?after={last_shown}")
    assert older.status_code == 200, older.text
    assert f"notification.{DELIVERIES[0].int}<" in older.text  # the oldest
    assert "Older deliveries" not in older.text  # fewer than a page: the last one
    assert f'href="/webhooks/{ENDPOINT}">Newest deliveries' in older.text
    assert Notifications.asked == [{"limit": ["50"]}, {"limit": ["50"], "after": [str(last_shown)]}]


def test_a_refused_endpoint_keeps_what_was_typed(partner: TestClient) -> None:
    """Found in review: a refused endpoint (an http URL, say) answered with the form emptied."""
    csrf = form_csrf(partner, "/webhooks")
    typed = {"url": "http://hooks.partner.com/p", "description": "CRM sync", "kinds": "deal_won"}
    refused = partner.post("/webhooks", data={**typed, "csrf_token": csrf})
    assert refused.status_code == 422
    assert "url must use https" in refused.text
    for value in typed.values():
        assert f'value="{value}"' in refused.text


def test_an_admin_rotates_the_signing_secret_and_removes_the_endpoint(partner: TestClient) -> None:
    """Found in review: the page said rotating shows a new secret and had no way to rotate,
    nor to remove an endpoint, so a secret lost on adding could not be had again."""
    page = partner.get(f"/webhooks/{ENDPOINT}")
    assert f'action="/webhooks/{ENDPOINT}/rotate-secret"' in page.text
    csrf = form_csrf(partner, f"/webhooks/{ENDPOINT}")
    rotated = partner.post(f"/webhooks/{ENDPOINT}/rotate-secret", data={"csrf_token": csrf})
    assert rotated.status_code == 200, rotated.text
    assert '<code id="secret">whsec_bmV3IHNlY3JldCBvZiB0aGUgdGVzdA</code>' in rotated.text
    assert "signed with the old one too until 2026-12-02T00:00:00+00:00" in rotated.text
    removed = partner.post(f"/webhooks/{ENDPOINT}/remove", data={"csrf_token": csrf})
    assert removed.status_code == 200, removed.text
    assert "Endpoint removed." in removed.text
    base = f"/partners/{PARTNER_ID}/webhooks/{ENDPOINT}"
    assert Notifications.changed == [f"POST {base}/rotate-secret", f"DELETE {base}"]
