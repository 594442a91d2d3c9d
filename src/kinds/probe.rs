//! `kind = "probe"`: one health check run every `every` (see `metasystem_actors::probes`),
//! reported as pass | warn | fail with hysteresis, with heal actions when it turns bad.
//!
//! Config: `check` (disk | memory | sqlite | sync_recency | breakers | tcp | http | command |
//! process),
//! `every` (default 1m), `timeout` (default 10s), `failures_before_warning` (1),
//! `failures_before_critical` (3), `successes_before_passing` (1), the check's own keys:
//! - disk: `path` (relative paths are in the state dir), `warn_below` (10GB), `fail_below`
//!   (5GB), `warn_full_within` (24h: warn when the trend says the disk is full sooner; "0s"
//!   turns it off);
//! - memory: `warn_below` (500MB), `fail_below` (100MB);
//! - sqlite: `path`, `warn_size` (500MB), `tables` (row counts to report);
//! - sync_recency: `target`, `warn_after` (6h), `fail_after`, `alert_offline` (false: a
//!   target never synced that is offline, or has had no run yet, passes with a note);
//! - breakers: none (warns while any breaker is not closed);
//! - tcp: `addr` ("host:port"); http: `url`, `status` (default any 2xx), `body_contains`;
//! - command: `command` (the program, no shell), `args`, `cwd`, `env` (a table of strings);
//! - process: `process` (the tree path of a `kind = "process"` child; fails while it is not
//!   running), `min_uptime` (warns while its run is younger), `max_restarts` (warns when it
//!   restarted more often within `window`, default 1h);
//!
//! and `heal = [{ action = "...", ... }]`: `restart` (`path` of an actor), `sync` (`target`),
//! `prune_backups` (`dir`, `older_than`), `vacuum` (`db`), `cleanup` (`dir`, `older_than`,
//! `pattern`), `reset_breaker` (`breaker`), `command` (`command`, `args`, `timeout`); each with
//! `cooldown` (5m), `max_per_hour` (3) and `on` ("any": while it warns or fails, the default;
//! "warn": only while it warns, e.g. a VACUUM for a size warning but not for a corruption;
//! "fail": only while it fails).
//! Operations: `status`, `check` (run it now).

use std::path::PathBuf;
use std::time::Duration;

use metasystem_actors::heal::{HealAction, HealLimits};
use metasystem_actors::probes::actor::ProbeStatus;
use metasystem_actors::probes::actor::{HealOn, HealSpec, ProbeActor, ProbeArgs, ProbeMessage};
use metasystem_actors::probes::Health;
use metasystem_actors::probes::{
    net, CheckSpec, CommandSpec, DiskSpec, HttpSpec, MemorySpec, SqliteSpec, SyncRecencySpec,
    TcpSpec, Thresholds,
};
use metasystem_actors::ChildSpec;
use serde_json::{Map, Value};
use std::io::{self, Write};

use super::{
    ActorKind, CallCx, CallError, Cell, HealthPart, NoArgs, Op, Panel, ParseCx, Services, Tone,
    ViewCx,
};
use crate::config::reader::Table;
use crate::config::refs::Wants;
use crate::config::schema::{key, tables, Key, Obj, Ty, Union};
use crate::config::{bounded, bytes, expand, MAX_DURATION};
use crate::control::client::Connection;

const CHECKS: &[&str] = &[
    "disk",
    "memory",
    "sqlite",
    "sync_recency",
    "breakers",
    "tcp",
    "http",
    "command",
    "process",
];
const ACTIONS: &[&str] = &[
    "restart",
    "sync",
    "prune_backups",
    "vacuum",
    "cleanup",
    "reset_breaker",
    "command",
];

#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    pub check: CheckSpec,
    pub every: Duration,
    pub timeout: Duration,
    pub thresholds: Thresholds,
    pub heal: Vec<HealSpec>,
}

