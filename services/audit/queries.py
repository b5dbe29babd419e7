"""Every SQL statement of the audit, the reprice and the rebuild.

Figures are read with unqualified table names: the connection's search_path names the
schema, so the live projection and the shadow are read by the very same statements. The
rebuild's swap names two schemas at once; those names are checked against the projector's
SCHEMA_NAME pattern before they are quoted into the text.
"""

from __future__ import annotations

from services.projector import SCHEMA_NAME

APPLIED_OFFSETS = "SELECT partition, next_offset FROM applied_offsets WHERE topic = $1"

# Read in one REPEATABLE READ snapshot together with APPLIED_OFFSETS (the cut). The journal
# digest sums a 64-bit hash of each entry's id, signed credits and content digest, so any
# changed, missing or extra row changes it (a repeated row counts twice). A sum needs no sort
# of an account's rows: the md5 of them in entry_id order took four times as long (1.5 s
# against 0.36 s for 1.3 million rows). Both sides are hashed by the same server.
ACCOUNT_FIGURES = """
WITH journal_sums AS (
    SELECT account_id,
           count(*) AS journal_entries,
           sum(credits) AS journal_balance,
           coalesce(sum(credits) FILTER (WHERE kind = 'granted'), 0) AS journal_purchased,
           coalesce(sum(credits) FILTER (WHERE kind = 'adjusted'), 0) AS journal_adjusted,
           coalesce(-sum(credits) FILTER (WHERE kind = 'debited'), 0) AS journal_spent,
           sum(hashtextextended(entry_id::text || ':' || credits || ':' || content_digest, 0)
               ::numeric)::text AS journal_digest
    FROM journal GROUP BY account_id
), usage_sums AS (
    SELECT account_id,
           md5(string_agg(day || ':' || model || ':' || requests || ':' || tokens || ':'
                          || credits, ',' ORDER BY day, model)) AS usage_digest
    FROM usage_daily GROUP BY account_id
), hourly_sums AS (
    -- The hour as epoch seconds: a digest that does not depend on the session's TimeZone.
    SELECT account_id,
           md5(string_agg(extract(epoch FROM hour)::bigint || ':' || model || ':' || requests
                          || ':' || tokens || ':' || credits, ',' ORDER BY hour, model))
               AS hourly_usage_digest
    FROM usage_hourly GROUP BY account_id
)
SELECT account_id, b.balance, b.purchased, b.adjusted, b.spent, b.entries, b.status,
       b.inflow, b.outflow, j.journal_entries, j.journal_balance, j.journal_purchased,
       j.journal_adjusted, j.journal_spent, j.journal_digest, u.usage_digest,
       h.hourly_usage_digest
FROM balances b
FULL JOIN journal_sums j USING (account_id)
FULL JOIN usage_sums u USING (account_id)
FULL JOIN hourly_sums h USING (account_id)
"""

CONFLICTS = """
SELECT entry_id, account_id, conflict_digest, source_partition, source_offset, detected_at,
       applied_content ->> 'credits' AS applied_credits,
       conflicting_content ->> 'credits' AS conflicting_credits
FROM conflicts ORDER BY detected_at, entry_id
"""

# Rejected entries of the topic, read in the cut's snapshot on the live side and after the
# replay on the shadow side: the replay must reject exactly what the projector rejected.
REJECTED = """
SELECT source_partition, source_offset, reason, error, rejected_at FROM rejected_entries
WHERE topic = $1 ORDER BY source_partition, source_offset
"""

SCHEMA_EXISTS = "SELECT to_regclass($1) IS NOT NULL"

# The live projection's tables, in the order the projector's transaction first writes them,
# so the rebuild's lock waits for a running batch instead of deadlocking with it. The API's
# own table (idempotency_keys) and schema_versions are not part of the projection.
PROJECTION_TABLES = (
    "journal",
    "conflicts",
    "rejected_entries",
    "balances",
    "usage_daily",
    "usage_hourly",
    "applied_offsets",
    "projector_counters",
)
# A running projector batch takes well under a second; never wait forever on a stuck one.
LOCK_TIMEOUT = "SET LOCAL lock_timeout = '60s'"


def checked(schema: str) -> str:
    if not SCHEMA_NAME.match(schema):
        raise ValueError(f"schema name {schema!r} must match {SCHEMA_NAME.pattern}")
    return f'"{schema}"'


def drop_schema(schema: str) -> str:
    return f"DROP SCHEMA IF EXISTS {checked(schema)} CASCADE"


def lock_tables(schema: str) -> str:
    tables = ", ".join(f"{checked(schema)}.{t}" for t in PROJECTION_TABLES)
    return f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE"


def replace_tables(live: str, work: str) -> list[str]:
    """Statements that put the work schema's projection tables in place of the live ones.

    The live tables are dropped and the work schema's moved into the live schema, with
    their indexes, constraints and the journal's identity sequence: nothing is copied under
    the lock (copying 1.3 million journal rows and building its index again held it 6 s).
    Both schemas were migrated by store.migrate from the same files, so the tables are the
    same. Statements that name a table wait for the lock and then find the moved one;
    privileges granted by hand on the live tables are not carried over.
    """
    target, source = checked(live), checked(work)
    tables = ", ".join(f"{target}.{t}" for t in PROJECTION_TABLES)
    moves = [f"ALTER TABLE {source}.{t} SET SCHEMA {target}" for t in PROJECTION_TABLES]
    return [f"DROP TABLE {tables}", *moves]


OFFSETS_SUM = "SELECT coalesce(sum(next_offset), 0)::bigint FROM applied_offsets WHERE topic = $1"
ACCOUNT_COUNT = "SELECT count(*) FROM balances"

# A rebuild into an empty work schema drops the journal's secondary indexes for the bulk
# load and builds them once at the end: one sort instead of an index insertion per row.
# Their definitions are kept in the work schema itself, written in the transaction that
# drops them, so an interrupted rebuild still knows what to recreate when it resumes.
DEFERRED_INDEXES_TABLE = """
CREATE TABLE IF NOT EXISTS deferred_indexes (name text PRIMARY KEY, definition text NOT NULL)
"""
JOURNAL_SECONDARY_INDEXES = """
SELECT i.indexname, i.indexdef FROM pg_indexes i
WHERE i.schemaname = current_schema() AND i.tablename = 'journal'
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                  WHERE c.conindid = format('%I.%I', i.schemaname, i.indexname)::regclass)
"""
RECORD_DEFERRED_INDEX = "INSERT INTO deferred_indexes (name, definition) VALUES ($1, $2)"
DEFERRED_INDEXES = "SELECT name, definition FROM deferred_indexes ORDER BY name"
FORGET_DEFERRED_INDEXES = "DELETE FROM deferred_indexes"
JOURNAL_IS_EMPTY = "SELECT NOT EXISTS (SELECT 1 FROM journal)"


def drop_index(schema: str, name: str) -> str:
    return f"DROP INDEX {checked(schema)}.{checked(name)}"
