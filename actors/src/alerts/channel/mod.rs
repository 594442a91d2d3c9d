//! Alert channels: where notifications go (email, webhook, Slack, Discord, Alertmanager, the
//! log) and how one
//! batch of notifications becomes one message on the wire.
//!
//! - [`prepare`] checks a [`ChannelSpec`] and resolves its secrets into a ready [`Channel`].
//! - [`Deliverer::send`] sends one batch as one message and classifies the result
//!   ([`Outcome`]: accepted, transient with an optional `retry_after`, permanent);
//!   [`Deliverer::send_labelled`] adds the failure's label for the retry statistics
//!   (`http_503`, `timeout`, `connect`, `smtp_4xx`, ...; see [`failure`]).
//! - The payload builders ([`webhook::payload`], [`chat::slack_payload`],
//!   [`chat::discord_payload`], [`email::build_message`]) are pure and truncate long texts
//!   instead of rejecting them.

pub mod alertmanager;
pub mod chat;
pub mod email;
pub mod http;
pub mod text;
pub mod webhook;

use std::fmt;
use std::time::Duration;

use crate::alerts::alert::{Notification, Severity, Status};
use crate::retry::ErrorKind;
use crate::store::outbox::{AttemptOutcome, RecipientOutcome, Settled};

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tls {
    /// Plain text (a local relay).
    None,
    /// Plain connection upgraded with STARTTLS, which the server must offer.
    #[default]
    StartTls,
    /// Implicit TLS from the first byte (SMTPS, port 465).
    Tls,
}

impl Tls {
    pub fn as_str(self) -> &'static str {
        match self {
            Tls::None => "none",
            Tls::StartTls => "starttls",
            Tls::Tls => "tls",
        }
    }

    pub fn parse(s: &str) -> Option<Tls> {
        match s {
            "none" => Some(Tls::None),
            "starttls" => Some(Tls::StartTls),
            "tls" => Some(Tls::Tls),
            _ => None,
        }
    }

    /// The port used when `smtp` names none.
    pub fn default_port(self) -> u16 {
        match self {
            Tls::None => 25,
            Tls::StartTls => 587,
            Tls::Tls => 465,
        }
    }
}

/// An email channel as configured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EmailSpec {
    /// `host:port` (`[v6]:port` for an IPv6 address; the port defaults by `tls`).
    pub smtp: Option<String>,
    pub tls: Tls,
    pub from: Option<String>,
    pub to: Vec<String>,
    pub username: Option<String>,
    /// The environment variable holding the SMTP password.
    pub password_env: Option<String>,
}

/// What a channel is, as configured.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelKind {
    Email(EmailSpec),
    Webhook {
        url: Option<String>,
    },
    Slack {
        url: Option<String>,
    },
    Discord {
        url: Option<String>,
    },
    /// `urls`: the Alertmanagers (each gets every alert); `resend_interval`: how often the
    /// firing alerts are sent again.
    Alertmanager {
        urls: Vec<String>,
        resend_interval: Duration,
    },
    Log,
}

/// A configured channel: its name and kind.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelSpec {
    pub name: String,
    pub kind: ChannelKind,
}

impl ChannelKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            ChannelKind::Email(_) => "email",
            ChannelKind::Webhook { .. } => "webhook",
            ChannelKind::Slack { .. } => "slack",
            ChannelKind::Discord { .. } => "discord",
            ChannelKind::Alertmanager { .. } => "alertmanager",
            ChannelKind::Log => "log",
        }
    }
}

impl ChannelSpec {
    /// `"email" | "webhook" | "slack" | "discord" | "alertmanager" | "log"`.
    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }
}

/// The most notifications one message carries, per channel type.
pub const WEBHOOK_MAX_PER_MESSAGE: usize = 100;
pub const SLACK_MAX_PER_MESSAGE: usize = 10;
pub const DISCORD_MAX_PER_MESSAGE: usize = 10;
pub const EMAIL_MAX_PER_MESSAGE: usize = 50;
pub const ALERTMANAGER_MAX_PER_MESSAGE: usize = 500;

