//! The email channel: one text/plain message per batch over SMTP (lettre, tokio, rustls with
//! aws-lc-rs).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::text;
use super::{Answer, EmailSpec, Outcome, Secret, Sent, Tls, ANSWER_CAP};
use crate::alerts::alert::{Notification, Status};
use crate::store::outbox::Settled;

/// The header carrying the fingerprint of the batch's first notification.
pub const FINGERPRINT_HEADER: &str = "X-Metasystem-Fingerprint";

/// The longest subject, in characters (before "(+N more)").
const SUBJECT_TITLE_MAX: usize = 160;

/// A checked email channel.
#[derive(Debug, Clone)]
pub struct EmailTarget {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    /// Username and the password read from `password_env`.
    pub credentials: Option<(String, Secret)>,
}

/// `host:port`, `[v6]:port`, or a bare host (the port then defaults by `tls`).
pub fn parse_smtp(s: &str, tls: Tls) -> Result<(String, u16), String> {
    let s = s.trim();
    let bad = || format!("`smtp` {s:?} is not host:port");
    if s.is_empty() {
        return Err("no `smtp`".to_string());
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            Some(_) => return Err(bad()),
            None => (s, None),
        }
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(bad());
    }
    let port = match port {
        None => tls.default_port(),
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(bad()),
        },
    };
    Ok((host.to_string(), port))
}

pub fn parse_mailbox(s: &str, field: &str) -> Result<Mailbox, String> {
    s.trim()
        .parse::<Mailbox>()
        .map_err(|e| format!("`{field}` {s:?} is not an email address ({e})"))
}

/// Checks an email spec (reasons without the channel prefix).
pub fn prepare(
    spec: &EmailSpec,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<EmailTarget, String> {
    let smtp = spec.smtp.as_deref().unwrap_or_default();
    let (host, port) = parse_smtp(smtp, spec.tls)?;
    let from = match spec.from.as_deref().map(str::trim) {
        None | Some("") => return Err("no `from`".to_string()),
        Some(f) => parse_mailbox(f, "from")?,
    };
    if spec.to.is_empty() {
        return Err("no `to`".to_string());
    }
    let to = spec
        .to
        .iter()
        .map(|t| parse_mailbox(t, "to"))
        .collect::<Result<Vec<_>, _>>()?;
    let username = spec
        .username
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty());
    let password_env = spec
        .password_env
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    let credentials = match (username, password_env) {
        (None, None) => None,
        (Some(_), None) => return Err("`username` without `password_env`".to_string()),
        (None, Some(_)) => return Err("`password_env` without `username`".to_string()),
        (Some(user), Some(var)) => match env(var) {
            Some(pw) if !pw.is_empty() => Some((user.to_string(), Secret::new(pw))),
            _ => return Err(format!("`password_env` {var} is not set")),
        },
    };
    Ok(EmailTarget {
        host,
        port,
        tls: spec.tls,
        from,
        to,
        credentials,
    })
}

/// `[metasystem] CRITICAL: <title>` (`RESOLVED` for a resolved one), `(+N more)` for a batch.
pub fn subject(batch: &[Notification]) -> String {
    let Some(first) = super::lead(batch) else {
        return "[metasystem] no alerts".to_string();
    };
    let tag = match first.status {
        Status::Resolved => "RESOLVED".to_string(),
        Status::Firing => first.severity.as_str().to_ascii_uppercase(),
    };
    let title = text::one_line(&first.title);
    let title = text::truncate_units(title.trim(), SUBJECT_TITLE_MAX);
    let mut s = format!("[metasystem] {tag}: {title}");
    if batch.len() > 1 {
        let _ = write!(s, " (+{} more)", batch.len() - 1);
    }
    s
}

