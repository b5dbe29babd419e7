"""The gateway side against the real broker: publisher, loadgen, record and replay."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from schemas.events import UsageRecorded
from services import cli
from services.common.progress import ProgressReport
from services.common.settings import Settings, load_settings
from services.common.topics import Topics, create_topics
from services.gateway.publisher import BATCH_BYTES, UsagePublisher
from services.traffic.record import run_record
from services.traffic.replay import run_replay
from services.traffic.traffic import TrafficPlan, generate_messages

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

Landed = tuple[int, bytes, bytes]  # partition, key, value, in offset order per partition


async def read_topic(settings: Settings, topic: str) -> list[Landed]:
    """Every message of `topic`, partition by partition in offset order."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    await reader.start()
    try:
        await reader.topics()
        tps = [TopicPartition(topic, p) for p in range(settings.ledger_partitions)]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        landed: dict[int, list[Landed]] = defaultdict(list)
        while any(len(landed[tp.partition]) < ends[tp] for tp in tps):
            for tp, records in (await reader.getmany(timeout_ms=1000)).items():
                landed[tp.partition] += [(tp.partition, r.key, r.value) for r in records]
        return [m for p in sorted(landed) for m in landed[p]]
    finally:
        await reader.stop()


def events(accounts: int, per_account: int) -> Iterator[UsageRecorded]:
    now = datetime.now(UTC)
    for n in range(per_account):
        for a in range(accounts):
            yield UsageRecorded(
                event_id=f"order-{a}-{n}",
                account_id=f"ord-{a}",
                model="mimo-v2-omni",
                input_tokens=n,
                output_tokens=1,
                occurred_at=now,
                gateway_id="gw-test",
            )


