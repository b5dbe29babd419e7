-- Holds (docs/contracts.md, Holds): the API decides them, the projector settles them.
--
-- They live in a schema of their own, "holds", and every name here is qualified: the
-- projection schemas ("ledger", the audit's shadow, the rebuild's work schema) are rebuilt
-- from ledger.v1 and swapped, while a hold decision is made once, here, and only copied to
-- holds.v1. The projector's migrations run for each projection schema; after the first
-- run these statements change nothing, so every schema's copy of 004 meets the same tables.
--
-- Locks, so a placement never waits behind the projector's batch transaction:
-- * the API locks the account's row of holds.account_holds (one writer per account at a
--   time, across every API process) and inserts, releases and expires hold rows;
-- * the projector settles hold rows and adds to holds.account_settlements, a row the API
--   only reads (without a lock), and never touches holds.account_holds;
-- * both lock hold rows in hold_id order, so they cannot deadlock.
-- held = account_holds.held - account_settlements.settled - (active holds past expires_at
-- that no placement has swept yet).
CREATE SCHEMA IF NOT EXISTS holds;

CREATE TABLE IF NOT EXISTS holds.holds (
    hold_id          text PRIMARY KEY,
    account_id       text NOT NULL,
    idempotency_key  text NOT NULL,
    request_digest   text NOT NULL,
    credits          bigint NOT NULL CHECK (credits > 0),
    status           text NOT NULL CHECK (status IN ('active', 'settled', 'released', 'expired')),
    expires_at       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    seq              bigint GENERATED ALWAYS AS IDENTITY,   -- list order and paging cursor
    settled_credits  bigint,          -- the debit's credits (more than `credits`: an overrun)
    settled_entry_id uuid,            -- the debit that settled it (journal.entry_id)
    finished_at      timestamptz,     -- settled, released or expired
    UNIQUE (account_id, idempotency_key)
);
CREATE INDEX IF NOT EXISTS holds_active_expiry ON holds.holds (account_id, expires_at)
    WHERE status = 'active';
CREATE INDEX IF NOT EXISTS holds_account_seq ON holds.holds (account_id, seq DESC);

-- Credits of the holds the API placed and has not released or expired itself (numeric:
-- settled holds stay counted here for ever, balanced by account_settlements).
CREATE TABLE IF NOT EXISTS holds.account_holds (
    account_id text PRIMARY KEY,
    held       numeric NOT NULL DEFAULT 0
);

-- Credits of the holds the projector settled, per account.
CREATE TABLE IF NOT EXISTS holds.account_settlements (
    account_id text PRIMARY KEY,
    settled    numeric NOT NULL DEFAULT 0
);

-- Decisions not yet on holds.v1, written in the deciding transaction; the API's relay
-- (services/api/holds/relay.py) publishes them in seq order and deletes them.
CREATE TABLE IF NOT EXISTS holds.outbox (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type            text NOT NULL CHECK (type IN ('hold.placed', 'hold.refused', 'hold.released')),
    hold_id         text NOT NULL,
    account_id      text NOT NULL,
    credits         bigint,
    available       numeric,
    idempotency_key text,
    expires_at      timestamptz,
    occurred_at     timestamptz NOT NULL
);

-- The account's row of account_holds, locked until the transaction ends, with its active
-- holds past expires_at turned into expired ones; answers the held credits it now counts.
-- NULL when the account has no row and p_create is false.
CREATE OR REPLACE FUNCTION holds.lock_account(p_account text, p_create boolean)
RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
    v_held numeric;
    v_gone numeric;
BEGIN
    SELECT a.held INTO v_held FROM holds.account_holds a
    WHERE a.account_id = p_account FOR UPDATE;
    IF NOT FOUND THEN
        IF NOT p_create THEN
            RETURN NULL;
        END IF;
        INSERT INTO holds.account_holds (account_id) VALUES (p_account)
        ON CONFLICT (account_id) DO NOTHING;
        SELECT a.held INTO v_held FROM holds.account_holds a
        WHERE a.account_id = p_account FOR UPDATE;
    END IF;
    WITH doomed AS (
        SELECT h.hold_id FROM holds.holds h
        WHERE h.account_id = p_account AND h.status = 'active' AND h.expires_at <= now()
        ORDER BY h.hold_id
        FOR UPDATE
    ), expired AS (
        UPDATE holds.holds h SET status = 'expired', finished_at = now()
        FROM doomed d WHERE h.hold_id = d.hold_id AND h.status = 'active'
        RETURNING h.credits
    )
    SELECT coalesce(sum(e.credits), 0) INTO v_gone FROM expired e;
    IF v_gone > 0 THEN
        UPDATE holds.account_holds a SET held = a.held - v_gone WHERE a.account_id = p_account;
        v_held := v_held - v_gone;
    END IF;
    RETURN v_held;
END $$;

-- balance - held, with held as lock_account counted it. One statement, so the balance and
-- the settlements come from one snapshot (the projector commits both together). Neither
-- row is locked.
CREATE OR REPLACE FUNCTION holds.available(p_account text, p_held numeric)
RETURNS numeric LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT b.balance FROM ledger.balances b WHERE b.account_id = p_account), 0)
         - p_held
         + coalesce((SELECT s.settled FROM holds.account_settlements s
                     WHERE s.account_id = p_account), 0)
$$;

