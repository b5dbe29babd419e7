"""Shared code of the fault suite (tests/e2e/test_fault_*.py): private brokers and clusters,
seeded load, the pipeline's processes, and the final count of every usage event.

Every scenario ends with `Report.check()`: each usage event must have exactly one debit in
the projector's journal (its entry_id is uuid5 of the event id) or exactly one rejection on
usage.dlq.v1, and the balances must equal the sum of the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from services.common import kafka
from services.common.settings import Settings
from services.common.topics import Topics
from services.traffic.traffic import TrafficPlan, generate_messages
from tests.processes import LEDGER, ServiceProcess, free_port, service_env

ROOT = Path(__file__).resolve().parents[2]
READ_TOKEN = "fault-read-token-0123456789"
ADMIN_TOKEN = "fault-admin-token-0123456789"
API_TOKENS = f"{READ_TOKEN}:read,{ADMIN_TOKEN}:admin"
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# How long a scenario may take to settle before its counts are taken as final. Not a
# performance assertion: the counts decide, this only keeps a broken run from hanging.
SETTLE_S = 120.0
# A pipeline that has not moved for this long is taken as settled: a pricing restart waits
# for the group's session timeout (10 s), so this must be longer than that.
STALL_S = 25.0


def scenario_seeds(defaults: tuple[int, ...]) -> list[int]:
    """FAULT_SEED=<n> replays one seed (a failing run prints it); otherwise the defaults."""
    if seed := os.environ.get("FAULT_SEED"):
        return [int(seed)]
    return list(defaults)


# --- private infrastructure: the shared broker and cluster are never stopped -------------


class PrivateInfra:
    """A broker or cluster of this test's own, run by the repository's own infra script."""

    def __init__(self, script: str, **env: str) -> None:
        # Not under pytest's tmp_path: as root the cluster runs as `postgres`, which must be
        # able to reach its folder.
        self.dir = Path(tempfile.mkdtemp(prefix="ledger-fault-"))
        self.dir.chmod(0o755)
        self.script = str(ROOT / "infra" / script)
        self.env = {**os.environ, "LEDGER_LOCAL_DIR": str(self.dir), **env}

    def run(self, action: str) -> None:
        done = subprocess.run(
            [self.script, action], env=self.env, capture_output=True, text=True, timeout=180
        )
        if done.returncode != 0:
            raise RuntimeError(f"{self.script} {action} failed:\n{done.stdout}{done.stderr}")

    def start(self) -> None:
        self.run("start")

    def stop(self) -> None:
        self.run("stop")

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def kafka_libs() -> Path:
    """Where the Kafka jars are: KAFKA_LIBS_DIR, else the clone's own .local/kafka-libs."""
    return Path(os.environ.get("KAFKA_LIBS_DIR") or ROOT / ".local" / "kafka-libs")


