//! `verify`: `PRAGMA integrity_check` and row counts of every SQLite database (found by its
//! header, whatever its name) in every place a sync keeps one: the primary's synced paths,
//! each target's same paths, and each target's per-host snapshots (`hosts/*/`). An offline
//! target is reported as such, never as a failure. Walking runs on the blocking pool; the
//! checks go through sqlx (its own threads), one database at a time.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::engine::SyncSpec;
use super::fsops;
use super::scan::{self, HOSTS};
use super::snapshot;

/// One database checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbCheck {
    /// Relative to its location's root.
    pub path: String,
    pub size: u64,
    pub ok: bool,
    /// What integrity_check (or opening it) said, when not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Rows per table (when it passed).
    #[serde(default)]
    pub tables: Vec<(String, i64)>,
}

/// One place databases were looked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// primary | target | snapshots
    pub kind: String,
    /// The sync target it belongs to (a primary: every target that syncs it, `a, b`).
    pub target: String,
    pub root: String,
    pub online: bool,
    /// Why it was not looked at (offline), or what could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub databases: Vec<DbCheck>,
}

/// What `verify` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub locations: Vec<Location>,
    pub checked: usize,
    pub failed: usize,
}

/// What a walk found: the databases (relative path, absolute path, size) or why not.
type Found = Result<Vec<(String, PathBuf, u64)>, String>;

/// Databases under `root` among the selected files.
fn find_selected(root: &Path, spec: &SyncSpec) -> Found {
    let listing = scan::scan(root, &spec.selection)
        .map_err(|e| format!("cannot read {}: {e}", root.display()))?;
    Ok(listing
        .iter()
        .filter_map(|(rel, meta)| {
            let abs = root.join(rel);
            fsops::is_sqlite(&abs).then(|| (rel.to_string(), abs, meta.size))
        })
        .collect())
}

/// Databases in `target/hosts/*/`.
fn find_snapshots(target: &Path) -> Found {
    let hosts = target.join(HOSTS);
    let mut out = Vec::new();
    let dirs = match std::fs::read_dir(&hosts) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(format!("cannot read {}: {e}", hosts.display())),
    };
    for host in dirs.flatten() {
        if !host.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(files) = std::fs::read_dir(host.path()) else {
            continue;
        };
        for f in files.flatten() {
            let Ok(md) = std::fs::symlink_metadata(f.path()) else {
                continue;
            };
            let name = f.file_name().to_string_lossy().into_owned();
            if !md.is_file() || scan::is_temp(&name) || !fsops::is_sqlite(&f.path()) {
                continue;
            }
            let rel = format!("{HOSTS}/{}/{name}", host.file_name().to_string_lossy());
            out.push((rel, f.path(), md.len()));
        }
    }
    out.sort();
    Ok(out)
}

async fn walk(f: impl FnOnce() -> Found + Send + 'static) -> Found {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(format!("the walk failed: {e}")))
}

async fn check(found: Found, loc: &mut Location, seen: &mut HashSet<PathBuf>) {
    let dbs = match found {
        Ok(d) => d,
        Err(e) => {
            loc.note = Some(e);
            return;
        }
    };
    for (rel, abs, size) in dbs {
        if !seen.insert(abs.clone()) {
            continue;
        }
        let (ok, error, tables) = match snapshot::integrity(&abs).await {
            Err(e) => (false, Some(e), Vec::new()),
            Ok(()) => match snapshot::row_counts(&abs).await {
                Ok(t) => (true, None, t),
                Err(e) => (false, Some(e), Vec::new()),
            },
        };
        loc.databases.push(DbCheck {
            path: rel,
            size,
            ok,
            error,
            tables,
        });
    }
}

/// Checks every database of every target in `specs`.
pub async fn verify(specs: &[Arc<SyncSpec>]) -> VerifyReport {
    let mut locations = Vec::new();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    for spec in specs {
        let root = spec.primary.display().to_string();
        let at = match locations.iter().position(|l: &Location| l.root == root) {
            // A primary several targets share: one location, named by all of them.
            Some(i) => {
                locations[i].target.push_str(&format!(", {}", spec.name));
                i
            }
            None => {
                locations.push(Location {
                    kind: "primary".into(),
                    target: spec.name.clone(),
                    root,
                    online: true,
                    note: None,
                    databases: Vec::new(),
                });
                locations.len() - 1
            }
        };
        let s = spec.clone();
        let found = walk(move || find_selected(&s.primary, &s)).await;
        check(found, &mut locations[at], &mut seen).await;
    }
    for spec in specs {
        let target = spec.target.clone();
        let online = tokio::task::spawn_blocking(move || target.is_dir())
            .await
            .unwrap_or(false);
        let mut loc = Location {
            kind: "target".into(),
            target: spec.name.clone(),
            root: spec.target.display().to_string(),
            online,
            note: None,
            databases: Vec::new(),
        };
        if !online {
            loc.note = Some(format!("offline: {} is not there", spec.target.display()));
            locations.push(loc);
            continue;
        }
        let s = spec.clone();
        let found = walk(move || find_selected(&s.target, &s)).await;
        check(found, &mut loc, &mut seen).await;
        locations.push(loc);
        let mut snaps = Location {
            kind: "snapshots".into(),
            target: spec.name.clone(),
            root: spec.target.join(HOSTS).display().to_string(),
            online: true,
            note: None,
            databases: Vec::new(),
        };
        let t = spec.target.clone();
        let found = walk(move || find_snapshots(&t)).await;
        check(found, &mut snaps, &mut seen).await;
        if !snaps.databases.is_empty() || snaps.note.is_some() {
            locations.push(snaps);
        }
    }
    let checked = locations.iter().map(|l| l.databases.len()).sum();
    let failed = locations
        .iter()
        .flat_map(|l| &l.databases)
        .filter(|d| !d.ok)
        .count()
        + locations
            .iter()
            .filter(|l| l.online && l.note.is_some())
            .count();
    VerifyReport {
        locations,
        checked,
        failed,
    }
}
