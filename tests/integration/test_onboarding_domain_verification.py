"""The domain verifiers against local stand-ins: a UDP nameserver answering TXT queries (the
DNS method) and a missing site (the well-known method), each as the service would use them."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from typing import cast

import pytest

from services.onboarding.domain.verification import expected_record, proves
from services.onboarding.domain_verification import DnsTxt, WellKnownFile

pytestmark = pytest.mark.integration


class Nameserver(asyncio.DatagramProtocol):
    """Answers TXT queries from `records` (domain -> TXT texts; a long text is split into
    255-byte strings as DNS stores it); an unknown domain gets NXDOMAIN."""

    def __init__(self, records: dict[str, list[str]]) -> None:
        self.records = records
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        query_id = struct.unpack("!H", data[:2])[0]
        at, labels = 12, []
        while data[at]:
            labels.append(data[at + 1 : at + 1 + data[at]].decode())
            at += 1 + data[at]
        question = data[12 : at + 5]
        texts = self.records.get(".".join(labels))
        rcode = 0 if texts is not None else 3
        answers = b""
        for text in texts or []:
            raw = text.encode()
            rdata = b"".join(
                bytes([len(raw[i : i + 255])]) + raw[i : i + 255] for i in range(0, len(raw), 255)
            )
            answers += struct.pack("!HHHIH", 0xC00C, 16, 1, 60, len(rdata)) + rdata
        header = struct.pack("!HHHHHH", query_id, 0x8180 | rcode, 1, len(texts or []), 0, 0)
        assert self.transport is not None
        self.transport.sendto(header + question + answers, addr)


@pytest.fixture
async def nameserver() -> AsyncIterator[tuple[str, dict[str, list[str]]]]:
    records: dict[str, list[str]] = {}
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: Nameserver(records), local_addr=("127.0.0.1", 0)
    )
    host, port = transport.get_extra_info("sockname")[:2]
    yield f"{host}:{port}", records
    transport.close()


async def test_dns_txt_finds_the_token_among_the_domains_records(
    nameserver: tuple[str, dict[str, list[str]]],
) -> None:
    address, records = nameserver
    token = "tok-" + "x" * 300  # longer than one DNS string
    records["partner.example"] = ["v=spf1 -all", expected_record(token)]
    verifier = DnsTxt(address, timeout=5)
    published = await verifier.published("partner.example")
    assert published == ["v=spf1 -all", expected_record(token)]
    assert proves(published, token)
    assert not proves(published, "another-token")
    assert await verifier.published("nobody.example") == []
    assert "partner.example" in verifier.where("partner.example")


async def test_nothing_answering_proves_nothing() -> None:
    # A port nothing listens on (the site) and a nameserver that never answers.
    site = WellKnownFile("http://127.0.0.1:9/{domain}", timeout=2)
    assert await site.published("partner.example") == []
    assert site.where("partner.example") == (
        "http://127.0.0.1:9/partner.example/.well-known/pollinate-verification.txt"
    )
    silent = DnsTxt("127.0.0.1:9", timeout=0.5)
    assert await silent.published("partner.example") == []
