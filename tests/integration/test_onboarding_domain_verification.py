"""The domain verifiers against local stand-ins: a UDP nameserver answering TXT queries (the
DNS method) and a missing site (the well-known method), each as the service would use them."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import pytest

from services.onboarding.domain.verification import expected_record, proves
from services.onboarding.domain_verification import DnsTxt, WellKnownFile

pytestmark = pytest.mark.integration


def answer_to(query_wire: bytes, records: dict[str, list[str]], limit: int) -> bytes:
    """The nameserver's answer to a TXT query, at most `limit` bytes: larger, it is sent
    truncated (TC set, no answers), as a nameserver answers over UDP (RFC 1035 4.2.1, RFC
    6891's payload size); over TCP the limit is the message's."""
    query = dns.message.from_wire(query_wire)
    response = dns.message.make_response(query)
    name = query.question[0].name.to_text(omit_final_dot=True)
    texts = records.get(name)
    if texts is None:
        response.set_rcode(dns.rcode.NXDOMAIN)
    else:
        rrset = response.find_rrset(
            response.answer,
            query.question[0].name,
            dns.rdataclass.IN,
            dns.rdatatype.TXT,
            create=True,
        )
        for text in texts:  # a long text as DNS stores it: strings of 255 bytes at most
            raw = text.encode()
            strings = [raw[i : i + 255] for i in range(0, len(raw), 255)]
            rrset.add(dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings), 60)
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        truncated = dns.message.make_response(query)
        truncated.flags |= dns.flags.TC
        return truncated.to_wire()


class Nameserver(asyncio.DatagramProtocol):
    """Answers TXT queries over UDP from `records` (domain -> TXT texts); an unknown domain
    gets NXDOMAIN. An answer larger than the query's EDNS payload (512 bytes without one) is
    truncated; `tcp_answers` (its TCP side) gives the whole."""

    def __init__(self, records: dict[str, list[str]]) -> None:
        self.records = records
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        query = dns.message.from_wire(data)
        limit = max(512, query.payload) if query.edns >= 0 else 512
        assert self.transport is not None
        self.transport.sendto(answer_to(data, self.records, limit), addr)

    async def tcp_answers(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while length := await reader.readexactly(2):
                query = await reader.readexactly(int.from_bytes(length, "big"))
                answer = answer_to(query, self.records, 65535)
                writer.write(len(answer).to_bytes(2, "big") + answer)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


@pytest.fixture
async def nameserver() -> AsyncIterator[tuple[str, dict[str, list[str]]]]:
    records: dict[str, list[str]] = {}
    server = Nameserver(records)
    loop = asyncio.get_running_loop()
    # TCP on the UDP port the system gave, as DNS listens: that port may be another TCP
    # socket's already (an outgoing connection's, on a busy machine: CI met it twice), so a
    # taken one is given back and another tried.
    for _ in range(50):
        transport, _ = await loop.create_datagram_endpoint(
            lambda: server, local_addr=("127.0.0.1", 0)
        )
        host, port = transport.get_extra_info("sockname")[:2]
        try:
            tcp = await asyncio.start_server(server.tcp_answers, host, port)
            break
        except OSError as taken:
            transport.close()
            if taken.errno != errno.EADDRINUSE:
                raise
    else:
        raise AssertionError("no port free for both UDP and TCP in 50 tries")
    yield f"{host}:{port}", records
    tcp.close()
    transport.close()


async def test_dns_txt_finds_the_token_among_the_domains_records(
    nameserver: tuple[str, dict[str, list[str]]],
) -> None:
    address, records = nameserver
    token = "tok-" + "x" * 300  # longer than one DNS string
    records["partner.example"] = ["v=spf1 -all", expected_record(token)]
    verifier = DnsTxt(address, timeout=5)
    published = await verifier.published("partner.example")
    assert sorted(published) == sorted(["v=spf1 -all", expected_record(token)])  # a set in DNS
    assert proves(published, token)
    assert not proves(published, "another-token")
    assert await verifier.published("nobody.example") == []
    assert "partner.example" in verifier.where("partner.example")


async def test_a_domain_with_more_txt_records_than_a_udp_answer_holds_still_shows_the_token(
    nameserver: tuple[str, dict[str, list[str]]],
) -> None:
    """Found in review: a company's TXT records (SPF and other providers' verification
    strings) past 512 bytes came back truncated, and the token was never seen."""
    address, records = nameserver
    token = "tok-many"
    others = [f"provider-{n}-site-verification=" + "v" * 60 for n in range(30)]  # ~2.6 kB
    records["big.example"] = [*others, expected_record(token)]
    published = await DnsTxt(address, timeout=5).published("big.example")
    assert sorted(published) == sorted([*others, expected_record(token)])  # a set, in DNS
    assert proves(published, token)


async def test_nothing_answering_proves_nothing() -> None:
    # A port nothing listens on (the site) and a nameserver that never answers.
    site = WellKnownFile("http://127.0.0.1:9/{domain}", timeout=2)
    assert await site.published("partner.example") == []
    assert site.where("partner.example") == (
        "http://127.0.0.1:9/partner.example/.well-known/pollinate-verification.txt"
    )
    silent = DnsTxt("127.0.0.1:9", timeout=0.5)
    assert await silent.published("partner.example") == []
