-- Sync: the primary folder this host last synced the target from, as "MAJOR:MINOR INODE
-- BIRTH_NS PATH" (its device, inode and creation time: a new folder reusing a freed inode
-- number, or another drive mounted there, is another folder). A run that
-- finds another (`primary` changed by a reload, a typo, an empty or bare folder in its place)
-- is a first sync: a union of both sides, with no deletions, never "the user deleted it all".
-- NULL: none recorded yet (recorded by the next run).
ALTER TABLE sync_targets ADD COLUMN primary_root TEXT;
