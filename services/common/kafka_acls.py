"""Kafka ACLs: what each component's principal may do on the ledger's topics, and their
creation on a cluster run with StandardAuthorizer (docs/operations.md, Kafka ACLs).

Every component runs as its own principal (KAFKA_SASL_USERNAME), e.g. `User:ledger-pricing`
for pricing. Topic names and consumer groups are literal (they carry
LEDGER_TOPIC_PREFIX), transactional ids are prefixed patterns, since the API adds a random
suffix per process and pricing its instance number. Every principal may Describe the
ledger's topics (metadata only): each service checks at start that they exist.

Run as `python -m services.common.kafka_acls [PREFIX]` with the cluster administrator's
KAFKA_* settings (a super user) to create the ACLs for one topic prefix; creating them
again changes nothing.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from aiokafka.protocol.admin import CreateAclsRequest_v1, DescribeAclsRequest
from aiokafka.protocol.api import Request

from services.common import kafka
from services.common.settings import Settings, load_settings
from services.common.topics import Topics
from services.pricing.service import group_id as pricing_group
from services.pricing.service import transactional_id as pricing_transactional_id

COMPONENTS = ("pricing", "projector", "api", "webhooks", "gateway", "audit")
# A component's Kafka user is `ledger-<component>` (infra/cluster.sh and the Helm chart's
# secrets make them so).
USER_PREFIX = "ledger-"


def principal(component: str) -> str:
    return f"User:{USER_PREFIX}{component}"


SEALS_TOPIC = "ledger.seals.v1"  # written by the projector once entries are sealed


class Resource(IntEnum):  # Kafka's ResourceType codes
    TOPIC = 2
    GROUP = 3
    TRANSACTIONAL_ID = 5


class Operation(IntEnum):  # Kafka's AclOperation codes
    READ = 3
    WRITE = 4
    DESCRIBE = 8


class Pattern(IntEnum):  # Kafka's PatternType codes
    LITERAL = 3
    PREFIXED = 4


ALLOW = 3  # AclPermissionType
ANY = 1  # the filter value matching every resource type, pattern, operation, permission
# Brokers learn new ACLs from the metadata log a moment after the controller took them.
PROPAGATION_TIMEOUT_S = 60.0


@dataclass(frozen=True, order=True)
class Acl:
    component: str  # e.g. "pricing", whose principal is User:ledger-pricing
    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation

    def row(self) -> str:
        """`User:ledger-pricing Write topic ledger.v1`: how errors show it."""
        kind = self.resource.name.lower().replace("_", "-")
        prefixed = " (prefix)" if self.pattern is Pattern.PREFIXED else ""
        operation = self.operation.name.title()
        return f"{principal(self.component)} {operation} {kind} {self.name}{prefixed}"


def acls(prefix: str) -> list[Acl]:
    """Every ACL the ledger's components need for the topics under `prefix`."""
    t = Topics.from_prefix(prefix)
    seals = f"{prefix}{SEALS_TOPIC}"
    found: list[Acl] = []

    def allow(who: str, resource: Resource, name: str, *ops: Operation) -> None:
        pattern = Pattern.PREFIXED if resource is Resource.TRANSACTIONAL_ID else Pattern.LITERAL
        found.extend(Acl(who, resource, name, pattern, op) for op in ops)

    read, write, describe = Operation.READ, Operation.WRITE, Operation.DESCRIBE
    for who in COMPONENTS:
        for topic in (*t.all(), seals):
            allow(who, Resource.TOPIC, topic, describe)
    # The gateway writes usage and nothing else.
    allow("gateway", Resource.TOPIC, t.usage, write)
    # Pricing: reads usage in its group, writes debits and rejections in its transactions.
    allow("pricing", Resource.TOPIC, t.usage, read)
    allow("pricing", Resource.TOPIC, t.ledger, write)
    allow("pricing", Resource.TOPIC, t.dlq, write)
    allow("pricing", Resource.GROUP, pricing_group(prefix), read, describe)
    txn = pricing_transactional_id(prefix, "")
    allow("pricing", Resource.TRANSACTIONAL_ID, txn, write, describe)
    # Projector: reads the ledger in its group, writes alerts (and seals).
    allow("projector", Resource.TOPIC, t.ledger, read)
    allow("projector", Resource.TOPIC, t.alerts, write)
    allow("projector", Resource.TOPIC, seals, write)
    allow("projector", Resource.GROUP, f"{prefix}ledger-projector", read, describe)
    # API: grants and adjustments, holds, POST /v1/usage in transactions of its own; its
    # overview reads how far pricing's and the projector's groups are.
    allow("api", Resource.TOPIC, t.ledger, write)
    allow("api", Resource.TOPIC, t.holds, write)
    allow("api", Resource.TOPIC, t.usage, write)
    allow("api", Resource.TRANSACTIONAL_ID, f"{t.usage}-api-ingest-", write, describe)
    allow("api", Resource.GROUP, pricing_group(prefix), describe)
    allow("api", Resource.GROUP, f"{prefix}ledger-projector", describe)
    # Webhooks: read alerts in their group.
    allow("webhooks", Resource.TOPIC, t.alerts, read)
    allow("webhooks", Resource.GROUP, f"{prefix}ledger-webhooks", read, describe)
    # Audit: reads everything without a group, writes nothing.
    for topic in (*t.all(), seals):
        allow("audit", Resource.TOPIC, topic, read)
    return sorted(set(found))


