//! `kind = "alerts"`: routes alerts by severity to channels, with dedup, thresholds, cooldowns,
//! grouping, silences and a durable outbox (see `metasystem_actors::alerts`).
//!
//! Config:
//! - `dedup_window` (default 1h), `group_wait` (default 10s, 0 to send at once);
//! - `after = { critical = 3, warning = 5, info = 10 }`: consecutive occurrences before an
//!   alert is sent (one-shot conditions such as a give-up are sent at the first);
//! - `repeat_interval` (default 4h): how often a condition that keeps firing is notified again;
//!   `cooldown = { critical = "1h", warning = "2h", info = "24h" }` and `dedup_window`: within
//!   one firing episode, never more often than these (a new episode, after a resolved, is
//!   notified at once);
//! - `retry = { initial = "1s", max = "5m", adaptive = false }` (full-jitter backoff; with
//!   `adaptive = true`, each channel's first delay follows the median time the channel took
//!   to recover over its last week of delivery runs, once five runs have recovered, between
//!   100ms and `max` (at most 10m); see `metasystem retries`), `timeout` (one delivery, default 10s);
//! - `channels = [{ name, type = "email" | "webhook" | "slack" | "discord" | "alertmanager" |
//!   "log", ... }]`: email takes `smtp` ("host:port"), `tls` (none | starttls | tls), `from`,
//!   `to` (a list), `username`, `password_env`; alertmanager takes `urls` (a list of
//!   Alertmanager base URLs, each gets every alert) and `resend_interval` (default 1m, 1s to
//!   1h); the others take `url`. A setting that is there but wrong (not
//!   an http(s) URL, a port out of range, not an address, an empty `to`) is an error where it
//!   is written. A channel whose settings are incomplete
//!   (or whose password variable is unset) is accepted here, reported once when the actor
//!   starts, and skipped; the others work;
//! - `routes = { critical = [names], warning = [names], info = [names] }` (default: every
//!   channel for every severity).
//!
//! Operations: `status`, `test channel=NAME`.

use std::time::Duration;

use metasystem_actors::alerts::actor::{AlertsActor, AlertsArgs, AlertsMessage};
use metasystem_actors::alerts::channel::{ChannelKind, ChannelSpec, EmailSpec, Tls};
use metasystem_actors::alerts::{PerSeverity, Policy, Severity};
use metasystem_actors::ChildSpec;
use serde_json::Value;

use super::{ActorKind, CallCx, CallError, NoArgs, Op, ParseCx, Services};
use crate::config::reader::{suggest, Table};
use crate::config::schema::{key, tables, Key, Obj, Ty, Union};
use crate::config::{bounded, MAX_DURATION};

const TYPES: &[&str] = &[
    "email",
    "webhook",
    "slack",
    "discord",
    "alertmanager",
    "log",
];

#[derive(Debug, Clone, PartialEq)]
pub struct AlertsConfig {
    pub policy: Policy,
    pub group_wait: Duration,
    pub channels: Vec<ChannelSpec>,
    pub routes: PerSeverity<Vec<String>>,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub retry_adaptive: bool,
    pub timeout: Duration,
    /// This host's identity (`[daemon] host_id`, else as `metasystem_actors::host` resolves
    /// it): the host alerts name, Alertmanager's `host` label, as `hosts` names it.
    pub host: String,
}

impl AlertsConfig {
    /// The deliveries' retry policy, as `retries` judges the channels' runs by.
    pub fn retry_policy(&self) -> metasystem_actors::retry::RetryPolicy {
        metasystem_actors::alerts::actor::retry_policy(
            self.retry_initial,
            self.retry_max,
            self.retry_adaptive,
        )
    }
}

/// `after = { critical = 3, ... }`.
fn thresholds(cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>, into: &mut PerSeverity<u32>) {
    let Some(mut table) = t.table(cx.d, "after") else {
        return;
    };
    table.context = format!("`after` of {}", t.context);
    for s in Severity::ALL {
        if let Some(v) = table.integer(cx.d, s.as_str()) {
            match u32::try_from(*v.get_ref()) {
                Ok(n) if (1..=1000).contains(&n) => *into.get_mut(s) = n,
                _ => cx.d.error(
                    v.span(),
                    format!("`{}` in {} must be between 1 and 1000", s, table.context),
                ),
            }
        }
    }
    table.finish(cx.d);
}

