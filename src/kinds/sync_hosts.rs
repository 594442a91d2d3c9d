//! The fleet view of the sync targets (`metasystem hosts`, `top`'s hosts panel): what each
//! host's snapshot of its store says of it, read from `TARGET/.metasystem-hosts/HOST/`.
//!
//! The daemon answers [`HostsResult`] (`daemon::hosts`): this host from its live state, every
//! other host from its newest readable snapshot (its `host_info` row:
//! `metasystem_actors::store::hosts`). A snapshot older than twice its `snapshot_every` is
//! *stale*; one that cannot be read is *unreadable*, with why, and the others are shown all the
//! same. The summary a host gives of itself is [`HostSummary`], the JSON of its `host_info`.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use super::{Cell, Panel, Tone};
use crate::control::client::Connection;

/// What a host says of itself (the `summary` of its `host_info`; every field defaults, so an
/// older or newer host's summary still reads).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostSummary {
    pub tree: TreeHealth,
    /// Its sync targets, each with its last run.
    pub sync: Vec<SyncBrief>,
    /// Alerts firing (conditions raised and not cleared).
    pub alerts: Vec<AlertBrief>,
    /// Probes whose status is warn or fail.
    pub probes: Vec<ProbeBrief>,
}

/// The tree's health: counts by state, and the actors failed or restarting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TreeHealth {
    pub running: usize,
    pub restarting: usize,
    pub stopped: usize,
    pub failed: usize,
    /// Failed or restarting actors, and supervisors that did not answer.
    pub unhealthy: Vec<NodeBrief>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeBrief {
    pub path: String,
    pub state: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncBrief {
    pub name: String,
    pub running: bool,
    /// The last run: when (Unix ms), its outcome (success, partial, skipped, error) and why.
    pub last_ms: Option<i64>,
    pub outcome: Option<String>,
    pub reason: Option<String>,
    pub last_success_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertBrief {
    pub key: String,
    pub severity: String,
    pub title: String,
    pub source: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProbeBrief {
    pub path: String,
    pub status: String,
    pub message: String,
}

/// One host of the fleet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostView {
    pub host: String,
    /// This host (the daemon answering).
    pub this: bool,
    /// `live` (this host's running state) or `snapshot`.
    pub source: String,
    /// The sync target whose folder holds the snapshot shown, and the file.
    pub target: Option<String>,
    pub file: Option<String>,
    /// When its snapshot was taken (Unix ms) and how long ago (seconds; 0 for a time ahead).
    pub taken_ms: Option<i64>,
    pub age_s: Option<u64>,
    pub snapshot_every_s: Option<u64>,
    /// The snapshot is older than twice its `snapshot_every`.
    pub stale: bool,
    pub version: Option<String>,
    pub started_ms: Option<i64>,
    /// Up for this long when the snapshot was taken (live: now).
    pub uptime_s: Option<u64>,
    /// Why its snapshot could not be read (then nothing else is known of it).
    pub unreadable: Option<String>,
    pub summary: Option<HostSummary>,
}

/// A target looked at, and what was wrong with it as a whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TargetLook {
    pub name: String,
    pub path: String,
    /// Hosts with a folder in its `.metasystem-hosts/`.
    pub hosts: usize,
    /// Offline, or its hosts' folder unreadable.
    pub error: Option<String>,
}

/// What `hosts` answers: this host first, then the others by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostsResult {
    pub hosts: Vec<HostView>,
    pub targets: Vec<TargetLook>,
}

impl HostView {
    /// Whether the host needs a look: stale, unreadable, or its summary shows a problem.
    pub fn trouble(&self) -> bool {
        self.stale
            || self.unreadable.is_some()
            || self.summary.as_ref().is_some_and(|s| {
                !s.tree.unhealthy.is_empty()
                    || !s.alerts.is_empty()
                    || !s.probes.is_empty()
                    || s.sync.iter().any(|t| t.outcome.as_deref() == Some("error"))
            })
    }

    /// One word: unreadable, stale, trouble or ok.
    pub fn state(&self) -> &'static str {
        if self.unreadable.is_some() {
            "unreadable"
        } else if self.stale {
            "stale"
        } else if self.trouble() {
            "trouble"
        } else {
            "ok"
        }
    }
}

/// `hosts` exits 0 whatever it finds: it reports.
impl crate::cli::exit::Verdict for HostsResult {}

fn ago(s: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(s)).to_string()
}