/// A string that never shows in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A channel ready to send: spec checked, URL parsed, addresses parsed, password resolved.
#[derive(Debug, Clone)]
pub struct Channel {
    name: String,
    target: Target,
}

#[derive(Debug, Clone)]
pub(crate) enum Target {
    Email(email::EmailTarget),
    Webhook(reqwest::Url),
    Slack(reqwest::Url),
    /// With `wait=true` in its query.
    Discord(reqwest::Url),
    Alertmanager(alertmanager::AlertmanagerTarget),
    Log,
}

impl Channel {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn type_name(&self) -> &'static str {
        match self.target {
            Target::Email(_) => "email",
            Target::Webhook(_) => "webhook",
            Target::Slack(_) => "slack",
            Target::Discord(_) => "discord",
            Target::Alertmanager(_) => "alertmanager",
            Target::Log => "log",
        }
    }

    /// The recipients that answer each for itself, as stored per recipient: an email
    /// channel's addresses, an Alertmanager channel's URLs; none for others.
    pub fn recipients(&self) -> Vec<String> {
        match &self.target {
            Target::Email(t) => t.to.iter().map(|m| m.email.to_string()).collect(),
            Target::Alertmanager(t) => t.members.iter().map(|m| m.name.clone()).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether each recipient answers for itself (email): see [`Sent::recipients`].
    pub fn is_email(&self) -> bool {
        matches!(self.target, Target::Email(_))
    }

    /// Whether each Alertmanager of the channel answers for itself: see [`Sent::recipients`].
    pub fn is_alertmanager(&self) -> bool {
        matches!(self.target, Target::Alertmanager(_))
    }

    /// How often the firing alerts are sent again (Alertmanager channels).
    pub fn resend_interval(&self) -> Option<Duration> {
        match &self.target {
            Target::Alertmanager(t) => Some(t.resend),
            _ => None,
        }
    }

    /// How many notifications one message may carry (`usize::MAX`: unlimited).
    pub fn max_per_message(&self) -> usize {
        match self.target {
            Target::Email(_) => EMAIL_MAX_PER_MESSAGE,
            Target::Webhook(_) => WEBHOOK_MAX_PER_MESSAGE,
            Target::Slack(_) => SLACK_MAX_PER_MESSAGE,
            Target::Discord(_) => DISCORD_MAX_PER_MESSAGE,
            Target::Alertmanager(_) => ALERTMANAGER_MAX_PER_MESSAGE,
            Target::Log => usize::MAX,
        }
    }

    /// The URL a message is posted to (HTTP channels; Discord's carries `wait=true`).
    pub fn url(&self) -> Option<&str> {
        match &self.target {
            Target::Webhook(u) | Target::Slack(u) | Target::Discord(u) => Some(u.as_str()),
            Target::Email(_) | Target::Alertmanager(_) | Target::Log => None,
        }
    }
}

/// Checks the spec is complete and resolves secrets through `env` (the process environment in
/// production). `Err` is a one-line reason naming what is missing.
pub fn prepare(
    spec: &ChannelSpec,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Channel, String> {
    let what = format!("{} channel `{}`", spec.type_name(), spec.name);
    if spec.name.trim().is_empty() {
        return Err(format!("{} channel: empty name", spec.type_name()));
    }
    let target = match &spec.kind {
        ChannelKind::Email(e) => {
            Target::Email(email::prepare(e, env).map_err(|r| format!("{what}: {r}"))?)
        }
        ChannelKind::Webhook { url } => {
            Target::Webhook(http::parse_url(url.as_deref()).map_err(|r| format!("{what}: {r}"))?)
        }
        ChannelKind::Slack { url } => {
            Target::Slack(http::parse_url(url.as_deref()).map_err(|r| format!("{what}: {r}"))?)
        }
        ChannelKind::Discord { url } => {
            let url = http::parse_url(url.as_deref()).map_err(|r| format!("{what}: {r}"))?;
            Target::Discord(chat::discord_url(url))
        }
        ChannelKind::Alertmanager {
            urls,
            resend_interval,
        } => Target::Alertmanager(
            alertmanager::prepare(urls, *resend_interval).map_err(|r| format!("{what}: {r}"))?,
        ),
        ChannelKind::Log => Target::Log,
    };
    Ok(Channel {
        name: spec.name.clone(),
        target,
    })
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Delivered. `answer`: the channel's reply (HTTP body, SMTP final response), capped to
    /// about 1 KiB.
    Accepted { code: Option<u16>, answer: String },
    /// Try again later (no sooner than `retry_after` when the channel said so).
    Transient {
        code: Option<u16>,
        error: String,
        retry_after: Option<Duration>,
    },
    /// Retrying will not help (bad URL, rejected payload, unknown mailbox).
    Permanent { code: Option<u16>, error: String },
}

impl Outcome {
    pub fn is_accepted(&self) -> bool {
        matches!(self, Outcome::Accepted { .. })
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, Outcome::Transient { .. })
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, Outcome::Permanent { .. })
    }

    /// The HTTP status or SMTP reply code, when there was one.
    pub fn code(&self) -> Option<u16> {
        match self {
            Outcome::Accepted { code, .. }
            | Outcome::Transient { code, .. }
            | Outcome::Permanent { code, .. } => *code,
        }
    }
}

