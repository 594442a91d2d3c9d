//! The Alertmanager channel: alerts posted to `/api/v2/alerts` of one or more Alertmanagers
//! (an HA pair or cluster gets every alert, as Prometheus sends to each), so silences,
//! inhibition, grouping and routing happen there.
//!
//! **Body.** Alertmanager's v2 array of `{labels, annotations, startsAt, endsAt}`:
//! labels `alertname` (the title), `severity`, `host` (this host's name), `source` (the tree
//! path that raised it), `alertkey` (the alert's key, which makes the label set as unique as
//! the key), then the alert's own labels (`probe`, `check`, `target`, `breaker`, ...; ours win
//! on a clash, and names Alertmanager would refuse are made valid); annotations `summary`
//! (the title) and `description` (the body). `startsAt` is when the episode began. A firing
//! alert's `endsAt` is four resend intervals after the send (as Prometheus does): the alerts
//! actor re-sends every firing alert each resend interval, so a live alert never times out,
//! and one whose sender died resolves by itself. A resolved alert's `endsAt` is when it
//! resolved.
//!
//! **Several Alertmanagers.** Each outbox message goes to every Alertmanager, and each one's
//! answer is recorded for the rows (the per-recipient record email uses). The message counts
//! as delivered once at least one Alertmanager accepted it; it is retried (to those that have
//! not answered for good) only while none has. One success suffices because an Alertmanager
//! that missed a message learns the truth anyway, without holding up the others: every firing
//! alert is re-sent to every Alertmanager each resend interval (an Alertmanager keeps alerts
//! in memory only, so one that restarted relearns them this way, as from Prometheus), and one
//! that missed a resolution resolves the alert itself when its `endsAt` (at most four resend
//! intervals away) passes. Retrying the message until every member took it would instead stop
//! the live member from hearing anything new while its peer is down: the opposite of HA.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Url;
use serde_json::{json, Map, Value};

use super::text;
use super::{http, Answer, Outcome, Sent, ANSWER_CAP};
use crate::alerts::alert::{Notification, Status};
use crate::store::outbox::Settled;

/// The resend interval when none is configured (Prometheus' `--rules.alert.resend-delay`).
pub const DEFAULT_RESEND: Duration = Duration::from_secs(60);
/// The shortest and longest resend intervals accepted.
pub const MIN_RESEND: Duration = Duration::from_secs(1);
pub const MAX_RESEND: Duration = Duration::from_secs(3600);
/// A firing alert is valid for this many resend intervals after it is sent.
pub const VALID_FOR_RESENDS: u32 = 4;

/// One Alertmanager: the URL as configured (its name in the per-recipient record) and the
/// endpoint alerts are posted to.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub name: String,
    pub endpoint: Url,
}

/// An Alertmanager channel ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertmanagerTarget {
    pub members: Vec<Member>,
    pub resend: Duration,
}

/// `base`'s `/api/v2/alerts` (kept under a path prefix: `http://h/am/` posts to
/// `http://h/am/api/v2/alerts`).
pub fn endpoint(base: &Url) -> Url {
    let mut url = base.clone();
    let path = base.path().trim_end_matches('/').to_string();
    url.set_path(&format!("{path}/api/v2/alerts"));
    url.set_query(None);
    url.set_fragment(None);
    url
}

/// Checks one configured URL: an http(s) URL, not port 0, not ending in the API's path (a
/// pasted endpoint would be posted to twice over, `/api/v2/alerts/api/v2/alerts`, a 404 on
/// every alert). `Err` completes "`urls` item X ..." (see [`redact`] for X).
pub fn check_url(raw: &str) -> Result<Url, String> {
    let base = http::parse_url(Some(raw)).map_err(|why| {
        if why.contains("port 0") {
            "names port 0, which nothing listens on".to_string()
        } else {
            "is not an http(s) URL (an Alertmanager's address, such as \"http://am1:9093\")"
                .to_string()
        }
    })?;
    let path = base.path().trim_end_matches('/').to_ascii_lowercase();
    if let Some(api) = ["/api/v2/alerts", "/api/v1/alerts", "/api/v2", "/api/v1"]
        .into_iter()
        .find(|api| path.ends_with(api))
    {
        return Err(format!(
            "ends in the API path {api}: give the Alertmanager's address (as \
             \"http://host:9093\"); /api/v2/alerts is added"
        ));
    }
    Ok(base)
}

