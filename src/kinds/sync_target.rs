//! `kind = "sync_target"`: one sync target (see `metasystem_actors::sync`): a primary folder
//! (the state dir unless `primary` says) kept the same as `target`, three-way against the last
//! agreed state, with backups, conflicts, guards and live-database snapshots.
//!
//! Config: `target` (required; `~` is home), `primary`, `paths` (files and folders under the
//! primary to sync; default everything), `include` / `exclude` (rsync's and gitignore's
//! patterns: see `metasystem_actors::sync::select`),
//! `every` (10m), `min_interval` (60s), `direction` (push | pull | bidirectional), `strategy`
//! (newest | local | remote | manual), `backups` (default `backups/NAME` in the state dir),
//! `retention` (30d), `max_delete` ("50%": a run deleting more than this share of the synced
//! files stops...), `max_delete_floor` (10: ...unless it deletes this many or fewer),
//! `snapshots` (live SQLite databases pushed as
//! consistent copies into `hosts/HOST/` of the target; relative to the state dir),
//! `snapshot_every` (1h), `breaker` (the circuit breaker runs go through), `watch` (false:
//! changes in the primary start a run, on top of `every`) and `watch_debounce` (2s, from 100ms
//! to 10m: how long the primary must be quiet before that run).
//! Operations: `status`, `sync` (`direction`, `strategy`, `dry_run`, `allow_deletes`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use metasystem_actors::store::format_ms;
use metasystem_actors::sync::actor::{SyncTargetActor, SyncTargetArgs, SyncTargetMessage};
use metasystem_actors::sync::nesting::{nestings, Nesting};
use metasystem_actors::sync::select::{Pattern, Patterns};
use metasystem_actors::sync::watch::{self, WatchSpec};
use metasystem_actors::sync::{Direction, RunOptions, Selection, Strategy, SyncSpec};
use metasystem_actors::ChildSpec;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::io::{self, Write};

use super::{ActorKind, CallCx, CallError, Op, ParseCx, Services, ViewCx};
use crate::config::reader::Table;
use crate::config::schema::{key, Obj, Ty};
use crate::config::{bounded, expand, MAX_DURATION};

#[derive(Debug, Clone)]
pub struct SyncTargetConfig {
    /// `primary` and `target` as configured (the spec's name is the child's name).
    pub spec: SyncSpec,
    pub every: Duration,
    pub min_interval: Duration,
    pub breaker: Option<String>,
    /// `watch = true`: how the primary is watched.
    pub watch: Option<WatchSpec>,
}

impl PartialEq for SyncTargetConfig {
    fn eq(&self, o: &Self) -> bool {
        let (a, b) = (&self.spec, &o.spec);
        a.primary == b.primary
            && a.target == b.target
            && a.selection.paths == b.selection.paths
            && a.selection.include == b.selection.include
            && a.selection.exclude == b.selection.exclude
            && a.direction == b.direction
            && a.strategy == b.strategy
            && a.backups == b.backups
            && a.retention == b.retention
            && a.max_delete == b.max_delete
            && a.max_delete_floor == b.max_delete_floor
            && a.snapshots == b.snapshots
            && a.snapshot_every == b.snapshot_every
            && a.host == b.host
            && self.every == o.every
            && self.min_interval == o.min_interval
            && self.breaker == o.breaker
            && self.watch == o.watch
    }
}

const DIRECTIONS: &[&str] = &["push", "pull", "bidirectional"];
const STRATEGIES: &[&str] = &["newest", "local", "remote", "manual"];

pub fn direction(s: &str) -> Option<Direction> {
    match s {
        "push" => Some(Direction::Push),
        "pull" => Some(Direction::Pull),
        "bidirectional" => Some(Direction::Bidirectional),
        _ => None,
    }
}

pub fn strategy(s: &str) -> Option<Strategy> {
    match s {
        "newest" => Some(Strategy::Newest),
        "local" => Some(Strategy::Local),
        "remote" => Some(Strategy::Remote),
        "manual" => Some(Strategy::Manual),
        _ => None,
    }
}

/// A relative path inside the primary: no `..`, not absolute.
fn relative(raw: &str) -> Result<String, String> {
    let p = Path::new(raw);
    if raw.is_empty() || p.is_absolute() {
        return Err(format!(
            "{raw:?} must be a relative path inside the primary"
        ));
    }
    if p.components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(format!("{raw:?} must not contain `..` or `.`"));
    }
    Ok(raw.trim_end_matches('/').to_string())
}

