-- Retried operations (durable lane, small): one row per run of an operation (all its attempts),
-- what `metasystem retries` learns from; pruned with the events.
CREATE TABLE retry_runs (
    id         INTEGER PRIMARY KEY,
    op         TEXT    NOT NULL,       -- the operation: sync:icloud, alert:mail, probe:disk ...
    started_ms INTEGER NOT NULL,
    attempts   INTEGER NOT NULL,
    outcome    TEXT    NOT NULL,       -- success | exhausted | permanent | rejected
    summary    TEXT    NOT NULL        -- JSON (retry::RunSummary)
);
CREATE INDEX retry_runs_by_op ON retry_runs (op, id);
