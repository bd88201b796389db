"""What the tests share, and nothing else: infrastructure (`infra`), service processes and the
e2e fleet (`processes`), the one bounded poller (`polling`), Kafka reading, publishing and
redelivering (`kafka`), factories for every event contract (`factories`), CRM payloads as each
source sends them (`crm`, which the demo story and the benchmark use too), the plumbing tests'
counter service (`counter`), an outbox's events as Kafka gets them (`outbox`), query plans
(`plans`), keyset-paged lists read whole (`paging`), the portal in a real Chromium (`portal`),
and what one service's tests alone need (`deals`, `registrations`, `attribution`, `incentives`,
`onboarding`, `notifications`). Test modules import from here, never from each other
(tests/unit/test_layout.py holds them to it)."""