/// `include` / `exclude`: rsync's and gitignore's patterns (see `sync::select`), each bad one
/// reported at its place.
fn patterns(cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>, key: &'static str) -> Option<Patterns> {
    let items = t.strings(cx.d, key)?;
    let mut good = Vec::new();
    for item in items {
        match Pattern::new(item.get_ref()) {
            Ok(p) => good.push(p),
            Err(e) => cx.d.error(
                item.span(),
                format!("`{key}` in {}: {:?} {e}", t.context, item.get_ref()),
            ),
        }
    }
    if good.is_empty() {
        return None;
    }
    match Patterns::new(good) {
        Ok(set) => Some(set),
        Err(e) => {
            cx.d.error(t.span.clone(), format!("`{key}` in {}: {e}", t.context));
            None
        }
    }
}

/// `max_delete`: "50%" or a number from 0 to 1.
fn share(cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>) -> f64 {
    let Some(v) = t.take("max_delete") else {
        return 0.5;
    };
    let span = v.span();
    let parsed = match v.get_ref() {
        toml::de::DeValue::String(s) => s
            .trim()
            .strip_suffix('%')
            .and_then(|n| n.trim().parse::<f64>().ok())
            .map(|p| p / 100.0),
        toml::de::DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
        toml::de::DeValue::Integer(i) => i.as_str().parse::<f64>().ok(),
        _ => None,
    };
    match parsed {
        Some(x) if (0.0..=1.0).contains(&x) => x,
        _ => {
            cx.d.error(
                span,
                format!(
                    "`max_delete` in {} must be a share of the files, \"0%\" to \"100%\" (or 0 to 1)",
                    t.context
                ),
            );
            0.5
        }
    }
}

/// `max_delete_floor`: how many deletions a run makes before `max_delete` applies (a whole
/// number, 0 or more; default 10).
fn floor(cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>) -> usize {
    const DEFAULT: usize = 10;
    let Some(v) = t.integer(cx.d, "max_delete_floor") else {
        return DEFAULT;
    };
    match usize::try_from(*v.get_ref()) {
        Ok(n) => n,
        Err(_) => {
            cx.d.error(
                v.span(),
                format!(
                    "`max_delete_floor` in {} must be a number of files, 0 or more (deletions \
                     up to it never stop a run; above it `max_delete` applies)",
                    t.context
                ),
            );
            DEFAULT
        }
    }
}