/// `cooldown = { critical = "1h", ... }`.
fn cooldowns(cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>, into: &mut PerSeverity<Duration>) {
    let Some(mut table) = t.table(cx.d, "cooldown") else {
        return;
    };
    table.context = format!("`cooldown` of {}", t.context);
    for s in Severity::ALL {
        if let Some(d) = bounded(cx.d, &mut table, s.as_str(), Duration::ZERO, MAX_DURATION) {
            *into.get_mut(s) = d;
        }
    }
    table.finish(cx.d);
}

/// One `channels` item.
fn channel(
    cx: &mut ParseCx<'_>,
    table: &toml::de::DeTable<'_>,
    span: std::ops::Range<usize>,
    parent: &str,
) -> Option<ChannelSpec> {
    let mut t = Table::new(table, span, format!("a channel of {parent}"));
    let name = t.required_string(cx.d, "name");
    if let Some(n) = &name {
        t.context = format!("channel `{}` of {parent}", n.get_ref());
        if let Err(problem) = metasystem_actors::supervision::check_name(n.get_ref()) {
            cx.d.error(n.span(), problem.replace("child name", "channel name"));
        }
    }
    let kind = if t.has("type") {
        t.choice(cx.d, "type", TYPES).map(|k| *k.get_ref())
    } else {
        cx.d.error(
            t.span.clone(),
            format!(
                "{} is missing the required key `type` ({})",
                t.context,
                TYPES.join(", ")
            ),
        );
        t.allow("type");
        None
    };
    // A value that is there but wrong is an error where it is written; one that is missing
    // (or a password variable unset) leaves the channel incomplete: skipped with a warning.
    let url = |cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>| {
        let u = t.string(cx.d, "url")?;
        if let Err(why) = metasystem_actors::alerts::channel::http::parse_url(Some(u.get_ref())) {
            cx.d.error(
                u.span(),
                format!("{why} in {}: {:?}", t.context, u.get_ref()),
            );
        }
        Some(u.get_ref().clone())
    };
    let kind = match kind? {
        "email" => {
            use metasystem_actors::alerts::channel::email::{parse_mailbox, parse_smtp};
            let tls = t
                .choice(cx.d, "tls", &["none", "starttls", "tls"])
                .and_then(|v| Tls::parse(v.get_ref()))
                .unwrap_or_default();
            let smtp = t.string(cx.d, "smtp");
            if let Some(v) = &smtp {
                if let Err(why) = parse_smtp(v.get_ref(), tls) {
                    cx.d.error(v.span(), format!("{why} in {}", t.context));
                }
            }
            let from = t.string(cx.d, "from");
            if let Some(v) = &from {
                if let Err(why) = parse_mailbox(v.get_ref(), "from") {
                    cx.d.error(v.span(), format!("{why} in {}", t.context));
                }
            }
            let to = t.strings(cx.d, "to");
            if let Some(list) = &to {
                if list.is_empty() {
                    cx.d.error(
                        t.span.clone(),
                        format!(
                            "`to` in {} is empty: name at least one recipient",
                            t.context
                        ),
                    );
                }
                for v in list {
                    if let Err(why) = parse_mailbox(v.get_ref(), "to") {
                        cx.d.error(v.span(), format!("{why} in {}", t.context));
                    }
                }
            }
            ChannelKind::Email(EmailSpec {
                smtp: smtp.map(|v| v.get_ref().clone()),
                tls,
                from: from.map(|v| v.get_ref().clone()),
                to: to
                    .unwrap_or_default()
                    .into_iter()
                    .map(|v| v.get_ref().clone())
                    .collect(),
                username: t.string(cx.d, "username").map(|v| v.get_ref().clone()),
                password_env: t.string(cx.d, "password_env").map(|v| v.get_ref().clone()),
            })
        }
        "webhook" => ChannelKind::Webhook {
            url: url(cx, &mut t),
        },
        "slack" => ChannelKind::Slack {
            url: url(cx, &mut t),
        },
        "discord" => ChannelKind::Discord {
            url: url(cx, &mut t),
        },
        "alertmanager" => {
            use metasystem_actors::alerts::channel::alertmanager::{
                check_url, endpoint, redact, DEFAULT_RESEND, MAX_RESEND, MIN_RESEND,
            };
            let said = cx.d.0.len();
            let urls = t.strings(cx.d, "urls");
            if let Some(list) = &urls {
                // Empty as written, not emptied by items already refused as not strings.
                if list.is_empty() && cx.d.0.len() == said {
                    cx.d.error(
                        t.span.clone(),
                        format!(
                            "`urls` in {} is empty: name at least one Alertmanager",
                            t.context
                        ),
                    );
                }
                let mut seen = Vec::new();
                for v in list {
                    // Never the password: messages show the URL redacted.
                    let shown = redact(v.get_ref());
                    match check_url(v.get_ref()) {
                        Err(why) => cx.d.error(
                            v.span(),
                            format!("`urls` item {shown:?} in {} {why}", t.context),
                        ),
                        Ok(u) => {
                            let e = endpoint(&u);
                            if seen.contains(&e) {
                                cx.d.error(
                                    v.span(),
                                    format!(
                                        "`urls` in {} names the Alertmanager {shown:?} twice",
                                        t.context
                                    ),
                                );
                            }
                            seen.push(e);
                        }
                    }
                }
            }
            let resend_interval = bounded(cx.d, &mut t, "resend_interval", MIN_RESEND, MAX_RESEND)
                .unwrap_or(DEFAULT_RESEND);
            ChannelKind::Alertmanager {
                urls: urls
                    .unwrap_or_default()
                    .into_iter()
                    .map(|v| v.get_ref().clone())
                    .collect(),
                resend_interval,
            }
        }
        _ => ChannelKind::Log,
    };
    t.finish(cx.d);
    Some(ChannelSpec {
        name: name?.get_ref().clone(),
        kind,
    })
}

