-- Daily rollups beside the hourly ones, maintained in the same transaction as the samples, so a
-- summary over a month reads about one row per day and series instead of one per hour.
CREATE TABLE sample_daily (
    day_ms  INTEGER NOT NULL,          -- the UTC day's start, Unix milliseconds
    name    TEXT    NOT NULL,
    subject TEXT    NOT NULL,
    count   INTEGER NOT NULL,
    ok      INTEGER NOT NULL,
    failed  INTEGER NOT NULL,
    sum     REAL    NOT NULL,
    min     REAL    NOT NULL,
    max     REAL    NOT NULL,
    sketch  BLOB    NOT NULL,
    PRIMARY KEY (day_ms, name, subject)
) WITHOUT ROWID;
-- Days from `daily_from_ms` on have complete daily rows; earlier days (written before this
-- table existed) are read from the hourly rollups. Nothing is backfilled: the sketches are
-- merged by the program, not by SQL.
CREATE TABLE sample_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO sample_meta (key, value)
SELECT 'daily_from_ms',
       coalesce((max(hour_ms) / 86400000 + 1) * 86400000, -9223372036854775807)
FROM sample_rollups;