/// A required path, relative ones taken from the state dir.
fn path(cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>, key: &'static str) -> Option<PathBuf> {
    let v = t.required_string(cx.d, key)?;
    let base = cx.state_dir.clone();
    if v.get_ref() == "." {
        return Some(base);
    }
    expand(cx.d, v.get_ref(), v.span(), &base)
}

fn count(cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>, key: &'static str, default: u32) -> u32 {
    let Some(v) = t.integer(cx.d, key) else {
        return default;
    };
    match u32::try_from(*v.get_ref()) {
        Ok(n) if (1..=1000).contains(&n) => n,
        _ => {
            cx.d.error(
                v.span(),
                format!("`{key}` in {} must be between 1 and 1000", t.context),
            );
            default
        }
    }
}

fn strings(cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>, key: &'static str) -> Vec<String> {
    t.strings(cx.d, key)
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.get_ref().clone())
        .collect()
}

fn command(cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>) -> Option<CommandSpec> {
    let program = t.required_string(cx.d, "command")?;
    if program.get_ref().trim().is_empty() {
        cx.d.error(
            program.span(),
            format!("`command` in {} must name a program", t.context),
        );
        return None;
    }
    let mut spec = CommandSpec::new(program.get_ref().clone(), strings(cx, t, "args"));
    if let Some(cwd) = t.string(cx.d, "cwd") {
        let base = cx.state_dir.clone();
        spec.cwd = expand(cx.d, cwd.get_ref(), cwd.span(), &base);
    }
    if let Some(mut env) = t.table(cx.d, "env") {
        env.context = format!("`env` of {}", t.context);
        spec.env = env.string_entries(cx.d);
        env.finish(cx.d);
    }
    Some(spec)
}

