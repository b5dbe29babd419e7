"""The audit's SQL that names schemas: only checked names are ever quoted in."""

from __future__ import annotations

import pytest

from services.audit import queries

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", ["Ledger", "ledger; DROP", 'a"b', "", "1ledger", "x" * 64])
def test_unchecked_schema_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="must match"):
        queries.drop_schema(name)
    with pytest.raises(ValueError, match="must match"):
        queries.replace_contents("ledger", name)


def test_the_swap_replaces_every_projection_table_and_keeps_the_api_table() -> None:
    statements = queries.replace_contents("ledger", "ledger_rebuild")
    text = "\n".join(statements)
    assert statements[0].startswith("TRUNCATE")
    for table in queries.PROJECTION_TABLES:
        assert f'INSERT INTO "ledger".{table}' in text
    assert "OVERRIDING SYSTEM VALUE" in text and "setval" in statements[-1]
    assert "idempotency_keys" not in text + queries.lock_tables("ledger")
