-- Sync: the nonce of the target's marker as this host last adopted it. A marker whose nonce is
-- another (a restored drive, a different folder, a marker put back by hand) makes the next run
-- a first sync: a union of both sides, with no deletions. NULL: none recorded yet (a target
-- synced before this column existed adopts the marker it finds).
ALTER TABLE sync_targets ADD COLUMN marker TEXT;
