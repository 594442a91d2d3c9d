//! The generic webhook: Alertmanager's webhook v4 body, so receivers written for Alertmanager
//! (and its tooling) take it as is.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::text;
use super::{batch_status, WEBHOOK_MAX_PER_MESSAGE};
use crate::alerts::alert::{Notification, Status};

/// The labels of one alert: `alertname` (the title), `severity`, `source`, `instance` (the
/// hostname), then the notification's own labels (which win on a clash).
pub fn alert_labels(n: &Notification, hostname: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_string(), n.title.clone());
    labels.insert("severity".to_string(), n.severity.as_str().to_string());
    labels.insert("source".to_string(), n.source.clone());
    labels.insert("instance".to_string(), hostname.to_string());
    for (k, v) in &n.labels {
        labels.insert(k.clone(), v.clone());
    }
    labels
}

/// `summary` (the title) and `description` (the body).
pub fn alert_annotations(n: &Notification) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    a.insert("summary".to_string(), n.title.clone());
    a.insert("description".to_string(), n.body.clone());
    a
}

/// The pairs every map shares (empty for no maps).
pub fn common(maps: &[BTreeMap<String, String>]) -> BTreeMap<String, String> {
    let Some((first, rest)) = maps.split_first() else {
        return BTreeMap::new();
    };
    first
        .iter()
        .filter(|(k, v)| rest.iter().all(|m| m.get(*k) == Some(*v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn to_object(m: &BTreeMap<String, String>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
    )
}

/// The v4 body for `batch`, sent by channel `receiver` from `hostname`. More than
/// [`WEBHOOK_MAX_PER_MESSAGE`] alerts are cut, and counted in `truncatedAlerts`.
pub fn payload(receiver: &str, hostname: &str, batch: &[Notification]) -> Value {
    let shown = &batch[..batch.len().min(WEBHOOK_MAX_PER_MESSAGE)];
    let labels: Vec<_> = shown.iter().map(|n| alert_labels(n, hostname)).collect();
    let annotations: Vec<_> = shown.iter().map(alert_annotations).collect();
    let alerts: Vec<Value> = shown
        .iter()
        .zip(labels.iter().zip(&annotations))
        .map(|(n, (l, a))| {
            let ends_at = match (n.status, n.ends_at_ms) {
                (Status::Resolved, Some(ms)) => text::rfc3339(ms),
                _ => text::ZERO_TIME.to_string(),
            };
            json!({
                "status": n.status.as_str(),
                "labels": to_object(l),
                "annotations": to_object(a),
                "startsAt": text::rfc3339(n.starts_at_ms),
                "endsAt": ends_at,
                "generatorURL": "",
                "fingerprint": n.fingerprint,
                // Not in Alertmanager's format; receivers that ignore it lose nothing.
                "episode": super::episode(n),
            })
        })
        .collect();
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{receiver}"),
        "truncatedAlerts": batch.len() - shown.len(),
        "status": batch_status(batch).as_str(),
        "receiver": receiver,
        "groupLabels": {},
        "commonLabels": to_object(&common(&labels)),
        "commonAnnotations": to_object(&common(&annotations)),
        "externalURL": "",
        "idempotencyKey": super::idempotency_key(hostname, batch),
        "alerts": alerts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::alert::Severity;
    use crate::alerts::channel::tests_support::note;

    #[test]
    fn v4_shape() {
        let mut a = note(Severity::Critical, Status::Firing, "disk full");
        a.labels.insert("mount".into(), "/".into());
        let b = note(Severity::Critical, Status::Resolved, "disk slow");
        let v = payload("ops", "host1", &[a.clone(), b.clone()]);
        assert_eq!(v["version"], "4");
        assert_eq!(v["groupKey"], "{}:ops");
        assert_eq!(v["truncatedAlerts"], 0);
        assert_eq!(v["status"], "firing");
        assert_eq!(v["receiver"], "ops");
        assert_eq!(v["groupLabels"], json!({}));
        assert_eq!(v["externalURL"], "");
        assert_eq!(
            v["commonLabels"],
            json!({"severity": "critical", "source": "root/test", "instance": "host1"})
        );
        assert_eq!(v["commonAnnotations"], json!({}));
        let alerts = v["alerts"].as_array().expect("alerts");
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[0]["status"], "firing");
        assert_eq!(alerts[0]["labels"]["alertname"], "disk full");
        assert_eq!(alerts[0]["labels"]["mount"], "/");
        assert_eq!(alerts[0]["annotations"]["summary"], "disk full");
        assert_eq!(alerts[0]["annotations"]["description"], "body of disk full");
        assert_eq!(alerts[0]["startsAt"], "2023-11-14T22:13:20.123Z");
        assert_eq!(alerts[0]["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(alerts[0]["fingerprint"], a.fingerprint.as_str());
        assert_eq!(alerts[1]["status"], "resolved");
        assert_eq!(alerts[1]["endsAt"], "2023-11-14T22:14:20Z");

        let v = payload("ops", "h", &[b]);
        assert_eq!(v["status"], "resolved");
        assert_eq!(
            v["commonAnnotations"],
            json!({"summary": "disk slow", "description": "body of disk slow"})
        );
    }

    #[test]
    fn labels_override_and_truncation() {
        let mut a = note(Severity::Info, Status::Firing, "x");
        a.labels.insert("instance".into(), "other".into());
        assert_eq!(alert_labels(&a, "h")["instance"], "other");
        let batch: Vec<_> = (0..130)
            .map(|i| note(Severity::Info, Status::Firing, &format!("n{i}")))
            .collect();
        let v = payload("r", "h", &batch);
        assert_eq!(v["alerts"].as_array().map(Vec::len), Some(100));
        assert_eq!(v["truncatedAlerts"], 30);
        assert_eq!(common(&[]), BTreeMap::new());
    }
}