/// The text body: one block per notification.
pub fn body_text(batch: &[Notification], hostname: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} notification(s) from metasystem on {hostname}.",
        batch.len()
    );
    for (i, n) in batch.iter().enumerate() {
        out.push('\n');
        let _ = writeln!(
            out,
            "== {}/{}: {}",
            i + 1,
            batch.len(),
            text::one_line(&n.title)
        );
        let _ = writeln!(out, "Status:      {}", n.status.as_str());
        let _ = writeln!(out, "Severity:    {}", n.severity.as_str());
        let _ = writeln!(out, "Title:       {}", text::one_line(&n.title));
        let _ = writeln!(out, "Source:      {}", text::one_line(&n.source));
        let _ = writeln!(out, "Started:     {}", text::rfc3339(n.starts_at_ms));
        if let Some(end) = n.ends_at_ms {
            let _ = writeln!(out, "Ended:       {}", text::rfc3339(end));
        }
        let _ = writeln!(out, "Occurrences: {}", n.occurrences);
        let _ = writeln!(out, "Fingerprint: {}", n.fingerprint);
        if !n.labels.is_empty() {
            let _ = writeln!(
                out,
                "Labels:      {}",
                text::one_line(&text::labels_inline(&n.labels))
            );
        }
        let body = n.body.trim_end();
        if !body.is_empty() {
            out.push('\n');
            out.push_str(body);
            out.push('\n');
        }
    }
    out
}

/// The message for a batch: From, To (every recipient), Subject, Date, Message-ID,
/// `X-Metasystem-Fingerprint` (of the first notification), a text/plain UTF-8 body.
pub fn build_message(
    target: &EmailTarget,
    hostname: &str,
    batch: &[Notification],
) -> Result<Message, String> {
    let fp = batch
        .first()
        .map(|n| n.fingerprint.as_str())
        .unwrap_or("none");
    let domain: String = hostname
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        .collect();
    let domain = if domain.is_empty() {
        "localhost".to_string()
    } else {
        domain
    };
    // The same for every attempt to send these notifications (the message's idempotency
    // key): a mail client drops the repeat of a delivery whose answer was lost.
    let key: String = super::idempotency_key(hostname, batch)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let mut builder = Message::builder()
        .from(target.from.clone())
        .subject(subject(batch))
        .date(SystemTime::now())
        .message_id(Some(format!("<{key}@{domain}>")))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str(FINGERPRINT_HEADER),
            text::one_line(fp),
        ))
        .header(ContentType::TEXT_PLAIN)
        .header(lettre::message::header::MIME_VERSION_1_0);
    for to in &target.to {
        builder = builder.to(to.clone());
    }
    builder
        .body(body_text(batch, hostname))
        .map_err(|e| format!("cannot build the message: {e}"))
}

fn transport(
    target: &EmailTarget,
    hostname: &str,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, lettre::transport::smtp::Error> {
    type Smtp = AsyncSmtpTransport<Tokio1Executor>;
    let builder = match target.tls {
        Tls::None => Smtp::builder_dangerous(target.host.clone()),
        // STARTTLS required: no credentials or message go out if the server does not offer it.
        Tls::StartTls => Smtp::starttls_relay(&target.host)?,
        Tls::Tls => Smtp::relay(&target.host)?,
    };
    let mut builder = builder
        .port(target.port)
        .hello_name(client_id(hostname))
        .timeout(Some(timeout));
    if let Some((user, pw)) = &target.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), pw.expose().to_string()));
    }
    Ok(builder.build())
}

/// The EHLO name: the hostname when it is a valid domain or address, else lettre's default.
fn client_id(hostname: &str) -> ClientId {
    match hostname.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => ClientId::Ipv4(a),
        Ok(std::net::IpAddr::V6(a)) => ClientId::Ipv6(a),
        Err(_)
            if !hostname.is_empty()
                && hostname
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')) =>
        {
            ClientId::Domain(hostname.to_string())
        }
        Err(_) => ClientId::default(),
    }
}

