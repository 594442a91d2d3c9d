-- Sync: the primary folder this host last synced the target from, as "INODE PATH". A run that
-- finds another (`primary` changed by a reload, a typo, an empty or bare folder in its place)
-- is a first sync: a union of both sides, with no deletions, never "the user deleted it all".
-- NULL: none recorded yet (recorded by the next run).
ALTER TABLE sync_targets ADD COLUMN primary_root TEXT;
