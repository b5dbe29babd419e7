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
        queries.replace_tables("ledger", name)


def test_the_swap_moves_every_projection_table_in_and_keeps_the_api_table() -> None:
    statements = queries.replace_tables("ledger", "ledger_rebuild")
    assert statements[0].startswith("DROP TABLE")
    for table in queries.PROJECTION_TABLES:
        assert f'"ledger".{table}' in statements[0]
        assert f'ALTER TABLE "ledger_rebuild".{table} SET SCHEMA "ledger"' in statements
    text = "\n".join(statements)
    assert "idempotency_keys" not in text + queries.lock_tables("ledger")