impl ActorKind for SyncTargetConfig {
    type Cli = SyncTargetCommands;
    const NAME: &'static str = "sync_target";
    const OPS: &'static [Op] = &[
        Op {
            name: "status",
            args: "",
            summary: "online or not, the last run and its result, progress of a running one",
        },
        Op {
            name: "sync",
            args: "direction=push|pull, strategy=S, dry_run=true, allow_deletes=N",
            summary: "run now (waits for a running one to finish first) and show what it did",
        },
    ];

    fn schema() -> Obj {
        Obj::new(vec![
            key(
                "target",
                Ty::Str,
                "The folder kept the same as the primary (`~` is home); outside the primary and the state dir.",
            )
            .required()
            .example("/mnt/backup/metasystem"),
            key(
                "primary",
                Ty::Str,
                "The local folder synced (default: the state dir).",
            )
            .example("~/Documents"),
            key(
                "paths",
                Ty::Strings,
                "Files and folders under the primary to sync (relative; default everything).",
            )
            .example(serde_json::json!(["notes"])),
            key(
                "include",
                Ty::Strings,
                "Patterns (rsync's and gitignore's) of what to sync.",
            )
            .example(serde_json::json!(["*.md"])),
            key(
                "exclude",
                Ty::Strings,
                "Patterns (rsync's and gitignore's) of what never to sync.",
            )
            .example(serde_json::json!(["*.tmp"])),
            key("every", Ty::Duration, "How often it runs (at least 1s).").default("10m"),
            key(
                "min_interval",
                Ty::Duration,
                "The least time between two runs started by changes.",
            )
            .default("60s"),
            key(
                "direction",
                Ty::Choice(DIRECTIONS),
                "push (primary to target), pull (target to primary) or bidirectional.",
            )
            .default("bidirectional"),
            key(
                "strategy",
                Ty::Choice(STRATEGIES),
                "How conflicts are settled: newest, local (the primary wins), remote (the target wins) or manual (kept for `resolve`).",
            )
            .default("newest"),
            key(
                "backups",
                Ty::Str,
                "Where replaced and deleted files are kept (default backups/NAME in the state dir).",
            )
            .example("backups/docs"),
            key(
                "retention",
                Ty::Duration,
                "How long backups are kept (at least 1h).",
            )
            .default("30d"),
            key(
                "max_delete",
                Ty::Raw(serde_json::json!({
                    "anyOf": [
                        {"type": "string", "pattern": "^\\s*[0-9.]+\\s*%\\s*$"},
                        {"type": "number", "minimum": 0, "maximum": 1}
                    ]
                })),
                "A run that would delete more than this share of the synced files stops (\"50%\", or 0 to 1) unless it deletes `max_delete_floor` or fewer.",
            )
            .default("50%"),
            key(
                "max_delete_floor",
                Ty::Int,
                "Deletions up to this many never stop a run (0 or more).",
            )
            .default(10),
            key(
                "snapshots",
                Ty::Strings,
                "Live SQLite databases pushed as consistent copies into the target's .metasystem-hosts/HOST/ (relative to the state dir).",
            )
            .example(serde_json::json!(["metastore.db"])),
            key(
                "snapshot_every",
                Ty::Duration,
                "How often the snapshots are taken (at least 1s).",
            )
            .default("1h"),
            key(
                "breaker",
                Ty::Str,
                "The circuit breaker runs go through.",
            )
            .example("icloud"),
            key(
                "watch",
                Ty::Bool,
                "Changes in the primary start a run, on top of `every`.",
            )
            .default(false),
            key(
                "watch_debounce",
                Ty::Duration,
                "How long the primary must be quiet before a watched change starts a run (100ms to 10m).",
            )
            .default("2s"),
        ])
    }

    fn parse(cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>) -> Option<Self> {
        let state = cx.state_dir.clone();
        let name = cx.path.rsplit('/').next().unwrap_or(&cx.path).to_string();
        // With where each is written, for the nesting errors.
        let target = t
            .required_string(cx.d, "target")
            .and_then(|v| expand(cx.d, v.get_ref(), v.span(), &state).map(|p| (p, v.span())));
        let primary = match t.string(cx.d, "primary") {
            Some(v) => expand(cx.d, v.get_ref(), v.span(), &state).map(|p| (p, Some(v.span()))),
            None => Some((state.clone(), None)),
        };
        let mut paths = Vec::new();
        let mut path_spans = Vec::new();
        for p in t.strings(cx.d, "paths").unwrap_or_default() {
            match relative(p.get_ref()) {
                Ok(r) => {
                    paths.push(r);
                    path_spans.push(p.span());
                }
                Err(e) => {
                    cx.d.error(p.span(), format!("`paths` in {}: {e}", t.context))
                }
            }
        }
        let include = patterns(cx, t, "include");
        let exclude = patterns(cx, t, "exclude");
        let every = bounded(cx.d, t, "every", Duration::from_secs(1), MAX_DURATION)
            .unwrap_or(Duration::from_secs(600));
        let min_interval = t
            .duration(cx.d, "min_interval")
            .map(|v| *v.get_ref())
            .unwrap_or(Duration::from_secs(60));
        let direction = t
            .choice(cx.d, "direction", DIRECTIONS)
            .and_then(|v| direction(v.get_ref()))
            .unwrap_or(Direction::Bidirectional);
        let strategy = t
            .choice(cx.d, "strategy", STRATEGIES)
            .and_then(|v| strategy(v.get_ref()))
            .unwrap_or(Strategy::Newest);
        let backups = match t.string(cx.d, "backups") {
            Some(v) => expand(cx.d, v.get_ref(), v.span(), &state),
            None => Some(state.join("backups").join(&name)),
        };
        let retention = bounded(
            cx.d,
            t,
            "retention",
            Duration::from_secs(3600),
            MAX_DURATION,
        )
        .unwrap_or(Duration::from_secs(30 * 86_400));
        let max_delete = share(cx, t);
        let max_delete_floor = floor(cx, t);
        let mut snapshots = Vec::new();
        for s in t.strings(cx.d, "snapshots").unwrap_or_default() {
            if let Some(p) = expand(cx.d, s.get_ref(), s.span(), &state) {
                snapshots.push(p);
            }
        }
        let snapshot_every = bounded(
            cx.d,
            t,
            "snapshot_every",
            Duration::from_secs(1),
            MAX_DURATION,
        )
        .unwrap_or(Duration::from_secs(3600));
        let breaker = t.string(cx.d, "breaker").map(|v| v.get_ref().clone());
        let watch = t.boolean(cx.d, "watch").is_some_and(|v| *v.get_ref());
        let debounce = bounded(
            cx.d,
            t,
            "watch_debounce",
            watch::MIN_DEBOUNCE,
            watch::MAX_DEBOUNCE,
        )
        .unwrap_or(watch::DEFAULT_DEBOUNCE);
        let ((target, target_at), (primary, primary_at), backups) = (target?, primary?, backups?);
        // A target inside the primary, around it, or around the state dir, the paths resolved
        // (a symlink on the way does not hide it): each at the value it is about.
        let found = nestings(&primary, &target, &state);
        for f in &found {
            let (key, at) = match (f.nesting, &primary_at) {
                (Nesting::PrimaryInTarget, Some(at)) => ("primary", at.clone()),
                _ => ("target", target_at.clone()),
            };
            cx.d.error(
                at,
                format!(
                    "`{key}` in {}: {f} (a target must be outside its primary and hold neither \
                     it nor the daemon's state dir)",
                    t.context
                ),
            );
        }
        if !found.is_empty() {
            return None;
        }
        if paths.is_empty() && same(&primary, &state) {
            cx.d.error(
                t.span.clone(),
                format!(
                    "{}: the primary is the state dir (the daemon's own files): list what to sync \
                     in `paths` (e.g. paths = [\"shared\"])",
                    t.context
                ),
            );
            return None;
        }
        // Never synced as files: the backups, the snapshotted databases and the daemon's own
        // files, when under the primary (a primary of `~` holds the state dir).
        let mut never = Vec::new();
        let own = daemon_files(&state);
        for p in std::iter::once(&backups).chain(&snapshots).chain(&own) {
            if let Ok(rel) = p.strip_prefix(&primary) {
                never.push(rel.to_string_lossy().into_owned());
            }
        }
        // A listed path that is one of those, or inside one, would never sync, silently.
        let mut refused = false;
        for (p, span) in paths.iter().zip(&path_spans) {
            let p = p.trim_end_matches('/');
            if let Some(n) = never
                .iter()
                .find(|n| p == n.as_str() || p.starts_with(&format!("{n}/")))
            {
                cx.d.error(
                    span.clone(),
                    format!(
                        "`paths` in {}: `{p}` is {} (the daemon's own: never synced); take it \
                         out of `paths`, or sync a folder of your own",
                        t.context,
                        if p == n.as_str() {
                            format!("{}", primary.join(n).display())
                        } else {
                            format!("inside {}", primary.join(n).display())
                        }
                    ),
                );
                refused = true;
            }
        }
        if refused {
            return None;
        }
        // Names this host in the target: its lock, its per-host snapshots, the marker.
        let host = cx.host(t.span.clone());
        Some(SyncTargetConfig {
            spec: SyncSpec {
                name,
                primary,
                target,
                selection: Selection {
                    paths,
                    include,
                    exclude,
                    never,
                },
                direction,
                strategy,
                backups,
                retention,
                max_delete,
                max_delete_floor,
                snapshots,
                snapshot_every,
                host,
                state_dir: state.clone(),
            },
            every,
            min_interval,
            breaker,
            watch: watch.then(|| WatchSpec {
                debounce,
                ignore: daemon_files(&state),
            }),
        })
    }

    fn child_spec(&self, name: &str, services: &Services) -> ChildSpec {
        let (config, services) = (self.clone(), services.clone());
        ChildSpec::worker(name, Self::NAME, move |ctx| {
            (
                SyncTargetActor,
                SyncTargetArgs {
                    path: ctx.path.clone(),
                    spec: config.spec.clone(),
                    every: config.every,
                    min_interval: config.min_interval,
                    breaker: config.breaker.clone(),
                    store: services.store.clone(),
                    metrics: services.metrics.clone(),
                    alerts: services.alerts.clone(),
                    breakers: services.breakers.clone(),
                    registry: services.sync.clone(),
                    watch: config.watch.clone(),
                },
            )
        })
    }

    fn warnings(&self, path: &str) -> Vec<String> {
        let mut out = Vec::new();
        if !self.spec.target.is_dir() {
            out.push(format!(
                "{path}: the target {} does not exist here: the target is offline until it does",
                self.spec.target.display()
            ));
        }
        if !self.spec.primary.is_dir() {
            out.push(format!(
                "{path}: the primary {} does not exist here: its runs fail until it does{}",
                self.spec.primary.display(),
                if self.watch.is_some() {
                    " (and it is watched once it does)"
                } else {
                    ""
                }
            ));
        }
        if !self.spec.snapshots.is_empty() && self.every > self.spec.snapshot_every {
            // Snapshots are pushed by runs: other hosts' `hosts` would call this one stale.
            out.push(format!(
                "{path}: snapshots are pushed by sync runs, which come every {}: they are \
                 refreshed that often, not every {} (`snapshot_every`), and other hosts' \
                 `metasystem hosts` shows this host stale after twice `snapshot_every`; set \
                 `snapshot_every` to at least `every`",
                humantime::format_duration(self.every),
                humantime::format_duration(self.spec.snapshot_every)
            ));
        }
        out
    }

    async fn call(cx: CallCx<'_>, op: &str, args: Value) -> Result<Value, CallError> {
        super::check_op(Self::NAME, Self::OPS, op)?;
        if op == "status" {
            super::args::<super::NoArgs>(op, args)?;
            let s = super::ask(&cx, SyncTargetMessage::Status).await?;
            return super::reply(&s);
        }
        let a: SyncArgs = super::args(op, args)?;
        let mut opts = run_options(a.direction.as_deref(), a.strategy.as_deref(), a.dry_run)
            .map_err(|e| CallError::new(crate::control::protocol::code::BAD_REQUEST, e))?;
        opts.allow_deletes = a.allow_deletes;
        let report = super::ask(&cx, |r| SyncTargetMessage::Run(opts, Some(r))).await?;
        super::reply(&report)
    }

    async fn status(cx: &ViewCx<'_>) -> Map<String, Value> {
        let sync = statuses(cx.services)
            .await
            .into_iter()
            .map(|t| SyncLine {
                name: t.name,
                online: t.online,
                running: t.running,
                last_outcome: t.last.as_ref().map(|l| l.outcome),
                last_at: t.last.as_ref().map(|l| format_ms(l.at_ms)),
                last_reason: t.last.and_then(|l| l.reason),
                last_success: t.last_success_ms.map(format_ms),
            })
            .collect();
        super::keys(&SyncSection { sync })
    }

    /// The hosts panel, when a target holds another host's snapshot.
    fn top_panel(
        conn: &mut crate::control::client::Connection,
    ) -> Option<Result<super::Panel, String>> {
        super::sync_hosts::top_panel(conn)
    }

    fn render_status(status: &Map<String, Value>, out: &mut dyn Write) -> io::Result<()> {
        let s: SyncSection = super::section(status);
        for t in &s.sync {
            let last = match (&t.last_outcome, &t.last_at) {
                (Some(o), Some(at)) => format!(
                    "last run {} at {at}{}",
                    o.name(),
                    t.last_reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
                _ => match &t.last_success {
                    Some(at) => format!("no run since the daemon started; last success at {at}"),
                    None => "never synced".to_string(),
                },
            };
            writeln!(
                out,
                "sync:      {} ({}{}): {last}",
                t.name,
                if t.online { "online" } else { "offline" },
                if t.running { ", running" } else { "" }
            )?;
        }
        Ok(())
    }
}