def acl_table(prefix: str = "") -> str:
    """The ACLs as the Markdown table of docs/operations.md (a unit test keeps them equal)."""
    rows = ["| principal | Read | Write | Describe |", "|---|---|---|---|"]
    listed = acls(prefix)
    # Describe on every ledger topic is every principal's: said once below the table.
    everyone = {a.name for a in listed if a.resource is Resource.TOPIC}
    for who in COMPONENTS:
        cells = []
        for op in (Operation.READ, Operation.WRITE, Operation.DESCRIBE):
            names = [
                f"{a.resource.name.lower().replace('_', ' ')} "
                f"`{a.name}{'*' if a.pattern is Pattern.PREFIXED else ''}`"
                for a in listed
                if a.component == who
                and a.operation is op
                and not (op is Operation.DESCRIBE and a.name in everyone)
            ]
            cells.append(", ".join(names) or "-")
        rows.append(f"| `{principal(who)}` | {' | '.join(cells)} |")
    return "\n".join(rows) + "\n"


class AclCreationError(RuntimeError):
    pass


class CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]
    """Every ACL in one CreateAcls request (aiokafka's own request carries one)."""

    API_KEY = 30

    def __init__(self, creations: list[tuple[Any, ...]]) -> None:
        self.creations = creations

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class(self.creations)


async def create_acls(settings: Settings, prefix: str) -> int:
    """Creates `acls(prefix)` on the cluster `settings` reach (as a super user); returns
    how many were asked for. Kafka keeps one copy of an ACL created twice."""
    wanted = acls(prefix)
    creations = [
        (a.resource, a.name, a.pattern, principal(a.component), "*", a.operation, ALLOW)
        for a in wanted
    ]
    admin = kafka.admin(settings)
    await admin.start()
    try:
        # Any broker forwards ACL changes to the controller quorum.
        response: Any = await admin._send_request(CreateAcls(creations))
    finally:
        await admin.close()
    failed = [
        f"{acl.row()}: error {code} {message}"
        for acl, (code, message) in zip(wanted, response.creation_responses, strict=True)
        if code != 0
    ]
    if failed:
        raise AclCreationError("ACLs refused: " + "; ".join(failed))
    await _wait_until_every_broker_has(settings, wanted)
    return len(wanted)


def _key(acl: Acl) -> tuple[int, str, int, str, int]:
    return (acl.resource, acl.name, acl.pattern, principal(acl.component), acl.operation)


async def _wait_until_every_broker_has(settings: Settings, wanted: list[Acl]) -> None:
    """Returns once every broker enforces `wanted`, so a client started next is allowed."""
    missing = {_key(a) for a in wanted}
    admin = kafka.admin(settings)
    await admin.start()
    try:
        nodes = [broker.nodeId for broker in admin._client.cluster.brokers()]
        deadline = asyncio.get_running_loop().time() + PROPAGATION_TIMEOUT_S
        for node in nodes:
            while True:
                request = DescribeAclsRequest(ANY, None, ANY, None, None, ANY, ANY)
                response: Any = await admin._send_request_to_node(node, request)
                held = {
                    (r[0], r[1], r[2], acl[0], acl[2]) for r in response.resources for acl in r[3]
                }
                if missing <= held:
                    break
                if asyncio.get_running_loop().time() > deadline:
                    raise AclCreationError(f"broker {node} still lacks {len(missing - held)} ACLs")
                await asyncio.sleep(0.2)
    finally:
        await admin.close()


def main(argv: list[str]) -> int:
    settings = load_settings()
    prefix = argv[0] if argv else settings.ledger_topic_prefix
    try:
        count = asyncio.run(create_acls(settings, prefix))
    except (AclCreationError, kafka.KafkaSettingsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{count} ACLs for topic prefix {prefix!r} in place")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
