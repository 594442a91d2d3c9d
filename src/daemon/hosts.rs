//! `hosts`: the fleet view. This host's summary of itself (what the `host_info` row of each
//! snapshot of its store carries, and what `hosts` shows of it live), and the reading of every
//! host's snapshot in the sync targets' `.metasystem-hosts/`.
//!
//! Snapshots are read only and immutable (`store::hosts::read_snapshot`: nothing is written or
//! created in the shared folder), folders listed on the blocking pool, and a snapshot already
//! read is not read again while its file is unchanged (path, size, mtime, inode), so `top`'s
//! refreshes cost a listing. A snapshot that cannot be read is reported for its host only.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use metasystem_actors::store::hosts::{Described, HostInfo};
use metasystem_actors::store::unix_ms;
use metasystem_actors::sync::scan::HOSTS;
use metasystem_actors::NodeState;

use super::Daemon;
use crate::control::protocol::{code, Failure};
use crate::control::request;
use crate::kinds::sync_hosts::{
    AlertBrief, HostSummary, HostView, HostsResult, NodeBrief, ProbeBrief, SyncBrief, TargetLook,
    TreeHealth,
};
use crate::wiring::Services;

/// The store's file name: the snapshot of it is the one read.
const STORE_FILE: &str = "metastore.db";

/// This host's summary of itself now.
pub async fn summary(services: &Services) -> HostSummary {
    let nodes = match services.tree.get() {
        Some(tree) => tree.snapshot().await,
        None => Vec::new(),
    };
    let count = |s: NodeState| nodes.iter().filter(|n| n.state == s).count();
    let tree = TreeHealth {
        running: count(NodeState::Running),
        restarting: count(NodeState::Restarting),
        stopped: count(NodeState::Stopped),
        failed: count(NodeState::Failed),
        unhealthy: nodes
            .iter()
            .filter(|n| {
                n.unresponsive || matches!(n.state, NodeState::Failed | NodeState::Restarting)
            })
            .map(|n| NodeBrief {
                path: n.path.clone(),
                state: if n.unresponsive {
                    "unresponsive".into()
                } else {
                    n.state.as_str().into()
                },
                error: n.error.clone(),
            })
            .collect(),
    };
    let sync = services
        .sync
        .published()
        .into_iter()
        .map(|t| SyncBrief {
            name: t.name,
            running: t.running,
            last_ms: t.last.as_ref().map(|l| l.at_ms),
            outcome: t.last.as_ref().map(|l| l.outcome.name().to_string()),
            reason: t.last.as_ref().and_then(|l| l.reason.clone()),
            last_success_ms: t.last_success_ms,
        })
        .collect();
    let alerts = services
        .alerts
        .truth()
        .active()
        .into_iter()
        .map(|a| AlertBrief {
            key: a.alert.key(),
            severity: a.alert.severity.as_str().into(),
            title: a.alert.title.clone(),
            source: a.alert.source.clone(),
        })
        .collect();
    let probes = services
        .probes
        .reports()
        .into_iter()
        .filter(|p| !p.pending() && p.status != metasystem_actors::probes::Health::Pass)
        .map(|p| ProbeBrief {
            status: p.status_str().into(),
            message: p
                .last
                .as_ref()
                .map(|l| l.message.clone())
                .unwrap_or_default(),
            path: p.path,
        })
        .collect();
    HostSummary {
        tree,
        sync,
        alerts,
        probes,
    }
}

/// How the daemon describes itself in its store's snapshots: version, start, [`summary`].
pub fn describe(
    services: Services,
    started: SystemTime,
) -> metasystem_actors::store::hosts::Describe {
    Arc::new(move || {
        let services = services.clone();
        Box::pin(async move {
            Described {
                version: crate::VERSION.to_string(),
                started_ms: unix_ms(started),
                summary: serde_json::to_value(summary(&services).await).unwrap_or_default(),
            }
        })
    })
}

/// A snapshot's file as last read: (size, mtime, inode) → what it said.
type Seen = HashMap<PathBuf, ((u64, SystemTime, u64), Result<Option<HostInfo>, String>)>;