/// The longest answer or error text an [`Outcome`] carries, in bytes.
pub const ANSWER_CAP: usize = 1024;

/// Sends batches: one HTTP client (connection pool, timeout, user agent) and the hostname
/// (the webhook `instance` label, the SMTP EHLO name, the Message-ID domain).
///
/// The HTTP client is built at the first HTTP delivery: building it loads the system's root
/// certificates (about 2 MB), which a daemon that only logs or mails its alerts never needs.
#[derive(Debug, Clone)]
pub struct Deliverer {
    client: std::sync::Arc<tokio::sync::OnceCell<Result<reqwest::Client, String>>>,
    hostname: String,
    timeout: Duration,
}

/// `metasystem/<version>`.
pub const USER_AGENT: &str = concat!("metasystem/", env!("CARGO_PKG_VERSION"));

impl Deliverer {
    /// `timeout` bounds one HTTP request (connect to last body byte) and each SMTP command.
    pub fn new(timeout: Duration, hostname: String) -> Result<Deliverer, String> {
        let timeout = if timeout.is_zero() {
            Duration::from_secs(1)
        } else {
            timeout
        };
        Ok(Deliverer {
            client: Default::default(),
            hostname,
            timeout,
        })
    }

    /// The HTTP client, built on first use on the blocking pool (it reads certificate files).
    async fn client(&self) -> Result<&reqwest::Client, Outcome> {
        let timeout = self.timeout;
        let built = self
            .client
            .get_or_init(|| async move {
                let build = move || {
                    reqwest::Client::builder()
                        .timeout(timeout)
                        .connect_timeout(timeout)
                        .user_agent(USER_AGENT)
                        // A redirected POST turns into a GET: a moved webhook is a
                        // configuration error.
                        .redirect(reqwest::redirect::Policy::none())
                        .build()
                        .map_err(|e| {
                            format!("cannot build the HTTP client: {}", text::error_chain(&e))
                        })
                };
                tokio::task::spawn_blocking(build)
                    .await
                    .unwrap_or_else(|e| Err(format!("cannot build the HTTP client: {e}")))
            })
            .await;
        built.as_ref().map_err(|e| Outcome::Transient {
            code: None,
            error: e.clone(),
            retry_after: None,
        })
    }

    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `batch` as one message. An empty batch sends nothing and is accepted.
    pub async fn send(&self, channel: &Channel, batch: &[Notification]) -> Outcome {
        self.send_labelled(channel, batch).await.0
    }

    /// [`Deliverer::send`], with the failure's label for the retry statistics (`None` when
    /// accepted): see [`http::post_json_labelled`] and [`email::send_to`]; `http_client`
    /// when the HTTP client cannot be built.
    pub async fn send_labelled(
        &self,
        channel: &Channel,
        batch: &[Notification],
    ) -> (Outcome, Option<String>) {
        let sent = self.deliver(channel, batch, &Settled::new()).await;
        (sent.outcome, sent.label)
    }

