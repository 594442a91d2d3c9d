-- Every lifecycle event of the tree (started, exited and why, restart scheduled, restarted,
-- gave up, start failed) and every event actors record (heartbeat, ...).
CREATE TABLE events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms   INTEGER NOT NULL,          -- wall clock, Unix milliseconds
    path    TEXT    NOT NULL,          -- tree path, e.g. root/sync/icloud
    kind    TEXT    NOT NULL,          -- started, exited, restart_scheduled, heartbeat, ...
    message TEXT    NOT NULL,          -- for people
    data    TEXT    NOT NULL DEFAULT '{}'  -- the typed fields, as JSON
);
CREATE INDEX events_at ON events (at_ms);
CREATE INDEX events_path_at ON events (path, at_ms);