fn check(cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>, kind: &str) -> Option<CheckSpec> {
    let day = Duration::from_secs(24 * 3600);
    Some(match kind {
        "disk" => {
            let mut s = DiskSpec::new(path(cx, t, "path")?);
            if let Some(n) = bytes(cx.d, t, "warn_below") {
                s.warn_below_bytes = n;
            }
            if let Some(n) = bytes(cx.d, t, "fail_below") {
                s.fail_below_bytes = n;
            }
            if s.fail_below_bytes > s.warn_below_bytes {
                cx.d.error(
                    t.span.clone(),
                    format!("`fail_below` in {} is above `warn_below`", t.context),
                );
            }
            if let Some(d) = bounded(cx.d, t, "warn_full_within", Duration::ZERO, 30 * day) {
                s.warn_full_within = (!d.is_zero()).then_some(d);
            }
            CheckSpec::Disk(s)
        }
        "memory" => {
            let mut s = MemorySpec::default();
            if let Some(n) = bytes(cx.d, t, "warn_below") {
                s.warn_below_bytes = n;
            }
            if let Some(n) = bytes(cx.d, t, "fail_below") {
                s.fail_below_bytes = n;
            }
            if s.fail_below_bytes > s.warn_below_bytes {
                cx.d.error(
                    t.span.clone(),
                    format!("`fail_below` in {} is above `warn_below`", t.context),
                );
            }
            CheckSpec::Memory(s)
        }
        "sqlite" => {
            let mut s = SqliteSpec::new(path(cx, t, "path")?);
            if let Some(n) = bytes(cx.d, t, "warn_size") {
                s.warn_size_bytes = n;
            }
            if let Some(tables) = t.strings(cx.d, "tables") {
                for table in tables {
                    if metasystem_actors::probes::sqlite::valid_table_name(table.get_ref()) {
                        s.tables.push(table.get_ref().clone());
                    } else {
                        cx.d.error(
                            table.span(),
                            format!(
                                "{:?} in `tables` of {} is not a table name (letters, digits, _)",
                                table.get_ref(),
                                t.context
                            ),
                        );
                    }
                }
            }
            CheckSpec::Sqlite(s)
        }
        "sync_recency" => {
            let target = t.required_string(cx.d, "target")?;
            cx.refer(Wants::SyncTarget, "target", &t.context, &target);
            let mut s = SyncRecencySpec::new(target.get_ref().clone());
            if let Some(d) = bounded(cx.d, t, "warn_after", Duration::from_secs(60), MAX_DURATION) {
                s.warn_after = d;
            }
            s.fail_after = bounded(cx.d, t, "fail_after", Duration::from_secs(60), MAX_DURATION);
            if let Some(b) = t.boolean(cx.d, "alert_offline") {
                s.alert_offline = *b.get_ref();
            }
            if s.fail_after.is_some_and(|f| f < s.warn_after) {
                cx.d.error(
                    t.span.clone(),
                    format!("`fail_after` in {} is less than `warn_after`", t.context),
                );
            }
            CheckSpec::SyncRecency(s)
        }
        "breakers" => CheckSpec::Breakers,
        "process" => {
            let path = t.required_string(cx.d, "process")?;
            let p = path.get_ref();
            if !p.starts_with("root/") || p.split('/').any(str::is_empty) {
                cx.d.error(
                    path.span(),
                    format!(
                        "`process` in {}: {p:?} is not a tree path such as \"root/web\"",
                        t.context
                    ),
                );
                return None;
            }
            cx.refer(Wants::Process, "process", &t.context, &path);
            let min_uptime = bounded(
                cx.d,
                t,
                "min_uptime",
                Duration::from_millis(1),
                MAX_DURATION,
            );
            let max_restarts = match t.integer(cx.d, "max_restarts") {
                Some(n) if (0..=1_000_000).contains(n.get_ref()) => Some(*n.get_ref() as u32),
                Some(n) => {
                    cx.d.error(
                        n.span(),
                        format!(
                            "`max_restarts` in {} must be between 0 and 1000000",
                            t.context
                        ),
                    );
                    None
                }
                None => None,
            };
            let window = bounded(cx.d, t, "window", Duration::from_secs(1), MAX_DURATION)
                .unwrap_or(Duration::from_secs(3600));
            CheckSpec::Process(metasystem_actors::probes::ProcessCheckSpec {
                path: p.clone(),
                min_uptime,
                max_restarts,
                window,
            })
        }
        "tcp" => {
            let addr = t.required_string(cx.d, "addr")?;
            if let Err(why) = net::check_tcp_addr(addr.get_ref()) {
                cx.d.error(addr.span(), format!("`addr` in {}: {why}", t.context));
                return None;
            }
            CheckSpec::Tcp(TcpSpec {
                addr: addr.get_ref().clone(),
            })
        }
        "http" => {
            let url = t.required_string(cx.d, "url")?;
            if let Err(why) = net::parse_http_url(url.get_ref()) {
                cx.d.error(url.span(), format!("`url` in {}: {why}", t.context));
                return None;
            }
            let mut s = HttpSpec::new(url.get_ref().clone());
            if let Some(v) = t.integer(cx.d, "status") {
                match u16::try_from(*v.get_ref()) {
                    Ok(code) if (100..=599).contains(&code) => s.expect_status = Some(code),
                    _ => cx.d.error(
                        v.span(),
                        format!("`status` in {} must be an HTTP status (100-599)", t.context),
                    ),
                }
            }
            s.body_contains = t.string(cx.d, "body_contains").map(|v| v.get_ref().clone());
            CheckSpec::Http(s)
        }
        "command" => CheckSpec::Command(command(cx, t)?),
        _ => return None,
    })
}

/// The keys of a command to run ([`command`] reads them): a `command` check and heal action.
fn command_keys() -> Vec<Key> {
    vec![
        key(
            "command",
            Ty::Str,
            "The program (a path, or a name looked up in PATH); no shell.",
        )
        .required()
        .example("/bin/true"),
        key("args", Ty::Strings, "Its arguments.").example(serde_json::json!(["-c", "exit 0"])),
        key(
            "cwd",
            Ty::Str,
            "Its working directory (relative to the state dir).",
        )
        .example("."),
        key(
            "env",
            Ty::Map(Box::new(Ty::Str)),
            "Environment variables for it: a table of strings.",
        )
        .example(serde_json::json!({"LANG": "C"})),
    ]
}

