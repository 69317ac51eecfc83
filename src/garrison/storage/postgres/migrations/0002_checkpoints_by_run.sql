-- Garrison schema for PostgreSQL, version 2: find a run's checkpoints without a scan.
-- Deleting a run, or rolling one back, deletes the checkpoints whose metadata names it
-- (LangGraph copies `configurable.run_id` into every checkpoint's metadata). The table
-- is LangGraph's own, created by its saver's setup(), which `garrison migrate` runs first.
-- The index is built in the migration's transaction: fine for the first release of the
-- PostgreSQL adapter, when the table is new; later indexes on big tables go CONCURRENTLY.

CREATE INDEX checkpoints_by_run ON checkpoints ((metadata ->> 'run_id'));
