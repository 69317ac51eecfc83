-- Garrison embedded schema, version 1.
-- Timestamps are fixed-width ISO-8601 UTC text (they sort as text); JSON columns are text.
-- Checkpoints and the long-term store live in the tables of their official LangGraph savers.

CREATE TABLE assistants (
    assistant_id TEXT PRIMARY KEY,
    tenant_id    TEXT,               -- NULL: system assistant, visible to every tenant
    owner        TEXT,
    graph_id     TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT,
    config       TEXT NOT NULL DEFAULT '{}',
    context      TEXT NOT NULL DEFAULT '{}',
    metadata     TEXT NOT NULL DEFAULT '{}',
    version      INTEGER NOT NULL DEFAULT 1,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX assistants_by_tenant ON assistants (tenant_id, created_at);

CREATE TABLE assistant_versions (
    assistant_id TEXT NOT NULL REFERENCES assistants (assistant_id) ON DELETE CASCADE,
    version      INTEGER NOT NULL,
    graph_id     TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT,
    config       TEXT NOT NULL,
    context      TEXT NOT NULL,
    metadata     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (assistant_id, version)
);

CREATE TABLE threads (
    thread_id        TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    owner            TEXT,
    status           TEXT NOT NULL DEFAULT 'idle',
    metadata         TEXT NOT NULL DEFAULT '{}',
    config           TEXT NOT NULL DEFAULT '{}',
    "values"         TEXT,
    interrupts       TEXT NOT NULL DEFAULT '{}',
    error            TEXT,               -- the last run's error; NULL when it did not fail
    has_next         INTEGER NOT NULL DEFAULT 0,  -- latest checkpoint has tasks to run
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    state_updated_at TEXT NOT NULL,
    ttl_strategy     TEXT,
    ttl_minutes      REAL,
    expires_at       TEXT
);
CREATE INDEX threads_by_tenant ON threads (tenant_id, updated_at);
CREATE INDEX threads_by_expiry ON threads (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE runs (
    run_id             TEXT PRIMARY KEY,
    thread_id          TEXT NOT NULL REFERENCES threads (thread_id) ON DELETE CASCADE,
    tenant_id          TEXT NOT NULL,
    owner              TEXT,
    assistant_id       TEXT NOT NULL,
    status             TEXT NOT NULL,
    metadata           TEXT NOT NULL DEFAULT '{}',
    kwargs             TEXT NOT NULL DEFAULT '{}',
    multitask_strategy TEXT NOT NULL,
    temporary          INTEGER NOT NULL DEFAULT 0,
    created_at         TEXT NOT NULL,   -- when the run becomes eligible (after_seconds included)
    updated_at         TEXT NOT NULL,
    attempt            INTEGER NOT NULL DEFAULT 0,  -- attempts started; the fencing token
    released           INTEGER NOT NULL DEFAULT 0,  -- attempts handed back uncharged (drain)
    lease_owner        TEXT,
    lease_expires_at   TEXT,
    cancel_action      TEXT,
    error              TEXT,
    started_at         TEXT,
    ended_at           TEXT
);
-- The queue: pending runs in eligibility order, and the per-thread checks of a claim.
CREATE INDEX runs_pending ON runs (created_at, run_id) WHERE status = 'pending';
CREATE INDEX runs_by_thread ON runs (thread_id, status, created_at);
CREATE INDEX runs_leases ON runs (lease_expires_at) WHERE status = 'running';

CREATE TABLE crons (
    cron_id          TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    owner            TEXT,
    assistant_id     TEXT NOT NULL,
    thread_id        TEXT REFERENCES threads (thread_id) ON DELETE CASCADE,
    schedule         TEXT NOT NULL,
    timezone         TEXT,
    payload          TEXT NOT NULL DEFAULT '{}',
    metadata         TEXT NOT NULL DEFAULT '{}',
    end_time         TEXT,
    next_run_date    TEXT,
    enabled          INTEGER NOT NULL DEFAULT 1,
    on_run_completed TEXT NOT NULL DEFAULT 'delete',
    user_id          TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX crons_due ON crons (next_run_date) WHERE enabled = 1;
CREATE INDEX crons_by_tenant ON crons (tenant_id, created_at);