/// Classifies an SMTP failure: 4xx replies, connection, TLS and protocol errors are
/// transient; 5xx replies permanent.
pub fn classify_error(e: &lettre::transport::smtp::Error) -> Outcome {
    let code = e.status().map(u16::from);
    let error = text::truncate_bytes(&text::error_chain(e), ANSWER_CAP);
    if e.is_permanent() {
        Outcome::Permanent { code, error }
    } else {
        Outcome::Transient {
            code,
            error,
            retry_after: None,
        }
    }
}

/// The label of an SMTP failure for the retry statistics: `smtp_4xx` / `smtp_5xx` for a reply
/// (by its first digit), `timeout`, `tls`, `smtp_response` (an unreadable reply),
/// `smtp_client`, `smtp_shutdown`, and `connect` for a connection that failed or broke.
pub fn error_label(e: &lettre::transport::smtp::Error) -> String {
    if let Some(code) = e.status() {
        let code = u16::from(code);
        return format!("smtp_{}xx", code / 100);
    }
    let label = if e.is_timeout() {
        "timeout"
    } else if e.is_tls() {
        "tls"
    } else if e.is_response() {
        "smtp_response"
    } else if e.is_client() {
        "smtp_client"
    } else if e.is_transport_shutdown() {
        "smtp_shutdown"
    } else {
        "connect"
    };
    label.to_string()
}

/// Sends one message for `batch` to every recipient. Each SMTP step is bounded by
/// `timeout`, the whole conversation by four times it.
pub async fn send(
    target: &EmailTarget,
    hostname: &str,
    timeout: Duration,
    batch: &[Notification],
) -> Outcome {
    send_to(target, hostname, timeout, batch, &Settled::new())
        .await
        .outcome
}

/// Sends `batch`, one envelope per recipient: a recipient the server refuses (550) does not
/// fail the message for the others, and one that failed for a while (450) is retried alone.
/// Each recipient gets the rows of `batch` it has not `settled` in earlier attempts (none:
/// nothing is sent to it). The failure's label is [`error_label`]'s (`timeout` when the
/// conversation timed out, `smtp_message` for a message that cannot be built).
pub async fn send_to(
    target: &EmailTarget,
    hostname: &str,
    timeout: Duration,
    batch: &[Notification],
    settled: &Settled,
) -> Sent {
    let ids: Vec<i64> = batch.iter().map(|n| n.id).collect();
    // Per recipient, the rows still to send to it; recipients with the same rows share one
    // built message (the same Message-ID).
    let mut plan: Vec<(&Mailbox, Vec<usize>)> = Vec::new();
    for to in &target.to {
        let done = settled.get(&to.email.to_string());
        let rows: Vec<usize> = (0..batch.len())
            .filter(|i| done.is_none_or(|d| !d.contains_key(&batch[*i].id)))
            .collect();
        if !rows.is_empty() {
            plan.push((to, rows));
        }
    }
    let mut answers: Vec<Answer> = Vec::new();
    if !plan.is_empty() {
        match transport(target, hostname, timeout) {
            Ok(transport) => {
                let mut built: BTreeMap<Vec<usize>, Result<Vec<u8>, String>> = BTreeMap::new();
                for (to, rows) in plan {
                    let message = built.entry(rows.clone()).or_insert_with(|| {
                        let part: Vec<Notification> =
                            rows.iter().map(|i| batch[*i].clone()).collect();
                        build_message(target, hostname, &part).map(|m| m.formatted())
                    });
                    let (outcome, label) = match message {
                        Ok(formatted) => {
                            one_envelope(target, &transport, timeout, to, formatted).await
                        }
                        Err(error) => (
                            Outcome::Permanent {
                                code: None,
                                error: error.clone(),
                            },
                            Some("smtp_message".to_string()),
                        ),
                    };
                    answers.push(Answer {
                        to: to.email.to_string(),
                        ids: rows.iter().map(|i| batch[*i].id).collect(),
                        outcome,
                        label,
                    });
                }
                // QUIT the pooled connection now rather than leave it idle.
                let _ = tokio::time::timeout(timeout, transport.shutdown()).await;
            }
            Err(e) => {
                // No connection: every recipient still to send fails alike.
                let (outcome, label) = (classify_error(&e), Some(error_label(&e)));
                for (to, rows) in plan {
                    answers.push(Answer {
                        to: to.email.to_string(),
                        ids: rows.iter().map(|i| batch[*i].id).collect(),
                        outcome: outcome.clone(),
                        label: label.clone(),
                    });
                }
            }
        }
    }
    let combined = combine(&answers, settled, &ids);
    Sent::per_recipient(answers, combined)
}

