//! `backups` and `backups restore`: what a target's backups folder holds (the versions a
//! sync replaced or deleted, `REL-YYYYMMDD-HHMMSS.bak`), and putting one back in the primary
//! at its original path. A restore backs up the current file first (same naming), writes
//! through temp + fsync + rename with the destination re-checked, and never replaces a live
//! database. The restored file then goes out with the next run (its modification time is the
//! restore's, so it wins over older copies). All of it is blocking I/O: callers run it on the
//! blocking pool, the restore through the target's actor (never during a run).
//!
//! Every backup a run takes carries the run's stamp (`YYYYMMDD-HHMMSS`, its `run_id`), so a
//! run's backups are a group: [`pick`] chooses what `backups restore --run ID` (the run's
//! backups, the newest of a path's same-stamp duplicates) or `--since D` (each path's oldest
//! backup taken at or after D: its state before the first run since D touched it) puts back,
//! and [`restore_set`] restores each through [`restore`].

use std::io;
use std::path::{Component, Path};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::backup_name::BackupName;
use super::engine::SyncSpec;
use super::error::OpError;
use super::fsops::{self, InstallError};
use super::scan::{self, HOSTS};
use super::temps::Temps;
use crate::store::{format_ms, unix_ms};

/// Entries listed at most per answer.
pub const MAX_LISTED: usize = 5_000;

/// One backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupEntry {
    pub target: String,
    /// Relative to the backups folder: what `backups restore` takes.
    pub name: String,
    /// The original path, relative to the primary.
    pub original: String,
    /// When it was taken (RFC 3339, from its name).
    pub taken: String,
    pub taken_ms: i64,
    pub size: u64,
    /// The run that took it: the stamp in its name (`YYYYMMDD-HHMMSS`, UTC), which the run
    /// reported as its `run_id`. A restore's own backups (of the files it replaced) carry the
    /// restore's.
    #[serde(default)]
    pub run: String,
}

/// A target's backups: newest first (at most [`MAX_LISTED`]; `true` when there were more).
pub fn list(spec: &SyncSpec) -> Result<(Vec<BackupEntry>, bool), String> {
    let mut out = all(spec)?;
    let more = out.len() > MAX_LISTED;
    out.truncate(MAX_LISTED);
    Ok((out, more))
}

/// Every backup of a target, newest first (a run's together, by name).
pub fn all(spec: &SyncSpec) -> Result<Vec<BackupEntry>, String> {
    let dir = &spec.backups;
    let mut out = Vec::new();
    match super::longfs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
        Ok(_) => {}
    }
    // Reached at any depth (a backup of a path longer than PATH_MAX is as deep).
    super::longfs::walk_files(dir, &mut |path, entry| {
        let Some(name) = path
            .strip_prefix(dir)
            .ok()
            .map(|r| super::names::held(r.as_os_str()).into_owned())
        else {
            return;
        };
        let Ok(BackupName {
            original, taken, ..
        }) = name.parse::<BackupName>()
        else {
            return;
        };
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        let taken_ms = unix_ms(taken);
        out.push(BackupEntry {
            target: spec.name.clone(),
            name,
            original,
            taken: format_ms(taken_ms),
            taken_ms,
            size,
            run: fsops::stamp(taken),
        });
    })
    .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    out.sort_by(|a, b| {
        b.taken_ms
            .cmp(&a.taken_ms)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(out)
}

/// The `N` of a same-second duplicate's name (`REL-STAMP.N.bak`, `REL/STAMP.N.bak`); 0 for
/// the first (`REL-STAMP.bak`). A higher N was taken later.
pub fn duplicate(name: &str) -> u32 {
    name.parse::<BackupName>().map_or(0, |b| b.dup)
}

/// Whether `id` is a run's ID as runs report it and `backups` lists it (`YYYYMMDD-HHMMSS`).
pub fn check_run_id(id: &str) -> Result<(), String> {
    match fsops::parse_stamp(id) {
        Some(_) => Ok(()),
        None => Err(format!(
            "{id:?} is not a run's ID: give it as `metasystem sync` reports it and `metasystem \
             backups` lists it (YYYYMMDD-HHMMSS, UTC, e.g. 20261201-101500)"
        )),
    }
}

/// Which backups a restore of several puts back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// Every backup of one run (by its ID, the stamp in their names).
    Run(String),
    /// For each original path, its oldest backup taken at or after this time.
    Since(SystemTime),
}

