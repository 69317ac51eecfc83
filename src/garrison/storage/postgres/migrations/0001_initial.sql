-- Garrison schema for PostgreSQL, version 1.
-- Same rows as the embedded SQLite schema, with native types: jsonb for JSON (so search
-- filters use `@>`, the reference semantics of domain/jsonfilter.py), timestamptz for
-- times (always written with the database clock), and a tenant_id on every table.
-- Checkpoints and the long-term store live in the tables of LangGraph's official savers,
-- created by their own setup() inside `garrison migrate`.

CREATE TABLE assistants (
    assistant_id text PRIMARY KEY,
    tenant_id    text,                -- NULL: system assistant, visible to every tenant
    owner        text,
    graph_id     text NOT NULL,
    name         text NOT NULL,
    description  text,
    config       jsonb NOT NULL DEFAULT '{}',
    context      jsonb NOT NULL DEFAULT '{}',
    metadata     jsonb NOT NULL DEFAULT '{}',
    version      integer NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assistants_by_tenant ON assistants (tenant_id, created_at);

CREATE TABLE assistant_versions (
    assistant_id text NOT NULL REFERENCES assistants (assistant_id) ON DELETE CASCADE,
    version      integer NOT NULL,
    tenant_id    text,
    graph_id     text NOT NULL,
    name         text NOT NULL,
    description  text,
    config       jsonb NOT NULL,
    context      jsonb NOT NULL,
    metadata     jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (assistant_id, version)
);

CREATE TABLE threads (
    thread_id        text PRIMARY KEY,
    tenant_id        text NOT NULL,
    owner            text,
    status           text NOT NULL DEFAULT 'idle'
                     CHECK (status IN ('idle', 'busy', 'interrupted', 'error')),
    metadata         jsonb NOT NULL DEFAULT '{}',
    config           jsonb NOT NULL DEFAULT '{}',
    "values"         jsonb,
    interrupts       jsonb NOT NULL DEFAULT '{}',
    error            jsonb,              -- the last run's error; NULL when it did not fail
    has_next         boolean NOT NULL DEFAULT false,  -- latest checkpoint has tasks to run
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    state_updated_at timestamptz NOT NULL DEFAULT now(),
    ttl_strategy     text CHECK (ttl_strategy IN ('delete', 'keep_latest')),
    ttl_minutes      double precision,
    expires_at       timestamptz
);
CREATE INDEX threads_by_tenant ON threads (tenant_id, updated_at);
CREATE INDEX threads_by_expiry ON threads (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE runs (
    run_id             text PRIMARY KEY,
    thread_id          text NOT NULL REFERENCES threads (thread_id) ON DELETE CASCADE,
    tenant_id          text NOT NULL,
    owner              text,
    assistant_id       text NOT NULL,
    status             text NOT NULL
                       CHECK (status IN ('pending', 'running', 'success', 'error', 'timeout',
                                         'interrupted')),
    metadata           jsonb NOT NULL DEFAULT '{}',
    kwargs             jsonb NOT NULL DEFAULT '{}',
    multitask_strategy text NOT NULL,
    temporary          boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL,  -- when the run becomes eligible (after_seconds included)
    updated_at         timestamptz NOT NULL DEFAULT now(),
    attempt            integer NOT NULL DEFAULT 0,  -- attempts started; the fencing token
    released           integer NOT NULL DEFAULT 0,  -- attempts handed back uncharged (drain)
    lease_owner        text,
    lease_expires_at   timestamptz,
    cancel_action      text CHECK (cancel_action IN ('interrupt', 'rollback')),
    error              jsonb,
    started_at         timestamptz,
    ended_at           timestamptz
);
-- At most one run of a thread executes: the last line of defence behind the claim query.
CREATE UNIQUE INDEX runs_one_running_per_thread ON runs (thread_id) WHERE status = 'running';
-- The queue in eligibility order, and the "head of its thread's queue" check of a claim.
CREATE INDEX runs_pending ON runs (created_at, run_id) WHERE status = 'pending';
CREATE INDEX runs_pending_by_thread ON runs (thread_id, created_at, run_id)
    WHERE status = 'pending';
-- A thread's runs, newest first; active runs by tenant for bulk cancels; the reaper's scan.
CREATE INDEX runs_by_thread ON runs (thread_id, created_at, run_id);
CREATE INDEX runs_active_by_tenant ON runs (tenant_id, created_at)
    WHERE status IN ('pending', 'running');
CREATE INDEX runs_leases ON runs (lease_expires_at) WHERE status = 'running';

CREATE TABLE crons (
    cron_id          text PRIMARY KEY,
    tenant_id        text NOT NULL,
    owner            text,
    assistant_id     text NOT NULL,
    thread_id        text REFERENCES threads (thread_id) ON DELETE CASCADE,
    schedule         text NOT NULL,
    timezone         text,
    payload          jsonb NOT NULL DEFAULT '{}',
    metadata         jsonb NOT NULL DEFAULT '{}',
    end_time         timestamptz,
    next_run_date    timestamptz,
    enabled          boolean NOT NULL DEFAULT true,
    on_run_completed text NOT NULL DEFAULT 'delete'
                     CHECK (on_run_completed IN ('delete', 'keep')),
    user_id          text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX crons_due ON crons (next_run_date) WHERE enabled;
CREATE INDEX crons_by_tenant ON crons (tenant_id, created_at);
CREATE INDEX crons_by_thread ON crons (thread_id) WHERE thread_id IS NOT NULL;
