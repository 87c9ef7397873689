-- 002: append-only operation log behind Optuna's JournalStorage (SPEC F18).
-- Written by src/mlops/persistence/optuna_storage.py (PostgresJournalBackend) through
-- optuna_journal_append(); read with SELECT ... WHERE log_number >= n ORDER BY log_number.
--
-- log_number is the position of a log in the journal: 0, 1, 2, ... without gaps (Optuna counts the
-- logs it has read). optuna_journal_append() takes pg_advisory_xact_lock(7525637432934559340)
-- ("hpo_jrnl") and inserts max(log_number) + 1 under it; each statement of a VOLATILE PL/pgSQL
-- function sees a fresh snapshot in READ COMMITTED, and the lock is released only after the commit
-- is visible, so numbers follow commit order and no reader can see log N+1 before log N.
-- append_id identifies one append_logs() call: a retry after a lost connection is applied once.
-- p_durable = false commits without waiting for the WAL flush (synchronous_commit = off for that
-- transaction only); the backend uses it for logs that do not record a result (see optuna_storage.py).
-- p_read_from returns the logs from that number on (the read Optuna does right after each append).

CREATE TABLE optuna_journal_logs (
    log_number BIGINT PRIMARY KEY CHECK (log_number >= 0),
    append_id  UUID NOT NULL,
    body       TEXT NOT NULL,   -- json.dumps of the Optuna log (TEXT: JSONB refuses NaN/Infinity)
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX optuna_journal_logs_append_id_idx ON optuna_journal_logs (append_id);

CREATE FUNCTION optuna_journal_append(
    p_append_id UUID,
    p_bodies    TEXT[],
    p_durable   BOOLEAN DEFAULT true,
    p_read_from BIGINT DEFAULT NULL
) RETURNS TABLE (r_log_number BIGINT, r_append_id UUID, r_body TEXT)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    first_number BIGINT;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'optuna_journal_append needs READ COMMITTED, not %', current_setting('transaction_isolation');
    END IF;
    IF NOT p_durable THEN
        -- durable within ~wal_writer_delay, or at the next synchronous commit of anyone (WAL is sequential)
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    PERFORM pg_advisory_xact_lock(7525637432934559340);
    -- a retry of an append that already committed inserts nothing
    IF NOT EXISTS (SELECT 1 FROM optuna_journal_logs l WHERE l.append_id = p_append_id) THEN
        SELECT COALESCE(max(l.log_number), -1) + 1 INTO first_number FROM optuna_journal_logs l;
        INSERT INTO optuna_journal_logs (log_number, append_id, body)
        SELECT first_number + b.ord - 1, p_append_id, b.body
        FROM unnest(p_bodies) WITH ORDINALITY AS b(body, ord);
    END IF;
    -- the caller's next read, in the same round trip: every log from p_read_from on, ours included
    IF p_read_from IS NOT NULL THEN
        RETURN QUERY
            SELECT l.log_number, l.append_id, l.body FROM optuna_journal_logs l
            WHERE l.log_number >= p_read_from ORDER BY l.log_number;
    END IF;
END
$$;

CREATE FUNCTION optuna_journal_logs_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'optuna_journal_logs is append-only: % is not allowed', TG_OP
        USING HINT = 'Optuna replays the whole log; delete a study with optuna.delete_study instead.';
END
$$;

CREATE TRIGGER optuna_journal_logs_append_only
    BEFORE UPDATE OR DELETE ON optuna_journal_logs
    FOR EACH ROW EXECUTE FUNCTION optuna_journal_logs_append_only();
