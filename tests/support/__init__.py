"""What the tests share, and nothing else: infrastructure (`infra`), service processes
(`processes`), the one bounded poller (`polling`), Kafka reading and publishing (`kafka`),
factories for every event contract (`factories`) and CRM payloads as each source sends them
(`crm`, which the demo story uses too). Test modules import from here, never from each other."""
