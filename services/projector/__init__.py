"""The projector: applies ledger.v1 to the PostgreSQL projection (issue 4)."""
