-- Holds (docs/contracts.md, Holds): the API decides them, the projector settles them.
--
-- They live in a schema of their own, "holds", and every name here is qualified: the
-- projection schemas ("ledger", the audit's shadow, the rebuild's work schema) are rebuilt
-- from ledger.v1 and swapped, while a hold decision is made once, here, and only copied to
-- holds.v1. The API owns these tables; this file runs once per database (it was the
-- projector's 004_holds.sql before, which databases of that layout have applied).
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
-- The functions read the live projection (ledger.balances), made by the projector's files,
-- which run before the API's; their bodies are checked when they run, not here.
SET LOCAL check_function_bodies = off;

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

-- Many placements in one transaction, decided as holds.place would decide them one after
-- the other, with a few statements for the whole batch instead of six per hold: every
-- account locked at once (in account order, as holds.place locks one, so nothing can
-- deadlock), swept, its available credits read once; then the decisions in the given
-- order, then one insert of the holds, one of the outbox rows, one update of the held
-- credits. Answers come in the given order, each with its position (ord, from 1).
CREATE OR REPLACE FUNCTION holds.place_many(
    p_accounts text[], p_keys text[], p_digests text[], p_credits bigint[], p_ttls integer[])
RETURNS TABLE (ord bigint, outcome text, hold_id text, credits bigint, status text,
               expires_at timestamptz, available numeric)
LANGUAGE plpgsql AS $$
DECLARE
    v_accounts text[] := ARRAY(SELECT DISTINCT a FROM unnest(p_accounts) a ORDER BY a);
    v_free numeric[];
    v_added numeric[] := array_fill(0::numeric, ARRAY[cardinality(v_accounts)]);
    -- holds already placed under one of the batch's keys, or placed by this batch
    v_known text[];          -- account || E'\n' || key
    v_known_digest text[];
    v_known_id text[];
    v_known_credits bigint[];
    v_known_status text[];
    v_known_expiry timestamptz[];
    -- what the batch writes
    v_new_ids text[] := '{}';
    v_new_n integer[] := '{}';
    v_out_type text[] := '{}';
    v_out_id text[] := '{}';
    v_out_n integer[] := '{}';
    v_out_available numeric[] := '{}';
    v_at integer;
    v_seen integer;
    v_name text;
BEGIN
    INSERT INTO holds.account_holds (account_id) SELECT unnest(v_accounts)
    ON CONFLICT (account_id) DO NOTHING;
    PERFORM 1 FROM holds.account_holds a WHERE a.account_id = ANY(v_accounts)
    ORDER BY a.account_id FOR UPDATE;
    WITH doomed AS (
        SELECT h.hold_id FROM holds.holds h
        WHERE h.account_id = ANY(v_accounts) AND h.status = 'active' AND h.expires_at <= now()
        ORDER BY h.hold_id
        FOR UPDATE
    ), expired AS (
        UPDATE holds.holds h SET status = 'expired', finished_at = now()
        FROM doomed d WHERE h.hold_id = d.hold_id AND h.status = 'active'
        RETURNING h.account_id, h.credits
    ), gone AS (
        SELECT e.account_id, sum(e.credits) AS credits FROM expired e GROUP BY e.account_id
    )
    UPDATE holds.account_holds a SET held = a.held - g.credits
    FROM gone g WHERE a.account_id = g.account_id;
    -- One statement: the balances and the settlements from one snapshot (see available).
    SELECT array_agg(coalesce(b.balance, 0) - a.held + coalesce(s.settled, 0)
                     ORDER BY a.account_id)
    INTO v_free
    FROM holds.account_holds a
    LEFT JOIN ledger.balances b ON b.account_id = a.account_id
    LEFT JOIN holds.account_settlements s ON s.account_id = a.account_id
    WHERE a.account_id = ANY(v_accounts);
    SELECT coalesce(array_agg(h.account_id || E'\n' || h.idempotency_key), '{}'),
           array_agg(h.request_digest), array_agg(h.hold_id), array_agg(h.credits),
           array_agg(h.status), array_agg(h.expires_at)
    INTO v_known, v_known_digest, v_known_id, v_known_credits, v_known_status, v_known_expiry
    FROM holds.holds h
    JOIN (SELECT DISTINCT * FROM unnest(p_accounts, p_keys)) AS u(account, key)
      ON h.account_id = u.account AND h.idempotency_key = u.key;
    FOR i IN 1 .. coalesce(cardinality(p_accounts), 0) LOOP
        ord := i;
        v_at := array_position(v_accounts, p_accounts[i]);
        v_name := p_accounts[i] || E'\n' || p_keys[i];
        v_seen := array_position(v_known, v_name);
        available := v_free[v_at];
        IF v_seen IS NOT NULL THEN
            outcome := CASE WHEN v_known_digest[v_seen] = p_digests[i]
                            THEN 'existing' ELSE 'conflict' END;
            hold_id := v_known_id[v_seen];
            credits := v_known_credits[v_seen];
            status := v_known_status[v_seen];
            expires_at := v_known_expiry[v_seen];
        ELSE
            hold_id := gen_random_uuid()::text;
            credits := p_credits[i];
            IF available < p_credits[i] THEN
                outcome := 'refused';
                status := NULL;
                expires_at := NULL;
                v_out_type := v_out_type || 'hold.refused'::text;
                v_out_available := v_out_available || available;
            ELSE
                outcome := 'placed';
                status := 'active';
                expires_at := now() + make_interval(secs => p_ttls[i]);
                available := available - p_credits[i];
                v_free[v_at] := available;
                v_added[v_at] := v_added[v_at] + p_credits[i];
                v_new_ids := v_new_ids || hold_id;
                v_new_n := v_new_n || i;
                v_known := v_known || v_name;
                v_known_digest := v_known_digest || p_digests[i];
                v_known_id := v_known_id || hold_id;
                v_known_credits := v_known_credits || p_credits[i];
                v_known_status := v_known_status || 'active'::text;
                v_known_expiry := v_known_expiry || expires_at;
                v_out_type := v_out_type || 'hold.placed'::text;
                v_out_available := v_out_available || NULL::numeric;
            END IF;
            v_out_id := v_out_id || hold_id;
            v_out_n := v_out_n || i;
        END IF;
        RETURN NEXT;
    END LOOP;
    INSERT INTO holds.holds (hold_id, account_id, idempotency_key, request_digest, credits,
                             status, expires_at, created_at)
    SELECT n.id, p_accounts[n.i], p_keys[n.i], p_digests[n.i], p_credits[n.i], 'active',
           now() + make_interval(secs => p_ttls[n.i]), now()
    FROM unnest(v_new_ids, v_new_n) AS n(id, i);
    UPDATE holds.account_holds a SET held = a.held + d.added
    FROM unnest(v_accounts, v_added) AS d(account, added)
    WHERE a.account_id = d.account AND d.added > 0;
    INSERT INTO holds.outbox (type, hold_id, account_id, credits, available, idempotency_key,
                              expires_at, occurred_at)
    SELECT o.type, o.id, p_accounts[o.i], p_credits[o.i], o.available, p_keys[o.i],
           CASE WHEN o.type = 'hold.placed' THEN now() + make_interval(secs => p_ttls[o.i]) END,
           now()
    FROM unnest(v_out_type, v_out_id, v_out_n, v_out_available) WITH ORDINALITY
         AS o(type, id, i, available, n)
    ORDER BY o.n;
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

RESET check_function_bodies;
