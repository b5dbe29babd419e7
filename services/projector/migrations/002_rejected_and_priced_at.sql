-- Messages on ledger.v1 that are not ledger entries: kept with their bytes, never applied.
CREATE TABLE IF NOT EXISTS rejected_entries (
    topic            text NOT NULL,
    source_partition int NOT NULL,
    source_offset    bigint NOT NULL,
    payload          text NOT NULL,    -- the bytes as UTF-8 (invalid bytes and NUL escaped)
    raw              bytea NOT NULL,   -- the exact bytes
    error            text NOT NULL,
    rejected_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, source_partition, source_offset)
);

-- priced_at of the applied debit (a re-priced duplicate keeps the first one).
ALTER TABLE journal ADD COLUMN IF NOT EXISTS priced_at timestamptz;

COMMENT ON COLUMN balances.updated_at IS
    'latest occurred_at of the applied entries: event time, so a rebuild reproduces it';
COMMENT ON TABLE projector_counters IS
    'applied, duplicates, conflicts (distinct conflicting contents), rejected';