fn seen() -> &'static Mutex<Seen> {
    static SEEN: OnceLock<Mutex<Seen>> = OnceLock::new();
    SEEN.get_or_init(Default::default)
}

/// One host folder found in a target.
struct Found {
    host: String,
    target: String,
    file: PathBuf,
    /// The file's identity, or why it is not there.
    stamp: Result<(u64, SystemTime, u64), String>,
    /// The target's `snapshot_every`, for a snapshot that does not say its own.
    every: Duration,
}

/// Lists the hosts' folders of the targets (blocking).
fn look(targets: &[(String, PathBuf, Duration)]) -> (Vec<TargetLook>, Vec<Found>) {
    use std::os::unix::fs::MetadataExt;
    let mut looks = Vec::new();
    let mut found = Vec::new();
    for (name, path, every) in targets {
        let mut look = TargetLook {
            name: name.clone(),
            path: path.display().to_string(),
            ..Default::default()
        };
        let dir = path.join(HOSTS);
        let there = std::fs::metadata(path);
        if let Err(e) = &there {
            look.error = Some(match e.kind() {
                std::io::ErrorKind::NotFound => "offline (the target folder is not there)".into(),
                _ => format!("cannot read the target folder: {e}"),
            });
        } else if there.as_ref().is_ok_and(|m| !m.is_dir()) {
            look.error = Some(format!(
                "the target is not a folder ({} is a file or another kind of entry)",
                path.display()
            ));
        } else if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()) {
            // Snapshots are pushed into the target's own folder, never through a link: one
            // here points elsewhere (what is there is not this target's), and is not followed.
            look.error = Some(format!(
                "{} is a symlink: not followed (snapshots are pushed into the target itself)",
                dir.display()
            ));
        } else {
            match std::fs::read_dir(&dir) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => look.error = Some(format!("cannot list {}: {e}", dir.display())),
                Ok(rd) => {
                    for e in rd.flatten() {
                        let host = e.file_name().to_string_lossy().into_owned();
                        if host.starts_with('.') || !e.file_type().is_ok_and(|t| t.is_dir()) {
                            continue;
                        }
                        look.hosts += 1;
                        let file = e.path().join(STORE_FILE);
                        let stamp = match std::fs::symlink_metadata(&file) {
                            Ok(m) if m.is_file() => Ok((
                                m.len(),
                                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                                m.ino(),
                            )),
                            Ok(_) => Err(format!("{STORE_FILE} is not a regular file")),
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                                Err(format!("no {STORE_FILE} in its folder"))
                            }
                            Err(e) => Err(format!("cannot stat {STORE_FILE}: {e}")),
                        };
                        found.push(Found {
                            host,
                            target: name.clone(),
                            file,
                            stamp,
                            every: *every,
                        });
                    }
                }
            }
        }
        looks.push(look);
    }
    (looks, found)
}

/// What the snapshot at `f` says (from the cache when the file is unchanged).
async fn read(f: &Found) -> Result<Option<HostInfo>, String> {
    let stamp = f.stamp.clone()?;
    if let Some((s, r)) = seen()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&f.file)
    {
        if *s == stamp {
            return r.clone();
        }
    }
    let r = metasystem_actors::store::hosts::read_snapshot(&f.file).await;
    seen()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(f.file.clone(), (stamp, r.clone()));
    r
}

