-- A generation per target's base, changed by every change of its rows, in the same
-- transaction (triggers: whatever writes the rows, an older release included): the base is
-- not held in memory between runs but read from a file beside the store (`store::base_file`),
-- used only when it names the generation the store is at (else the rows are read and the file
-- written again). Random, not counted up: a store made anew never reaches a generation an old
-- file names.
CREATE TABLE sync_base_gen (
    target TEXT    PRIMARY KEY,
    gen    INTEGER NOT NULL
);

CREATE TRIGGER sync_base_gen_insert AFTER INSERT ON sync_base BEGIN
    INSERT OR REPLACE INTO sync_base_gen (target, gen) VALUES (NEW.target, random());
END;

CREATE TRIGGER sync_base_gen_update AFTER UPDATE ON sync_base BEGIN
    INSERT OR REPLACE INTO sync_base_gen (target, gen) VALUES (NEW.target, random());
    INSERT OR REPLACE INTO sync_base_gen (target, gen) VALUES (OLD.target, random());
END;

CREATE TRIGGER sync_base_gen_delete AFTER DELETE ON sync_base BEGIN
    INSERT OR REPLACE INTO sync_base_gen (target, gen) VALUES (OLD.target, random());
END;