/// `raw` as messages may show it: a password in it (`http://user:pw@host`) written `***`,
/// whether or not the rest parses.
pub fn redact(raw: &str) -> String {
    let raw = raw.trim();
    let Some(start) = raw.find("://").map(|i| i + 3) else {
        return raw.to_string();
    };
    let end = raw[start..]
        .find(['/', '?', '#'])
        .map_or(raw.len(), |i| start + i);
    let authority = &raw[start..end];
    let Some(at) = authority.rfind('@') else {
        return raw.to_string();
    };
    match authority[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &raw[..start],
            &authority[..colon],
            &raw[start + at..]
        ),
        None => raw.to_string(),
    }
}

/// Checks the URLs (at least one, each as [`check_url`], no two the same) and the resend
/// interval; `Err` is a one-line reason, never with a password.
pub fn prepare(urls: &[String], resend: Duration) -> Result<AlertmanagerTarget, String> {
    if urls.is_empty() {
        return Err("no `urls` (name at least one Alertmanager)".to_string());
    }
    if !(MIN_RESEND..=MAX_RESEND).contains(&resend) {
        return Err("`resend_interval` must be between 1s and 1h".to_string());
    }
    let mut members: Vec<Member> = Vec::new();
    for raw in urls {
        let shown_raw = redact(raw);
        let base = check_url(raw).map_err(|why| format!("`urls` item {shown_raw:?} {why}"))?;
        let endpoint = endpoint(&base);
        if members.iter().any(|m| m.endpoint == endpoint) {
            return Err(format!("`urls` names {shown_raw:?} twice"));
        }
        members.push(Member {
            name: shown(raw, &base),
            endpoint,
        });
    }
    Ok(AlertmanagerTarget { members, resend })
}

/// How a member is named in `alerts` and `alerts test`: as configured, but a password in the
/// URL (`http://user:pw@host`) is never shown.
fn shown(raw: &str, base: &Url) -> String {
    if base.password().is_none() {
        return raw.trim().to_string();
    }
    let mut url = base.clone();
    let _ = url.set_password(Some("***"));
    url.to_string()
}

/// A label name Alertmanager accepts (`[a-zA-Z_][a-zA-Z0-9_]*`): other characters become
/// `_`, and a leading digit gets a `_` before it.
pub fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The labels of one alert (see the module documentation). Empty values are left out (to
/// Alertmanager an empty label is no label).
pub fn alert_labels(n: &Notification, hostname: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    for (k, v) in &n.labels {
        labels.insert(label_name(k), v.clone());
    }
    labels.insert("alertname".to_string(), n.title.clone());
    labels.insert("severity".to_string(), n.severity.as_str().to_string());
    labels.insert("host".to_string(), hostname.to_string());
    labels.insert("source".to_string(), n.source.clone());
    labels.insert("alertkey".to_string(), n.key.clone());
    labels.retain(|_, v| !v.is_empty());
    labels
}

fn to_object(m: &BTreeMap<String, String>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
    )
}

/// The v2 body for `batch` sent at `now_ms`: firing alerts end `VALID_FOR_RESENDS` resend
/// intervals later, resolved ones when they resolved.
pub fn payload(hostname: &str, batch: &[Notification], now_ms: i64, resend: Duration) -> Value {
    let valid_ms =
        i64::try_from(resend.saturating_mul(VALID_FOR_RESENDS).as_millis()).unwrap_or(i64::MAX);
    let alerts: Vec<Value> = batch
        .iter()
        .map(|n| {
            let ends_at = match (n.status, n.ends_at_ms) {
                (Status::Resolved, Some(ms)) => ms,
                (Status::Resolved, None) => now_ms,
                (Status::Firing, _) => now_ms.saturating_add(valid_ms),
            };
            let mut annotations = BTreeMap::new();
            annotations.insert("summary".to_string(), n.title.clone());
            if !n.body.is_empty() {
                annotations.insert("description".to_string(), n.body.clone());
            }
            json!({
                "labels": to_object(&alert_labels(n, hostname)),
                "annotations": to_object(&annotations),
                "startsAt": text::rfc3339(n.starts_at_ms),
                "endsAt": text::rfc3339(ends_at),
            })
        })
        .collect();
    Value::Array(alerts)
}

