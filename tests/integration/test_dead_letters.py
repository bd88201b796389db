"""A service's dead letters over its admin API, on a real incentives process, Kafka and
Postgres: a poison credit (in a currency the programmes do not pay) is listed with its reason;
replayed before the fix it fails again as a new letter; after the fix (the programmes pay in
that currency) it is replayed, booked once, never replayed twice, and every replay is audited."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka.errors import KafkaTimeoutError

from shared.dlq import read_page
from shared.topics import ATTRIBUTION_CREDITS, PARTNER_LIFECYCLE
from tests.support.factories import credit_issued, partner_state_changed
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.polling import eventually
from tests.support.processes import ADMIN, auth, service_processes

pytestmark = pytest.mark.integration


async def letters(client: httpx.AsyncClient, url: str, **params: Any) -> list[dict[str, Any]]:
    """Every dead letter the service lists (page after page)."""
    found: list[dict[str, Any]] = []
    after: int | None = None
    while True:
        query = {**params, "limit": 200, **({"after": after} if after is not None else {})}
        answer = await client.get(f"{url}/admin/dead-letters", params=query, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        found += page["letters"]
        after = page["next_after"]
        if after is None:
            return found


async def waiting_letter(
    client: httpx.AsyncClient, url: str, key: str, replayed_from: str | None = None
) -> dict[str, Any]:
    async def listed() -> dict[str, Any] | None:
        for letter in await letters(client, url, state="waiting"):
            if letter["key"] == key and letter["replayed_from"] == replayed_from:
                return letter
        return None

    found: dict[str, Any] = await eventually(listed, what=f"a dead letter keyed {key}")
    return found


async def test_a_poison_event_is_listed_replayed_after_the_fix_and_processed_once(
    infra: Infra, admin_db: asyncpg.Connection[Any], tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:10]
    partner, deal = f"p-dlq-{run}", f"salesforce:deal-dlq-{run}"
    credit = credit_issued(partner_id=partner, deal_key=deal, amount="1000.00", currency="EUR")
    state = partner_state_changed(partner_id=partner, tier="gold")
    await publish(infra, PARTNER_LIFECYCLE, [state], subject=partner, source="onboarding")
    refused = (
        f"rejected by handler: credit {credit.credit_id} is in EUR; the incentive programs pay "
        "in USD (attribution credits in the reporting currency)"
    )

    async with (
        service_processes(infra, "incentives") as [url],
        httpx.AsyncClient(timeout=60) as client,
    ):
        await publish(infra, ATTRIBUTION_CREDITS, [credit], subject=deal, source="attribution")
        first = await waiting_letter(client, url, deal)
        assert (first["reason"], first["consumer"]) == (refused, "incentives.ledger")
        assert first["origin_topic"] == ATTRIBUTION_CREDITS.name
        assert first["event_type"] == "credit.issued.v1"
        assert credit.credit_id in first["value_preview"]
        assert first["replay"] is None

        # Only the platform's admins see or replay dead letters.
        partner_asks = await client.get(f"{url}/admin/dead-letters", headers=auth(partner))
        assert partner_asks.status_code == 403
        path = f"{url}/admin/dead-letters/{first['offset']}/replay"
        assert (await client.post(path, headers=auth(partner))).status_code == 403

        # Replayed before the fix, it fails again: parked anew with its reason, the old letter
        # marked replayed (every waiting letter up to it is replayed with it).
        answer = await client.post(
            f"{url}/admin/dead-letters/replay", json={"through": first["offset"]}, headers=ADMIN
        )
        assert answer.status_code == 200, answer.text
        ours = [r for r in answer.json()["replayed"] if r["offset"] == first["offset"]]
        assert [(r["outcome"], r["detail"]) for r in ours] == [
            ("dead_lettered", f"failed again, parked as a new dead letter: {refused}")
        ]
        twice = await client.post(path, headers=ADMIN)
        assert twice.status_code == 409
        assert twice.json()["detail"].startswith(f"dead letter {first['offset']} was replayed at")
        second = await waiting_letter(
            client, url, deal, replayed_from=f"incentives.dlq.v1:{first['offset']}"
        )
        assert second["reason"] == refused
        assert second["offset"] > first["offset"]

    # The fix: the programmes pay in EUR.
    programs = tmp_path / "programs.json"
    programs.write_text(json.dumps({"currency": "EUR"}))
    env = {"INCENTIVES_PROGRAMS_FILE": str(programs)}
    async with (
        service_processes(infra, "incentives", env=env) as [url],
        httpx.AsyncClient(timeout=60) as client,
    ):
        path = f"{url}/admin/dead-letters/{second['offset']}/replay"
        answer = await client.post(path, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "offset": second["offset"],
            "outcome": "processed",
            "detail": "processed",
        }
        booked = await admin_db.fetchval(
            "SELECT count(*) FROM incentives.ledger_entries WHERE credit_id = $1",
            credit.credit_id,
        )
        assert booked > 0

        again = await client.post(path, headers=ADMIN)
        assert again.status_code == 409
        missing = await client.post(f"{url}/admin/dead-letters/999999999/replay", headers=ADMIN)
        assert missing.status_code == 404
        assert missing.json()["detail"].startswith("no dead letter at offset 999999999")
        assert (
            await admin_db.fetchval(
                "SELECT count(*) FROM incentives.ledger_entries WHERE credit_id = $1",
                credit.credit_id,
            )
            == booked
        )

        replayed = {
            letter["offset"]: letter["replay"]
            for letter in await letters(client, url, state="replayed")
            if letter["key"] == deal
        }
        assert sorted(replayed) == [first["offset"], second["offset"]]
        assert replayed[second["offset"]]["outcome"] == "processed"
        assert {r["by"] for r in replayed.values()} == {"channel-manager@tests"}
        assert not [x for x in await letters(client, url, state="waiting") if x["key"] == deal]

    audited = await admin_db.fetch(
        """SELECT principal, subject FROM incentives.audit_log
           WHERE action = 'dead_letter.replay' AND subject = ANY($1::text[]) ORDER BY id""",
        [f"incentives.dlq.v1:{first['offset']}", f"incentives.dlq.v1:{second['offset']}"],
    )
    assert [(r["principal"], r["subject"]) for r in audited] == [
        ("channel-manager@tests", f"incentives.dlq.v1:{first['offset']}"),
        ("channel-manager@tests", f"incentives.dlq.v1:{second['offset']}"),
    ]


async def test_the_listing_refuses_a_bad_page_precisely(infra: Infra) -> None:
    async with (
        service_processes(infra, "attribution") as [url],
        httpx.AsyncClient(timeout=30) as client,
    ):
        for params in (
            {"limit": 0},
            {"after": -1},
            {"state": "lost"},
            {"order": "sideways"},
            {"order": "newest", "before": -1},
        ):
            answer = await client.get(f"{url}/admin/dead-letters", params=params, headers=ADMIN)
            assert answer.status_code == 422, answer.text
        for params, says in (
            ({"before": 3}, "`before` pages newest first: pass order=newest with it"),
            ({"order": "newest", "after": 3}, "`after` pages oldest first"),
        ):
            answer = await client.get(f"{url}/admin/dead-letters", params=params, headers=ADMIN)
            assert answer.status_code == 400, answer.text
            assert says in answer.json()["detail"]
        body = await client.post(f"{url}/admin/dead-letters/replay", json={}, headers=ADMIN)
        assert body.status_code == 422
        page = await client.get(f"{url}/admin/dead-letters", params={"limit": 1}, headers=ADMIN)
        assert page.status_code == 200, page.text
        assert page.json()["service"] == "attribution"
        assert page.json()["topic"] == "attribution.dlq.v1"


async def test_newest_first_pages_back_through_what_oldest_first_lists(infra: Infra) -> None:
    """What an operator opens first is what just broke: newest first, page by page with
    `before`, is the oldest-first listing read backwards, filters included."""
    run = uuid.uuid4().hex[:10]
    credits = [
        credit_issued(deal_key=f"salesforce:deal-newest-{run}-{i}", amount="10.00", currency="EUR")
        for i in range(4)
    ]
    async with (
        service_processes(infra, "incentives") as [url],
        httpx.AsyncClient(timeout=60) as client,
    ):
        for credit in credits:
            await publish(
                infra, ATTRIBUTION_CREDITS, [credit], subject=credit.deal_key, source="attribution"
            )
        # Every one of the four letters first: the consumer may dead-letter them in any order
        # (they sit on different partitions), and one arriving between the listing and the
        # paging below would make them differ.
        for credit in credits[:-1]:
            await waiting_letter(client, url, credit.deal_key)
        last = await waiting_letter(client, url, credits[-1].deal_key)
        oldest_first = [x["offset"] for x in await letters(client, url)]
        waiting_oldest_first = [x["offset"] for x in await letters(client, url, state="waiting")]
        for state, listed in (("all", oldest_first), ("waiting", waiting_oldest_first)):
            newest_first: list[int] = []
            before: int | None = None
            for _ in range(3):
                query = {"order": "newest", "limit": 3, "state": state}
                page = await client.get(
                    f"{url}/admin/dead-letters",
                    params={**query, **({"before": before} if before is not None else {})},
                    headers=ADMIN,
                )
                assert page.status_code == 200, page.text
                assert page.json()["next_after"] is None
                newest_first += [x["offset"] for x in page.json()["letters"]]
                before = page.json()["next_before"]
                if before is None:
                    break
            assert newest_first == list(reversed(listed))[: len(newest_first)]
            assert len(newest_first) == min(9, len(listed))
        assert oldest_first[-1] >= last["offset"]


async def test_a_page_waits_for_letters_it_knows_are_there_or_says_it_could_not(
    infra: Infra,
) -> None:
    """A busy broker's first fetch can take longer than one poll: a page never answers with
    fewer letters than the topic holds, it waits for them, and past its patience it fails
    (the API's 503) instead of showing an operator an empty list."""
    deal = f"salesforce:deal-patience-{uuid.uuid4().hex[:10]}"
    credit = credit_issued(deal_key=deal, amount="10.00", currency="EUR")
    async with (
        service_processes(infra, "incentives") as [url],
        httpx.AsyncClient(timeout=60) as client,
    ):
        await publish(infra, ATTRIBUTION_CREDITS, [credit], subject=deal, source="attribution")
        letter = await waiting_letter(client, url, deal)
    page = await read_page(infra.service_kafka("incentives"), "incentives", letter["offset"], 1)
    assert [x.offset for x in page.letters] == [letter["offset"]]
    assert page.letters[0].key == deal.encode()
    with pytest.raises(KafkaTimeoutError, match=f"offsets {letter['offset']}\\.\\."):
        await read_page(
            infra.service_kafka("incentives"), "incentives", letter["offset"], 1, patience_seconds=0
        )


async def test_replays_asked_at_once_all_answer_and_replay_each_waiting_letter_once(
    infra: Infra,
) -> None:
    """Found from outside: ten replay-all calls at once each held a pooled connection while
    waiting for the replay lock, so the one holding it never got the second connection its
    consumer needs: every request and the service's own consumers stopped until a restart.
    And a `through` past the topic's end replayed each failure's new letter again, to 500 a
    call."""
    run = uuid.uuid4().hex[:10]
    deal = f"salesforce:deal-dlq-many-{run}"
    credit = credit_issued(deal_key=deal, amount="10.00", currency="EUR")  # programmes pay USD
    calls = 6
    async with (
        # a pool smaller than the calls (the service's own default is ten)
        service_processes(infra, "incentives", env={"DB_POOL_MAX_SIZE": "3"}) as [url],
        httpx.AsyncClient(timeout=120) as client,
    ):
        await publish(infra, ATTRIBUTION_CREDITS, [credit], subject=deal, source="attribution")
        first = await waiting_letter(client, url, deal)

        async def replay_all() -> httpx.Response:
            body = {"through": 2**62}
            return await client.post(f"{url}/admin/dead-letters/replay", json=body, headers=ADMIN)

        answers = await asyncio.gather(*(replay_all() for _ in range(calls)))
        assert [a.status_code for a in answers] == [200] * calls
        ready = await client.get(f"{url}/health/ready")
        assert ready.status_code == 200, ready.text

        # Each call replays what waited when it began: our letter once in all, and each
        # letter a replay parked again at most once more (never in the call that parked it).
        ours = [r for a in answers for r in a.json()["replayed"] if r["offset"] == first["offset"]]
        assert len(ours) == 1
        offsets = [r["offset"] for a in answers for r in a.json()["replayed"]]
        assert len(offsets) == len(set(offsets))
        for answer in answers:
            assert answer.json()["more"] is False
