-- API keys: the public key id finds the row; only the secret's SHA-256 is kept.
CREATE TABLE api_keys (
    key_id      TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    tenant_id   TEXT NOT NULL,
    role        TEXT NOT NULL,
    name        TEXT,
    created_at  TEXT NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at);