impl Which {
    /// How a message names it.
    pub fn describe(&self) -> String {
        match self {
            Which::Run(id) => format!("run {id}"),
            Which::Since(t) => format!("since {}", format_ms(unix_ms(*t))),
        }
    }
}

/// The backups `which` restores, one per original path, by path. `Run`: the run's backups
/// (of a path backed up twice in its second, the newest); `Since`: each path's oldest backup
/// taken at or after the time (backups' names keep whole seconds: the time is taken down to
/// its second), i.e. its state before the first change since.
pub fn pick<'a>(entries: &'a [BackupEntry], which: &Which) -> Vec<&'a BackupEntry> {
    let mut by_path: std::collections::BTreeMap<&str, &BackupEntry> = Default::default();
    match which {
        Which::Run(id) => {
            for e in entries.iter().filter(|e| &e.run == id) {
                let slot = by_path.entry(e.original.as_str()).or_insert(e);
                if duplicate(&e.name) > duplicate(&slot.name) {
                    *slot = e;
                }
            }
        }
        Which::Since(t) => {
            let ms = unix_ms(*t);
            let since = ms - ms.rem_euclid(1000);
            for e in entries.iter().filter(|e| e.taken_ms >= since) {
                let slot = by_path.entry(e.original.as_str()).or_insert(e);
                let key = |b: &BackupEntry| (b.taken_ms, duplicate(&b.name));
                if key(e) < key(slot) {
                    *slot = e;
                }
            }
        }
    }
    by_path.into_values().collect()
}

/// The backups of one run of one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunBackups {
    pub target: String,
    pub run: String,
    /// When (RFC 3339).
    pub taken: String,
    pub taken_ms: i64,
    pub count: usize,
}

/// The runs `entries` hold (each target's apart), newest first.
pub fn runs(entries: &[BackupEntry]) -> Vec<RunBackups> {
    let mut groups: std::collections::BTreeMap<(i64, &str, &str), usize> = Default::default();
    for e in entries {
        *groups
            .entry((e.taken_ms, e.target.as_str(), e.run.as_str()))
            .or_default() += 1;
    }
    let mut out: Vec<RunBackups> = groups
        .into_iter()
        .map(|((taken_ms, target, run), count)| RunBackups {
            target: target.to_string(),
            run: run.to_string(),
            taken: format_ms(taken_ms),
            taken_ms,
            count,
        })
        .collect();
    out.sort_by(|a, b| {
        b.taken_ms
            .cmp(&a.taken_ms)
            .then_with(|| a.target.cmp(&b.target))
    });
    out
}

/// Runs listed in an error at most.
const NEAREST: usize = 5;

