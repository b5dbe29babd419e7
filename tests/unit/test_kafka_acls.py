"""The ACL table (services/common/kafka_acls.py): least privilege per component, the
prefix carried by every name, and docs/operations.md listing exactly these ACLs."""

from __future__ import annotations

from pathlib import Path

from services.common.kafka_acls import Operation, Pattern, Resource, acl_table, acls

ROOT = Path(__file__).resolve().parents[2]


def writes(prefix: str, who: str) -> set[str]:
    return {
        a.name
        for a in acls(prefix)
        if a.component == who and a.resource is Resource.TOPIC and a.operation is Operation.WRITE
    }


def test_only_pricing_and_the_api_write_the_ledger() -> None:
    writers = {
        a.component for a in acls("") if a.name == "ledger.v1" and a.operation is Operation.WRITE
    }
    assert writers == {"pricing", "api"}
    assert writes("", "gateway") == {"usage.v1"}
    assert writes("", "audit") == set()
    assert writes("", "webhooks") == set()


def test_every_name_carries_the_prefix() -> None:
    prefixed = acls("acme-")
    assert all(a.name.startswith("acme-") for a in prefixed)
    assert len(prefixed) == len(acls(""))
    txn = {a.name for a in prefixed if a.resource is Resource.TRANSACTIONAL_ID}
    assert txn == {"acme-ledger-pricing-", "acme-usage.v1-api-ingest-"}
    assert all(
        a.pattern is Pattern.PREFIXED for a in prefixed if a.resource is Resource.TRANSACTIONAL_ID
    )


def test_the_operations_guide_lists_the_acls() -> None:
    assert acl_table() in (ROOT / "docs" / "operations.md").read_text()
