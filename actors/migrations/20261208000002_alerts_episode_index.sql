-- Looking up an episode's notifications (fingerprint and start): whether a receiver heard
-- of an episode decides whether it is told the episode ended.
CREATE INDEX alert_outbox_episode ON alert_outbox (fingerprint, starts_at_ms);