/// Each check's own keys ([`check`] reads them), by `check`.
fn check_schema(name: &str) -> Obj {
    let low = |warn: &'static str, fail: &'static str| {
        vec![
            key(
                "warn_below",
                Ty::Size,
                "Warn when less than this is free (bytes, or \"10GB\", \"512MiB\").",
            )
            .default(warn),
            key(
                "fail_below",
                Ty::Size,
                "Fail when less than this is free (at most `warn_below`).",
            )
            .default(fail),
        ]
    };
    let path = |doc: &'static str| key("path", Ty::Str, doc).required().example(".");
    Obj::new(match name {
        "disk" => {
            let mut keys = vec![path("A path on the file system to watch (relative paths are in the state dir).")];
            keys.extend(low("10GB", "5GB"));
            keys.push(
                key(
                    "warn_full_within",
                    Ty::Duration,
                    "Warn when the trend says the disk is full sooner than this (up to 30 days; \"0s\" turns it off).",
                )
                .default("24h"),
            );
            keys
        }
        "memory" => low("500MB", "100MB"),
        "sqlite" => vec![
            path("The SQLite database to check (relative paths are in the state dir)."),
            key("warn_size", Ty::Size, "Warn when the database is larger than this.").default("500MB"),
            key("tables", Ty::Strings, "Tables whose row counts are reported.")
                .example(serde_json::json!(["events"])),
        ],
        "sync_recency" => vec![
            key("target", Ty::Str, "The name of the sync_target child whose last good run is judged.")
                .required()
                .example("icloud"),
            key("warn_after", Ty::Duration, "Warn when the last good run is older (at least 1m).")
                .default("6h"),
            key("fail_after", Ty::Duration, "Fail when the last good run is older (at least `warn_after`).")
                .example("24h"),
            key(
                "alert_offline",
                Ty::Bool,
                "A target never synced that is offline, or has had no run yet, warns instead of passing with a note.",
            )
            .default(false),
        ],
        "tcp" => vec![key("addr", Ty::Str, "\"host:port\" to connect to.")
            .required()
            .example("127.0.0.1:5432")],
        "http" => vec![
            key("url", Ty::Str, "The http(s) URL to GET.")
                .required()
                .example("http://127.0.0.1:8080/health"),
            key("status", Ty::Int, "The status expected (100-599); default any 2xx.").example(200),
            key("body_contains", Ty::Str, "Text the body must contain."),
        ],
        "command" => command_keys(),
        "process" => vec![
            key(
                "process",
                Ty::Str,
                "The tree path of a kind = \"process\" child; fails while it is not running.",
            )
            .required()
            .example("root/web"),
            key("min_uptime", Ty::Duration, "Warn while its run is younger than this.").example("30s"),
            key(
                "max_restarts",
                Ty::Int,
                "Warn when it restarted more often than this within `window` (0 to 1000000).",
            )
            .example(3),
            key("window", Ty::Duration, "The window `max_restarts` counts in.").default("1h"),
        ],
        // breakers: none.
        _ => Vec::new(),
    })
}

