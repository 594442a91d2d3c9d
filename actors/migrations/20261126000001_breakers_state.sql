-- Circuit breakers (durable lane): each breaker's last state and counts, so they survive a
-- daemon restart, and every transition with its time and reason.
CREATE TABLE breakers (
    name       TEXT PRIMARY KEY,
    state      TEXT    NOT NULL,       -- closed | open | half_open | forced_open | disabled
    snapshot   TEXT    NOT NULL,       -- JSON: state, counts, current wait (breakers::Snapshot)
    updated_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE breaker_transitions (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    at_ms      INTEGER NOT NULL,
    from_state TEXT    NOT NULL,
    to_state   TEXT    NOT NULL,
    reason     TEXT    NOT NULL
);
CREATE INDEX breaker_transitions_by_name ON breaker_transitions (name, id);