    /// Sends `batch` as one message, with each recipient's answer (email: each recipient gets
    /// the rows it has not `settled` in earlier attempts; other channels have one receiver
    /// and ignore it).
    pub async fn deliver(
        &self,
        channel: &Channel,
        batch: &[Notification],
        settled: &Settled,
    ) -> Sent {
        if batch.is_empty() {
            let outcome = Outcome::Accepted {
                code: None,
                answer: "empty batch: nothing sent".to_string(),
            };
            return Sent::whole(outcome, None);
        }
        let (url, body) = match &channel.target {
            Target::Webhook(url) => (url, webhook::payload(&channel.name, &self.hostname, batch)),
            Target::Slack(url) => (url, chat::slack_payload(batch)),
            Target::Discord(url) => (url, chat::discord_payload(batch)),
            Target::Email(target) => {
                return email::send_to(target, &self.hostname, self.timeout, batch, settled).await
            }
            Target::Alertmanager(target) => {
                return match self.client().await {
                    Ok(client) => {
                        let now_ms = crate::store::unix_ms(std::time::SystemTime::now());
                        alertmanager::send_to(
                            client,
                            target,
                            &self.hostname,
                            batch,
                            settled,
                            now_ms,
                        )
                        .await
                    }
                    Err(outcome) => Sent::whole(outcome, Some("http_client".to_string())),
                };
            }
            Target::Log => {
                log_batch(&channel.name, batch);
                let outcome = Outcome::Accepted {
                    code: None,
                    answer: format!("logged {} notification(s)", batch.len()),
                };
                return Sent::whole(outcome, None);
            }
        };
        let (outcome, label) = match self.client().await {
            Ok(client) => {
                let key = idempotency_key(&self.hostname, batch);
                http::post_json_labelled(client, url, &body, &key).await
            }
            Err(outcome) => (outcome, Some("http_client".to_string())),
        };
        Sent::whole(outcome, label)
    }
}

/// What one delivery came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// For the message as a whole.
    pub outcome: Outcome,
    /// The failure's label for the retry statistics; `None` when accepted.
    pub label: Option<String>,
    /// Accepted by some recipients and refused for good by the others (email).
    pub partial: bool,
    /// What each recipient answered (email); empty for channels with one receiver.
    pub recipients: Vec<RecipientOutcome>,
}

/// One recipient's answer in an attempt (an email address, an Alertmanager of an HA set), for
/// the rows sent to it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    pub to: String,
    pub ids: Vec<i64>,
    pub outcome: Outcome,
    pub label: Option<String>,
}

impl Sent {
    /// A delivery to several recipients: what the message as a whole came to (`combined`:
    /// outcome, label, partial), and each recipient's answer, kept for the store.
    pub(crate) fn per_recipient(
        answers: Vec<Answer>,
        (outcome, label, partial): (Outcome, Option<String>, bool),
    ) -> Sent {
        let recipients = answers
            .into_iter()
            .map(|a| {
                let (kind, code, detail) = match a.outcome {
                    Outcome::Accepted { code, answer } => (AttemptOutcome::Accepted, code, answer),
                    Outcome::Transient { code, error, .. } => {
                        (AttemptOutcome::Transient, code, error)
                    }
                    Outcome::Permanent { code, error } => (AttemptOutcome::Permanent, code, error),
                };
                RecipientOutcome {
                    recipient: a.to,
                    ids: a.ids,
                    outcome: kind,
                    code,
                    detail,
                }
            })
            .collect();
        Sent {
            outcome,
            label,
            partial,
            recipients,
        }
    }

    /// A delivery to a channel with one receiver.
    pub fn whole(outcome: Outcome, label: Option<String>) -> Sent {
        Sent {
            outcome,
            label,
            partial: false,
            recipients: Vec::new(),
        }
    }