/// A table with a key per severity (`after`, `cooldown`, `routes`).
fn per_severity(ty: Ty, defaults: [Option<serde_json::Value>; 3], doc: &'static str) -> Obj {
    let mut keys: Vec<Key> = Vec::new();
    for (s, default) in Severity::ALL.iter().zip(defaults) {
        let mut k = key(s.as_str(), ty.clone(), doc);
        k.default = default;
        keys.push(k);
    }
    Obj::new(keys)
}

/// A channel's keys ([`channel`] reads them): `name`, and by `type` the settings of each.
fn channel_schema() -> Obj {
    let url = || {
        Obj::new(vec![key(
            "url",
            Ty::Str,
            "The webhook's http(s) URL. Missing: the channel is skipped with a warning.",
        )
        .example("https://hooks.example.com/T000/B000")])
    };
    let email =
        Obj::new(vec![
        key("smtp", Ty::Str, "The SMTP server, \"host:port\".").example("smtp.example.com:587"),
        key(
            "tls",
            Ty::Choice(&["none", "starttls", "tls"]),
            "How the SMTP connection is secured.",
        )
        .default("starttls"),
        key("from", Ty::Str, "The sender's address.").example("metasystem@example.com"),
        key("to", Ty::Strings, "The recipients (at least one).")
            .example(serde_json::json!(["ops@example.com"])),
        key("username", Ty::Str, "The SMTP login, if the server asks for one."),
        key(
            "password_env",
            Ty::Str,
            "The environment variable that holds the SMTP password (never written in the file).",
        )
        .example("SMTP_PASSWORD"),
    ]);
    let alertmanager = Obj::new(vec![
        key(
            "urls",
            Ty::Strings,
            "The Alertmanagers' base URLs (every member of an HA set): alerts are posted to \
             each one's /api/v2/alerts.",
        )
        .example(serde_json::json!(["http://am1:9093", "http://am2:9093"])),
        key(
            "resend_interval",
            Ty::Duration,
            "How often alerts that still fire are sent again, so that Alertmanager does not \
             resolve them by itself (1s to 1h).",
        )
        .default("1m"),
    ]);
    Obj::new(vec![key(
        "name",
        Ty::Str,
        "The channel's name, as `routes` and `alerts test` name it.",
    )
    .required()])
    .with_union(Union {
        tag: "type",
        doc: "Where the channel delivers: email, an Alertmanager-style webhook, Slack, Discord, Prometheus Alertmanager itself, or the daemon's log.",
        variants: TYPES
            .iter()
            .map(|t| {
                let obj = match *t {
                    "email" => email.clone(),
                    "alertmanager" => alertmanager.clone(),
                    "log" => Obj::default(),
                    _ => url(),
                };
                (*t, obj)
            })
            .collect(),
    })
}