/// `metasystem hosts`, for people.
pub fn render(out: &mut dyn Write, r: &HostsResult) -> io::Result<()> {
    for t in &r.targets {
        if let Some(e) = &t.error {
            writeln!(out, "target {} ({}): {e}", t.name, t.path)?;
        }
    }
    if r.hosts.is_empty() {
        writeln!(out, "no hosts found")?;
    }
    for h in &r.hosts {
        let mut head = format!("{}: {}", h.host, h.state());
        if h.this {
            head.push_str(" (this host, ");
            head.push_str(if h.source == "live" {
                "live state"
            } else {
                "its snapshot"
            });
            head.push(')');
        }
        writeln!(out, "{head}")?;
        if let Some(why) = &h.unreadable {
            writeln!(
                out,
                "  unreadable: {why}{}",
                h.file
                    .as_ref()
                    .map(|f| format!(" ({f})"))
                    .unwrap_or_default()
            )?;
            continue;
        }
        if let (Some(age), Some(target)) = (h.age_s, &h.target) {
            let every = h
                .snapshot_every_s
                .map(|e| format!(", taken every {}", ago(e)))
                .unwrap_or_default();
            writeln!(
                out,
                "  snapshot: {} ago in target {target}{every}{}",
                ago(age),
                if h.stale { " — STALE" } else { "" }
            )?;
        }
        let version = h.version.as_deref().unwrap_or("unknown");
        match h.uptime_s {
            Some(up) => writeln!(out, "  version {version}, up {}", ago(up))?,
            None => writeln!(out, "  version {version}")?,
        }
        let Some(s) = &h.summary else {
            writeln!(out, "  no summary (a version before host_info)")?;
            continue;
        };
        let t = &s.tree;
        writeln!(
            out,
            "  tree: {} running, {} restarting, {} stopped, {} failed",
            t.running, t.restarting, t.stopped, t.failed
        )?;
        for n in &t.unhealthy {
            writeln!(
                out,
                "    {} {}{}",
                n.path,
                n.state,
                n.error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )?;
        }
        for t in &s.sync {
            let last = match (t.last_ms, &t.outcome) {
                (Some(at), Some(o)) => format!(
                    "{o} at {}{}",
                    metasystem_actors::store::format_ms(at),
                    t.reason
                        .as_ref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ),
                _ => "never run".into(),
            };
            let running = if t.running { ", running" } else { "" };
            writeln!(out, "  sync {}: {last}{running}", t.name)?;
        }
        for a in &s.alerts {
            writeln!(
                out,
                "  alert firing [{}] {}: {}",
                a.severity, a.key, a.title
            )?;
        }
        for p in &s.probes {
            writeln!(out, "  probe {} {}: {}", p.path, p.status, p.message)?;
        }
    }
    Ok(())
}

/// `top`'s hosts panel: only when a target holds another host's snapshot.
pub fn top_panel(conn: &mut Connection) -> Option<Result<Panel, String>> {
    // A daemon that cannot answer (an older one) has no panel rather than a broken `top`.
    let r = super::fetch(conn, crate::control::request::Hosts { target: None }).ok()?;
    if !r.hosts.iter().any(|h| !h.this) {
        return None;
    }
    let rows = r
        .hosts
        .iter()
        .map(|h| {
            let tone = match h.state() {
                "ok" => Tone::Good,
                "trouble" => Tone::Warn,
                _ => Tone::Bad,
            };
            let s = h.summary.clone().unwrap_or_default();
            let sync = s
                .sync
                .iter()
                .map(|t| format!("{}:{}", t.name, t.outcome.as_deref().unwrap_or("-")))
                .collect::<Vec<_>>()
                .join(" ");
            let mut notes = Vec::new();
            if let Some(u) = &h.unreadable {
                notes.push(format!("unreadable: {u}"));
            }
            if !s.tree.unhealthy.is_empty() {
                notes.push(format!("{} unhealthy", s.tree.unhealthy.len()));
            }
            if !s.alerts.is_empty() {
                notes.push(format!("{} alert(s)", s.alerts.len()));
            }
            if !s.probes.is_empty() {
                notes.push(format!("{} probe(s) not passing", s.probes.len()));
            }
            vec![
                Cell::plain(if h.this {
                    format!("{} *", h.host)
                } else {
                    h.host.clone()
                }),
                Cell::toned(h.state(), tone),
                Cell::plain(match (h.this, h.age_s) {
                    (true, _) if h.source == "live" => "live".to_string(),
                    (_, Some(a)) => format!("{} ago", ago(a)),
                    _ => "-".into(),
                }),
                Cell::plain(h.version.clone().unwrap_or_default()),
                Cell::plain(sync),
                Cell::plain(notes.join(", ")),
            ]
        })
        .collect();
    Some(Ok(Panel {
        key: "hosts",
        title: "hosts".into(),
        columns: vec![
            ("HOST", Some(20)),
            ("STATE", Some(10)),
            ("SNAPSHOT", Some(12)),
            ("VERSION", Some(8)),
            ("SYNC", Some(24)),
            ("NOTES", None),
        ],
        rows,
        data: serde_json::to_value(&r).unwrap_or_default(),
    }))
}
