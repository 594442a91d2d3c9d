//! What an alert is, from the moment a kind raises it to the message a channel carries.

use std::collections::BTreeMap;
use std::fmt;

/// How bad it is. Ordered: `Info < Warning < Critical`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One value per severity (thresholds, cooldowns, routes).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct PerSeverity<T> {
    pub info: T,
    pub warning: T,
    pub critical: T,
}

impl<T> PerSeverity<T> {
    pub fn get(&self, s: Severity) -> &T {
        match s {
            Severity::Info => &self.info,
            Severity::Warning => &self.warning,
            Severity::Critical => &self.critical,
        }
    }

    pub fn get_mut(&mut self, s: Severity) -> &mut T {
        match s {
            Severity::Info => &mut self.info,
            Severity::Warning => &mut self.warning,
            Severity::Critical => &mut self.critical,
        }
    }
}

/// An occurrence of a condition, as a kind raises it (`Alerts::raise`).
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub severity: Severity,
    /// One line, the same for every occurrence of the condition ("actor restarting:
    /// root/sync/icloud"): with the severity it is the default dedup key.
    pub title: String,
    /// Details for this occurrence (may be long; channels truncate).
    pub body: String,
    /// Who raised it: a tree path (`root/sync/icloud`) or `daemon`.
    pub source: String,
    /// The dedup key; `None`: `severity:title`.
    pub key: Option<String>,
    /// Extra labels (webhook `labels`, shown by chat channels).
    pub labels: BTreeMap<String, String>,
    /// Consecutive occurrences needed before it is sent, overriding the per-severity `after`.
    /// One-shot conditions (a give-up, an anomaly) set 1.
    pub after: Option<u32>,
}

impl Alert {
    pub fn new(severity: Severity, title: impl Into<String>, source: impl Into<String>) -> Self {
        Alert {
            severity,
            title: title.into(),
            body: String::new(),
            source: source.into(),
            key: None,
            labels: BTreeMap::new(),
            after: None,
        }
    }

    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    /// Sent at its first occurrence, whatever the per-severity `after`.
    pub fn at_once(mut self) -> Self {
        self.after = Some(1);
        self
    }

    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(name.into(), value.into());
        self
    }

    /// The dedup key: the explicit one, or `severity:title`.
    pub fn key(&self) -> String {
        match &self.key {
            Some(key) => key.clone(),
            None => default_key(self.severity, &self.title),
        }
    }
}

/// `severity:title`, the key of an alert that names none.
pub fn default_key(severity: Severity, title: &str) -> String {
    format!("{severity}:{title}")
}

/// Whether a notification says a condition started or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "firing" => Some(Status::Firing),
            "resolved" => Some(Status::Resolved),
            _ => None,
        }
    }
}

/// One message about one alert for one channel: what the outbox stores and a channel sends
/// (channels send several at once: a group).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Notification {
    /// The outbox row (0 before it is stored, and for `alerts test`).
    pub id: i64,
    /// Stable for the condition (a hash of its key): the same in the firing and the resolved
    /// message and in every resend, so a receiver can drop a duplicate.
    pub fingerprint: String,
    pub key: String,
    pub status: Status,
    pub severity: Severity,
    pub title: String,
    pub body: String,
    pub source: String,
    pub labels: BTreeMap<String, String>,
    /// When the condition started firing (Unix ms).
    pub starts_at_ms: i64,
    /// When it resolved (Unix ms), for a resolved notification.
    pub ends_at_ms: Option<i64>,
    /// Occurrences folded into this notification (repeats within the dedup window).
    pub occurrences: u64,
}

/// The fingerprint of a key: 16 hex digits of its FNV-1a 64 hash (stable across versions and
/// machines, like Alertmanager's label fingerprint).
pub fn fingerprint(key: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_fingerprints_are_stable() {
        let a = Alert::new(Severity::Warning, "disk low", "root/disk");
        assert_eq!(a.key(), "warning:disk low");
        assert_eq!(fingerprint(""), "cbf29ce484222325");
        assert_eq!(fingerprint("a"), "af63dc4c8601ec8c");
        assert_ne!(
            fingerprint("warning:disk low"),
            fingerprint("critical:disk low")
        );
    }

    #[test]
    fn severities_order_and_parse() {
        assert!(Severity::Info < Severity::Warning && Severity::Warning < Severity::Critical);
        for s in Severity::ALL {
            assert_eq!(Severity::parse(s.as_str()), Some(s));
        }
        assert_eq!(Severity::parse("fatal"), None);
    }
}
