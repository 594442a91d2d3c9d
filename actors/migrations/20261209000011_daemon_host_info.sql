-- This host as its per-host snapshots carry it (durable lane): one row, written just before
-- each snapshot of the store is taken (under the same lock as the snapshot), so another host
-- reading `TARGET/.metasystem-hosts/HOST/metastore.db` (`metasystem hosts`) learns when it was
-- taken, how often it should be, which version took it, since when it runs, and its summary
-- (the tree's health, its sync targets' last runs, firing alerts, probes not passing) as JSON.
CREATE TABLE host_info (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    host              TEXT    NOT NULL,      -- the identity it syncs under
    version           TEXT    NOT NULL,
    started_ms        INTEGER NOT NULL,      -- the daemon's start, Unix milliseconds
    taken_ms          INTEGER NOT NULL,      -- when the snapshot carrying this row was taken
    snapshot_every_ms INTEGER NOT NULL,      -- the pushing target's `snapshot_every`
    summary           TEXT    NOT NULL DEFAULT '{}'
);