/// Why `which` matched no backup of `scope` (a target's name, or every target), naming the
/// runs nearest to it (to a run's ID; else the newest).
pub fn no_match(which: &Which, entries: &[BackupEntry], scope: Option<&str>) -> String {
    let mut runs = runs(entries);
    let near = match which {
        Which::Run(id) => fsops::parse_stamp(id).map(unix_ms),
        Which::Since(_) => None,
    };
    if let Some(at) = near {
        runs.sort_by_key(|r| ((r.taken_ms - at).abs(), std::cmp::Reverse(r.taken_ms)));
    }
    let scope = match scope {
        Some(t) => format!("sync target `{t}`"),
        None => "any sync target".to_string(),
    };
    let what = match which {
        Which::Run(id) => format!("no backups of run {id} in {scope}"),
        Which::Since(_) => format!("no backups taken {} in {scope}", which.describe()),
    };
    if runs.is_empty() {
        return format!("{what}: there are no backups");
    }
    let named: Vec<String> = runs
        .iter()
        .take(NEAREST)
        .map(|r| {
            format!(
                "{} ({}, target {}, {} backup(s))",
                r.run, r.taken, r.target, r.count
            )
        })
        .collect();
    format!(
        "{what}; {} runs: {} (`metasystem backups` lists them)",
        if near.is_some() {
            "the nearest"
        } else {
            "the newest"
        },
        named.join(", ")
    )
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restored {
    pub target: String,
    /// The backup restored (relative to the backups folder).
    pub name: String,
    /// Its original path (relative to the primary) and where it is now (absolute).
    pub original: String,
    pub restored_to: String,
    pub size: u64,
    /// Where the file it replaced went, if there was one.
    pub previous_backup: Option<String>,
}

/// Checks a backup name given by a user: relative, no `..`, not a per-host snapshot.
pub fn check_name(name: &str) -> Result<(), String> {
    let p = Path::new(name);
    let snapshot = p.components().next() == Some(Component::Normal(HOSTS.as_ref()))
        || (p.is_absolute() && name.contains(&format!("/{HOSTS}/")));
    if snapshot {
        return Err(format!(
            "{name:?} looks like a per-host snapshot (`{HOSTS}/HOST/...` in a target): restoring \
             snapshots is out of scope for `backups restore`; copy it by hand with the daemon \
             stopped. `metasystem backups` lists what can be restored"
        ));
    }
    if name.is_empty() || p.is_absolute() {
        return Err(format!(
            "{name:?} is not a backup's name: give it as `metasystem backups` lists it \
             (relative to the backups folder)"
        ));
    }
    if name
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
        || p.components().any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(format!(
            "{name:?} must not contain `..`, `.` or empty parts"
        ));
    }
    Ok(())
}

/// Whether `name` is a file in `spec`'s backups folder.
pub fn exists(spec: &SyncSpec, name: &str) -> bool {
    check_name(name).is_ok()
        && super::longfs::symlink_metadata(&super::names::at(&spec.backups, name))
            .is_ok_and(|m| m.is_file())
}