/// `routes = { critical = [...], ... }`, each name a configured channel.
fn routes(
    cx: &mut ParseCx<'_>,
    t: &mut Table<'_, '_>,
    channels: &[ChannelSpec],
) -> PerSeverity<Vec<String>> {
    let names: Vec<&str> = channels.iter().map(|c| c.name.as_str()).collect();
    let all: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let Some(mut table) = t.table(cx.d, "routes") else {
        return PerSeverity {
            info: all.clone(),
            warning: all.clone(),
            critical: all,
        };
    };
    table.context = format!("`routes` of {}", t.context);
    let mut routes: PerSeverity<Vec<String>> = PerSeverity::default();
    for s in Severity::ALL {
        let Some(list) = table.strings(cx.d, s.as_str()) else {
            continue;
        };
        for item in list {
            let name = item.get_ref();
            if !names.contains(&name.as_str()) {
                let hint = match suggest(name, &names) {
                    Some(close) => format!("; did you mean `{close}`?"),
                    None if names.is_empty() => "; `channels` defines none".to_string(),
                    None => format!("; the channels are {}", names.join(", ")),
                };
                cx.d.error(
                    item.span(),
                    format!(
                        "`{s}` in {} names the channel `{name}`, which is not defined{hint}",
                        table.context
                    ),
                );
            } else if !routes.get(s).contains(name) {
                routes.get_mut(s).push(name.clone());
            }
        }
    }
    table.finish(cx.d);
    routes
}

