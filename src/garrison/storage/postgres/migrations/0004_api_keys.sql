-- Garrison schema for PostgreSQL, version 4: API keys. The public key id finds the row;
-- only the secret's SHA-256 is kept.
CREATE TABLE api_keys (
    key_id      text PRIMARY KEY,
    secret_hash text NOT NULL,
    tenant_id   text NOT NULL,
    role        text NOT NULL,
    name        text,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at);