/// Sends `batch` to every Alertmanager that has not `settled` all of its rows (each gets the
/// rows it has not), concurrently, and combines the answers (see [`combine`]).
pub(crate) async fn send_to(
    client: &reqwest::Client,
    target: &AlertmanagerTarget,
    hostname: &str,
    batch: &[Notification],
    settled: &Settled,
    now_ms: i64,
) -> Sent {
    let ids: Vec<i64> = batch.iter().map(|n| n.id).collect();
    let mut posts = Vec::new();
    for m in &target.members {
        let done = settled.get(&m.name);
        let part: Vec<Notification> = batch
            .iter()
            .filter(|n| done.is_none_or(|d| !d.contains_key(&n.id)))
            .cloned()
            .collect();
        if part.is_empty() {
            continue;
        }
        let body = payload(hostname, &part, now_ms, target.resend);
        let key = super::idempotency_key(hostname, &part);
        let part_ids: Vec<i64> = part.iter().map(|n| n.id).collect();
        posts.push(async move {
            let (outcome, label) = http::post_json_labelled(client, &m.endpoint, &body, &key).await;
            Answer {
                to: m.name.clone(),
                ids: part_ids,
                outcome,
                label,
            }
        });
    }
    // Side by side: a slow Alertmanager does not delay the others.
    let answers = futures_util::future::join_all(posts).await;
    let combined = combine(&answers, settled, &ids);
    Sent::per_recipient(answers, combined)
}

