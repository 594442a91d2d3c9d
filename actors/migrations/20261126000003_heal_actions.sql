-- Self-heal actions (durable lane): what ran, why, and what it achieved; pruned with the events.
CREATE TABLE heal_actions (
    id         INTEGER PRIMARY KEY,
    probe      TEXT    NOT NULL,       -- the probe's tree path
    action     TEXT    NOT NULL,       -- restart | vacuum | cleanup | command ...
    target     TEXT    NOT NULL,       -- what it acted on ('' when nothing in particular)
    started_ms INTEGER NOT NULL,
    took_ms    INTEGER NOT NULL,
    outcome    TEXT    NOT NULL,       -- done | failed | skipped_cooldown | skipped_cap | rejected
    detail     TEXT    NOT NULL,
    recheck    TEXT                    -- the probe's status after the action, when re-checked
);
CREATE INDEX heal_actions_by_time ON heal_actions (started_ms);