impl ActorKind for AlertsConfig {
    type Cli = AlertsCommands;
    const NAME: &'static str = "alerts";
    const SINGLETON: bool = true;
    const OPS: &'static [Op] = &[
        Op {
            name: "status",
            args: "",
            summary: "counts (raised, notified, deduplicated, delivered), firing keys, silences, channels",
        },
        Op {
            name: "test",
            args: "channel=NAME",
            summary: "send a test notification to a channel now and show its answer",
        },
    ];

    fn warnings(&self, path: &str) -> Vec<String> {
        self.channels
            .iter()
            .filter_map(|spec| {
                metasystem_actors::alerts::channel::prepare(spec, &|v| std::env::var(v).ok())
                    .err()
                    .map(|why| format!("{path}: {why}; the daemon will skip this channel"))
            })
            .collect()
    }

    fn schema() -> Obj {
        use serde_json::json;
        Obj::new(vec![
            key(
                "dedup_window",
                Ty::Duration,
                "Within one firing episode, the same alert is not notified again within this.",
            )
            .default("1h"),
            key(
                "after",
                Ty::Table(per_severity(
                    Ty::Int,
                    [Some(json!(10)), Some(json!(5)), Some(json!(3))],
                    "Consecutive occurrences before an alert of this severity is sent (1 to 1000).",
                )),
                "Consecutive occurrences before an alert is sent, per severity (one-shot conditions such as a give-up are sent at the first).",
            ),
            key(
                "cooldown",
                Ty::Table(per_severity(
                    Ty::Duration,
                    [Some(json!("24h")), Some(json!("2h")), Some(json!("1h"))],
                    "Within one firing episode, never notified more often than this.",
                )),
                "Per severity: within one firing episode, never notified more often than this.",
            ),
            key(
                "repeat_interval",
                Ty::Duration,
                "How often a condition that keeps firing is notified again (at least 1m).",
            )
            .default("4h"),
            key(
                "group_wait",
                Ty::Duration,
                "How long alerts are gathered into one message per channel (0 to send at once; up to 1h).",
            )
            .default("10s"),
            key(
                "timeout",
                Ty::Duration,
                "How long one delivery may take (100ms to 5m).",
            )
            .default("10s"),
            key(
                "retry",
                Ty::Table(Obj::new(vec![
                    key("initial", Ty::Duration, "The first retry delay (10ms to 1 day).")
                        .default("1s"),
                    key("max", Ty::Duration, "The longest retry delay (10ms to 1 day).")
                        .default("5m"),
                    key(
                        "adaptive",
                        Ty::Bool,
                        "Each channel's first delay follows the median time it took to recover over its last week of delivery runs.",
                    )
                    .default(false),
                ])),
                "How failed deliveries are retried (full-jitter backoff).",
            ),
            key(
                "channels",
                tables(channel_schema()),
                "Where alerts go: [[...channels]] tables with a `name` and a `type`.",
            ),
            key(
                "routes",
                Ty::Table(per_severity(
                    Ty::Strings,
                    [None, None, None],
                    "The channels (by name) alerts of this severity go to.",
                )),
                "Which channels each severity goes to (default: every channel for every severity).",
            ),
        ])
    }

    fn parse(cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>) -> Option<Self> {
        let mut policy = Policy::default();
        if let Some(d) = bounded(cx.d, t, "dedup_window", Duration::ZERO, MAX_DURATION) {
            policy.dedup_window = d;
        }
        thresholds(cx, t, &mut policy.after);
        cooldowns(cx, t, &mut policy.cooldown);
        if let Some(d) = bounded(
            cx.d,
            t,
            "repeat_interval",
            Duration::from_secs(60),
            MAX_DURATION,
        ) {
            policy.repeat_interval = d;
        }
        let group_wait = bounded(
            cx.d,
            t,
            "group_wait",
            Duration::ZERO,
            Duration::from_secs(3600),
        )
        .unwrap_or(Duration::from_secs(10));
        let timeout = bounded(
            cx.d,
            t,
            "timeout",
            Duration::from_millis(100),
            Duration::from_secs(300),
        )
        .unwrap_or(Duration::from_secs(10));
        let (mut retry_initial, mut retry_max) = (Duration::from_secs(1), Duration::from_secs(300));
        let mut retry_adaptive = false;
        if let Some(mut r) = t.table(cx.d, "retry") {
            r.context = format!("`retry` of {}", t.context);
            let day = Duration::from_secs(24 * 3600);
            if let Some(d) = bounded(cx.d, &mut r, "initial", Duration::from_millis(10), day) {
                retry_initial = d;
            }
            if let Some(d) = bounded(cx.d, &mut r, "max", Duration::from_millis(10), day) {
                retry_max = d;
            }
            if let Some(v) = r.boolean(cx.d, "adaptive") {
                retry_adaptive = *v.get_ref();
            }
            if retry_max < retry_initial {
                cx.d.error(
                    r.span.clone(),
                    format!("`max` in {} must not be less than `initial`", r.context),
                );
            }
            r.finish(cx.d);
        }
        let parent = t.context.clone();
        let mut channels: Vec<ChannelSpec> = Vec::new();
        for (table, span) in t.tables(cx.d, "channels") {
            let item_span = span.clone();
            if let Some(c) = channel(cx, table, span, &parent) {
                if channels.iter().any(|known| known.name == c.name) {
                    cx.d.error(
                        item_span,
                        format!("duplicate channel name `{}` in {parent}", c.name),
                    );
                } else {
                    channels.push(c);
                }
            }
        }
        let routes = routes(cx, t, &channels);
        Some(AlertsConfig {
            policy,
            group_wait,
            channels,
            routes,
            retry_initial,
            retry_max,
            retry_adaptive,
            timeout,
            host: cx.host_or_hostname(),
        })
    }

    fn child_spec(&self, name: &str, services: &Services) -> ChildSpec {
        let (config, services) = (self.clone(), services.clone());
        ChildSpec::worker(name, Self::NAME, move |ctx| {
            (
                AlertsActor,
                AlertsArgs {
                    path: ctx.path.clone(),
                    store: services.store.clone(),
                    alerts: services.alerts.clone(),
                    metrics: services.metrics.clone(),
                    policy: config.policy.clone(),
                    group_wait: config.group_wait,
                    channels: config.channels.clone(),
                    routes: config.routes.clone(),
                    retry_initial: config.retry_initial,
                    retry_max: config.retry_max,
                    retry_adaptive: config.retry_adaptive,
                    timeout: config.timeout,
                    hostname: config.host.clone(),
                },
            )
        })
    }

    async fn call(cx: CallCx<'_>, op: &str, args: Value) -> Result<Value, CallError> {
        super::check_op(Self::NAME, Self::OPS, op)?;
        match op {
            "test" => {
                #[derive(serde::Deserialize)]
                #[serde(deny_unknown_fields)]
                struct TestArgs {
                    channel: String,
                }
                let a = super::args::<TestArgs>(op, args)?;
                let actor = super::actor::<AlertsMessage>(&cx)?;
                super::reply(&test(&actor, a.channel).await?)
            }
            _ => {
                super::args::<NoArgs>(op, args)?;
                super::reply(&super::ask(&cx, AlertsMessage::Status).await?)
            }
        }
    }
}

