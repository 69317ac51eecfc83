-- Garrison schema for PostgreSQL, version 5: the attempt fence as a function. A worker's
-- checkpoint write starts with it: it share-locks the run's row until the transaction
-- ends, or fails the transaction (SQLSTATE GR001) when the attempt no longer owns the
-- run. Failing in SQL, not in the client, lets the fence, the write and COMMIT travel in
-- one pipelined round trip: after an error the server skips the rest, COMMIT included.
CREATE FUNCTION garrison_hold_attempt(p_run_id text, p_attempt integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM runs
    WHERE run_id = p_run_id AND attempt = p_attempt AND status = 'running'
    FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'run % attempt % lost its lease', p_run_id, p_attempt
            USING ERRCODE = 'GR001';
    END IF;
END
$$;