    /// What the attempt means for the outbox rows: its outcome, code and detail.
    pub fn attempt(&self) -> (AttemptOutcome, Option<u16>, String) {
        match &self.outcome {
            Outcome::Accepted { code, answer } if self.partial => {
                (AttemptOutcome::Partial, *code, answer.clone())
            }
            Outcome::Accepted { code, answer } => (AttemptOutcome::Accepted, *code, answer.clone()),
            Outcome::Transient { code, error, .. } => {
                (AttemptOutcome::Transient, *code, error.clone())
            }
            Outcome::Permanent { code, error } => (AttemptOutcome::Permanent, *code, error.clone()),
        }
    }
}

/// The idempotency key of a message from `hostname`: the same for every attempt to deliver
/// the same notifications (their outbox ids, which survive restarts, with what each says:
/// fingerprint, episode, status), so a receiver can drop the repeat of a delivery whose answer
/// was lost (a timeout, a crash before it was recorded); another for anything else, from
/// another host, or from a new store whose ids start again at 1. Sent as the
/// `Idempotency-Key` header (and a mail's `Message-ID`).
pub fn idempotency_key(hostname: &str, batch: &[Notification]) -> String {
    let mut parts: Vec<String> = batch
        .iter()
        .map(|n| {
            format!(
                "{}:{}:{}:{}:{}",
                n.id,
                n.fingerprint,
                n.starts_at_ms,
                n.status.as_str(),
                n.ends_at_ms.unwrap_or(0)
            )
        })
        .collect();
    parts.sort_unstable();
    let text = format!("{hostname}|{}", parts.join(","));
    // Two FNV-1a hashes of the text (forward and reversed): 128 bits.
    let reversed: String = text.chars().rev().collect();
    format!(
        "ms-{}{}",
        super::alert::fingerprint(&text),
        super::alert::fingerprint(&reversed)
    )
}

/// An alert's episode, for receivers: its fingerprint and when the episode began (the same in
/// its firing, its reminders and its resolution; another for the next time it fires).
pub fn episode(n: &Notification) -> String {
    format!("{}:{}", n.fingerprint, n.starts_at_ms)
}

/// A failed delivery as the retry statistics record it: the label (the channel's, else
/// `http_<code>` or `delivery_failed`) and whether it was retried (transient) or not
/// (permanent), as the delivery itself decided. `None` for an accepted one.
pub fn failure(outcome: &Outcome, label: Option<String>) -> Option<(String, ErrorKind)> {
    let kind = match outcome {
        Outcome::Accepted { .. } => return None,
        Outcome::Transient { .. } => ErrorKind::Transient,
        Outcome::Permanent { .. } => ErrorKind::Permanent,
    };
    let label = label.unwrap_or_else(|| match outcome.code() {
        Some(code) => format!("http_{code}"),
        None => "delivery_failed".to_string(),
    });
    Some((label, kind))
}

/// The `log` channel: one tracing event per notification, at the severity's level.
fn log_batch(channel: &str, batch: &[Notification]) {
    for n in batch {
        let labels = text::labels_inline(&n.labels);
        let status = n.status.as_str();
        let severity = n.severity.as_str();
        macro_rules! emit {
            ($level:ident) => {
                tracing::$level!(
                    channel,
                    status,
                    severity,
                    title = %n.title,
                    source = %n.source,
                    fingerprint = %n.fingerprint,
                    occurrences = n.occurrences,
                    starts_at = %text::rfc3339(n.starts_at_ms),
                    labels = %labels,
                    body = %n.body,
                    "alert {status}: {}",
                    n.title
                )
            };
        }
        match n.severity {
            Severity::Critical => emit!(error),
            Severity::Warning => emit!(warn),
            Severity::Info => emit!(info),
        }
    }
}

/// "firing" when any notification of the batch fires, else "resolved".
/// The notification a message's headline (a mail's subject, a chat summary's emoji) is about:
/// the most severe firing one (the first of those), else the first. A message that says
/// "resolved" up front while something in it fires misleads its reader.
pub fn lead(batch: &[Notification]) -> Option<&Notification> {
    let mut lead: Option<&Notification> = None;
    for n in batch.iter().filter(|n| n.status == Status::Firing) {
        if lead.is_none_or(|l| n.severity > l.severity) {
            lead = Some(n);
        }
    }
    lead.or(batch.first())
}

