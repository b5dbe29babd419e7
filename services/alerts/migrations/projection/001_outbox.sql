-- Balance alerts (docs/contracts.md, Alerts and Webhooks): the projection's part.
--
-- Run in every projection schema (the live one, the audit's shadow, the rebuild's work
-- schema), names unqualified, like the projector's own files.

-- The projection's alerts: written by the batch's transaction (services/alerts/projection.py)
-- and rebuilt from the log like every table here, keyed by the deterministic alert_id.
-- published_at is set once the projector's relay has put the alert on alerts.v1.
CREATE TABLE IF NOT EXISTS alert_outbox (
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    alert_id     uuid PRIMARY KEY,
    account_id   text NOT NULL,
    type         text NOT NULL,
    entry_id     uuid NOT NULL,           -- the entry that crossed
    event        text NOT NULL,           -- the alert's JSON, exactly as published
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX IF NOT EXISTS alert_outbox_unpublished ON alert_outbox (seq)
    WHERE published_at IS NULL;

-- raised: the alerts this projection's outbox took (a replayed crossing adds none), for
-- /metrics. Apart from projector_counters, whose sum counts the ledger.v1 messages read.
CREATE TABLE IF NOT EXISTS alert_counters (
    name  text PRIMARY KEY,
    value bigint NOT NULL
);