def fetch_kafka_jars() -> Path:
    """The Kafka jars, fetched now when this clone has none (`make up` fetches nothing when
    it reuses a broker that already answers on the port); their folder."""
    libs = kafka_libs()
    if not (libs / ".complete").exists():
        done = subprocess.run(
            [str(ROOT / "infra" / "kafka.sh"), "fetch"],
            env={**os.environ, "KAFKA_LIBS_DIR": str(libs)},
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, f"infra/kafka.sh fetch failed:\n{done.stdout}{done.stderr}"
    return libs


def private_kafka() -> tuple[PrivateInfra, str]:
    port = free_port()
    infra = PrivateInfra(
        "kafka.sh",
        KAFKA_PORT=str(port),
        KAFKA_CONTROLLER_PORT=str(free_port()),
        KAFKA_LIBS_DIR=str(fetch_kafka_jars()),
    )
    return infra, f"127.0.0.1:{port}"


def private_postgres() -> tuple[PrivateInfra, str]:
    port = free_port()
    infra = PrivateInfra("postgres.sh", PGPORT=str(port))
    return infra, f"postgresql://postgres@127.0.0.1:{port}/ledger"


@contextlib.contextmanager
def running(infra: PrivateInfra) -> Iterator[PrivateInfra]:
    try:
        infra.start()
        yield infra
    finally:
        infra.stop()
        infra.remove()


# --- the pipeline's processes ---------------------------------------------------------------


@dataclass
class Pipeline:
    """Real `ledger serve` processes; every one started here is stopped by `close`."""

    settings: Settings
    log_dir: Path
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    api_port: int = 0

    def add(self, label: str, service: str, *args: str, **env: str) -> ServiceProcess:
        process = ServiceProcess(service, self.settings, self.log_dir, *args, **env)
        self.processes[label] = process
        return process

    @classmethod
    def standard(cls, settings: Settings, log_dir: Path) -> Pipeline:
        pipeline = cls(settings, log_dir, api_port=free_port())
        pipeline.add("pricing", "pricing")
        pipeline.add("projector", "projector")
        pipeline.add("api", "api", "--port", str(pipeline.api_port), LEDGER_API_TOKENS=API_TOKENS)
        return pipeline

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    async def start(self, *labels: str) -> None:
        for label in labels or tuple(self.processes):
            await asyncio.to_thread(self.processes[label].start, 90.0)

    async def restart(self, label: str) -> None:
        await asyncio.to_thread(self.processes[label].start, 90.0)

    def kill(self, label: str) -> None:
        self.processes[label].kill()

    def exited(self) -> dict[str, int]:
        """Processes that ended on their own (a finding: services must survive faults)."""
        return {
            label: code
            for label, p in self.processes.items()
            if p.proc is not None and (code := p.proc.poll()) is not None and code != -9
        }

    def close(self) -> dict[str, int]:
        """SIGTERM every process; returns the exit codes that are not a clean 0."""
        codes = {label: p.stop() for label, p in self.processes.items() if p.proc is not None}
        return {label: code for label, code in codes.items() if code != 0}

    def logs(self) -> str:
        return "\n".join(f"--- {label}\n{p.log()[-4000:]}" for label, p in self.processes.items())


# --- load -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What a plan publishes: its distinct usage events and how many messages are invalid."""

    messages: int
    event_ids: frozenset[str]
    malformed: int


def expected_traffic(plan: TrafficPlan) -> Expected:
    ids: set[str] = set()
    malformed = 0
    for message in generate_messages(plan):
        if message.kind == "malformed":
            malformed += 1
        else:
            ids.add(json.loads(message.value)["event_id"])
    return Expected(plan.events, frozenset(ids), malformed)


class Loadgen:
    """`ledger loadgen` as a real process: the gateway's own publisher, seeded."""

    def __init__(self, settings: Settings, plan: TrafficPlan, rate: float, log_dir: Path):
        self.args = [
            *LEDGER, "loadgen", "--accounts", str(plan.accounts), "--events", str(plan.events),
            "--seed", str(plan.seed), "--rate", str(rate), "--duplicates", str(plan.duplicates),
            "--malformed", str(plan.malformed), "--account-prefix", plan.account_prefix,
        ]  # fmt: skip
        self.env = service_env(settings)
        self.log_path = log_dir / f"loadgen-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Loadgen:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=log)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def wait(self) -> int:
        assert self.proc is not None
        return await asyncio.to_thread(self.proc.wait, 300)

    def kill(self) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


async def publish_raw(
    settings: Settings, messages: list[tuple[bytes | None, bytes | None]]
) -> None:
    """Sends (key, value) pairs to usage.v1 exactly as given, in order."""
    producer = AIOKafkaProducer(
        **kafka.connection(settings),
        acks="all",
        enable_idempotence=True,
        max_request_size=2 * 1024 * 1024,
    )
    await producer.start()
    try:
        topic = Topics.from_settings(settings).usage
        for key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


# --- reading the outcome ----------------------------------------------------------------------


async def read_topic(settings: Settings, topic: str) -> list[ConsumerRecord]:
    """Every committed record of `topic`, from offset 0 to its current end."""
    consumer = kafka.consumer(settings, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.ledger_partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord] = []
        while any([await consumer.position(tp) < end for tp, end in ends.items()]):
            fetched = await consumer.getmany(timeout_ms=500, max_records=50_000)
            records += [r for batch in fetched.values() for r in batch]
        return records
    finally:
        await consumer.stop()


async def rejections(settings: Settings) -> Counter[tuple[int, int]]:
    """usage.dlq.v1 as a count per source (partition, offset) on usage.v1."""
    counts: Counter[tuple[int, int]] = Counter()
    for record in await read_topic(settings, Topics.from_settings(settings).dlq):
        source = json.loads(record.value)["source"]
        counts[(source["partition"], source["offset"])] += 1
    return counts


async def journal_debits(conn: asyncpg.Connection) -> Counter[str]:
    rows = await conn.fetch(
        "SELECT usage_event_id, count(*) AS n FROM ledger.journal WHERE kind = 'debited' "
        "GROUP BY usage_event_id"
    )
    return Counter({r["usage_event_id"]: r["n"] for r in rows})


async def count_debits(conn: asyncpg.Connection) -> int:
    with contextlib.suppress(asyncpg.UndefinedTableError):
        n: int = await conn.fetchval("SELECT count(*) FROM ledger.journal WHERE kind = 'debited'")
        return n
    return 0


BALANCE_MISMATCHES = """
SELECT b.account_id, b.balance, coalesce(j.total, 0) AS journal
FROM ledger.balances b
FULL JOIN (SELECT account_id, sum(credits) AS total FROM ledger.journal GROUP BY account_id) j
       USING (account_id)
WHERE b.balance IS DISTINCT FROM coalesce(j.total, 0)
"""


async def balance_mismatches(conn: asyncpg.Connection) -> list[str]:
    return [f"{r['account_id']}: {r['balance']} != {r['journal']}" for r in
            await conn.fetch(BALANCE_MISMATCHES)]  # fmt: skip


def audit(settings: Settings) -> tuple[int, dict[str, Any]]:
    """`ledger audit --json`: its exit code and its JSON document."""
    done = subprocess.run(
        [*LEDGER, "audit", "--json"],
        env=service_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        document: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError as error:
        raise AssertionError(
            f"ledger audit --json printed no JSON:\n{done.stdout}{done.stderr}"
        ) from error
    return done.returncode, document


@dataclass
class Report:
    """The one-line summary every scenario prints, and the checks behind it."""

    scenario: str
    published: int = 0
    faults: int = 0
    lost: int = 0
    doubled: int = 0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        extra = f"; {'; '.join(self.notes)}" if self.notes else ""
        return (
            f"FAULT REPORT {self.scenario}: events published {self.published:,}, faults "
            f"injected {self.faults}, events lost {self.lost}, debits doubled {self.doubled}"
            f"{extra}"
        )

    def emit(self) -> None:
        print(f"\n{self.line()}")

    def check(self) -> None:
        self.emit()
        assert (self.lost, self.doubled) == (0, 0), self.line()


async def settle(settings: Settings, expected: Expected, pipeline: Pipeline | None = None) -> None:
    """Waits until the journal holds every usage event's debit and the DLQ every rejection,
    or until nothing has moved for STALL_S (then the counts show what is missing)."""
    deadline = time.monotonic() + SETTLE_S
    progress, moved_at = -1, time.monotonic()
    conn = await asyncpg.connect(settings.database_url)
    try:
        while time.monotonic() < deadline and time.monotonic() - moved_at < STALL_S:
            if pipeline is not None and (ended := pipeline.exited()):
                raise AssertionError(f"services exited on their own: {ended}\n{pipeline.logs()}")
            debits = await count_debits(conn)
            rejected = len(await rejections(settings))
            if debits >= len(expected.event_ids) and rejected >= expected.malformed:
                return
            if debits + rejected != progress:
                progress, moved_at = debits + rejected, time.monotonic()
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


async def account_for(settings: Settings, expected: Expected, report: Report) -> None:
    """Counts lost and doubled events into `report`, and checks balances and conflicts."""
    usage = await read_topic(settings, Topics.from_settings(settings).usage)
    rejected = await rejections(settings)
    conn = await asyncpg.connect(settings.database_url)
    try:
        debits = await journal_debits(conn)
        mismatches = await balance_mismatches(conn)
        conflicts = await conn.fetchval("SELECT count(*) FROM ledger.conflicts")
    finally:
        await conn.close()
    missing_in_log = expected.messages - len(usage)
    missing_debits = len(expected.event_ids - set(debits))
    missing_rejections = max(expected.malformed - len(rejected), 0)
    report.lost = max(missing_in_log, 0) + missing_debits + missing_rejections
    report.doubled = sum(n - 1 for n in debits.values()) + sum(n - 1 for n in rejected.values())
    stray = set(debits) - expected.event_ids
    assert not stray, f"debits for events nobody published: {sorted(stray)[:5]}"
    assert len(rejected) == expected.malformed, f"{len(rejected)} != {expected.malformed}"
    assert mismatches == [], f"balances differ from the journal: {mismatches[:5]}"
    assert conflicts == 0, f"{conflicts} conflicts from byte-identical re-sends"
    code, document = audit(settings)
    assert code == 0, f"ledger audit --json exited {code}: {json.dumps(document)[:4000]}"
    report.notes.append("ledger audit exit 0")


async def ledger_debits_on_log(settings: Settings) -> Counter[str]:
    """Committed credits.debited per entry_id on ledger.v1 (re-sends after a zombie show)."""
    counts: Counter[str] = Counter()
    for record in await read_topic(settings, Topics.from_settings(settings).ledger):
        event = json.loads(record.value)
        if event.get("type") == "credits.debited":
            counts[event["entry_id"]] += 1
    return counts


# --- top-ups through the API while it is being killed -------------------------------------


async def grant_until_accepted(client: httpx.AsyncClient, account: str, key: str) -> str:
    """POSTs one top-up with its Idempotency-Key until 202, as a careful client retries."""
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        try:
            answer = await client.post(
                f"/v1/accounts/{account}/credits",
                json={"credits": 1000, "reason": "purchase", "reference": key},
                headers={**ADMIN, "Idempotency-Key": key},
            )
        except httpx.TransportError:
            await asyncio.sleep(0.1)
            continue
        if answer.status_code == 202:
            entry: str = answer.json()["entry_id"]
            return entry
        assert answer.status_code == 503, answer.text
        await asyncio.sleep(0.1)
    raise TimeoutError(f"top-up {key} not accepted within {SETTLE_S}s")


async def top_ups(base_url: str, accounts: int, stop: asyncio.Event) -> dict[str, str]:
    """Buys credits for random accounts until `stop`; returns key -> accepted entry_id.

    A key once tried is retried until accepted, so every key tried is in the answer."""
    accepted: dict[str, str] = {}
    rng = random.Random(7)
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        while not stop.is_set():
            key = f"topup-{len(accepted) + 1}"
            account = f"acct-{rng.randrange(1, accounts + 1)}"
            accepted[key] = await grant_until_accepted(client, account, key)
            await asyncio.sleep(0.05)
    return accepted


async def granted_entries(settings: Settings) -> Counter[str]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch("SELECT entry_id FROM ledger.journal WHERE kind = 'granted'")
    finally:
        await conn.close()
    return Counter(str(r["entry_id"]) for r in rows)


async def wait_for_debits(database_url: str, at_least: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for _ in range(1200):
            if await count_debits(conn) >= at_least:
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"fewer than {at_least} debits in the journal")
    finally:
        await conn.close()


# --- one scenario under load ------------------------------------------------------------------


@dataclass
class Outcome:
    """What a scenario under load left behind, for the test's own assertions."""

    pipeline: Pipeline
    accepted: dict[str, str]  # top-up key -> the entry_id the API accepted
    granted: Counter[str]  # grant entry_ids in the journal
    exited: dict[str, int]  # processes that ended on their own
    unclean: dict[str, int]  # processes that did not stop cleanly on SIGTERM


async def under_load(
    settings: Settings,
    plan: TrafficPlan,
    rate: float,
    log_dir: Path,
    report: Report,
    inject: Callable[[Pipeline, Loadgen], Awaitable[None]],
    pipeline: Pipeline | None = None,
) -> Outcome:
    """The pipeline (by default the standard one) under seeded load and a stream of top-ups
    while `inject` does its damage; then everything published is settled and accounted for
    in `report`. A pipeline given here must run an API for the top-ups."""
    expected = expected_traffic(plan)
    pipeline = pipeline or Pipeline.standard(settings, log_dir)
    loadgen = Loadgen(settings, plan, rate, log_dir)
    stop_buying = asyncio.Event()
    buying: asyncio.Task[dict[str, str]] | None = None
    try:
        await pipeline.start()
        loadgen.start()
        buying = asyncio.create_task(top_ups(pipeline.api_url, plan.accounts, stop_buying))
        await inject(pipeline, loadgen)
        code = await loadgen.wait()
        assert code == 0, f"loadgen exited {code}:\n{loadgen.log()}"
        stop_buying.set()
        accepted = await buying
        await settle(settings, expected, pipeline)
        await account_for(settings, expected, report)
        granted = await granted_entries(settings)
        exited = pipeline.exited()
    finally:
        stop_buying.set()
        if buying is not None:
            buying.cancel()
        loadgen.kill()
        unclean = pipeline.close()
    return Outcome(pipeline, accepted, granted, exited, unclean)