/// Every sync target's status: asked of the registry (which reads the targets' state) on the
/// blocking pool for at most 2 s, else what the targets last published.
pub async fn statuses(services: &Services) -> Vec<metasystem_actors::sync::TargetStatus> {
    let registry = services.sync.clone();
    match tokio::time::timeout(
        Duration::from_secs(2),
        tokio::task::spawn_blocking(move || registry.statuses()),
    )
    .await
    {
        Ok(Ok(s)) => s,
        _ => services.sync.published(),
    }
}

/// The sync targets' part of `status`: each target's last run, one line each.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SyncSection {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sync: Vec<SyncLine>,
}

/// A sync target in `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SyncLine {
    name: String,
    online: bool,
    #[serde(default)]
    running: bool,
    /// The last run since the daemon started: success | skipped | error, when, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_outcome: Option<metasystem_actors::sync::Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_reason: Option<String>,
    /// The last successful run (from the store: earlier runs of the daemon count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_success: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncArgs {
    direction: Option<String>,
    strategy: Option<String>,
    #[serde(default)]
    dry_run: bool,
    /// Let this run through the guard on mass deletion, up to this many deletions.
    allow_deletes: Option<usize>,
}

/// A forced run's options from their names.
pub fn run_options(
    direction_name: Option<&str>,
    strategy_name: Option<&str>,
    dry_run: bool,
) -> Result<RunOptions, String> {
    let direction = match direction_name {
        None => None,
        Some(d) => Some(direction(d).ok_or_else(|| {
            format!(
                "direction {d:?} is not {}",
                crate::config::reader::one_of(DIRECTIONS)
            )
        })?),
    };
    let strategy = match strategy_name {
        None => None,
        Some(s) => Some(strategy(s).ok_or_else(|| {
            format!(
                "strategy {s:?} is not {}",
                crate::config::reader::one_of(STRATEGIES)
            )
        })?),
    };
    Ok(RunOptions {
        direction,
        strategy,
        dry_run,
        lock_wait: None,
        allow_deletes: None,
        after_stamp: None,
    })
}