/// One envelope (`from` → `to`) of an already formatted message.
async fn one_envelope(
    target: &EmailTarget,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    timeout: Duration,
    to: &Mailbox,
    formatted: &[u8],
) -> (Outcome, Option<String>) {
    let overall = timeout.saturating_mul(4);
    let envelope = match lettre::address::Envelope::new(
        Some(target.from.email.clone()),
        vec![to.email.clone()],
    ) {
        Ok(e) => e,
        Err(e) => {
            let outcome = Outcome::Permanent {
                code: None,
                error: format!("cannot address {to}: {e}"),
            };
            return (outcome, Some("smtp_message".into()));
        }
    };
    match tokio::time::timeout(overall, transport.send_raw(&envelope, formatted)).await {
        Ok(Ok(response)) => {
            let mut answer = u16::from(response.code()).to_string();
            for line in response.message() {
                answer.push(' ');
                answer.push_str(line);
            }
            let outcome = Outcome::Accepted {
                code: Some(u16::from(response.code())),
                answer: text::truncate_bytes(&answer, ANSWER_CAP),
            };
            (outcome, None)
        }
        Ok(Err(e)) => (classify_error(&e), Some(error_label(&e))),
        Err(_) => {
            let outcome = Outcome::Transient {
                code: None,
                error: format!(
                    "SMTP conversation with {}:{} timed out after {overall:?}",
                    target.host, target.port
                ),
                retry_after: None,
            };
            (outcome, Some("timeout".to_string()))
        }
    }
}

