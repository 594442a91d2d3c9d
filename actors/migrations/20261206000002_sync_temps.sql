-- Sync: the nonces of temp files (`.msync-NONCE-SEQ.tmp`) a run or an operator's job of a
-- target may have left, recorded before the first of them is created. A later run removes
-- only temps whose nonce is listed here for its target, then forgets the nonce.
CREATE TABLE sync_temps (
    target     TEXT    NOT NULL,
    nonce      TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (target, nonce)
) WITHOUT ROWID;
