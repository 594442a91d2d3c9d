-- Sync (durable lane): per target and path, the state both sides last agreed on (Unison's
-- archive): each side's SHA-256 (equal for plain files; a database copied as a snapshot differs
-- byte for byte), size and modification time for the quick check.
CREATE TABLE sync_base (
    target          TEXT    NOT NULL,
    path            TEXT    NOT NULL,   -- relative, '/'-separated
    local_hash      BLOB    NOT NULL,   -- 32 bytes
    local_size      INTEGER NOT NULL,
    local_mtime_ns  INTEGER NOT NULL,
    remote_hash     BLOB    NOT NULL,
    remote_size     INTEGER NOT NULL,
    remote_mtime_ns INTEGER NOT NULL,
    PRIMARY KEY (target, path)
) WITHOUT ROWID;

-- Conflicts kept by the manual strategy, listed until resolved.
CREATE TABLE sync_conflicts (
    id          INTEGER PRIMARY KEY,
    target      TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    local_hash  BLOB    NOT NULL,
    remote_hash BLOB    NOT NULL,
    copy        TEXT    NOT NULL,       -- the remote version's conflict copy, relative to the primary
    detected_ms INTEGER NOT NULL,
    resolved_ms INTEGER,
    resolution  TEXT                    -- local | remote | both | gone
);
CREATE INDEX sync_conflicts_open ON sync_conflicts (target, path) WHERE resolved_ms IS NULL;
