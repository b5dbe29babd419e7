"""The HTTP API (docs/contracts.md, HTTP API): reads the projection, publishes credit grants."""

# What `ledger backup` copies of the API's tables (services/common/backup.py): all of its
# state, none of which the log can rebuild. account_holds and account_settlements are kept
# as they are, not derived: a rebuild's replay finds the restored settled holds already
# settled by their debits and adds nothing, and settles (and adds) only what the backup's
# instant had not projected yet. The outbox holds decisions not yet on holds.v1.
BACKUP_TABLES = (
    "ledger.api_keys",
    "ledger.idempotency_keys",
    "holds.holds",
    "holds.account_holds",
    "holds.account_settlements",
    "holds.outbox",
)