fn view_of(f: &Found, r: Result<Option<HostInfo>, String>, now_ms: i64) -> HostView {
    let mut v = HostView {
        host: tame(&f.host),
        source: "snapshot".into(),
        target: Some(f.target.clone()),
        file: Some(f.file.display().to_string()),
        ..Default::default()
    };
    let secs = |ms: i64| u64::try_from(ms.max(0) / 1000).unwrap_or(0);
    match r {
        Err(why) => v.unreadable = Some(why),
        Ok(None) => {
            // Taken by a version before `host_info`: its file's time is all there is.
            let taken = f.stamp.as_ref().map(|s| unix_ms(s.1)).unwrap_or(now_ms);
            v.taken_ms = Some(taken);
            v.age_s = Some(secs(now_ms - taken));
            v.snapshot_every_s = Some(f.every.as_secs());
            v.stale = now_ms - taken > 2 * i64::try_from(f.every.as_millis()).unwrap_or(i64::MAX);
        }
        Ok(Some(info)) => {
            // Another host's numbers are input: out of range, they are reported, never
            // computed with (an overflow would panic the request, or wrap to "fresh").
            if let Some(why) = implausible(&info, now_ms) {
                v.unreadable = Some(why);
                return v;
            }
            v.taken_ms = Some(info.taken_ms);
            v.age_s = Some(secs(now_ms.saturating_sub(info.taken_ms)));
            v.snapshot_every_s = Some(secs(info.snapshot_every_ms));
            v.stale =
                now_ms.saturating_sub(info.taken_ms) > info.snapshot_every_ms.saturating_mul(2);
            v.version = Some(tame(&info.version));
            v.started_ms = Some(info.started_ms);
            v.uptime_s = Some(secs(info.taken_ms.saturating_sub(info.started_ms)));
            let mut summary = info.summary;
            tame_all(&mut summary);
            match serde_json::from_value(summary) {
                Ok(summary) => v.summary = Some(summary),
                Err(e) => {
                    v.unreadable = Some(format!("its summary cannot be read: {e}"));
                    return v;
                }
            }
            if info.host != f.host {
                v.unreadable = Some(format!(
                    "its snapshot names another host ({}): copied by hand?",
                    tame(&info.host)
                ));
            }
        }
    }
    v
}

/// Another host's text with its control characters written out (`\x1b`, `\n`): printed
/// as it is, a snapshot could clear the reader's screen or forge lines of the listing.
fn tame(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`tame`] on every string of a summary, keys included.
fn tame_all(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) if s.chars().any(char::is_control) => *s = tame(s),
        Value::Array(items) => items.iter_mut().for_each(tame_all),
        Value::Object(map) => {
            let wild = map.keys().any(|k| k.chars().any(char::is_control));
            if wild {
                let taken = std::mem::take(map);
                for (k, mut item) in taken {
                    tame_all(&mut item);
                    map.insert(tame(&k), item);
                }
            } else {
                map.values_mut().for_each(tame_all);
            }
        }
        _ => {}
    }
}

/// How far ahead of this host's clock a snapshot may say it was taken (clocks differ a little).
const CLOCK_SLACK_MS: i64 = 5 * 60 * 1000;

/// Why a snapshot's times cannot be believed, if they cannot: taken in the future (beyond
/// [`CLOCK_SLACK_MS`]) or before 1970, started after it was taken, an interval that is not
/// positive or over a year.
fn implausible(info: &HostInfo, now_ms: i64) -> Option<String> {
    const YEAR_MS: i64 = 366 * 24 * 3600 * 1000;
    if info.taken_ms < 0 || info.started_ms < 0 {
        return Some("its snapshot's times are before 1970: not a snapshot to trust".into());
    }
    if info.taken_ms > now_ms.saturating_add(CLOCK_SLACK_MS) {
        return Some(format!(
            "its snapshot says it was taken {}s in the future: that host's clock is wrong, or \
             the file is not to be trusted",
            (info.taken_ms - now_ms) / 1000
        ));
    }
    if info.started_ms > info.taken_ms {
        return Some("its snapshot says the daemon started after the snapshot was taken".into());
    }
    if info.snapshot_every_ms <= 0 || info.snapshot_every_ms > YEAR_MS {
        return Some(format!(
            "its snapshot interval ({} ms) is not one a daemon takes",
            info.snapshot_every_ms
        ));
    }
    None
}

