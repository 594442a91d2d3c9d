-- The alert outbox (durable lane): one row per notification and channel, written before any
-- delivery is tried and marked sent only once the channel accepted it; a daemon that starts
-- again delivers what is still pending.
CREATE TABLE alert_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    channel         TEXT    NOT NULL,
    fingerprint     TEXT    NOT NULL,      -- stable per condition: receivers drop duplicates
    key             TEXT    NOT NULL,      -- the dedup key
    status          TEXT    NOT NULL,      -- firing | resolved
    severity        TEXT    NOT NULL,      -- info | warning | critical
    title           TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    source          TEXT    NOT NULL,      -- tree path, or daemon
    labels          TEXT    NOT NULL DEFAULT '{}',
    starts_at_ms    INTEGER NOT NULL,
    ends_at_ms      INTEGER,
    occurrences     INTEGER NOT NULL,
    created_ms      INTEGER NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending', -- pending | sent | failed | skipped
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER,               -- pending: not before this
    done_ms         INTEGER,               -- sent, failed or skipped at
    last_error      TEXT
);
CREATE INDEX alert_outbox_pending ON alert_outbox (id) WHERE state = 'pending';
CREATE INDEX alert_outbox_done ON alert_outbox (done_ms);

-- Every delivery attempt, for `metasystem alerts` (history).
CREATE TABLE alert_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id   INTEGER NOT NULL,
    at_ms       INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    outcome     TEXT    NOT NULL,          -- accepted | transient | permanent | skipped
    code        INTEGER,                   -- HTTP status or SMTP reply code
    detail      TEXT    NOT NULL           -- the channel's answer or the error
);
CREATE INDEX alert_attempts_outbox ON alert_attempts (outbox_id);

-- Silences (`metasystem alerts silence KEY --for D`): survive a restart.
CREATE TABLE alert_silences (
    pattern    TEXT    PRIMARY KEY,        -- a key, or a glob with *
    until_ms   INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