-- held as a reader sees it, without locking anything: also leaves out active holds past
-- expires_at that no placement has swept yet.
CREATE OR REPLACE FUNCTION holds.held_now(p_account text)
RETURNS numeric LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT a.held FROM holds.account_holds a WHERE a.account_id = p_account), 0)
         - coalesce((SELECT s.settled FROM holds.account_settlements s
                     WHERE s.account_id = p_account), 0)
         - coalesce((SELECT sum(h.credits) FROM holds.holds h
                     WHERE h.account_id = p_account AND h.status = 'active'
                       AND h.expires_at <= now()), 0)
$$;

-- One placement, decided under the account's lock. outcome: 'placed', 'refused',
-- 'existing' (the key was used with this body: that hold, with its status now) or
-- 'conflict' (the key was used with another body). A refusal claims no key.
CREATE OR REPLACE FUNCTION holds.place(
    p_account text, p_key text, p_digest text, p_credits bigint, p_ttl_seconds integer,
    OUT outcome text, OUT hold_id text, OUT credits bigint, OUT status text,
    OUT expires_at timestamptz, OUT available numeric)
LANGUAGE plpgsql AS $$
DECLARE
    v_held numeric := holds.lock_account(p_account, true);
    v_hold holds.holds%ROWTYPE;
BEGIN
    available := holds.available(p_account, v_held);
    SELECT * INTO v_hold FROM holds.holds h
    WHERE h.account_id = p_account AND h.idempotency_key = p_key;
    IF FOUND THEN
        outcome := CASE WHEN v_hold.request_digest = p_digest THEN 'existing' ELSE 'conflict' END;
        hold_id := v_hold.hold_id;
        credits := v_hold.credits;
        status := v_hold.status;
        expires_at := v_hold.expires_at;
        RETURN;
    END IF;
    hold_id := gen_random_uuid()::text;
    credits := p_credits;
    IF available < p_credits THEN
        outcome := 'refused';
        INSERT INTO holds.outbox (type, hold_id, account_id, credits, available, idempotency_key,
                                  occurred_at)
        VALUES ('hold.refused', hold_id, p_account, p_credits, available, p_key, now());
        RETURN;
    END IF;
    outcome := 'placed';
    status := 'active';
    expires_at := now() + make_interval(secs => p_ttl_seconds);
    available := available - p_credits;
    INSERT INTO holds.holds (hold_id, account_id, idempotency_key, request_digest, credits,
                             status, expires_at, created_at)
    VALUES (hold_id, p_account, p_key, p_digest, p_credits, 'active', expires_at, now());
    UPDATE holds.account_holds a SET held = a.held + p_credits WHERE a.account_id = p_account;
    INSERT INTO holds.outbox (type, hold_id, account_id, credits, idempotency_key, expires_at,
                              occurred_at)
    VALUES ('hold.placed', hold_id, p_account, p_credits, p_key, expires_at, now());
END $$;

-- Many placements in one transaction. Accounts are locked in account order, so concurrent
-- batches cannot deadlock; one account's holds are decided in the given order. Answers
-- come in the order decided, each with its position (ord, from 1) in the arrays.
CREATE OR REPLACE FUNCTION holds.place_many(
    p_accounts text[], p_keys text[], p_digests text[], p_credits bigint[], p_ttls integer[])
RETURNS TABLE (ord bigint, outcome text, hold_id text, credits bigint, status text,
               expires_at timestamptz, available numeric)
LANGUAGE plpgsql AS $$
DECLARE
    v_item record;
    v_placed record;
BEGIN
    FOR v_item IN
        SELECT * FROM unnest(p_accounts, p_keys, p_digests, p_credits, p_ttls)
            WITH ORDINALITY AS u(account, key, digest, amount, ttl, n)
        ORDER BY u.account, u.n
    LOOP
        v_placed := holds.place(v_item.account, v_item.key, v_item.digest, v_item.amount,
                                v_item.ttl);
        ord := v_item.n;
        outcome := v_placed.outcome;
        hold_id := v_placed.hold_id;
        credits := v_placed.credits;
        status := v_placed.status;
        expires_at := v_placed.expires_at;
        available := v_placed.available;
        RETURN NEXT;
    END LOOP;
END $$;

-- A release under the account's lock. outcome: 'released' (now or before), 'settled' or
-- 'not_found'. A hold already past expires_at is released too: it held nothing any more.
CREATE OR REPLACE FUNCTION holds.release(p_account text, p_hold_id text, OUT outcome text)
LANGUAGE plpgsql AS $$
DECLARE
    v_held numeric := holds.lock_account(p_account, false);
    v_hold holds.holds%ROWTYPE;
BEGIN
    SELECT * INTO v_hold FROM holds.holds h
    WHERE h.hold_id = p_hold_id AND h.account_id = p_account FOR UPDATE;
    IF v_held IS NULL OR NOT FOUND THEN
        outcome := 'not_found';
        RETURN;
    END IF;
    IF v_hold.status IN ('settled', 'released') THEN
        outcome := v_hold.status;
        RETURN;
    END IF;
    UPDATE holds.holds h SET status = 'released', finished_at = now()
    WHERE h.hold_id = p_hold_id;
    IF v_hold.status = 'active' THEN
        UPDATE holds.account_holds a SET held = a.held - v_hold.credits
        WHERE a.account_id = p_account;
    END IF;
    INSERT INTO holds.outbox (type, hold_id, account_id, occurred_at)
    VALUES ('hold.released', p_hold_id, p_account, now());
    outcome := 'released';
END $$;
