-- `ledger redrive` (docs/contracts.md, Command line): the usage.dlq.v1 records already
-- re-published to usage.v1, so each is redriven once unless --again. Operational state the
-- log cannot rebuild, in a schema of its own like "alerts": a rebuild never touches it.
-- Run once per database (it was the projector's 009_redrive.sql for a while).
CREATE SCHEMA IF NOT EXISTS redrive;

CREATE TABLE IF NOT EXISTS redrive.redriven (
    topic        text NOT NULL,           -- the DLQ topic (with its prefix)
    "partition"  int NOT NULL,
    "offset"     bigint NOT NULL,
    error        text NOT NULL,           -- the record's rejection code
    times        int NOT NULL DEFAULT 1,  -- how often it was re-published (--again adds one)
    redriven_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, "partition", "offset")
);
