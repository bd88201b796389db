"""The relay places each row's record where Kafka's default partitioner puts its key, so every
event of one key stays in one partition, in order, whichever client produced the key's earlier
events: the compiled murmur2 must give aiokafka's partitioner's answer for every key."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from shared.relay import kafka_partition


@given(st.binary(max_size=200), st.integers(min_value=1, max_value=200))
def test_a_key_goes_where_aiokafkas_default_partitioner_sends_it(key: bytes, count: int) -> None:
    partitions = list(range(count))
    assert kafka_partition(key, partitions) == DefaultPartitioner()(key, partitions, partitions)


def test_the_platforms_keys_spread_as_aiokafka_spreads_them() -> None:
    keys = [f"sf:006{n:015d}".encode() for n in range(2_000)] + [b"", b"\xff" * 7]
    partitions = list(range(12))
    placed = [kafka_partition(key, partitions) for key in keys]
    assert placed == [DefaultPartitioner()(key, partitions, partitions) for key in keys]
    assert set(placed) == set(partitions)
