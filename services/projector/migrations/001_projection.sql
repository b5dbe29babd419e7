-- The projection of ledger.v1. Everything here can be rebuilt from the log.
-- Tables are unqualified: the schema comes from the connection's search_path, so the
-- live projection (schema "ledger") and the audit's shadow use the same statements.

-- One row per applied entry. credits is the signed effect on the balance
-- (+granted, +/-adjusted, -debited). seq gives the per-account order of application.
CREATE TABLE IF NOT EXISTS journal (
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    entry_id        uuid PRIMARY KEY,
    account_id      text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('debited', 'granted', 'adjusted')),
    credits         bigint NOT NULL,
    model           text,
    tier            text,
    multiplier      numeric,
    billable_tokens bigint,
    price_version   text,
    usage_event_id  text,
    reason          text,
    reference       text,
    occurred_at     timestamptz NOT NULL,
    content_digest  text NOT NULL,          -- digest of the entry without priced_at
    source_partition int NOT NULL,
    source_offset   bigint NOT NULL,
    applied_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS journal_account_seq ON journal (account_id, seq DESC);

CREATE TABLE IF NOT EXISTS balances (
    account_id  text PRIMARY KEY,
    balance     bigint NOT NULL DEFAULT 0,
    purchased   bigint NOT NULL DEFAULT 0,   -- sum of credits.granted
    adjusted    bigint NOT NULL DEFAULT 0,   -- sum of credits.adjusted (signed)
    spent       bigint NOT NULL DEFAULT 0,   -- sum of credits.debited
    entries     bigint NOT NULL DEFAULT 0,
    status      text NOT NULL CHECK (status IN ('active', 'exhausted')),
    updated_at  timestamptz NOT NULL
);

-- Daily usage per account and model, so usage queries never scan the journal.
CREATE TABLE IF NOT EXISTS usage_daily (
    account_id  text NOT NULL,
    day         date NOT NULL,               -- UTC day of occurred_at
    model       text NOT NULL,
    requests    bigint NOT NULL,
    tokens      bigint NOT NULL,
    credits     bigint NOT NULL,
    PRIMARY KEY (account_id, day, model)
);

-- Same entry_id, different content: stored with both contents, never applied.
CREATE TABLE IF NOT EXISTS conflicts (
    entry_id          uuid NOT NULL,
    conflict_digest   text NOT NULL,
    account_id        text NOT NULL,
    applied_content   jsonb NOT NULL,
    conflicting_content jsonb NOT NULL,
    source_partition  int NOT NULL,
    source_offset     bigint NOT NULL,
    detected_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (entry_id, conflict_digest)
);

-- The next ledger.v1 offset to apply per partition, written in the same transaction as the
-- rows above: the consistent cut the audit compares at.
CREATE TABLE IF NOT EXISTS applied_offsets (
    topic       text NOT NULL,
    partition   int NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- Counters for metrics: applied, duplicates, conflicts.
CREATE TABLE IF NOT EXISTS projector_counters (
    name   text PRIMARY KEY,
    value  bigint NOT NULL
);