impl Daemon {
    /// `hosts [--target T]`.
    pub(super) async fn hosts(&self, r: request::Hosts) -> Result<HostsResult, Failure> {
        let specs = self.services.sync.specs();
        if let Some(t) = &r.target {
            if !specs.iter().any(|s| &s.name == t) {
                let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
                return Err(Failure::new(
                    code::NOT_FOUND,
                    format!(
                        "no sync target `{t}` is running (targets: {})",
                        if names.is_empty() {
                            "none".into()
                        } else {
                            names.join(", ")
                        }
                    ),
                ));
            }
        }
        let chosen: Vec<_> = specs
            .iter()
            .filter(|s| r.target.as_ref().is_none_or(|t| &s.name == t))
            .collect();
        let named = chosen
            .first()
            .map(|s| s.host.clone())
            .or_else(|| specs.first().map(|s| s.host.clone()));
        let (host_id, state_dir) = (self.daemon.host_id.clone(), self.daemon.state_dir.clone());
        let targets: Vec<(String, PathBuf, Duration)> = chosen
            .iter()
            .map(|s| (s.name.clone(), s.target.clone(), s.snapshot_every))
            .collect();
        let (me, (looks, found)) = tokio::task::spawn_blocking(move || {
            let me = named.unwrap_or_else(|| {
                metasystem_actors::host::resolve(host_id.as_deref(), &state_dir)
                    .unwrap_or_else(|_| metasystem_actors::host::hostname())
            });
            (me, look(&targets))
        })
        .await
        .map_err(|e| Failure::new(code::INTERNAL, format!("listing the targets failed: {e}")))?;
        if r.target.is_none() {
            // A listing of every target: what is no longer there is let go of (a host folder
            // removed, a target taken out), so the cache holds what the folders hold.
            let there: std::collections::HashSet<&PathBuf> =
                found.iter().map(|f| &f.file).collect();
            seen()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|file, _| there.contains(file));
        }
        let now_ms = unix_ms(SystemTime::now());
        // Each host once: its newest readable snapshot across the targets.
        let mut by_host: BTreeMap<String, HostView> = BTreeMap::new();
        for f in &found {
            let v = view_of(f, read(f).await, now_ms);
            let better = match by_host.get(&f.host) {
                None => true,
                Some(old) => match (&old.unreadable, &v.unreadable) {
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    _ => v.taken_ms > old.taken_ms,
                },
            };
            if better {
                by_host.insert(f.host.clone(), v);
            }
        }
        let own = by_host.remove(&me);
        let live = HostView {
            host: me.clone(),
            this: true,
            source: "live".into(),
            target: own.as_ref().and_then(|o| o.target.clone()),
            file: own.as_ref().and_then(|o| o.file.clone()),
            taken_ms: own.as_ref().and_then(|o| o.taken_ms),
            age_s: own.as_ref().and_then(|o| o.age_s),
            snapshot_every_s: own.as_ref().and_then(|o| o.snapshot_every_s),
            stale: false,
            version: Some(crate::VERSION.to_string()),
            started_ms: Some(unix_ms(SystemTime::now()) - self.uptime().as_millis() as i64),
            uptime_s: Some(self.uptime().as_secs()),
            unreadable: None,
            summary: Some(summary(&self.services).await),
        };
        let mut hosts = vec![live];
        hosts.extend(by_host.into_values());
        Ok(HostsResult {
            hosts,
            targets: looks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found() -> Found {
        Found {
            host: "h".into(),
            target: "t".into(),
            file: PathBuf::from("/t/.metasystem-hosts/h/metastore.db"),
            stamp: Ok((1, SystemTime::UNIX_EPOCH, 1)),
            every: Duration::from_secs(60),
        }
    }

    fn info(taken_ms: i64, started_ms: i64, every_ms: i64) -> HostInfo {
        HostInfo {
            host: "h".into(),
            version: "0.1.0".into(),
            started_ms,
            taken_ms,
            snapshot_every_ms: every_ms,
            summary: serde_json::json!({}),
        }
    }

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn times_out_of_range_are_reported_not_computed_with() {
        // Each of these panicked with an overflow (debug) or showed a fresh host (release).
        for (taken, started, every) in [
            (i64::MIN, 0, 60_000),
            (1000, i64::MIN, 60_000),
            (NOW + 3_600_000, NOW, 60_000),
            (NOW, NOW + 1, 60_000),
            (NOW, NOW - 1, -5),
            (NOW, NOW - 1, i64::MAX),
            (i64::MAX, 0, 60_000),
        ] {
            let v = view_of(&found(), Ok(Some(info(taken, started, every))), NOW);
            assert!(v.unreadable.is_some(), "{taken} {started} {every}: {v:?}");
            assert_eq!(v.age_s, None, "nothing computed from them: {v:?}");
        }
        // A clock a little ahead is fine.
        let v = view_of(
            &found(),
            Ok(Some(info(NOW + 1000, NOW - 5000, 60_000))),
            NOW,
        );
        assert_eq!(v.unreadable, None, "{v:?}");
        assert_eq!(v.age_s, Some(0));
    }

    #[test]
    fn another_hosts_control_characters_are_written_out() {
        let mut i = info(NOW - 1000, NOW - 5000, 60_000);
        i.version = "v\u{1b}[31mred\nfake: ok".into();
        i.summary = serde_json::json!({"alerts": [{
            "key": "k", "severity": "critical", "source": "root/p",
            "title": "\u{1b}[2J\nme: ok (this host, live state)"
        }]});
        let mut f = found();
        f.host = "h\n".into();
        i.host = "h\n".into();
        let v = view_of(&f, Ok(Some(i)), NOW);
        assert_eq!(v.unreadable, None, "{v:?}");
        assert_eq!(v.host, "h\\n");
        assert_eq!(v.version.as_deref(), Some("v\\u{1b}[31mred\\nfake: ok"));
        let title = &v.summary.as_ref().map(|s| s.alerts[0].title.clone());
        assert_eq!(
            title.as_deref(),
            Some("\\u{1b}[2J\\nme: ok (this host, live state)")
        );
        let mut out = Vec::new();
        crate::kinds::sync_hosts::render(
            &mut out,
            &crate::kinds::sync_hosts::HostsResult {
                hosts: vec![v],
                ..Default::default()
            },
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(
            !text.lines().any(|l| l.starts_with("me: ")),
            "no forged host line: {text}"
        );
    }

    #[test]
    fn a_summary_that_does_not_read_says_so() {
        let mut i = info(NOW - 1000, NOW - 5000, 60_000);
        i.summary = serde_json::json!({"alerts": "not a list"});
        let v = view_of(&found(), Ok(Some(i)), NOW);
        let why = v.unreadable.unwrap_or_default();
        assert!(why.contains("summary cannot be read"), "{why}");
    }

    /// Regression (attack round of issue 23): a target folder replaced by a file was reported
    /// "offline (the target folder is not there)".
    #[test]
    fn a_target_that_is_a_file_is_not_called_offline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("target");
        std::fs::write(&file, "not a folder").expect("write");
        let gone = dir.path().join("gone");
        let every = Duration::from_secs(60);
        let (looks, found) = look(&[
            ("f".into(), file.clone(), every),
            ("g".into(), gone, every),
            ("d".into(), dir.path().to_path_buf(), every),
        ]);
        assert!(found.is_empty());
        let error = |name: &str| {
            looks
                .iter()
                .find(|l| l.name == name)
                .and_then(|l| l.error.clone())
        };
        let f = error("f").expect("an error for the file");
        assert!(
            f.contains("not a folder") && f.contains(&file.display().to_string()),
            "{f}"
        );
        assert_eq!(
            error("g").as_deref(),
            Some("offline (the target folder is not there)")
        );
        assert_eq!(error("d"), None);
    }

    /// Regression (attack round of issue 23): a symlinked `.metasystem-hosts` was read
    /// through (what it points at is not the target's).
    #[test]
    fn a_symlinked_hosts_folder_is_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(elsewhere.join("h")).expect("mkdir");
        std::fs::write(elsewhere.join("h").join(STORE_FILE), "x").expect("write");
        let target = dir.path().join("target");
        std::fs::create_dir(&target).expect("mkdir");
        std::os::unix::fs::symlink(&elsewhere, target.join(HOSTS)).expect("symlink");
        let (looks, found) = look(&[("t".into(), target, Duration::from_secs(60))]);
        assert!(found.is_empty(), "read through the link");
        let why = looks[0].error.clone().unwrap_or_default();
        assert!(why.contains("is a symlink: not followed"), "{why}");
    }
}
