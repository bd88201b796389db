"""The deliverer's resolver against a stand-in nameserver on a local port (dnspython builds
its answers): a partner's names whose nameserver never answers do not hold other partners'
lookups, and a name resolving inwards is refused."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator

import dns.message
import dns.rdatatype
import dns.rrset
import pytest

from services.notifications.delivering import PublicOnlyResolver

pytestmark = pytest.mark.integration


class Nameserver(asyncio.DatagramProtocol):
    """Answers A queries for `*.partner.com` with a public address and `inwards.partner.com`
    with a private one; never answers a name starting with `silent`."""

    transport: asyncio.DatagramTransport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        if question.name.to_text().startswith("silent"):
            return
        answer = dns.message.make_response(query)
        if question.rdtype == dns.rdatatype.A:
            address = (
                "10.0.0.7" if question.name.to_text().startswith("inwards") else "93.184.216.34"
            )
            answer.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", address))
        self.transport.sendto(answer.to_wire(), addr)


@pytest.fixture
async def resolver() -> AsyncIterator[PublicOnlyResolver]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Nameserver, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    found = PublicOnlyResolver(nameservers=[f"127.0.0.1:{port}"])
    yield found
    await found.close()
    transport.close()


async def test_names_that_never_answer_do_not_hold_another_partners_lookup(
    resolver: PublicOnlyResolver,
) -> None:
    """Found in review: lookups ran in the event loop's few default threads, which a timeout
    does not give back; a partner's endpoints on silent names held them all."""
    silent = [
        asyncio.ensure_future(resolver.resolve(f"silent{i}.partner.com", 443)) for i in range(40)
    ]
    found = await resolver.resolve("hooks.partner.com", 443)
    assert [r["host"] for r in found] == ["93.184.216.34"]
    # Answered while every silent lookup still waits: not queued behind them.
    assert not any(lookup.done() for lookup in silent)
    failed = await asyncio.gather(*silent, return_exceptions=True)
    assert all(isinstance(f, OSError) for f in failed)


async def test_a_name_that_resolves_inwards_is_refused(resolver: PublicOnlyResolver) -> None:
    with pytest.raises(OSError, match="private, loopback or reserved") as refused:
        await resolver.resolve("inwards.partner.com", 443)
    assert refused.value.errno == errno.EACCES
