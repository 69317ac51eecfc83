-- Garrison embedded schema, version 3: the audit log, append-only and hash-chained.
-- `seq` counts from 1 without gaps; `hash` = sha256(seq, canonical record, prev_hash), see
-- garrison.security.audit. The head row holds the last seq and hash, updated with each append
-- in the same transaction, so a cut tail is detected too. Triggers refuse every UPDATE and
-- DELETE of a record: `garrison audit verify` still catches edits made around them.

CREATE TABLE audit_log (
    seq           INTEGER PRIMARY KEY,
    time          TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    actor         TEXT,
    credential_id TEXT,
    tenant_id     TEXT,
    action        TEXT NOT NULL,
    resource      TEXT NOT NULL,
    object_ids    TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    status        INTEGER NOT NULL,
    client_ip     TEXT,
    summary       TEXT NOT NULL,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
);

CREATE INDEX audit_log_by_time ON audit_log (time);

CREATE TABLE audit_chain_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);

INSERT INTO audit_chain_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