/// What the daemon itself writes in its state dir, all the time: never a change a watch acts
/// on, even when a primary holds the state dir (the store's writes would start a run, whose
/// events the store writes, and so on).
fn daemon_files(state: &Path) -> Vec<PathBuf> {
    [
        "metastore.db",
        "metastore.db-wal",
        "metastore.db-shm",
        "metastore.db-journal",
        "daemon.lock",
        "backups",
        metasystem_actors::store::base_file::FOLDER,
    ]
    .iter()
    .map(|n| state.join(n))
    .collect()
}

fn same(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| PathBuf::from(p));
    canon(a) == canon(b)
}

/// The sync target kind's commands.
#[derive(clap::Subcommand, Debug)]
pub enum SyncTargetCommands {
    /// Sync now: run TARGET (every target without one), wait, and show what it did.
    /// `sync status`: each target's state and last run.
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "Exit codes: 0 every run did all there was to do; 3 a run succeeded only \
                      in part (paths deferred to the next run, unresolved conflicts); 75 a run \
                      did not happen (offline, another run holds the lock, circuit breaker \
                      open): try again later; 1 a run failed or was refused; 2 usage or \
                      connection error. With several targets the worst wins: 1, then 3, then \
                      75. Why is printed in the summary (on stderr with --json)."
    )]
    Sync {
        #[command(subcommand)]
        action: Option<SyncAction>,
        /// The target (its name in the tree).
        target: Option<String>,
        /// Only the primary's changes go to the target (the target's are left pending).
        #[arg(long, conflicts_with = "pull")]
        push: bool,
        /// Only the target's changes come to the primary.
        #[arg(long)]
        pull: bool,
        /// How conflicts are decided this time: newest | local | remote | manual.
        #[arg(long, value_name = "STRATEGY")]
        strategy: Option<String>,
        /// Show what would be done, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Let this one run of TARGET through the guard on mass deletion (`max_delete`): it
        /// may delete up to N files, and lists each deletion it plans before its summary;
        /// were it to delete more than N, it stops all the same (saying how many). See the
        /// plan first with --dry-run.
        #[arg(long, value_name = "N", requires = "target")]
        allow_deletes: Option<usize>,
    },
    /// Sync conflicts the manual strategy kept (target, path, when, the conflict copy): the
    /// open ones, or all with --all. `conflicts resolve PATH --keep local|remote|both`
    /// settles one.
    #[command(args_conflicts_with_subcommands = true)]
    Conflicts {
        #[command(subcommand)]
        action: Option<ConflictsAction>,
        /// Resolved ones too.
        #[arg(long)]
        all: bool,
        /// Only this sync target's.
        #[arg(long, value_name = "TARGET")]
        target: Option<String>,
    },
    /// The backups sync targets took before replacing or deleting a file, newest first,
    /// grouped by the run that took them (its ID, as `sync` reports it): original path, size,
    /// name. `backups restore NAME` puts one back, `backups restore --run ID` a whole run's.
    #[command(args_conflicts_with_subcommands = true)]
    Backups {
        #[command(subcommand)]
        action: Option<BackupsAction>,
        /// Only this sync target's.
        #[arg(long, value_name = "TARGET")]
        target: Option<String>,
    },
    /// Check every SQLite database of every sync location (the primary's synced paths, each
    /// target's, its per-host snapshots): integrity_check and row counts; exit 1 if one fails.
    /// Offline targets are reported, not failed.
    Verify,
    /// The fleet: every host whose store a sync target holds a snapshot of (in its
    /// `.metasystem-hosts/`), this host live: when its snapshot was taken (stale past twice
    /// its `snapshot_every`), version, uptime, failed or restarting actors, its sync targets'
    /// last runs, firing alerts, probes not passing. An unreadable snapshot is reported for
    /// its host. Snapshots are only ever read (read only, immutable).
    Hosts {
        /// Only the hosts in this sync target's folder.
        #[arg(long, value_name = "TARGET")]
        target: Option<String>,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum SyncAction {
    /// Each target: online or offline, the last run and its result, a run in progress.
    Status,
}

#[derive(clap::Subcommand, Debug)]
pub enum BackupsAction {
    /// Put backup NAME (as `backups` lists it) back in the primary at its original path:
    /// the current file is backed up first; the next run syncs the restored one out. A live
    /// database (a non-empty -wal beside it) is never replaced. `--run ID`: every file one
    /// run replaced or deleted, each so; `--since D --target T`: each file as it was before
    /// the first run since D changed it. Each path's result is listed; exit 1 if one failed.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["name", "run", "since"])))]
    Restore {
        /// The backup, as `backups` lists it.
        name: Option<String>,
        /// Every backup of the run with this ID (YYYYMMDD-HHMMSS, UTC, as `sync` reports it and
        /// `backups` lists it): what it replaced or deleted goes back in the primary.
        #[arg(long, value_name = "ID")]
        run: Option<String>,
        /// For each path, its oldest backup taken at or after D (a time back from now, e.g. 2h,
        /// or an RFC 3339 time): the path as it was before the first run since D touched it.
        /// Needs --target.
        #[arg(long, value_name = "D", value_parser = crate::cli::since_time, requires = "target")]
        since: Option<std::time::SystemTime>,
        /// The sync target (needed when several hold a backup of that name or run).
        #[arg(long, value_name = "TARGET")]
        target: Option<String>,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum ConflictsAction {
    /// Settle the open conflict of PATH (relative to the primary): `local` puts the
    /// primary's version on the target, `remote` the target's on the primary (what is
    /// replaced is backed up, the conflict copy moves into the backups); `both` pushes the
    /// primary's version and keeps the conflict copy as a normal file. Waits for a run in
    /// progress.
    Resolve {
        path: String,
        /// The sync target (needed when PATH has open conflicts in several).
        #[arg(long, value_name = "TARGET")]
        target: Option<String>,
        /// Which version to keep.
        #[arg(long, value_parser = keep_arg(), value_name = "local|remote|both")]
        keep: metasystem_actors::sync::Keep,
    },
}

impl super::KindCli for SyncTargetCommands {
    fn request(&self) -> Result<crate::control::request::Command, String> {
        use crate::control::request as R;
        Ok(match self {
            SyncTargetCommands::Sync {
                action: Some(SyncAction::Status),
                ..
            } => R::SyncStatus {}.into(),
            SyncTargetCommands::Sync {
                action: None,
                target,
                push,
                pull,
                strategy,
                dry_run,
                allow_deletes,
            } => R::Sync {
                target: target.clone(),
                direction: if *push {
                    Some("push".into())
                } else if *pull {
                    Some("pull".into())
                } else {
                    None
                },
                strategy: strategy.clone(),
                dry_run: *dry_run,
                lock_wait_ms: None,
                allow_deletes: *allow_deletes,
            }
            .into(),
            SyncTargetCommands::Conflicts {
                action: None,
                all,
                target,
            } => R::Conflicts {
                all: *all,
                target: target.clone(),
            }
            .into(),
            SyncTargetCommands::Conflicts {
                action: Some(ConflictsAction::Resolve { path, target, keep }),
                ..
            } => R::ConflictResolve {
                path: path.clone(),
                target: target.clone(),
                keep: *keep,
            }
            .into(),
            SyncTargetCommands::Verify => R::Verify {}.into(),
            SyncTargetCommands::Hosts { target } => R::Hosts {
                target: target.clone(),
            }
            .into(),
            SyncTargetCommands::Backups {
                action: None,
                target,
            } => R::Backups {
                target: target.clone(),
            }
            .into(),
            SyncTargetCommands::Backups {
                action:
                    Some(BackupsAction::Restore {
                        name: Some(name),
                        target,
                        ..
                    }),
                ..
            } => R::BackupRestore {
                name: name.clone(),
                target: target.clone(),
            }
            .into(),
            SyncTargetCommands::Backups {
                action:
                    Some(BackupsAction::Restore {
                        name: None,
                        run,
                        since,
                        target,
                    }),
                ..
            } => R::BackupRestoreRun {
                run: run.clone(),
                since_unix_ms: since.map(metasystem_actors::store::unix_ms),
                target: target.clone(),
            }
            .into(),
        })
    }
}

/// `--keep`: `local`, `remote` or `both`, as possible values (so shell completions offer
/// them; a function parser hid them and the shells offered files).
fn keep_arg() -> impl clap::builder::TypedValueParser<Value = metasystem_actors::sync::Keep> {
    use clap::builder::TypedValueParser;
    use metasystem_actors::sync::Keep;
    clap::builder::PossibleValuesParser::new(["local", "remote", "both"]).map(|s| {
        match s.as_str() {
            "local" => Keep::Local,
            "remote" => Keep::Remote,
            _ => Keep::Both,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Kind;

    fn parse(keys: &str) -> Result<SyncTargetConfig, String> {
        let src = format!(
            "[daemon]\nstate_dir = \"/tmp/ms-state\"\n[root]\n[[root.children]]\nname = \"t\"\n\
             kind = \"sync_target\"\ntarget = \"/tmp/elsewhere\"\npaths = [\"shared\"]\n{keys}\n"
        );
        match crate::config::parse(&src, "t.toml", Path::new("/")) {
            Ok(c) => match &c.root.children[0].kind {
                Kind::SyncTarget(t) => Ok(t.clone()),
                other => panic!("{other:?}"),
            },
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn check_warns_when_runs_are_rarer_than_snapshots() {
        let warned = |keys: &str| {
            let t = parse(keys).unwrap_or_else(|e| panic!("{e}"));
            t.warnings("root/t")
                .into_iter()
                .any(|w| w.contains("snapshots are pushed by sync runs"))
        };
        assert!(warned(
            "snapshots = [\"metastore.db\"]\nsnapshot_every = \"1m\"\nevery = \"10m\""
        ));
        assert!(!warned(
            "snapshots = [\"metastore.db\"]\nsnapshot_every = \"1h\"\nevery = \"10m\""
        ));
        assert!(!warned("snapshot_every = \"1m\"\nevery = \"10m\""));
    }

    /// Regression: a primary holding the state dir (`~`) with no `paths` synced the daemon's
    /// live store and lock as plain files.
    #[test]
    fn a_primary_holding_the_state_dir_never_syncs_the_daemons_files() {
        let src = "[daemon]\nstate_dir = \"/tmp/ms-home/.metasystem\"\n[root]\n[[root.children]]\n\
                   name = \"t\"\nkind = \"sync_target\"\ntarget = \"/tmp/elsewhere\"\n\
                   primary = \"/tmp/ms-home\"\n";
        let c = match crate::config::parse(src, "t.toml", Path::new("/")) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let Kind::SyncTarget(t) = &c.root.children[0].kind else {
            panic!("not a sync target")
        };
        let sel = &t.spec.selection;
        for own in [
            ".metasystem/metastore.db",
            ".metasystem/metastore.db-wal",
            ".metasystem/daemon.lock",
            ".metasystem/backups/t/a.txt-20260101-000000.bak",
        ] {
            assert!(!sel.wants(own), "{own} would sync");
        }
        assert!(sel.wants(".metasystem/shared/notes.txt"));
        assert!(sel.wants("Documents/a.txt"));
    }

    #[test]
    fn max_delete_floor_defaults_to_10_and_is_checked_at_its_place() {
        assert_eq!(parse("").unwrap().spec.max_delete_floor, 10);
        assert_eq!(
            parse("max_delete_floor = 0").unwrap().spec.max_delete_floor,
            0
        );
        assert_eq!(
            parse("max_delete_floor = 250")
                .unwrap()
                .spec
                .max_delete_floor,
            250
        );
        // A change of it is a change of the child.
        assert_ne!(parse("max_delete_floor = 3").unwrap(), parse("").unwrap());
        let e = parse("max_delete_floor = -1").unwrap_err();
        assert!(
            e.contains("t.toml:9:20")
                && e.contains("`max_delete_floor`")
                && e.contains("0 or more"),
            "{e}"
        );
        let e = parse("max_delete_floor = \"10%\"").unwrap_err();
        assert!(
            e.contains("`max_delete_floor`") && e.contains("integer"),
            "{e}"
        );
    }

    #[test]
    fn watch_is_off_unless_asked_and_ignores_the_daemons_own_files() {
        assert_eq!(parse("").unwrap().watch, None);
        assert_eq!(parse("watch = false").unwrap().watch, None);
        let w = parse("watch = true").unwrap().watch.unwrap();
        assert_eq!(w.debounce, watch::DEFAULT_DEBOUNCE);
        let state = Path::new("/tmp/ms-state");
        for own in [
            "metastore.db",
            "metastore.db-wal",
            "daemon.lock",
            "backups",
            "sync-base",
        ] {
            assert!(w.ignore.contains(&state.join(own)), "{own}");
        }
        let w = parse("watch = true\nwatch_debounce = \"500ms\"").unwrap();
        assert_eq!(w.watch.unwrap().debounce, Duration::from_millis(500));
        // A change of watch or of its debounce is a change of the child (reload replaces it).
        assert_ne!(parse("watch = true").unwrap(), parse("").unwrap());
        assert_ne!(
            parse("watch = true").unwrap(),
            parse("watch = true\nwatch_debounce = \"3s\"").unwrap()
        );
    }

    #[test]
    fn bad_watch_values_are_errors_with_what_is_wrong() {
        let e = parse("watch = \"yes\"\nwatch_debounce = \"10ms\"").unwrap_err();
        assert!(e.contains("watch"), "{e}");
        assert!(
            e.contains("`watch_debounce`") && e.contains("between 100ms and 10m"),
            "{e}"
        );
        let e = parse("watch_debounce = \"2h\"").unwrap_err();
        assert!(e.contains("between 100ms and 10m"), "{e}");
        let e = parse("wach = true").unwrap_err();
        assert!(e.contains("watch"), "{e}");
    }

    /// The host a target knows this one by is its identity (hostname + machine id), or the
    /// one given; a new identity is a change of the child (reload restarts it as that host).
    #[test]
    fn the_spec_names_this_host_by_its_identity() {
        let with = |daemon: &str| {
            let src = format!(
                "[daemon]\nstate_dir = \"/tmp/ms-state\"\n{daemon}\n[root]\n[[root.children]]\n\
                 name = \"t\"\nkind = \"sync_target\"\ntarget = \"/tmp/elsewhere\"\n\
                 paths = [\"shared\"]\n"
            );
            match crate::config::parse(&src, "t.toml", Path::new("/")) {
                Ok(c) => match &c.root.children[0].kind {
                    Kind::SyncTarget(t) => t.clone(),
                    other => panic!("{other:?}"),
                },
                Err(e) => panic!("{e}"),
            }
        };
        let derived = with("");
        assert_eq!(
            Ok(derived.spec.host.clone()),
            metasystem_actors::host::resolve(None, Path::new("/tmp/ms-state"))
        );
        if std::env::var_os(metasystem_actors::host::ENV).is_none() {
            let hostname = metasystem_actors::host::hostname();
            assert!(
                derived.spec.host.len() > hostname.len(),
                "{} is more than {hostname}",
                derived.spec.host
            );
            let given = with("host_id = \"laptop-2\"");
            assert_eq!(given.spec.host, "laptop-2");
            assert_ne!(given, derived);
        }
    }
}
