-- Sync: the quick check compares more than size and time. Each side's stamp is a fingerprint
-- of its inode number and change time (one stat), 0 when it cannot be trusted (the file was
-- racily clean when recorded: modified within the timestamp granularity of the moment it was
-- looked at; or its file system has no stable inode numbers): a 0 side is always hashed. Rows
-- from before this column are hashed once, then recorded with their stamps. Each side's mode
-- bits (0: not recorded) let a chmod alone be synced.
ALTER TABLE sync_base ADD COLUMN local_stamp INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_base ADD COLUMN remote_stamp INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_base ADD COLUMN local_mode INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_base ADD COLUMN remote_mode INTEGER NOT NULL DEFAULT 0;
