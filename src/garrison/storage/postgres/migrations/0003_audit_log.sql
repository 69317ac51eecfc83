-- Garrison schema for PostgreSQL, version 3: the audit log, append-only and hash-chained.
-- `seq` counts from 1 without gaps; `hash` = sha256(seq, canonical record, prev_hash), see
-- garrison.security.audit. Appends lock the one head row (SELECT ... FOR UPDATE), so API
-- replicas appending at once take turns and never fork the chain; the head also reveals a
-- cut tail. Nobody but the table owner may change records (docs/security.md "Audit log"):
-- UPDATE/DELETE/TRUNCATE are revoked from PUBLIC, and triggers refuse them even for roles a
-- blanket GRANT gave them to, with the same SQLSTATE as a privilege error (42501).

CREATE TABLE audit_log (
    seq           bigint PRIMARY KEY,
    time          timestamptz NOT NULL,
    request_id    text NOT NULL,
    actor         text,
    credential_id text,
    tenant_id     text,
    action        text NOT NULL,
    resource      text NOT NULL,
    object_ids    text NOT NULL,
    outcome       text NOT NULL,
    status        integer NOT NULL,
    client_ip     text,
    summary       text NOT NULL,
    prev_hash     text NOT NULL,
    hash          text NOT NULL
);

CREATE INDEX audit_log_by_time ON audit_log (time);

CREATE TABLE audit_chain_head (
    id   boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq  bigint NOT NULL,
    hash text NOT NULL
);

INSERT INTO audit_chain_head (id, seq, hash)
VALUES (true, 0, '0000000000000000000000000000000000000000000000000000000000000000');

REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
REVOKE DELETE, TRUNCATE ON audit_chain_head FROM PUBLIC;

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
