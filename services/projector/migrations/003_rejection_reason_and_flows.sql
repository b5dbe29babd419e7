-- Why each rejected entry was not applied (ledger.RejectReason). Rows from before this
-- migration are messages that are not ledger entries, or entries with a NUL character
-- (refused: PostgreSQL text cannot hold it), as a replay now says.
ALTER TABLE rejected_entries ADD COLUMN IF NOT EXISTS reason text NOT NULL DEFAULT 'invalid_entry';
ALTER TABLE rejected_entries ALTER COLUMN reason DROP DEFAULT;
UPDATE rejected_entries SET reason = 'refused'
WHERE error = 'a text field contains a NUL character';

-- Every credit that ever flowed into (granted, adjusted upwards) and out of (debited,
-- adjusted downwards) the account. Both only grow and stay within schemas.events.
-- BALANCE_LIMIT, so balance, purchased, adjusted and spent stay within it too
-- (docs/contracts.md, Guarantees).
ALTER TABLE balances ADD COLUMN IF NOT EXISTS inflow bigint NOT NULL DEFAULT 0;
ALTER TABLE balances ADD COLUMN IF NOT EXISTS outflow bigint NOT NULL DEFAULT 0;
UPDATE balances b SET inflow = f.inflow, outflow = f.outflow
FROM (SELECT account_id,
             coalesce(sum(credits) FILTER (WHERE credits > 0), 0) AS inflow,
             coalesce(-sum(credits) FILTER (WHERE credits < 0), 0) AS outflow
      FROM journal GROUP BY account_id) f
WHERE b.account_id = f.account_id;
