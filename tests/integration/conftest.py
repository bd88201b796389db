from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from shared.db import create_pool
from shared.outbox import Outbox, make_producer
from tests.support.counter import COUNTER_TABLE, Components
from tests.support.crm import CertificateHost, CrmSenders, MicrosoftSigner
from tests.support.infra import Infra, ScratchService
from tests.support.processes import service_processes

pytestmark = pytest.mark.integration


@pytest.fixture
async def components(infra: Infra, scratch_service: ScratchService) -> AsyncIterator[Components]:
    await scratch_service.migrate("platform")
    await scratch_service.as_owner(COUNTER_TABLE)
    pool = await create_pool(scratch_service.dsn, scratch_service.schema, max_size=8)
    producer = make_producer(infra.kafka, client_id=scratch_service.schema)
    await producer.start()
    components = Components(
        infra, scratch_service, pool, Outbox(scratch_service.schema, "pollinate/test"), producer
    )
    yield components
    for relay in components.relays:
        await relay.close()
    await producer.stop()
    await pool.close()


@pytest.fixture(scope="package")
def certificate_host() -> Iterator[CertificateHost]:
    """Plays Microsoft's certificate host for the package's deals processes."""
    with CertificateHost() as host:
        yield host


@pytest.fixture(scope="package")
def crm_senders(certificate_host: CertificateHost) -> CrmSenders:
    """Signs deliveries as each CRM does; Partner Center's certificate issued by a test CA."""
    signer = MicrosoftSigner.create()
    url = certificate_host.serve("/cert/pcnotifications.cer", signer.certificate_der)
    return CrmSenders(signer, url)


@pytest.fixture(scope="package")
def deals_crm_env(
    crm_senders: CrmSenders,
    certificate_host: CertificateHost,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """A deals process's settings to accept `crm_senders` (the public URL HubSpot signs, the
    certificate host allowed, the test CA trusted)."""
    issuers = tmp_path_factory.mktemp("microsoft") / "issuers.pem"
    issuers.write_bytes(crm_senders.microsoft.ca_pem)
    return crm_senders.service_env(str(issuers), certificate_host.origin)


@pytest.fixture(scope="package")
async def deals_instances(infra: Infra, deals_crm_env: dict[str, str]) -> AsyncIterator[list[str]]:
    """Two deals processes sharing one schema and one consumer group (expiry checked often)."""
    async with service_processes(
        infra, "deals", count=2, env={"DEALS_EXPIRY_CHECK_SECONDS": "0.3", **deals_crm_env}
    ) as urls:
        yield urls
