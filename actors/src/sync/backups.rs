//! `backups` and `backups restore`: what a target's backups folder holds (the versions a
//! sync replaced or deleted, `REL-YYYYMMDD-HHMMSS.bak`), and putting one back in the primary
//! at its original path. A restore backs up the current file first (same naming), writes
//! through temp + fsync + rename with the destination re-checked, and never replaces a live
//! database. The restored file then goes out with the next run (its modification time is the
//! restore's, so it wins over older copies). All of it is blocking I/O: callers run it on the
//! blocking pool, the restore through the target's actor (never during a run).

use std::io;
use std::path::{Component, Path};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::engine::SyncSpec;
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
}

/// A target's backups: newest first (at most [`MAX_LISTED`]; `true` when there were more).
pub fn list(spec: &SyncSpec) -> Result<(Vec<BackupEntry>, bool), String> {
    let dir = &spec.backups;
    let mut out = Vec::new();
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((out, false)),
        Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
        Ok(_) => {}
    }
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let entry = match entry {
            Ok(e) => e,
            Err(e) if e.depth() == 0 => return Err(format!("cannot read {}: {e}", dir.display())),
            Err(_) => continue,
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let Some(name) = entry
            .path()
            .strip_prefix(dir)
            .ok()
            .and_then(|r| r.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        let Some((original, taken)) = fsops::parse_backup_name(&name) else {
            continue;
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
        });
    }
    out.sort_by(|a, b| {
        b.taken_ms
            .cmp(&a.taken_ms)
            .then_with(|| a.name.cmp(&b.name))
    });
    let more = out.len() > MAX_LISTED;
    out.truncate(MAX_LISTED);
    Ok((out, more))
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
        && std::fs::symlink_metadata(spec.backups.join(name)).is_ok_and(|m| m.is_file())
}

/// Puts backup `name` of `spec`'s target back in the primary at its original path.
pub fn restore(
    spec: &SyncSpec,
    name: &str,
    at: SystemTime,
    temps: &Temps,
) -> Result<Restored, String> {
    check_name(name)?;
    let Some((original, _)) = fsops::parse_backup_name(name) else {
        return Err(format!(
            "{name:?} is not a backup's name (REL-YYYYMMDD-HHMMSS.bak, as `metasystem backups` \
             lists them)"
        ));
    };
    let src = spec.backups.join(name);
    match std::fs::symlink_metadata(&src) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(format!("{} is not a regular file", src.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "no backup {name} in {} (sync target `{}`); `metasystem backups` lists them",
                spec.backups.display(),
                spec.name
            ))
        }
        Err(e) => return Err(format!("cannot read {}: {e}", src.display())),
    }
    if !spec.selection.wants(&original) {
        return Err(format!(
            "{original} is not a path sync target `{}` syncs: not restored into its primary",
            spec.name
        ));
    }
    let dest = spec.primary.join(&original);
    if !spec.primary.is_dir() {
        return Err(format!(
            "the primary {} is not a folder",
            spec.primary.display()
        ));
    }
    let current =
        scan::meta_of(&dest).map_err(|e| format!("cannot read {}: {e}", dest.display()))?;
    if current.is_none() && std::fs::symlink_metadata(&dest).is_ok() {
        return Err(format!(
            "{} is not a regular file: not replaced",
            dest.display()
        ));
    }
    if current.is_some_and(|m| m.live_wal) {
        return Err(format!(
            "{} is a live database (a non-empty -wal beside it): restoring over it would \
             corrupt it under its writer; stop the program using it (a checkpoint empties the \
             -wal), then restore again",
            dest.display()
        ));
    }
    fsops::make_parents(&spec.primary, &dest)
        .map_err(|e| format!("cannot create the folder of {}: {e}", dest.display()))?;
    let previous_backup = match current {
        Some(_) => Some(
            fsops::backup(&dest, &spec.backups, &original, at, false, temps)
                .map_err(|e| format!("cannot back up {} before replacing it: {e}", dest.display()))?
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
        .map_err(|e| format!("cannot copy {}: {e}", src.display()))?;
    match fsops::install(&temp, &dest, current) {
        Ok(()) => {}
        Err(InstallError::Changed) => {
            return Err(format!(
                "{} changed meanwhile: nothing was replaced; restore again",
                dest.display()
            ))
        }
        Err(InstallError::Io(e)) => return Err(format!("cannot install {}: {e}", dest.display())),
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

/// Deletes backups whose name says they are older than `retention` (and temp files of backups
/// a killed run left); answers how many backups.
pub fn prune_backups(dir: &Path, retention: Duration) -> io::Result<usize> {
    if !dir.is_dir() {
        return Ok(0);
    }
    let now = SystemTime::now();
    let mut n = 0;
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(dir) else {
            continue;
        };
        let rel = rel.to_string_lossy();
        // A backup a killed run left half-written (one run per target at a time: none of
        // this run's is still being written).
        if scan::is_temp(&entry.file_name().to_string_lossy()) {
            let _ = std::fs::remove_file(entry.path());
            continue;
        }
        let Some((_, taken)) = fsops::parse_backup_name(&rel) else {
            continue;
        };
        if now.duration_since(taken).is_ok_and(|age| age > retention)
            && std::fs::remove_file(entry.path()).is_ok()
        {
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

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
