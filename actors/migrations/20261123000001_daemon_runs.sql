-- One row per daemon run (durable lane): written when the daemon starts, completed when it stops
-- in order. A row left without `stopped_ms` is a run that ended without a clean shutdown
-- (killed, crashed, power lost).
CREATE TABLE daemon_runs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    started_ms INTEGER NOT NULL,          -- wall clock, Unix milliseconds
    pid        INTEGER NOT NULL,
    version    TEXT    NOT NULL,
    config     TEXT    NOT NULL,          -- where the config came from
    stopped_ms INTEGER,                   -- NULL: running, or ended without a clean shutdown
    exit_code  INTEGER
);
