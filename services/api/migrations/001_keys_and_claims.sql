-- The API's own tables, in the live schema "ledger" beside the projection it reads (the
-- API created them at each start before, unrecorded; a database of that layout has them).
-- Run once per database; every name is qualified.
CREATE SCHEMA IF NOT EXISTS ledger;
-- A POST credits claim: the exact event bytes are kept so a retry after a failed publish
-- sends the very same event (same entry_id, same occurred_at) and the projector sees a
-- duplicate, never a conflict. published_at stays NULL until Kafka acknowledged it.
CREATE TABLE IF NOT EXISTS ledger.idempotency_keys (
    account_id      text NOT NULL,
    idempotency_key text NOT NULL,
    request_digest  text NOT NULL,
    entry_id        uuid NOT NULL,
    event           text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz,
    PRIMARY KEY (account_id, idempotency_key)
);
-- What the recovery sweep (services/api/recovery.py) looks for, without scanning every key.
CREATE INDEX IF NOT EXISTS idempotency_keys_unpublished
    ON ledger.idempotency_keys (created_at) WHERE published_at IS NULL;
-- API keys: only the SHA-256 of the secret is stored. account_id is set for, and only
-- for, scope 'account'.
CREATE TABLE IF NOT EXISTS ledger.api_keys (
    key_id       uuid PRIMARY KEY,
    secret_hash  bytea NOT NULL,
    scope        text NOT NULL CHECK (scope IN ('read', 'gateway', 'admin', 'account')),
    account_id   text,
    name         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    CHECK ((scope = 'account') = (account_id IS NOT NULL))
);
-- Only usable keys are in the index the lookup uses (services/api/keys/store.py), so an
-- unknown and a revoked secret take the same path (and the same time).
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_usable
    ON ledger.api_keys (secret_hash) WHERE revoked_at IS NULL;