/// What the message came to, from each Alertmanager's answer now and what earlier attempts
/// `settled`:
/// - some Alertmanager took it (now or before): accepted; partial when another refused it
///   for good; one that failed for a while is named in the answer and hears it from the
///   resends (see the module documentation);
/// - none took it and one failed for a while: that failure (retried, to those that have not
///   refused it for good);
/// - all refused it for good: the first refusal.
fn combine(answers: &[Answer], settled: &Settled, ids: &[i64]) -> (Outcome, Option<String>, bool) {
    let mut took: Vec<String> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    let mut later: Vec<String> = Vec::new();
    for a in answers {
        match &a.outcome {
            Outcome::Accepted { .. } => took.push(a.to.clone()),
            Outcome::Transient { error, .. } => later.push(format!("{}: {error}", a.to)),
            Outcome::Permanent { error, .. } => refused.push(format!("{}: {error}", a.to)),
        }
    }
    for (to, rows) in settled {
        if answers.iter().any(|a| &a.to == to) {
            continue;
        }
        let mine: Vec<bool> = ids.iter().filter_map(|id| rows.get(id).copied()).collect();
        if mine.is_empty() {
            continue;
        }
        if mine.iter().any(|took| *took) {
            took.push(to.clone());
        } else {
            refused.push(format!("{to}: refused in an earlier attempt"));
        }
    }
    if !took.is_empty() {
        let first = answers.iter().find(|a| a.outcome.is_accepted());
        let code = first.and_then(|a| a.outcome.code());
        if refused.is_empty() && later.is_empty() {
            let outcome = match first {
                Some(a) => a.outcome.clone(),
                None => Outcome::Accepted {
                    code: None,
                    answer: "already delivered".to_string(),
                },
            };
            return (outcome, None, false);
        }
        let mut answer = format!("accepted by {}", took.join(", "));
        if !later.is_empty() {
            answer.push_str(&format!(
                "; failed for now (told by the resends): {}",
                later.join("; ")
            ));
        }
        if !refused.is_empty() {
            answer.push_str(&format!("; refused: {}", refused.join("; ")));
        }
        let outcome = Outcome::Accepted {
            code,
            answer: text::truncate_bytes(&text::one_line(&answer), ANSWER_CAP),
        };
        return (outcome, None, !refused.is_empty());
    }
    if let Some(a) = answers.iter().find(|a| a.outcome.is_transient()) {
        let outcome = match &a.outcome {
            Outcome::Transient {
                code,
                error,
                retry_after,
            } => Outcome::Transient {
                code: *code,
                error: text::truncate_bytes(&format!("{}: {error}", a.to), ANSWER_CAP),
                retry_after: *retry_after,
            },
            other => other.clone(),
        };
        return (outcome, a.label.clone(), false);
    }
    if let Some(a) = answers.iter().find(|a| a.outcome.is_permanent()) {
        let outcome = match &a.outcome {
            Outcome::Permanent { code, error } => Outcome::Permanent {
                code: *code,
                error: text::truncate_bytes(&format!("{}: {error}", a.to), ANSWER_CAP),
            },
            other => other.clone(),
        };
        return (outcome, a.label.clone(), false);
    }
    let outcome = Outcome::Permanent {
        code: None,
        error: "refused by every Alertmanager in earlier attempts".to_string(),
    };
    (outcome, Some("http_refused".to_string()), false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::alert::Severity;
    use crate::alerts::channel::tests_support::note;

    #[test]
    fn a_password_in_a_url_is_never_shown() {
        // Not in an error either, parsed or not (regression: `check` and the daemon's log
        // printed it for a refused or repeated URL).
        for (urls, secret) in [
            (vec!["http://u:s3cret@h:9093/api/v2"], "s3cret"),
            (vec!["http://u:s3cret@h:0"], "s3cret"),
            (vec!["ftp://u:s3cret@h/"], "s3cret"),
            (
                vec!["http://u:s3cret@h:9093", "http://u:s3cret@h:9093/"],
                "s3cret",
            ),
        ] {
            let urls: Vec<String> = urls.into_iter().map(String::from).collect();
            let why = prepare(&urls, DEFAULT_RESEND).unwrap_err();
            assert!(!why.contains(secret) && why.contains("u:***@"), "{why}");
        }
        assert_eq!(redact("http://h:9093/x@y"), "http://h:9093/x@y");
        assert_eq!(redact("not a url"), "not a url");
        assert_eq!(redact("http://u@h"), "http://u@h");
        assert_eq!(redact("http://u:p:q@h/a"), "http://u:***@h/a");
        let t = prepare(
            &[
                "http://ops:s3cret@127.0.0.1:9093".into(),
                "http://h:9094".into(),
            ],
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(t.members[0].name, "http://ops:***@127.0.0.1:9093/");
        assert_eq!(
            t.members[0].endpoint.password(),
            Some("s3cret"),
            "still sent"
        );
        assert_eq!(t.members[1].name, "http://h:9094");
    }

    #[test]
    fn urls_are_checked_and_get_the_v2_path() {
        let t = prepare(
            &["http://am1:9093".into(), "https://h/prefix/".into()],
            DEFAULT_RESEND,
        )
        .expect("valid");
        assert_eq!(
            t.members[0].endpoint.as_str(),
            "http://am1:9093/api/v2/alerts"
        );
        assert_eq!(t.members[0].name, "http://am1:9093");
        assert_eq!(
            t.members[1].endpoint.as_str(),
            "https://h/prefix/api/v2/alerts"
        );
        assert_eq!(
            prepare(&[], DEFAULT_RESEND).unwrap_err(),
            "no `urls` (name at least one Alertmanager)"
        );
        assert!(prepare(&["am1:9093".into()], DEFAULT_RESEND)
            .unwrap_err()
            .starts_with("`urls` item \"am1:9093\" is not an http(s) URL"));
        assert!(
            prepare(&["http://a".into(), "http://a/".into()], DEFAULT_RESEND)
                .unwrap_err()
                .contains("twice")
        );
        // An endpoint pasted instead of the address; a port nothing listens on.
        for pasted in [
            "http://am:9093/API/V2/ALERTS",
            "http://h/api/v2/alerts?x=1",
            "http://am:9093/api/v2/alerts",
            "http://h/am/api/v1/alerts/",
            "http://h/api/v2",
        ] {
            let why = prepare(&[pasted.into()], DEFAULT_RESEND).unwrap_err();
            assert!(why.contains("ends in the API path"), "{pasted}: {why}");
        }
        assert!(prepare(&["https://a:0".into()], DEFAULT_RESEND)
            .unwrap_err()
            .contains("port 0"));
        for bad in [Duration::ZERO, Duration::from_secs(7200)] {
            assert!(prepare(&["http://a".into()], bad)
                .unwrap_err()
                .contains("resend_interval"));
        }
    }

    #[test]
    fn v2_body_labels_and_times() {
        let mut a = note(Severity::Critical, Status::Firing, "probe fail: root/p");
        a.key = "probe:root/p:fail".into();
        a.labels.insert("probe".into(), "root/p".into());
        a.labels.insert("host".into(), "spoofed".into());
        a.labels.insert("9 bad-name".into(), "v".into());
        a.labels.insert("empty".into(), String::new());
        let r = note(Severity::Warning, Status::Resolved, "disk slow");
        let now = 1_700_000_100_000;
        let v = payload("h1", &[a, r], now, Duration::from_secs(60));
        let alerts = v.as_array().expect("array");
        assert_eq!(alerts.len(), 2);
        assert_eq!(
            alerts[0]["labels"],
            json!({
                "alertname": "probe fail: root/p",
                "severity": "critical",
                "host": "h1",
                "source": "root/test",
                "alertkey": "probe:root/p:fail",
                "probe": "root/p",
                "_9_bad_name": "v",
            })
        );
        assert_eq!(
            alerts[0]["annotations"],
            json!({"summary": "probe fail: root/p", "description": "body of probe fail: root/p"})
        );
        assert_eq!(alerts[0]["startsAt"], "2023-11-14T22:13:20.123Z");
        // Firing: valid for four resend intervals from the send.
        assert_eq!(alerts[0]["endsAt"], text::rfc3339(now + 240_000));
        assert_eq!(alerts[1]["endsAt"], "2023-11-14T22:14:20Z");
        assert!(alerts[0].get("status").is_none());
    }

    fn answer(to: &str, outcome: Outcome) -> Answer {
        Answer {
            to: to.into(),
            ids: vec![1],
            outcome,
            label: Some("x".into()),
        }
    }

    fn ok() -> Outcome {
        Outcome::Accepted {
            code: Some(200),
            answer: String::new(),
        }
    }

    fn down() -> Outcome {
        Outcome::Transient {
            code: None,
            error: "connection refused".into(),
            retry_after: None,
        }
    }

    fn bad() -> Outcome {
        Outcome::Permanent {
            code: Some(400),
            error: "HTTP 400".into(),
        }
    }

    #[test]
    fn one_alertmanager_taking_it_is_enough() {
        let none = Settled::new();
        let (o, label, partial) = combine(&[answer("a", ok()), answer("b", ok())], &none, &[1]);
        assert!(o.is_accepted() && label.is_none() && !partial);
        let (o, _, partial) = combine(&[answer("a", ok()), answer("b", down())], &none, &[1]);
        assert!(!partial);
        match o {
            Outcome::Accepted { answer, .. } => {
                assert!(answer.contains("accepted by a"), "{answer}");
                assert!(answer.contains("b: connection refused"), "{answer}");
            }
            other => panic!("{other:?}"),
        }
        let (o, _, partial) = combine(&[answer("a", ok()), answer("b", bad())], &none, &[1]);
        assert!(o.is_accepted() && partial);
        // None took it: retried while one failed only for now.
        let (o, label, _) = combine(&[answer("a", bad()), answer("b", down())], &none, &[1]);
        assert!(o.is_transient(), "{o:?}");
        assert_eq!(label.as_deref(), Some("x"));
        let (o, _, _) = combine(&[answer("a", bad()), answer("b", bad())], &none, &[1]);
        assert!(o.is_permanent());
        // An earlier attempt's acceptance counts.
        let mut earlier = Settled::new();
        earlier.entry("a".into()).or_default().insert(1, true);
        let (o, _, _) = combine(&[answer("b", down())], &earlier, &[1]);
        assert!(o.is_accepted(), "{o:?}");
        let mut refused = Settled::new();
        refused.entry("a".into()).or_default().insert(1, false);
        let (o, _, _) = combine(&[], &refused, &[1]);
        assert!(o.is_permanent());
    }

    #[test]
    fn label_names_are_made_valid() {
        assert_eq!(label_name("probe"), "probe");
        assert_eq!(label_name("a.b-c"), "a_b_c");
        assert_eq!(label_name("1x"), "_1x");
        assert_eq!(label_name(""), "_");
    }
}
