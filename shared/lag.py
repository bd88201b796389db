"""Consumer lag: how far each of a service's consumer groups is behind the end of its topics.

Lag = the partition's end offset minus the group's committed offset (offsets are committed only
after the database commit, so this is work not yet durably done). Read on demand by /metrics.
"""

from __future__ import annotations

import contextlib

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.kafka_client import KafkaConnection


class LagProbe:
    def __init__(self, kafka: KafkaConnection, client_id: str) -> None:
        self._admin = AIOKafkaAdminClient(**kafka.aiokafka_options(), client_id=f"{client_id}-lag")
        self._offsets = AIOKafkaConsumer(
            **kafka.aiokafka_options(),
            client_id=f"{client_id}-lag",
            group_id=None,
            enable_auto_commit=False,
        )
        self._started = False
        # (group, partition) -> the committed offset last seen
        self._committed: dict[tuple[str, TopicPartition], int] = {}

    async def start(self) -> None:
        await self._admin.start()
        await self._offsets.start()
        self._started = True

    async def stop(self) -> None:
        if self._started:
            with contextlib.suppress(Exception):
                await self._offsets.stop()
            with contextlib.suppress(Exception):
                await self._admin.close()
            self._started = False

    async def lag_by_partition(self, group_id: str, topics: list[str]) -> dict[str, dict[int, int]]:
        """Per topic and partition, how far the group is behind. A partition the group never
        committed on counts from the partition's start.

        Right after a broker restarts, the group coordinator answers "no committed offset" for
        a few seconds while it reloads the offsets topic: read as it stands, that would report
        the whole topic as lag (and fire a lag alert) each time. A committed offset this probe
        saw before is not forgotten: a later "none" for it means "not known yet", and the last
        one seen stands until the coordinator answers again (an operator's reset to an earlier
        offset is an answer, and is taken as it is)."""
        described = await self._admin.describe_topics(topics)
        partitions = [
            TopicPartition(topic["topic"], partition["partition"])
            for topic in described
            for partition in topic.get("partitions", [])
        ]
        committed = await self._admin.list_consumer_group_offsets(group_id, partitions=partitions)
        ends = await self._offsets.end_offsets(partitions)
        starts = await self._offsets.beginning_offsets(partitions)
        result: dict[str, dict[int, int]] = {}
        for tp in partitions:
            done = committed.get(tp)
            known = self._committed.get((group_id, tp))
            if done is not None and done.offset >= 0:
                known = self._committed[(group_id, tp)] = done.offset
            position = known if known is not None else starts[tp]
            result.setdefault(tp.topic, {})[tp.partition] = max(0, ends[tp] - position)
        return result
