-- Sync (durable lane): targets that have been synced once. A target in here whose marker file
-- is gone is refused, and one whose folder is missing is offline (never created again), even
-- when nothing is left in its base (everything deleted on both sides).
CREATE TABLE sync_targets (
    target   TEXT    PRIMARY KEY,
    first_ms INTEGER NOT NULL      -- when its first run wrote the marker
) WITHOUT ROWID;

-- Targets synced before this table existed are the ones with a base.
INSERT INTO sync_targets (target, first_ms) SELECT target, 0 FROM sync_base GROUP BY target;
