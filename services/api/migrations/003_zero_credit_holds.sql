-- A hold of 0 credits (the worst case of a free model) is placed and settled like any other
-- (docs/contracts.md, Holds): 002_holds.sql allowed only credits > 0, so such a hold was a
-- failed statement and the request a 500. The decisions of 002 need no change: a placement
-- is refused only when available < credits, so 0 credits are placed while available >= 0
-- and refused on an account whose available credits are below zero (an exhausted one).
--
-- Run once per database. It was the projector's 008_zero_credit_holds.sql for a while
-- (run in every projection schema), hence the check: a database that has the relaxed
-- constraint already changes nothing and takes no lock on the table.
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM pg_constraint c
        WHERE c.conrelid = 'holds.holds'::regclass AND c.conname = 'holds_credits_check'
          AND pg_get_constraintdef(c.oid) = 'CHECK ((credits > 0))'
    ) THEN
        ALTER TABLE holds.holds DROP CONSTRAINT holds_credits_check;
        ALTER TABLE holds.holds ADD CONSTRAINT holds_credits_check CHECK (credits >= 0);
    END IF;
END $$;
