-- Hourly usage per account and model, beside usage_daily and summed the same way, for the
-- recent hours of GET /v1/accounts/{id}/usage?group_by=hour (docs/contracts.md).
CREATE TABLE IF NOT EXISTS usage_hourly (
    account_id  text NOT NULL,
    hour        timestamptz NOT NULL,        -- start of the UTC hour of occurred_at
    model       text NOT NULL,
    requests    bigint NOT NULL,
    tokens      bigint NOT NULL,
    credits     bigint NOT NULL,
    PRIMARY KEY (account_id, hour, model)
);

-- A projection made before this table gets its hours from its journal, once: the rollup
-- then equals what a rebuild from the log computes.
INSERT INTO usage_hourly (account_id, hour, model, requests, tokens, credits)
SELECT account_id, date_trunc('hour', occurred_at, 'UTC'), model, count(*),
       sum(billable_tokens), sum(-credits)
FROM journal
WHERE kind = 'debited'
GROUP BY 1, 2, 3
ON CONFLICT (account_id, hour, model) DO NOTHING;

-- The operator overview reads one day of every account (today's top spenders).
CREATE INDEX IF NOT EXISTS usage_daily_day ON usage_daily (day);