/// Puts backup `name` of `spec`'s target back in the primary at its original path.
pub fn restore(
    spec: &SyncSpec,
    name: &str,
    at: SystemTime,
    temps: &Temps,
) -> Result<Restored, OpError> {
    check_name(name).map_err(OpError::Refused)?;
    let Ok(BackupName { original, .. }) = name.parse::<BackupName>() else {
        return Err(OpError::Refused(format!(
            "{name:?} is not a backup's name (REL-YYYYMMDD-HHMMSS.bak, as `metasystem backups` \
             lists them)"
        )));
    };
    let src = super::names::at(&spec.backups, name);
    match super::longfs::symlink_metadata(&src) {
        Ok(m) if m.is_file() => {}
        Ok(_) => {
            return Err(OpError::Refused(format!(
                "{} is not a regular file",
                src.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(OpError::NotFound(format!(
                "no backup {name} in {} (sync target `{}`); `metasystem backups` lists them",
                spec.backups.display(),
                spec.name
            )))
        }
        Err(e) => return Err(OpError::Io(format!("cannot read {}: {e}", src.display()))),
    }
    if !spec.selection.wants(&original) {
        return Err(OpError::Refused(format!(
            "{original} is not a path sync target `{}` syncs: not restored into its primary",
            spec.name
        )));
    }
    let dest = super::names::at(&spec.primary, &original);
    if !spec.primary.is_dir() {
        return Err(OpError::Io(format!(
            "the primary {} is not a folder",
            spec.primary.display()
        )));
    }
    let current = scan::meta_of(&dest)
        .map_err(|e| OpError::Io(format!("cannot read {}: {e}", dest.display())))?;
    if current.is_none() && super::longfs::symlink_metadata(&dest).is_ok() {
        return Err(OpError::Refused(format!(
            "{} is not a regular file: not replaced",
            dest.display()
        )));
    }
    if current.is_some_and(|m| m.live_wal) {
        return Err(OpError::Busy(format!(
            "{} is a live database (a non-empty -wal beside it): restoring over it would \
             corrupt it under its writer; stop the program using it (a checkpoint empties the \
             -wal), then restore again",
            dest.display()
        )));
    }
    fsops::make_parents(&spec.primary, &dest).map_err(|e| {
        OpError::Io(format!(
            "cannot create the folder of {}: {e}",
            dest.display()
        ))
    })?;
    let previous_backup = match current {
        Some(_) => Some(
            fsops::backup(&dest, &spec.backups, &original, at, false, temps)
                .map_err(|e| {
                    OpError::Io(format!(
                        "cannot back up {} before replacing it: {e}",
                        dest.display()
                    ))
                })?
                .display()
                .to_string(),
        ),
        None => None,
    };
    let now_ns = at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let temp = temps.beside(&dest);
    let (_, size) = fsops::copy_to_temp(&src, temp.clone(), now_ns)
        .map_err(|e| OpError::Io(format!("cannot copy {}: {e}", src.display())))?;
    match fsops::install(&temp, &dest, current) {
        Ok(()) => {}
        Err(InstallError::Changed) => {
            return Err(OpError::Refused(format!(
                "{} changed meanwhile: nothing was replaced; restore again",
                dest.display()
            )))
        }
        Err(InstallError::Io(e)) => {
            return Err(OpError::Io(format!(
                "cannot install {}: {e}",
                dest.display()
            )))
        }
    }
    Ok(Restored {
        target: spec.name.clone(),
        name: name.to_string(),
        original,
        restored_to: dest.display().to_string(),
        size,
        previous_backup,
    })
}

/// What a restore of several backups did, path by path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoredSet {
    pub target: String,
    /// The run restored (`--run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Or the time from which (`--since`, RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// This restore's own ID: its backups of the files it replaced carry it (`backups
    /// restore --run` with it puts those back).
    pub restore_id: String,
    /// Each original path, in path order.
    pub paths: Vec<PathRestored>,
    pub restored: usize,
    pub failed: usize,
}

/// One path of a [`RestoredSet`]: restored, or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathRestored {
    /// Relative to the primary.
    pub original: String,
    /// The backup (relative to the backups folder).
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<Restored>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Puts back in the primary every backup of `spec` that `which` picks ([`pick`]), each
/// through [`restore`] (the file it replaces backed up first, with `at`'s stamp; the
/// destination re-checked). A path that fails is reported and the others go on. An error when
/// `which` picks nothing (naming the nearest runs) or the backups cannot be listed.
pub fn restore_set(
    spec: &SyncSpec,
    which: &Which,
    at: SystemTime,
    temps: &Temps,
) -> Result<RestoredSet, OpError> {
    let entries = all(spec).map_err(OpError::Io)?;
    let picked = pick(&entries, which);
    if picked.is_empty() {
        return Err(OpError::NotFound(no_match(
            which,
            &entries,
            Some(&spec.name),
        )));
    }
    let mut paths = Vec::with_capacity(picked.len());
    for e in picked {
        let (restored, error) = match restore(spec, &e.name, at, temps) {
            Ok(r) => (Some(r), None),
            Err(why) => (None, Some(why.to_string())),
        };
        paths.push(PathRestored {
            original: e.original.clone(),
            name: e.name.clone(),
            restored,
            error,
        });
    }
    let failed = paths.iter().filter(|p| p.error.is_some()).count();
    Ok(RestoredSet {
        target: spec.name.clone(),
        run: match which {
            Which::Run(id) => Some(id.clone()),
            Which::Since(_) => None,
        },
        since: match which {
            Which::Since(t) => Some(format_ms(unix_ms(*t))),
            Which::Run(_) => None,
        },
        restore_id: fsops::stamp(at),
        restored: paths.len() - failed,
        failed,
        paths,
    })
}

/// How a prune of backups is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneLimits {
    /// A backup older than this goes.
    pub retention: Duration,
    /// The most files one prune looks at; past it the prune stops, and the next one goes on
    /// (what was old is gone by then).
    pub max_entries: usize,
    /// The target's own run pruning the backups it wrote (it holds the target's lock): the
    /// temp files of backups a killed run left go too (no other run writes them meanwhile),
    /// and a backup's age is its name's alone (its mtime is the content's, preserved from
    /// whichever host wrote it, possibly with a wrong clock). Otherwise (a folder an operator
    /// names) temps are left, and the age is the newer of the name's and the mtime.
    pub own: bool,
}

/// What a prune of backups did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Backups removed, and their bytes.
    pub removed: u64,
    pub bytes: u64,
    /// Files looked at.
    pub examined: usize,
    /// Stopped at `max_entries`.
    pub stopped: bool,
    /// Files that could not be removed, and the first one's error.
    pub errors: u64,
    pub first_error: Option<String>,
}

