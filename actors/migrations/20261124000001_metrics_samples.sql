-- Metric samples (telemetry lane): one row per measurement, kept for the metrics retention
-- (30 days by default). Ids grow with time, which pruning relies on (no index on at_ms: it
-- would cost every insert).
CREATE TABLE samples (
    id      INTEGER PRIMARY KEY,
    at_ms   INTEGER NOT NULL,          -- wall clock, Unix milliseconds
    name    TEXT    NOT NULL,          -- the metric: actor_restarts, alert_delivery, ...
    subject TEXT    NOT NULL,          -- of what: a tree path, a channel, '' for the daemon
    value   REAL    NOT NULL,
    ok      INTEGER                    -- 1 success, 0 failure, NULL not an outcome
);
-- Hourly rollups, maintained as samples are written and kept longer than the samples, so a
-- summary over a day or a month reads at most one row per hour and series.
CREATE TABLE sample_rollups (
    hour_ms INTEGER NOT NULL,          -- the hour's start, Unix milliseconds
    name    TEXT    NOT NULL,
    subject TEXT    NOT NULL,
    count   INTEGER NOT NULL,
    ok      INTEGER NOT NULL,
    failed  INTEGER NOT NULL,
    sum     REAL    NOT NULL,
    min     REAL    NOT NULL,
    max     REAL    NOT NULL,
    sketch  BLOB    NOT NULL,          -- the quantile sketch (metrics::stats::Sketch)
    PRIMARY KEY (hour_ms, name, subject)
) WITHOUT ROWID;