async def default_partitions(settings: Settings, topic: str, keys: list[bytes]) -> dict[bytes, int]:
    """Where aiokafka's own `send` puts each key: the Kafka default partitioner's choice."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        return {
            key: (await producer.send_and_wait(topic, b"probe", key=key)).partition for key in keys
        }
    finally:
        await producer.stop()


async def test_publisher_keeps_each_accounts_order_on_the_default_partition(
    isolated_settings: Settings,
) -> None:
    usage = Topics.from_settings(isolated_settings).usage
    sent = list(events(accounts=40, per_account=50))
    async with UsagePublisher(isolated_settings) as publisher:
        for event in sent:
            await publisher.publish(event)
        await publisher.flush()

    landed = await read_topic(isolated_settings, usage)
    assert sorted(v for _, _, v in landed) == sorted(e.model_dump_json().encode() for e in sent)
    by_key: dict[bytes, list[str]] = defaultdict(list)
    partition_of: dict[bytes, set[int]] = defaultdict(set)
    for partition, key, value in landed:
        by_key[key].append(UsageRecorded.model_validate_json(value).event_id)
        partition_of[key].add(partition)
    for a in range(40):
        assert by_key[f"ord-{a}".encode()] == [f"order-{a}-{n}" for n in range(50)]
    probe_topic = Topics.from_settings(isolated_settings).ledger  # same partition count
    expected = await default_partitions(isolated_settings, probe_topic, list(by_key))
    assert {k: p for k, ps in partition_of.items() for p in ps} == expected
    assert all(len(ps) == 1 for ps in partition_of.values())
    assert len(set(expected.values())) > 1  # the keys really spread over partitions


async def test_leaving_the_block_publishes_everything_queued(isolated_settings: Settings) -> None:
    messages = list(generate_messages(TrafficPlan(accounts=20, events=3_000, seed=9)))
    # No linger: only the flush on close can send the partly filled batches.
    async with UsagePublisher(isolated_settings, linger_s=0) as publisher:
        for message in messages:
            await publisher.publish_raw(message.key, message.value)
    landed = await read_topic(isolated_settings, Topics.from_settings(isolated_settings).usage)
    assert sorted((k, v) for _, k, v in landed) == sorted((m.key, m.value) for m in messages)


@pytest.fixture
def cli_env(isolated_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The process environment pointing the `ledger` command at this test's topics."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", isolated_settings.kafka_bootstrap_servers)
    monkeypatch.setenv("LEDGER_TOPIC_PREFIX", isolated_settings.ledger_topic_prefix)
    monkeypatch.setenv("LEDGER_PARTITIONS", str(isolated_settings.ledger_partitions))
    load_settings.cache_clear()
    yield isolated_settings
    load_settings.cache_clear()


async def test_loadgen_puts_exactly_the_asked_number_of_messages_on_usage(
    cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["loadgen", "--accounts", "50", "--events", "5000", "--seed", "3"]
    argv += ["--duplicates", "0.05", "--malformed", "0.02", "--rate", "0"]
    # `ledger` runs its own event loop; a thread keeps it apart from the test's.
    assert await asyncio.to_thread(cli.main, argv) == 0
    landed = await read_topic(cli_env, Topics.from_settings(cli_env).usage)
    assert len(landed) == 5_000
    expected = generate_messages(
        TrafficPlan(accounts=50, events=5_000, seed=3, duplicates=0.05, malformed=0.02)
    )
    assert sorted(k for _, k, _ in landed) == sorted(m.key for m in expected)
    summary = capsys.readouterr().out
    assert "sent 5,000" in summary and "events/s" in summary and "seed 3" in summary


async def test_loadgen_refuses_a_bad_mix(cli_env: Settings) -> None:
    argv = ["loadgen", "--accounts", "5", "--events", "5", "--mix", "gpt=1"]
    assert await asyncio.to_thread(cli.main, argv) == 2


async def test_record_then_replay_gives_the_same_messages(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    source = isolated_settings
    messages = list(generate_messages(TrafficPlan(accounts=30, events=4_000, seed=12)))
    async with UsagePublisher(source) as publisher:
        await publisher.publish_many((m.key, m.value) for m in messages)
    path = tmp_path / "usage.jsonl"
    with ProgressReport("record", None) as progress:
        recorded = await run_record(source, path, progress)
    assert recorded.written == 4_000 and not recorded.skipped

    target = source.model_copy(update={"ledger_topic_prefix": f"{source.ledger_topic_prefix}re-"})
    await create_topics(target)
    with ProgressReport("replay", None) as progress:
        replayed = await run_replay(target, path, 0, progress)
    assert replayed.sent == 4_000 and not replayed.rejected
    before = await read_topic(source, Topics.from_settings(source).usage)
    after = await read_topic(target, Topics.from_settings(target).usage)
    assert after == before  # same partitions, same order within each, same bytes


async def test_replay_rejects_invalid_lines_locally(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    good = [m.value for m in generate_messages(TrafficPlan(accounts=4, events=5, seed=1))]
    lines = [good[0], b"", b"not json", good[1], b'{"type": "usage.recorded"}', *good[2:]]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with ProgressReport("replay", None) as progress:
        summary = await run_replay(isolated_settings, path, 0, progress)
    assert summary.sent == 5
    assert [r.number for r in summary.rejected] == [3, 5]
    landed = await read_topic(isolated_settings, Topics.from_settings(isolated_settings).usage)
    assert sorted(v for _, _, v in landed) == sorted(good)
    assert "rejected locally 2" in summary.lines() and "line 3" in summary.lines()


async def test_a_batch_the_broker_refuses_raises_instead_of_vanishing(
    isolated_settings: Settings,
) -> None:
    topic = f"{isolated_settings.ledger_topic_prefix}tiny"
    admin = AIOKafkaAdminClient(bootstrap_servers=isolated_settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": "600"})]
        )
    finally:
        await admin.close()
    messages = list(generate_messages(TrafficPlan(accounts=3, events=20)))
    with pytest.raises(KafkaError):
        async with UsagePublisher(isolated_settings, topic=topic) as publisher:
            await publisher.publish_many((m.key, m.value) for m in messages)
            await publisher.flush()


async def test_a_message_larger_than_a_batch_is_refused_at_once(
    isolated_settings: Settings,
) -> None:
    async with UsagePublisher(isolated_settings) as publisher:
        with pytest.raises(MessageSizeTooLargeError):
            await publisher.publish_raw(b"acct-1", b"x" * (2 * BATCH_BYTES))


async def test_closing_while_the_linger_task_holds_a_batch_loses_nothing(
    isolated_settings: Settings,
) -> None:
    """Regression: leaving the block cancelled the linger task while it held a batch it had
    taken out of the open batches but not yet handed to the producer; that batch was lost
    (seen as one missing event in a 50,000-event burst)."""
    topic = Topics.from_settings(isolated_settings).usage
    async with UsagePublisher(isolated_settings, linger_s=0.001) as publisher:
        await publisher.publish_raw(b"acct-linger", b"the only message")
        lock = publisher._send_locks[publisher.partition_for(b"acct-linger")]
        await lock.acquire()
        await asyncio.sleep(0.05)  # the linger task takes the batch and waits for the lock
        assert publisher._open == {}, "the linger task should hold the batch by now"
        asyncio.get_running_loop().call_later(0.05, lock.release)
    assert [value for _, _, value in await read_topic(isolated_settings, topic)] == [
        b"the only message"
    ]
