-- Balance alerts (docs/contracts.md, Alerts and Webhooks): what operators configured and
-- what the webhooks service did. Run once per database; every name is qualified.

-- Schema "alerts" is shared by every projection schema (the live one, the audit's shadow,
-- the rebuild's work schema): what operators configured and what the webhooks service did
-- cannot be rebuilt from the log, so a rebuild never touches it.
CREATE SCHEMA IF NOT EXISTS alerts;

-- PUT /v1/accounts/{id}/alerts. thresholds are distinct, ascending, each >= 0;
-- webhook_secret ("whsec_" + base64) exists exactly when webhook_url does.
CREATE TABLE IF NOT EXISTS alerts.subscriptions (
    account_id     text PRIMARY KEY,
    thresholds     bigint[] NOT NULL DEFAULT '{}',
    webhook_url    text,
    webhook_secret text,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((webhook_url IS NULL) = (webhook_secret IS NULL))
);

-- One row per alert sent to a webhook (services/alerts/deliveries.py); `body` is the exact
-- bytes signed and sent. A pending row is due at next_attempt_at; a claimed one has it
-- moved past its attempt's timeout, so a dispatcher killed mid-attempt retries it later.
CREATE TABLE IF NOT EXISTS alerts.deliveries (
    alert_id         uuid PRIMARY KEY,
    account_id       text NOT NULL,
    url              text NOT NULL,
    host             text NOT NULL,        -- the URL's host[:port]: concurrency per receiver
    body             text NOT NULL,
    status           text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         int NOT NULL DEFAULT 0,
    last_status_code int,
    last_error       text,
    next_attempt_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
CREATE INDEX IF NOT EXISTS deliveries_due ON alerts.deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_account ON alerts.deliveries (account_id, created_at);

-- Every attempt, whatever its outcome.
CREATE TABLE IF NOT EXISTS alerts.delivery_attempts (
    alert_id     uuid NOT NULL,
    attempt      int NOT NULL,
    started_at   timestamptz NOT NULL,
    duration_ms  int NOT NULL,
    status_code  int,
    error        text,
    PRIMARY KEY (alert_id, attempt)
);

-- delivered, retried, failed: for /metrics.
CREATE TABLE IF NOT EXISTS alerts.counters (
    name  text PRIMARY KEY,
    value bigint NOT NULL
);