pub fn batch_status(batch: &[Notification]) -> Status {
    if batch.iter().any(|n| n.status == Status::Firing) {
        Status::Firing
    } else {
        Status::Resolved
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use std::collections::BTreeMap;

    use crate::alerts::alert::{fingerprint, Notification, Severity, Status};

    pub fn note(severity: Severity, status: Status, title: &str) -> Notification {
        let key = format!("{severity}:{title}");
        Notification {
            id: 0,
            fingerprint: fingerprint(&key),
            key,
            status,
            severity,
            title: title.to_string(),
            body: format!("body of {title}"),
            source: "root/test".to_string(),
            labels: BTreeMap::new(),
            starts_at_ms: 1_700_000_000_123,
            ends_at_ms: match status {
                Status::Firing => None,
                Status::Resolved => Some(1_700_000_060_000),
            },
            occurrences: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn type_names_and_limits() {
        let cases = [
            (
                ChannelKind::Webhook {
                    url: Some("http://h/x".into()),
                },
                "webhook",
                100,
            ),
            (
                ChannelKind::Slack {
                    url: Some("https://h/x".into()),
                },
                "slack",
                10,
            ),
            (
                ChannelKind::Discord {
                    url: Some("https://h/x".into()),
                },
                "discord",
                10,
            ),
            (ChannelKind::Log, "log", usize::MAX),
        ];
        for (kind, name, max) in cases {
            let spec = ChannelSpec {
                name: "c".into(),
                kind,
            };
            assert_eq!(spec.type_name(), name);
            let ch = prepare(&spec, &env_none).expect("complete spec");
            assert_eq!(ch.type_name(), name);
            assert_eq!(ch.name(), "c");
            assert_eq!(ch.max_per_message(), max);
        }
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let spec = ChannelSpec {
            name: "ops".into(),
            kind: ChannelKind::Email(EmailSpec {
                smtp: Some("mail.example.com:587".into()),
                tls: Tls::StartTls,
                from: Some("alerts@example.com".into()),
                to: vec!["ops@example.com".into()],
                username: Some("bot".into()),
                password_env: Some("PW".into()),
            }),
        };
        let env = |k: &str| (k == "PW").then(|| "hunter2-very-secret".to_string());
        let ch = prepare(&spec, &env).expect("complete");
        let shown = format!("{ch:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("bot"));
        assert_eq!(ch.max_per_message(), 50);
    }

    #[test]
    fn an_idempotency_key_names_the_notifications_and_the_host_not_just_row_ids() {
        use tests_support::note;
        let mut a = note(Severity::Critical, Status::Firing, "a");
        a.id = 1;
        let key = idempotency_key("h1", std::slice::from_ref(&a));
        assert_eq!(
            key,
            idempotency_key("h1", std::slice::from_ref(&a)),
            "stable"
        );
        assert_ne!(
            key,
            idempotency_key("h2", std::slice::from_ref(&a)),
            "another host"
        );
        let mut resolved = a.clone();
        resolved.status = Status::Resolved;
        resolved.ends_at_ms = Some(a.starts_at_ms + 1);
        assert_ne!(
            key,
            idempotency_key("h1", &[resolved]),
            "same row id, another state"
        );
        let mut later = a.clone();
        later.starts_at_ms += 1000;
        assert_ne!(
            key,
            idempotency_key("h1", &[later]),
            "another episode (a new store)"
        );
        let mut b = note(Severity::Critical, Status::Firing, "b");
        b.id = 2;
        assert_eq!(
            idempotency_key("h1", &[a.clone(), b.clone()]),
            idempotency_key("h1", &[b, a]),
            "order does not matter"
        );
    }

    #[test]
    fn batch_status_is_firing_if_any_fires() {
        use tests_support::note;
        let r = note(Severity::Info, Status::Resolved, "a");
        let f = note(Severity::Info, Status::Firing, "b");
        assert_eq!(batch_status(std::slice::from_ref(&r)), Status::Resolved);
        assert_eq!(batch_status(&[r, f]), Status::Firing);
    }
}