/// A heal action's keys ([`heal_item`] reads them).
fn heal_schema() -> Obj {
    let older_than = || {
        key(
            "older_than",
            Ty::Duration,
            "Only what is older than this (at least 1m).",
        )
        .default("7d")
    };
    let dir = |doc: &'static str| key("dir", Ty::Str, doc).required().example("old-files");
    Obj::new(vec![
        key("cooldown", Ty::Duration, "The action runs at most once per cooldown (up to 1 day).")
            .default("5m"),
        key("max_per_hour", Ty::Int, "The action runs at most this often an hour (1 to 3600).")
            .default(3),
        key(
            "on",
            Ty::Choice(&["any", "warn", "fail"]),
            "When it runs: any (while the probe warns or fails), warn (only while it warns), fail (only while it fails).",
        )
        .default("any"),
    ])
    .with_union(Union {
        tag: "action",
        doc: "What the action does when the probe turns bad.",
        variants: ACTIONS
            .iter()
            .map(|a| {
                let keys = match *a {
                    "restart" => vec![key("path", Ty::Str, "The tree path of the actor to restart (not the probe or a supervisor above it).")
                        .required()
                        .example("root/web")],
                    "sync" => vec![key("target", Ty::Str, "The sync_target child to run now.")
                        .required()
                        .example("icloud")],
                    "prune_backups" => vec![dir("The backups folder to prune."), older_than()],
                    "vacuum" => vec![key("db", Ty::Str, "The SQLite database to VACUUM.")
                        .required()
                        .example("app.db")],
                    "cleanup" => vec![
                        dir("The folder to clean (never the state dir)."),
                        older_than(),
                        key("pattern", Ty::Str, "Only names matching this glob.").example("*.tmp"),
                    ],
                    "reset_breaker" => vec![key("breaker", Ty::Str, "The circuit breaker to close.")
                        .required()
                        .example("icloud")],
                    _ => {
                        let mut keys = command_keys();
                        keys.push(
                            key("timeout", Ty::Duration, "How long the command may run (100ms to 1 day).")
                                .default("60s"),
                        );
                        keys
                    }
                };
                (*a, Obj::new(keys))
            })
            .collect(),
    })
}

/// Whether `ancestor` is `path` or one of its ancestors.
fn is_self_or_ancestor(ancestor: &str, path: &str) -> bool {
    path == ancestor || path.starts_with(&format!("{ancestor}/"))
}

fn heal_item(
    cx: &mut ParseCx<'_>,
    table: &toml::de::DeTable<'_>,
    span: std::ops::Range<usize>,
    parent: &str,
) -> Option<HealSpec> {
    let mut t = Table::new(table, span, format!("a heal action of {parent}"));
    let action = t.choice(cx.d, "action", ACTIONS).map(|a| *a.get_ref());
    if action.is_none() && !t.has("action") {
        cx.d.error(
            t.span.clone(),
            format!(
                "{} is missing the required key `action` ({})",
                t.context,
                ACTIONS.join(", ")
            ),
        );
    }
    let day = Duration::from_secs(24 * 3600);
    let older_than = |cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>| {
        bounded(cx.d, t, "older_than", Duration::from_secs(60), MAX_DURATION).unwrap_or(7 * day)
    };
    let dir = |cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>| path(cx, t, "dir");
    let heal = match action? {
        "restart" => {
            let target = t.required_string(cx.d, "path")?;
            let p = target.get_ref().trim_end_matches('/').to_string();
            if !is_self_or_ancestor("root", &p) || p == "root" {
                cx.d.error(
                    target.span(),
                    format!(
                        "`path` in {} must be an actor below root (e.g. \"root/sync\")",
                        t.context
                    ),
                );
                return None;
            }
            if is_self_or_ancestor(&p, &cx.path) {
                cx.d.error(
                    target.span(),
                    format!(
                        "`path` in {} is the probe itself or a supervisor above it: restarting it would stop the heal half-way",
                        t.context
                    ),
                );
                return None;
            }
            let context = t.context.clone();
            cx.refer(
                Wants::Child,
                "path",
                &context,
                &toml::Spanned::new(target.span(), p.clone()),
            );
            HealAction::Restart { path: p }
        }
        "sync" => {
            let target = t.required_string(cx.d, "target")?;
            cx.refer(Wants::SyncTarget, "target", &t.context, &target);
            HealAction::Sync {
                target: target.get_ref().clone(),
            }
        }
        "prune_backups" => {
            let d = dir(cx, &mut t)?;
            HealAction::PruneBackups {
                older_than: older_than(cx, &mut t),
                dir: d,
            }
        }
        "vacuum" => HealAction::Vacuum {
            db: path(cx, &mut t, "db")?,
        },
        "cleanup" => {
            let d = dir(cx, &mut t)?;
            let same = |a: &std::path::Path, b: &std::path::Path| {
                a == b
                    || matches!(
                        (std::fs::canonicalize(a), std::fs::canonicalize(b)),
                        (Ok(x), Ok(y)) if x == y
                    )
            };
            if same(&d, &cx.state_dir) {
                cx.d.error(
                    t.span.clone(),
                    format!(
                        "`dir` in {} is the state dir ({}): a cleanup there would remove the daemon's own files; name a directory of its own",
                        t.context,
                        d.display()
                    ),
                );
                return None;
            }
            HealAction::Cleanup {
                older_than: older_than(cx, &mut t),
                pattern: t.string(cx.d, "pattern").map(|p| p.get_ref().clone()),
                dir: d,
            }
        }
        "reset_breaker" => HealAction::ResetBreaker {
            name: t.required_string(cx.d, "breaker")?.get_ref().clone(),
        },
        _ => {
            let spec = command(cx, &mut t)?;
            HealAction::Command {
                program: spec.program,
                args: spec.args,
                timeout: bounded(cx.d, &mut t, "timeout", Duration::from_millis(100), day)
                    .unwrap_or(Duration::from_secs(60)),
            }
        }
    };
    if let Err(why) = heal.validate() {
        cx.d.error(t.span.clone(), format!("{}: {why}", t.context));
        return None;
    }
    let mut limits = HealLimits::default();
    if let Some(d) = bounded(cx.d, &mut t, "cooldown", Duration::ZERO, day) {
        limits.cooldown = d;
    }
    if let Some(v) = t.integer(cx.d, "max_per_hour") {
        match u32::try_from(*v.get_ref()) {
            Ok(n) if (1..=3600).contains(&n) => limits.max_per_hour = n,
            _ => cx.d.error(
                v.span(),
                format!("`max_per_hour` in {} must be between 1 and 3600", t.context),
            ),
        }
    }
    let on = match t
        .choice(cx.d, "on", &["any", "warn", "fail"])
        .map(|v| *v.get_ref())
    {
        Some("warn") => HealOn::Warn,
        Some("fail") => HealOn::Fail,
        _ => HealOn::Any,
    };
    t.finish(cx.d);
    Some(HealSpec {
        action: heal,
        limits,
        on,
    })
}