/// A backup name's timestamp is read as UTC shifted by this, the largest UTC offset behind
/// local time (so a stamp another tool wrote in local time never makes a backup look older
/// than it is).
const STAMP_SLACK: Duration = Duration::from_secs(12 * 3600);

/// A backup taken at `taken` (from its name) is old once that is older than `retention`
/// (the name given [`STAMP_SLACK`]); with `mtime` (a folder whose names are not ours), once
/// its file's last change is too: a file renamed into a backup's name today is not old. A
/// name stamped in the future is never old.
pub fn expired(
    taken: SystemTime,
    mtime: Option<SystemTime>,
    now: SystemTime,
    retention: Duration,
) -> bool {
    let Some(named) = taken.checked_add(STAMP_SLACK) else {
        return false;
    };
    let newest = mtime.map_or(named, |m| named.max(m));
    now.duration_since(newest).is_ok_and(|age| age > retention)
}

/// The one pruner of backups: a sync target's run (its backups folder, once an hour) and
/// the `prune_backups` heal action (a folder the operator names) both come here. Under `dir`,
/// at any depth, on `dir`'s device, symlinks never followed: each file whose name is a
/// backup's ([`BackupName::taken_from_file_name`]: `NAME-STAMP[.N].bak`, or `STAMP[.N].bak`
/// in a long name's folder) and that has [`expired`] is removed; with `limits.own`, the
/// temp files of backups a killed run left too. `Err` only when `dir` cannot be read.
pub fn prune(dir: &Path, limits: PruneLimits, now: SystemTime) -> io::Result<Pruned> {
    let mut pruned = Pruned::default();
    if !super::longfs::is_dir(dir) {
        return Ok(pruned);
    }
    super::longfs::walk_files_within(dir, &mut |path, entry| {
        if pruned.examined >= limits.max_entries {
            pruned.stopped = true;
            return std::ops::ControlFlow::Break(());
        }
        pruned.examined += 1;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Ok(meta) = entry.metadata() else {
            return std::ops::ControlFlow::Continue(());
        };
        let expired = if limits.own && super::temps::is_temp(&name) {
            true
        } else {
            match BackupName::taken_from_file_name(&name) {
                Some(taken) if limits.own => expired(taken, None, now, limits.retention),
                Some(taken) => match meta.modified() {
                    Ok(mtime) => expired(taken, Some(mtime), now, limits.retention),
                    Err(_) => false,
                },
                None => false,
            }
        };
        if expired {
            match super::longfs::remove_file(path) {
                Ok(()) => {
                    pruned.removed += 1;
                    pruned.bytes = pruned.bytes.saturating_add(meta.len());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    pruned.errors += 1;
                    pruned
                        .first_error
                        .get_or_insert_with(|| format!("cannot remove {}: {e}", path.display()));
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    })?;
    Ok(pruned)
}

/// A sync target's prune of its backups folder after a run: how many backups went.
pub fn prune_backups(dir: &Path, retention: Duration) -> io::Result<usize> {
    let limits = PruneLimits {
        retention,
        max_entries: PRUNE_MAX_ENTRIES,
        own: true,
    };
    prune(dir, limits, SystemTime::now()).map(|p| p.removed as usize)
}

/// The most files a target's prune looks at (the rest at its next prune, an hour later).
pub const PRUNE_MAX_ENTRIES: usize = 1_000_000;

#[cfg(test)]
mod tests {

    /// The one pruner's rule: a backup is old by its name (with a 12 h slack for local-time
    /// stamps); in a folder whose names are not ours, by its mtime too; never in the future.
    #[test]
    fn a_backup_expires_by_its_name_and_for_others_its_mtime() {
        let day = Duration::from_secs(86_400);
        let now = SystemTime::now();
        let (old, recent) = (
            now - 40 * day,
            now - 3600 * std::time::Duration::from_secs(1),
        );
        assert!(expired(old, None, now, 30 * day));
        assert!(!expired(recent, None, now, 30 * day));
        assert!(!expired(now + day, None, now, Duration::ZERO));
        // Within the slack: not yet.
        assert!(!expired(
            now - 30 * day - Duration::from_secs(3600),
            None,
            now,
            30 * day
        ));
        // A name that says old, a file changed an hour ago: kept where the names are not ours.
        assert!(!expired(old, Some(recent), now, 30 * day));
        assert!(expired(old, Some(old), now, 30 * day));
    }

    /// The run's own prune removes the temps a killed run left; it stops at its bound.
    #[test]
    fn a_prune_removes_its_temps_and_stops_at_its_bound() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        for i in 0..5 {
            std::fs::write(dir.join(format!("f{i}-20200101-000000.bak")), b"x").unwrap();
        }
        let temp = dir.join(".msync-0123456789abcdef-00000001.tmp");
        std::fs::write(&temp, b"half").unwrap();
        std::fs::write(dir.join("notes.txt"), b"not a backup").unwrap();
        let limits = |max_entries, own| PruneLimits {
            retention: Duration::from_secs(86_400),
            max_entries,
            own,
        };
        let p = prune(dir, limits(3, true), SystemTime::now()).unwrap();
        assert!(p.stopped && p.examined == 3, "{p:?}");
        let p = prune(dir, limits(100, true), SystemTime::now()).unwrap();
        assert!(!p.stopped, "{p:?}");
        assert!(!temp.exists());
        let left: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["notes.txt"]);
    }
    use super::*;

    /// An entry of target `t` as [`all`] lists it: `original` backed up at `stamp` (the
    /// `n`th of its second).
    fn entry(original: &str, stamp: &str, n: u32) -> BackupEntry {
        let taken = fsops::parse_stamp(stamp).unwrap_or_else(|| panic!("{stamp}"));
        let name = BackupName::new(original, taken, n).to_string();
        assert_eq!(
            name.parse::<BackupName>()
                .ok()
                .map(|b| b.original)
                .as_deref(),
            Some(original)
        );
        BackupEntry {
            target: "t".into(),
            original: original.into(),
            taken: format_ms(unix_ms(taken)),
            taken_ms: unix_ms(taken),
            size: 1,
            run: fsops::stamp(taken),
            name,
        }
    }

    #[test]
    fn duplicates_are_numbered_by_their_name() {
        let at = fsops::parse_stamp("20261201-101500").unwrap();
        assert_eq!(duplicate(&BackupName::new("a.txt", at, 0).to_string()), 0);
        assert_eq!(duplicate(&BackupName::new("a.txt", at, 3).to_string()), 3);
        assert_eq!(duplicate(&BackupName::new("v.2", at, 0).to_string()), 0);
        assert_eq!(duplicate(&BackupName::new("v.2", at, 12).to_string()), 12);
        let long = format!("d/{}", "n".repeat(300));
        assert_eq!(duplicate(&BackupName::new(&long, at, 0).to_string()), 0);
        assert_eq!(duplicate(&BackupName::new(&long, at, 2).to_string()), 2);
        // Not a stamp before the number, or not ASCII: 0, never a panic.
        assert_eq!(duplicate("a.7.bak"), 0);
        assert_eq!(
            duplicate("\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}.1.bak"),
            0
        );
        assert_eq!(duplicate("x"), 0);
    }

    /// `--run ID`: that run's backups, one per path (the newest of its duplicates); `--since`:
    /// each path's oldest backup at or after the time (the second it falls in included).
    #[test]
    fn a_run_or_a_time_picks_one_backup_per_path() {
        let entries = vec![
            entry("a.txt", "20261201-101500", 0),
            entry("a.txt", "20261201-101500", 1),
            entry("b/c.txt", "20261201-101500", 0),
            entry("a.txt", "20261201-090000", 0),
            entry("d.txt", "20261201-090000", 0),
            entry("a.txt", "20261201-120000", 0),
            entry("e.txt", "20261201-120000", 0),
        ];
        let names = |picked: Vec<&BackupEntry>| -> Vec<(String, String, u32)> {
            picked
                .into_iter()
                .map(|e| (e.original.clone(), e.run.clone(), duplicate(&e.name)))
                .collect()
        };
        let s = |o: &str, r: &str, n: u32| (o.to_string(), r.to_string(), n);
        assert_eq!(
            names(pick(&entries, &Which::Run("20261201-101500".into()))),
            [
                s("a.txt", "20261201-101500", 1),
                s("b/c.txt", "20261201-101500", 0)
            ]
        );
        assert!(pick(&entries, &Which::Run("20261201-101501".into())).is_empty());
        let at =
            |stamp: &str, ms: u64| fsops::parse_stamp(stamp).unwrap() + Duration::from_millis(ms);
        // From 10:15:00.400: the 10:15:00 backups count (names keep whole seconds).
        assert_eq!(
            names(pick(&entries, &Which::Since(at("20261201-101500", 400)))),
            [
                s("a.txt", "20261201-101500", 0),
                s("b/c.txt", "20261201-101500", 0),
                s("e.txt", "20261201-120000", 0)
            ]
        );
        assert_eq!(
            names(pick(&entries, &Which::Since(at("20261201-080000", 0)))).len(),
            4
        );
        assert!(pick(&entries, &Which::Since(at("20261201-120001", 0))).is_empty());
    }

    #[test]
    fn no_match_names_the_nearest_runs() {
        let entries = vec![
            entry("a.txt", "20261201-101500", 0),
            entry("b.txt", "20261201-101500", 0),
            entry("a.txt", "20261130-090000", 0),
            entry("a.txt", "20261202-120000", 0),
        ];
        let g = runs(&entries);
        assert_eq!(g.len(), 3);
        assert_eq!((g[1].run.as_str(), g[1].count), ("20261201-101500", 2));
        let why = no_match(&Which::Run("20261201-101503".into()), &entries, Some("t"));
        assert!(
            why.starts_with("no backups of run 20261201-101503 in sync target `t`; the nearest runs: 20261201-101500 ("),
            "{why}"
        );
        assert!(why.contains("target t, 2 backup(s)"), "{why}");
        let why = no_match(&Which::Run("20261201-101503".into()), &[], None);
        assert!(
            why.ends_with("any sync target: there are no backups"),
            "{why}"
        );
        let since = fsops::parse_stamp("20261203-000000").unwrap();
        let why = no_match(&Which::Since(since), &entries, Some("t"));
        assert!(
            why.contains("no backups taken since 2026-12-03T00:00:00")
                && why.contains("the newest runs: 20261202-120000"),
            "{why}"
        );
        assert!(check_run_id("20261201-101500").is_ok());
        for bad in ["", "2026-12-01", "20261201-1015", "x0261201-101500"] {
            assert!(check_run_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_given_by_users_are_checked() {
        assert!(check_name("shared/notes.txt-20260101-000000.bak").is_ok());
        for (bad, says) in [
            (".metasystem-hosts/h1/metastore.db", "per-host snapshot"),
            (
                "/mnt/t/.metasystem-hosts/h1/metastore.db",
                "per-host snapshot",
            ),
            ("../x.bak", ".."),
            ("a/./b.bak", ".."),
            ("/etc/passwd", "not a backup's name"),
            ("", "not a backup's name"),
        ] {
            let e = check_name(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