/// A message's outcome from its recipients' answers in this attempt and what earlier attempts
/// `settled` for its rows `ids`, and whether it is partial:
/// - a recipient that failed for a while: transient (the message is retried, to the
///   recipients that have not settled only);
/// - else every recipient took it: accepted;
/// - some took it and the others refused it for good: accepted, partial (each refusal in
///   the answer; the notification is not failed: its receivers got it);
/// - none took it: the first refusal.
fn combine(answers: &[Answer], settled: &Settled, ids: &[i64]) -> (Outcome, Option<String>, bool) {
    if let Some(a) = answers.iter().find(|a| a.outcome.is_transient()) {
        let outcome = match &a.outcome {
            Outcome::Transient {
                code,
                error,
                retry_after,
            } => Outcome::Transient {
                code: *code,
                error: format!("{}: {error}", a.to),
                retry_after: *retry_after,
            },
            other => other.clone(),
        };
        return (outcome, a.label.clone(), false);
    }
    let mut took: Vec<String> = Vec::new();
    let mut refused: Vec<(String, String, Option<u16>, Option<String>)> = Vec::new();
    for a in answers {
        match &a.outcome {
            Outcome::Permanent { code, error } => {
                refused.push((a.to.clone(), error.clone(), *code, a.label.clone()))
            }
            _ => took.push(a.to.clone()),
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
        if mine.iter().all(|took| *took) {
            took.push(to.clone());
        } else {
            let error = "refused in an earlier attempt".to_string();
            refused.push((to.clone(), error, None, None));
        }
    }
    let first_accepted = answers.iter().find(|a| a.outcome.is_accepted());
    if refused.is_empty() {
        let outcome = match first_accepted {
            Some(a) => a.outcome.clone(),
            None if took.is_empty() => {
                let outcome = Outcome::Permanent {
                    code: None,
                    error: "no recipient".to_string(),
                };
                return (outcome, Some("smtp_message".to_string()), false);
            }
            None => Outcome::Accepted {
                code: None,
                answer: "already delivered to every recipient".to_string(),
            },
        };
        return (outcome, None, false);
    }
    if took.is_empty() {
        let (_, error, code, label) = refused.swap_remove(0);
        return (Outcome::Permanent { code, error }, label, false);
    }
    let answer = format!(
        "partially delivered: accepted for {}; refused for {}",
        took.join(", "),
        refused
            .iter()
            .map(|(to, error, ..)| format!("{to}: {error}"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let code = first_accepted.and_then(|a| a.outcome.code());
    let outcome = Outcome::Accepted {
        code,
        answer: text::truncate_bytes(&answer, ANSWER_CAP),
    };
    (outcome, None, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::alert::Severity;
    use crate::alerts::channel::tests_support::note;

    fn answer(to: &str, outcome: Outcome) -> Answer {
        Answer {
            to: to.into(),
            ids: vec![1, 2],
            outcome,
            label: None,
        }
    }

    fn ok() -> Outcome {
        Outcome::Accepted {
            code: Some(250),
            answer: "250 ok".into(),
        }
    }

    fn refused() -> Outcome {
        Outcome::Permanent {
            code: Some(550),
            error: "no such user".into(),
        }
    }

    fn busy() -> Outcome {
        Outcome::Transient {
            code: Some(450),
            error: "busy".into(),
            retry_after: None,
        }
    }

    #[test]
    fn a_message_is_accepted_partial_refused_or_retried_by_its_recipients() {
        let none = Settled::new();
        let ids = [1, 2];
        let (o, _, partial) = combine(&[answer("a", ok()), answer("b", ok())], &none, &ids);
        assert!(o.is_accepted() && !partial);
        let (o, _, partial) = combine(&[answer("a", ok()), answer("b", refused())], &none, &ids);
        assert!(o.is_accepted() && partial, "{o:?}");
        assert!(
            format!("{o:?}").contains("refused for b: no such user"),
            "{o:?}"
        );
        let (o, _, partial) = combine(
            &[answer("a", refused()), answer("b", refused())],
            &none,
            &ids,
        );
        assert!(o.is_permanent() && !partial);
        // A transient failure of one retries the message (to those not settled).
        let (o, _, _) = combine(&[answer("a", ok()), answer("b", busy())], &none, &ids);
        assert!(o.is_transient());
        assert!(format!("{o:?}").contains("b: busy"), "{o:?}");
        // A retry that reaches the last recipient: what the others settled counts.
        let mut settled = Settled::new();
        settled
            .entry("a".into())
            .or_default()
            .extend([(1, true), (2, true)]);
        let (o, _, partial) = combine(&[answer("b", ok())], &settled, &ids);
        assert!(o.is_accepted() && !partial);
        settled.entry("c".into()).or_default().insert(1, false);
        let (o, _, partial) = combine(&[answer("b", ok())], &settled, &ids);
        assert!(o.is_accepted() && partial, "{o:?}");
        // Rows of other messages do not count.
        let (o, _, partial) = combine(&[answer("b", ok())], &settled, &[9]);
        assert!(o.is_accepted() && !partial);
        // Nothing left to send to anyone.
        let (o, _, _) = combine(&[], &settled, &[2]);
        assert!(o.is_accepted(), "{o:?}");
        let (o, _, _) = combine(&[], &Settled::new(), &ids);
        assert!(o.is_permanent(), "{o:?}");
    }

    #[test]
    fn smtp_addresses() {
        assert_eq!(
            parse_smtp("mail.example.com:2525", Tls::None),
            Ok(("mail.example.com".into(), 2525))
        );
        assert_eq!(
            parse_smtp("mail.example.com", Tls::Tls),
            Ok(("mail.example.com".into(), 465))
        );
        assert_eq!(
            parse_smtp("mail.example.com", Tls::StartTls),
            Ok(("mail.example.com".into(), 587))
        );
        assert_eq!(parse_smtp("[::1]:25", Tls::None), Ok(("::1".into(), 25)));
        assert_eq!(parse_smtp("[::1]", Tls::None), Ok(("::1".into(), 25)));
        for bad in [
            "::1:25",
            "host:0",
            "host:70000",
            "host:x",
            ":25",
            "[::1",
            "[::1]x",
            "a b:25",
        ] {
            assert!(parse_smtp(bad, Tls::None).is_err(), "{bad}");
        }
        assert_eq!(parse_smtp("", Tls::None), Err("no `smtp`".to_string()));
    }

    #[test]
    fn a_message_has_mime_version_and_a_message_id_stable_across_attempts() {
        let target = EmailTarget {
            host: "localhost".into(),
            port: 25,
            tls: Tls::None,
            from: "a@example.org".parse().unwrap(),
            to: vec!["b@example.org".parse().unwrap()],
            credentials: None,
        };
        let mut n = note(Severity::Critical, Status::Firing, "x");
        n.id = 7;
        let one = build_message(&target, "host1", std::slice::from_ref(&n)).unwrap();
        let two = build_message(&target, "host1", &[n]).unwrap();
        let text = String::from_utf8(one.formatted()).unwrap();
        assert!(text.contains("MIME-Version: 1.0"), "{text}");
        let id = |m: &Message| {
            String::from_utf8(m.formatted())
                .unwrap()
                .lines()
                .find(|l| l.starts_with("Message-ID:"))
                .map(str::to_string)
        };
        assert!(id(&one).is_some());
        assert_eq!(id(&one), id(&two));
    }

    #[test]
    fn subjects() {
        let a = note(Severity::Critical, Status::Firing, "disk\nfull");
        let b = note(Severity::Info, Status::Firing, "b");
        let c = note(Severity::Warning, Status::Resolved, "c");
        assert_eq!(
            subject(std::slice::from_ref(&a)),
            "[metasystem] CRITICAL: disk full"
        );
        assert_eq!(
            subject(&[a.clone(), b.clone(), c.clone()]),
            "[metasystem] CRITICAL: disk full (+2 more)"
        );
        assert_eq!(
            subject(std::slice::from_ref(&c)),
            "[metasystem] RESOLVED: c"
        );
        // Regression (the attack): an earlier episode's end first, a firing after it: the
        // subject is about what fires, the most severe first.
        assert_eq!(
            subject(&[c.clone(), b.clone(), a.clone()]),
            "[metasystem] CRITICAL: disk full (+2 more)"
        );
        assert_eq!(subject(&[c, b]), "[metasystem] INFO: b (+1 more)");
        let long = note(Severity::Info, Status::Firing, &"ß".repeat(1000));
        assert!(subject(&[long]).chars().count() < 200);
    }

    #[test]
    fn body_lists_every_notification() {
        let mut a = note(Severity::Critical, Status::Firing, "a");
        a.labels.insert("k".into(), "v".into());
        a.occurrences = 4;
        let b = note(Severity::Warning, Status::Resolved, "b");
        let t = body_text(&[a.clone(), b.clone()], "host1");
        assert!(t.starts_with("2 notification(s) from metasystem on host1."));
        for needle in [
            "== 1/2: a",
            "Status:      firing",
            "Severity:    critical",
            "Occurrences: 4",
            &format!("Fingerprint: {}", a.fingerprint),
            "Labels:      k=v",
            "body of a",
            "== 2/2: b",
            "Status:      resolved",
            "Ended:       2023-11-14T22:14:20Z",
            "Started:     2023-11-14T22:13:20.123Z",
        ] {
            assert!(t.contains(needle), "{needle} in {t}");
        }
    }
}