impl ActorKind for ProbeConfig {
    type Cli = ProbeCommands;
    const NAME: &'static str = "probe";
    const OPS: &'static [Op] = &[
        Op {
            name: "status",
            args: "",
            summary: "the latest report: status, value, message, failures in a row",
        },
        Op {
            name: "check",
            args: "",
            summary: "run the check now and show the report",
        },
    ];

    fn schema() -> Obj {
        Obj::new(vec![
            key(
                "every",
                Ty::Duration,
                "How often the check runs (at least 100ms).",
            )
            .default("1m"),
            key(
                "timeout",
                Ty::Duration,
                "How long one check may take (10ms to 1h; default 10s, or `every` if shorter).",
            )
            .default("10s"),
            key(
                "failures_before_warning",
                Ty::Int,
                "Bad results in a row before the probe warns (1 to 1000).",
            )
            .default(1),
            key(
                "failures_before_critical",
                Ty::Int,
                "Bad results in a row before the probe fails (1 to 1000).",
            )
            .default(3),
            key(
                "successes_before_passing",
                Ty::Int,
                "Good results in a row before the probe passes again (1 to 1000).",
            )
            .default(1),
            key(
                "heal",
                tables(heal_schema()),
                "Heal actions run when the probe turns bad: [[...heal]] tables with an `action`.",
            ),
        ])
        .with_union(Union {
            tag: "check",
            doc: "What the probe checks.",
            variants: CHECKS.iter().map(|c| (*c, check_schema(c))).collect(),
        })
    }

    fn parse(cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>) -> Option<Self> {
        let kind = if t.has("check") {
            t.choice(cx.d, "check", CHECKS).map(|k| *k.get_ref())
        } else {
            cx.d.error(
                t.span.clone(),
                format!(
                    "{} is missing the required key `check` ({})",
                    t.context,
                    CHECKS.join(", ")
                ),
            );
            None
        };
        let every = bounded(cx.d, t, "every", Duration::from_millis(100), MAX_DURATION)
            .unwrap_or(Duration::from_secs(60));
        let timeout = bounded(
            cx.d,
            t,
            "timeout",
            Duration::from_millis(10),
            Duration::from_secs(3600),
        )
        .unwrap_or(Duration::from_secs(10).min(every));
        let defaults = Thresholds::default();
        let thresholds = Thresholds {
            failures_before_warning: count(
                cx,
                t,
                "failures_before_warning",
                defaults.failures_before_warning,
            ),
            failures_before_critical: count(
                cx,
                t,
                "failures_before_critical",
                defaults.failures_before_critical,
            ),
            successes_before_passing: count(
                cx,
                t,
                "successes_before_passing",
                defaults.successes_before_passing,
            ),
        };
        let check = kind.and_then(|k| check(cx, t, k));
        let parent = t.context.clone();
        let mut heal = Vec::new();
        for (table, span) in t.tables(cx.d, "heal") {
            if let Some(h) = heal_item(cx, table, span, &parent) {
                heal.push(h);
            }
        }
        Some(ProbeConfig {
            check: check?,
            every,
            timeout,
            thresholds,
            heal,
        })
    }

    fn child_spec(&self, name: &str, services: &Services) -> ChildSpec {
        let (config, services) = (self.clone(), services.clone());
        ChildSpec::worker(name, Self::NAME, move |ctx| {
            (
                ProbeActor,
                ProbeArgs {
                    path: ctx.path.clone(),
                    store: services.store.clone(),
                    metrics: services.metrics.clone(),
                    alerts: services.alerts.clone(),
                    breakers: services.breakers.clone(),
                    check: config.check.clone(),
                    every: config.every,
                    timeout: config.timeout,
                    thresholds: config.thresholds,
                    heal: config.heal.clone(),
                    heal_tree: services.heal_tree(),
                    registry: services.probes.clone(),
                    slots: services.check_slots.clone(),
                    processes: services.processes.clone(),
                },
            )
        })
    }

    async fn call(cx: CallCx<'_>, op: &str, args: Value) -> Result<Value, CallError> {
        super::check_op(Self::NAME, Self::OPS, op)?;
        super::args::<NoArgs>(op, args)?;
        let report = if op == "check" {
            super::ask(&cx, ProbeMessage::CheckNow).await?
        } else {
            super::ask(&cx, ProbeMessage::Status).await?
        };
        super::reply(&report)
    }

    async fn status(cx: &ViewCx<'_>) -> Map<String, Value> {
        let reports = cx.services.probes.reports();
        super::keys(&ProbesSection {
            probes_failing: reports
                .iter()
                .filter(|r| r.status != Health::Pass)
                .map(|r| {
                    let message = r.last.as_ref().map_or("", |o| o.message.as_str());
                    format!("{} ({}): {message}", r.path, r.status)
                })
                .collect(),
            probes_pending: reports
                .iter()
                .filter(|r| r.pending())
                .map(|r| format!("{} ({})", r.path, r.check))
                .collect(),
        })
    }

    fn render_status(status: &Map<String, Value>, out: &mut dyn Write) -> io::Result<()> {
        let s: ProbesSection = super::section(status);
        for p in &s.probes_failing {
            writeln!(out, "probe:     {p}")?;
        }
        if !s.probes_pending.is_empty() {
            writeln!(
                out,
                "probes:    {} not checked yet (pending): {}",
                s.probes_pending.len(),
                s.probes_pending.join(", ")
            )?;
        }
        Ok(())
    }

    /// Each probe as a check of its own (componentType: its check). The format knows pass,
    /// warn and fail: a probe not checked yet is a warn saying so (not known to pass: a fresh
    /// daemon is not "pass" before it checked anything; not a failure either: no 503 for a
    /// daemon that just started).
    async fn health(cx: &ViewCx<'_>) -> HealthPart {
        let reports = cx.services.probes.reports();
        let mut part = HealthPart::default();
        for r in &reports {
            let mut check = serde_json::json!({
                "componentType": r.check,
                "status": r.health().as_str(),
            });
            if r.pending() {
                check["output"] = serde_json::json!(NOT_CHECKED_YET);
            }
            if let Some(last) = &r.last {
                if let Some(v) = last.value {
                    check["observedValue"] = serde_json::json!(v);
                    check["observedUnit"] = serde_json::json!(last.unit);
                }
                if r.status != Health::Pass {
                    check["output"] = serde_json::json!(last.message);
                }
            }
            if let Some(at) = r.at_ms {
                check["time"] = serde_json::json!(metasystem_actors::store::format_ms(at));
            }
            part.checks
                .push((format!("probe:{}", r.path), serde_json::json!([check])));
            if r.status != Health::Pass {
                part.problems.push(format!("probe {} {}", r.path, r.status));
            }
            part.status = part.status.worst(r.health());
        }
        match reports.iter().filter(|r| r.pending()).count() {
            0 => {}
            1 => part.problems.push(format!("1 probe {NOT_CHECKED_YET}")),
            n => part.problems.push(format!("{n} probes {NOT_CHECKED_YET}")),
        }
        part
    }

    /// Every probe's latest report (`probes`, which runs no check).
    fn top_panel(conn: &mut Connection) -> Option<Result<Panel, String>> {
        let probes = match super::fetch(conn, crate::control::request::Probes {}) {
            Ok(answer) => answer.probes,
            Err(e) => return Some(Err(e)),
        };
        let rows = probes
            .iter()
            .map(|p| {
                let tone = match p.status {
                    ProbeStatus::Pass => Tone::Good,
                    ProbeStatus::Warn | ProbeStatus::Pending => Tone::Warn,
                    ProbeStatus::Fail => Tone::Bad,
                };
                vec![
                    Cell::plain(p.path.rsplit('/').next().unwrap_or(&p.path)),
                    Cell::toned(p.status.as_str(), tone),
                    Cell::plain(p.value.map_or(String::new(), |v| {
                        crate::cli::top::model::probe_value(v, &p.unit)
                    })),
                    Cell::plain(&p.message),
                ]
            })
            .collect();
        Some(Ok(Panel {
            key: "probes",
            title: "probes".into(),
            columns: vec![
                ("PROBE", Some(22)),
                ("STATUS", Some(7)),
                ("VALUE", Some(10)),
                ("MESSAGE", None),
            ],
            rows,
            data: serde_json::to_value(&probes).unwrap_or_default(),
        }))
    }
}

