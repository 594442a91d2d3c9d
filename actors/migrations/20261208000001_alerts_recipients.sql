-- Per-recipient delivery of email notifications: which recipients took each one, which
-- refused it for good, which are still to be retried. A notification that some recipients
-- took and others refused is `partial` in alert_outbox; a retry goes only to the recipients
-- still `pending` here.
CREATE TABLE alert_recipients (
    outbox_id INTEGER NOT NULL,
    recipient TEXT    NOT NULL,
    state     TEXT    NOT NULL,            -- sent | failed | pending
    code      INTEGER,                     -- the SMTP reply code
    detail    TEXT    NOT NULL,            -- the server's answer or the error
    at_ms     INTEGER NOT NULL,
    PRIMARY KEY (outbox_id, recipient)
) WITHOUT ROWID;