/// How long a test notification may take (a slow SMTP server, retries within the attempt).
const TEST_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Sends a test notification to `channel` now and answers what it said: `alerts test` and
/// `call PATH test channel=NAME` both come here.
pub async fn test(
    actor: &ractor::ActorRef<AlertsMessage>,
    channel: String,
) -> Result<metasystem_actors::alerts::actor::TestReport, CallError> {
    use crate::control::protocol::code;
    use metasystem_actors::alerts::actor::TestError;
    use ractor::rpc::CallResult;
    match actor
        .call(
            |reply| AlertsMessage::Test { channel, reply },
            Some(TEST_WAIT),
        )
        .await
    {
        Ok(CallResult::Success(Ok(report))) => Ok(report),
        // An unknown channel is like an unknown actor (exit 1), not a usage error.
        Ok(CallResult::Success(Err(TestError::NoSuchChannel(e)))) => {
            Err(CallError::new(code::NOT_FOUND, e))
        }
        Ok(CallResult::Success(Err(TestError::Unusable(e)))) => {
            Err(CallError::new(code::REFUSED, e))
        }
        Ok(CallResult::Timeout) => Err(CallError::new(
            code::TIMEOUT,
            "the channel did not answer in time",
        )),
        _ => Err(CallError::new(
            code::NOT_RUNNING,
            "the alerts actor stopped",
        )),
    }
}

/// The alerts kind's commands.
#[derive(clap::Subcommand, Debug)]
pub enum AlertsCommands {
    /// Recent alert notifications, their delivery state and every attempt; `alerts test
    /// CHANNEL`, `alerts silence KEY --for D`, `alerts unsilence KEY`.
    Alerts {
        #[command(subcommand)]
        action: Option<AlertsAction>,
        /// How many notifications to show, newest first (1 to 10000).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum AlertsAction {
    /// Send a test notification to CHANNEL now and print what it answered.
    Test { channel: String },
    /// Mute alerts whose key matches KEY (a key such as `warning:disk low`, or a glob such as
    /// `*root/sync*`) for a while; resolutions of what was already sent still go out.
    Silence {
        key: String,
        /// How long (e.g. 30m, 2h, 7d).
        #[arg(long = "for", value_parser = crate::cli::positive_duration, value_name = "DURATION")]
        duration: Duration,
    },
    /// Lift a silence.
    Unsilence { key: String },
}

impl super::KindCli for AlertsCommands {
    fn request(&self) -> Result<crate::control::request::Command, String> {
        use crate::control::request as R;
        Ok(match self {
            AlertsCommands::Alerts { action, limit } => match action {
                None => R::Alerts {
                    limit: Some(*limit as usize),
                }
                .into(),
                Some(AlertsAction::Test { channel }) => R::AlertTest {
                    channel: channel.clone(),
                }
                .into(),
                Some(AlertsAction::Silence { key, duration }) => R::AlertSilence {
                    pattern: key.clone(),
                    for_s: duration.as_secs().max(1),
                }
                .into(),
                Some(AlertsAction::Unsilence { key }) => R::AlertSilence {
                    pattern: key.clone(),
                    for_s: 0,
                }
                .into(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Kind;

    fn alerts(retry: &str) -> Result<AlertsConfig, Vec<String>> {
        let src = format!(
            "[daemon]\nstate_dir = \"/tmp/x\"\n[root]\n[[root.children]]\nname = \"alerts\"\n\
             kind = \"alerts\"\n{retry}\n"
        );
        match crate::config::parse(&src, "t.toml", std::path::Path::new("/")) {
            Ok(c) => match &c.root.children[0].kind {
                Kind::Alerts(a) => Ok(a.clone()),
                other => panic!("{other:?}"),
            },
            Err(e) => Err(e.0.iter().map(|e| e.to_string()).collect()),
        }
    }

    #[test]
    fn retry_is_not_adaptive_unless_asked() {
        let a = alerts("").unwrap();
        assert_eq!(
            (a.retry_initial, a.retry_max, a.retry_adaptive),
            (Duration::from_secs(1), Duration::from_secs(300), false)
        );
        let p = a.retry_policy();
        assert_eq!(
            (p.initial, p.max, p.max_attempts),
            (a.retry_initial, a.retry_max, u32::MAX)
        );
        assert!(!p.adaptive);

        let a = alerts("retry = { initial = \"2s\", adaptive = true }").unwrap();
        assert_eq!(a.retry_initial, Duration::from_secs(2));
        assert!(a.retry_adaptive && a.retry_policy().adaptive);

        let e = alerts("retry = { adaptive = \"yes\" }").unwrap_err();
        assert!(
            e.iter()
                .any(|e| e.contains("adaptive") && e.contains("true or false")),
            "{e:?}"
        );
        let e = alerts("retry = { adaptiv = true }").unwrap_err();
        assert!(e.iter().any(|e| e.contains("adaptive")), "{e:?}");
    }
}