/// What `/health` and `status` say of a probe whose first check has not completed.
const NOT_CHECKED_YET: &str = "not checked yet";

/// The probes' part of `status`: those not passing (`path (status): message`) and those not
/// checked yet (`path (check)`).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct ProbesSection {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    probes_failing: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    probes_pending: Vec<String>,
}

/// The probe kind's commands.
#[derive(clap::Subcommand, Debug)]
pub enum ProbeCommands {
    /// Run every probe now and show their reports; exit 1 if any fails.
    Health,
    /// Self-heal actions: what ran, when, and what the probe said right after.
    Heal {
        /// The window (e.g. 1h, 24h, 7d).
        #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION", default_value = "24h")]
        since: Duration,
    },
    /// Every probe's latest report, without running any check (`health` runs them all now);
    /// exit 1 if one fails.
    Probes,
}

impl super::KindCli for ProbeCommands {
    fn request(&self) -> Result<crate::control::request::Command, String> {
        use crate::control::request as R;
        Ok(match self {
            ProbeCommands::Probes => R::Probes {}.into(),
            ProbeCommands::Health => R::Health {}.into(),
            ProbeCommands::Heal { since } => R::Heal {
                since_s: Some(since.as_secs().max(1)),
            }
            .into(),
        })
    }
}
