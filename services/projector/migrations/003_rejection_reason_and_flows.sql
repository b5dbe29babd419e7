-- Why each rejected entry was not applied (ledger.RejectReason); rows from before this
-- migration were all messages that are not ledger entries.
ALTER TABLE rejected_entries ADD COLUMN IF NOT EXISTS reason text NOT NULL DEFAULT 'invalid_entry';
ALTER TABLE rejected_entries ALTER COLUMN reason DROP DEFAULT;

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
