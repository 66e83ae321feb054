-- Shared state of every replica: budget and token-limit counters, the holds on them, and
-- the replicas whose holds they are. Request counters live in Redis (shared/requests.rs).

-- Milliseconds on the database's clock: replicas' clocks never decide who is dead.
CREATE FUNCTION aigw_now_ms() RETURNS BIGINT LANGUAGE sql VOLATILE AS
$$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT $$;

-- One row per counter and window: `budget:<agent>` (nano-USD) or
-- `limit:<rule>:<kind>:<caller>` (tokens). `used` is settled, `reserved` is held.
CREATE TABLE aigw_counters (
    key          TEXT   NOT NULL,
    window_start BIGINT NOT NULL,
    used         BIGINT NOT NULL DEFAULT 0,
    reserved     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (key, window_start)
);
-- The tidy-up finds old token-limit windows by start.
CREATE INDEX aigw_counters_window ON aigw_counters (window_start);

CREATE TABLE aigw_replicas (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT   NOT NULL,
    started_ms BIGINT NOT NULL DEFAULT aigw_now_ms(),
    seen_ms    BIGINT NOT NULL DEFAULT aigw_now_ms()
);

CREATE SEQUENCE aigw_hold_ids;

-- What each call in flight holds, so a dead replica's holds can be given back. A hold given
-- back that way keeps its row (`expired_ms` set) until a late settle or the tidy-up: so a
-- settle counts the actual amount exactly once, also when it is retried.
CREATE TABLE aigw_holds (
    hold         BIGINT NOT NULL,
    key          TEXT   NOT NULL,
    window_start BIGINT NOT NULL,
    amount       BIGINT NOT NULL,
    replica      BIGINT NOT NULL,
    expired_ms   BIGINT,
    PRIMARY KEY (hold, key)
);
CREATE INDEX aigw_holds_replica ON aigw_holds (replica);
CREATE INDEX aigw_holds_expired ON aigw_holds (expired_ms) WHERE expired_ms IS NOT NULL;

-- Holds `amounts[i]` on every counter `keys[i]` in `windows[i]` whose used + reserved stays
-- within `caps[i]`, all or none: one row per counter with its state after (admitted), or one
-- row for the first counter that refused (not admitted) and nothing held. Callers pass keys
-- sorted, so concurrent calls lock rows in one order and cannot deadlock.
CREATE FUNCTION aigw_reserve(p_replica BIGINT, p_keys TEXT[], p_windows BIGINT[],
                             p_amounts BIGINT[], p_caps BIGINT[])
RETURNS TABLE (hold BIGINT, idx INT, used BIGINT, reserved BIGINT, admitted BOOLEAN)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    h BIGINT := nextval('aigw_hold_ids');
    refused INT;
    u BIGINT;
    r BIGINT;
BEGIN
    BEGIN
        FOR i IN 1 .. coalesce(array_length(p_keys, 1), 0) LOOP
            IF p_amounts[i] > p_caps[i] THEN
                refused := i;
                RAISE EXCEPTION USING ERRCODE = 'AG001';
            END IF;
            INSERT INTO aigw_counters AS c (key, window_start, used, reserved)
            VALUES (p_keys[i], p_windows[i], 0, p_amounts[i])
            ON CONFLICT (key, window_start) DO UPDATE
                SET reserved = c.reserved + EXCLUDED.reserved
                WHERE c.used + c.reserved + EXCLUDED.reserved <= p_caps[i]
            RETURNING c.used, c.reserved INTO u, r;
            IF NOT FOUND THEN
                refused := i;
                RAISE EXCEPTION USING ERRCODE = 'AG001';
            END IF;
            INSERT INTO aigw_holds (hold, key, window_start, amount, replica)
            VALUES (h, p_keys[i], p_windows[i], p_amounts[i], p_replica);
            hold := h; idx := i; used := u; reserved := r; admitted := TRUE;
            RETURN NEXT;
        END LOOP;
    EXCEPTION WHEN SQLSTATE 'AG001' THEN
        -- The holds above were rolled back with the block (rows already returned stay in
        -- the result: callers read the last row, the refusing counter).
        SELECT c.used, c.reserved INTO u, r FROM aigw_counters c
        WHERE c.key = p_keys[refused] AND c.window_start = p_windows[refused];
        RETURN QUERY SELECT h, refused, coalesce(u, 0), coalesce(r, 0), FALSE;
    END;
END $$;

-- Replaces the hold on each counter by the actual amount (0 gives it back). A hold already
-- given back (its replica was thought dead) counts only the actual amount; a hold already
-- settled (a retry whose first try did commit) counts nothing.
CREATE FUNCTION aigw_settle(p_hold BIGINT, p_keys TEXT[], p_windows BIGINT[], p_actuals BIGINT[])
RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    a BIGINT;
    gone BIGINT;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_keys, 1), 0) LOOP
        DELETE FROM aigw_holds WHERE hold = p_hold AND key = p_keys[i]
        RETURNING amount, expired_ms INTO a, gone;
        IF FOUND THEN
            UPDATE aigw_counters
            SET used = used + p_actuals[i],
                reserved = reserved - CASE WHEN gone IS NULL THEN a ELSE 0 END
            WHERE key = p_keys[i] AND window_start = p_windows[i];
        END IF;
    END LOOP;
END $$;

-- Gives back the holds of replicas silent for `p_expiry_ms` (crashed, or cut off), counter by
-- counter in key order; returns how many holds were given back.
CREATE FUNCTION aigw_expire_holds(p_expiry_ms BIGINT) RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    cutoff BIGINT := aigw_now_ms() - p_expiry_ms;
    n BIGINT := 0;
    g RECORD;
BEGIN
    DELETE FROM aigw_replicas WHERE seen_ms < cutoff;
    FOR g IN
        WITH gone AS (
            UPDATE aigw_holds h SET expired_ms = aigw_now_ms()
            WHERE h.expired_ms IS NULL
              AND NOT EXISTS (SELECT 1 FROM aigw_replicas r WHERE r.id = h.replica)
            RETURNING h.key, h.window_start, h.amount
        )
        SELECT key, window_start, sum(amount)::BIGINT AS amount, count(*) AS holds
        FROM gone GROUP BY key, window_start ORDER BY key, window_start
    LOOP
        UPDATE aigw_counters SET reserved = reserved - g.amount
        WHERE key = g.key AND window_start = g.window_start;
        n := n + g.holds;
    END LOOP;
    RETURN n;
END $$;
