//! `conflicts resolve`: an operator settles a conflict the manual strategy kept. Run by the
//! target's actor between runs (never during one), under the target's lock.
//!
//! - `local`: the primary's version is installed over the target's (the target's backed up
//!   first; temp + fsync + rename, the destination re-checked), the base records both sides,
//!   the conflict copy moves into the backups;
//! - `remote`: the mirror image (the primary's version backed up and replaced);
//! - `both`: as `local`, but the conflict copy stays, a normal file the next run syncs.
//!
//! Then the conflict's rows are marked resolved. Files first, then the base, then the rows: a
//! crash in between leaves both sides agreeing, which the next run records.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::engine::SyncSpec;
use super::error::OpError;
use super::fsops::{self, InstallError};
use super::lock::{LockError, TargetLock};
use super::scan::{self, Meta, MARKER};
use super::snapshot;
use super::temps::Temps;
use crate::store::sync::{Base, BaseChange, BaseEntry, ConflictRow};
use crate::store::{unix_ms, DurableOp, Store};

/// How long a write to the store may wait.
const STORE_WAIT: Duration = Duration::from_secs(60);

/// Which version a resolution keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    Local,
    Remote,
    Both,
}

impl Keep {
    pub fn name(self) -> &'static str {
        match self {
            Keep::Local => "local",
            Keep::Remote => "remote",
            Keep::Both => "both",
        }
    }
}

/// What a resolution did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub target: String,
    pub path: String,
    pub keep: Keep,
    /// Where the replaced version went (absolute), if a file was replaced.
    pub backup: Option<String>,
    /// The conflict copy (relative to the primary) and what became of it.
    pub copy: String,
    pub copy_now: String,
    /// Conflict rows marked resolved.
    pub resolved: usize,
}

/// Settles the conflict of `rows` (the open rows of one path of `spec`'s target) keeping
/// `keep`; updates `base` (the actor's cache) as it commits.
pub async fn resolve(
    spec: &SyncSpec,
    store: &Store,
    base: &mut Base,
    rows: &[ConflictRow],
    keep: Keep,
    at: SystemTime,
) -> Result<Resolution, OpError> {
    let Some(first) = rows.first() else {
        return Err(OpError::NotFound("no open conflict to resolve".into()));
    };
    let rel = first.path.clone();
    // The newest row's copy is the one the operator saw last, its versions the ones they chose
    // between.
    let newest = rows.iter().max_by_key(|r| r.id).unwrap_or(first);
    let copy_rel = newest.copy.clone();
    let seen = (newest.local_hash, newest.remote_hash);

    // Guards and the lock (blocking: the target may be a slow mount).
    let s = spec.clone();
    let lock = blocking(move || -> Result<TargetLock, OpError> {
        if !s.target.is_dir() {
            return Err(OpError::Offline(format!(
                "the target {} is offline: a conflict is resolved while both sides are there",
                s.target.display()
            )));
        }
        if !s.target.join(MARKER).exists() {
            return Err(OpError::Offline(format!(
                "the target {} has no {MARKER} marker: it is not the folder synced before",
                s.target.display()
            )));
        }
        TargetLock::take(&s.target, &s.host).map_err(|e| match e {
            LockError::Held(why) => OpError::Busy(why),
            LockError::Failed(why) => OpError::Io(why),
        })
    })
    .await??;
    let temps = Arc::new(Temps::new());
    temps
        .register(store, &spec.name)
        .await
        .map_err(OpError::Store)?;
    // Changing the target: its marker gets a fresh nonce first (an image of it taken before is
    // then a first sync, not a return of the version the operator rejected).
    if keep != Keep::Remote {
        super::guards::rotate_for_job(spec, store)
            .await
            .map_err(OpError::Io)?;
    }

    let (lpath, rpath) = (
        super::names::at(&spec.primary, &rel),
        super::names::at(&spec.target, &rel),
    );
    let (src, dest, to_remote) = match keep {
        Keep::Local | Keep::Both => (lpath.clone(), rpath.clone(), true),
        Keep::Remote => (rpath.clone(), lpath.clone(), false),
    };
    let side = |remote: bool| if remote { "target" } else { "primary" };

    // The source as it is now, and the destination as it will be re-checked.
    let (src2, dest2) = (src.clone(), dest.clone());
    let (src_meta, src_hash, dest_meta, sqlite) = blocking(move || -> Result<_, OpError> {
        let sm = scan::meta_of(&src2)
            .map_err(|e| OpError::Io(format!("cannot read {}: {e}", src2.display())))?
            .ok_or_else(|| {
                OpError::Refused(format!(
                    "{} is gone: the {} has no version of it to keep",
                    src2.display(),
                    side(!to_remote)
                ))
            })?;
        let dm = scan::meta_of(&dest2)
            .map_err(|e| OpError::Io(format!("cannot read {}: {e}", dest2.display())))?;
        if dm.is_some_and(|m| m.live_wal) {
            return Err(OpError::Busy(format!(
                "{} is a database in use (a live -wal beside it): it is not replaced under its \
                 writer; stop the program using it and resolve again",
                dest2.display()
            )));
        }
        let hash = fsops::hash_file(&src2, sm.live_wal)
            .map_err(|e| OpError::Io(format!("cannot read {}: {e}", src2.display())))?;
        // The version replaced must be the one the conflict showed: one written since (another
        // host, a program) was never seen by whoever chose, and is not overwritten unasked.
        match dm {
            None => {
                return Err(OpError::Refused(format!(
                    "{} was deleted since the conflict was recorded (on another host, or by a \
                     program): it is not made again unasked. Sync first: the deletion settles \
                     the conflict, or makes a new one if the other side changed too",
                    dest2.display()
                )))
            }
            Some(d) if d.dir => {
                return Err(OpError::Refused(format!(
                    "{} is a folder now: the file is not put in its place. Sync first (a file \
                     against a folder is settled by the sync as a type conflict)",
                    dest2.display()
                )))
            }
            Some(_) => {}
        }
        if let Some(d) = dm.filter(|d| !d.dir) {
            let now = fsops::hash_file(&dest2, d.live_wal)
                .map_err(|e| OpError::Io(format!("cannot read {}: {e}", dest2.display())))?;
            let shown = if to_remote { seen.1 } else { seen.0 };
            if now != shown {
                return Err(OpError::Refused(format!(
                    "{} changed since the conflict was recorded (written on another host or by \
                     a program): its new version was never shown, so it is not replaced. Sync \
                     first: the new version settles the conflict, or makes a new one if the \
                     other side changed too",
                    dest2.display()
                )));
            }
        }
        Ok((sm, hash, dm, fsops::is_sqlite(&src2)))
    })
    .await??;

    // The copy, in a temp file beside the destination.
    let parents_root = if to_remote {
        &spec.target
    } else {
        &spec.primary
    };
    let (root2, dest2) = (parents_root.clone(), dest.clone());
    blocking(move || fsops::make_parents(&root2, &dest2))
        .await?
        .map_err(|e| {
            OpError::Io(format!(
                "cannot create the folder of {}: {e}",
                dest.display()
            ))
        })?;
    let temp = temps.beside(&dest);
    if sqlite || src_meta.live_wal {
        snapshot::snapshot(&src, &temp)
            .await
            .map_err(|e| OpError::Io(e.to_string()))?;
        let (temp2, mtime) = (temp.clone(), src_meta.mtime_ns);
        blocking(move || -> io::Result<()> {
            let f = super::longfs::open_write(&temp2)?;
            f.set_modified(fsops::time_of(mtime))?;
            f.sync_all()
        })
        .await?
        .map_err(|e| {
            let _ = super::longfs::remove_file(&temp);
            OpError::Io(format!("cannot write {}: {e}", temp.display()))
        })?;
    } else {
        let (src2, temp2) = (src.clone(), temp.clone());
        let (h, _) = blocking(move || fsops::copy_to_temp(&src2, temp2, src_meta.mtime_ns))
            .await?
            .map_err(|e| OpError::Io(format!("cannot copy {}: {e}", src.display())))?;
        if h != src_hash {
            let _ = super::longfs::remove_file(&temp);
            return Err(OpError::Refused(format!(
                "{} changed while it was copied: resolve again",
                src.display()
            )));
        }
    }

    // Back up what is replaced, install (re-checking it), and read both sides back.
    let (backups, rel2, dest2, temp2) = (
        spec.backups.clone(),
        rel.clone(),
        dest.clone(),
        temp.clone(),
    );
    let temps2 = temps.clone();
    let (backup, new_meta, copy_hash) = blocking(move || -> Result<_, OpError> {
        let undo = |e: OpError| {
            let _ = super::longfs::remove_file(&temp2);
            e
        };
        let mut backup = None;
        if dest_meta.is_some() {
            if !fsops::unchanged(&dest2, dest_meta)
                .map_err(|e| undo(OpError::Io(format!("cannot read {}: {e}", dest2.display()))))?
            {
                return Err(undo(OpError::Refused(format!(
                    "{} changed meanwhile: resolve again",
                    dest2.display()
                ))));
            }
            let b = fsops::backup(&dest2, &backups, &rel2, at, false, &temps2).map_err(|e| {
                undo(OpError::Io(format!(
                    "cannot back up {} before replacing it: {e}",
                    dest2.display()
                )))
            })?;
            backup = Some(b.display().to_string());
        }
        let copy_hash = fsops::hash_file(&temp2, false)
            .map_err(|e| undo(OpError::Io(format!("cannot read {}: {e}", temp2.display()))))?;
        match fsops::install(&temp2, &dest2, dest_meta) {
            Ok(()) => {}
            Err(InstallError::Changed) => {
                return Err(OpError::Refused(format!(
                    "{} changed meanwhile: nothing was replaced; resolve again",
                    dest2.display()
                )))
            }
            Err(InstallError::Io(e)) => {
                return Err(OpError::Io(format!(
                    "cannot install {}: {e}",
                    dest2.display()
                )))
            }
        }
        let new_meta: Meta = scan::meta_of(&dest2)
            .map_err(|e| OpError::Io(format!("cannot read {}: {e}", dest2.display())))?
            .ok_or_else(|| OpError::Io(format!("{} vanished after the copy", dest2.display())))?;
        Ok((backup, new_meta, copy_hash))
    })
    .await??;

    // The conflict copy: into the backups, or left to sync as a normal file.
    let copy_path = super::names::at(&spec.primary, &copy_rel);
    let copy_now = if keep == Keep::Both || copy_rel.is_empty() {
        format!("kept as {}: it syncs as a normal file", copy_path.display())
    } else {
        let (backups, copy_rel2, copy_path2) =
            (spec.backups.clone(), copy_rel.clone(), copy_path.clone());
        let temps2 = temps.clone();
        blocking(move || -> Result<String, OpError> {
            match super::longfs::symlink_metadata(&copy_path2) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    Ok("already gone from the primary".to_string())
                }
                Err(e) => Err(OpError::Io(format!(
                    "cannot read {}: {e}",
                    copy_path2.display()
                ))),
                Ok(m) if !m.file_type().is_file() => Ok(format!(
                    "left alone: {} is not a regular file",
                    copy_path2.display()
                )),
                Ok(_) => {
                    let b = fsops::backup(&copy_path2, &backups, &copy_rel2, at, true, &temps2)
                        .map_err(|e| {
                            OpError::Io(format!(
                                "cannot move {} into the backups: {e}",
                                copy_path2.display()
                            ))
                        })?;
                    Ok(format!("moved to {}", b.display()))
                }
            }
        })
        .await??
    };

    // The base: both sides as they are now.
    let state = super::items::side_state;
    let entry = if to_remote {
        BaseEntry {
            local: state(src_hash, src_meta),
            remote: state(copy_hash, new_meta),
        }
    } else {
        BaseEntry {
            local: state(copy_hash, new_meta),
            remote: state(src_hash, src_meta),
        }
    };
    store
        .durable(
            DurableOp::SyncBase {
                target: spec.name.clone(),
                changes: vec![BaseChange::Put(rel.clone(), entry)],
            },
            Some(STORE_WAIT),
        )
        .await
        .map_err(|e| {
            OpError::Store(format!(
                "the files are in place but the sync state was not recorded ({e}); the next run \
                 finds both sides agreeing"
            ))
        })?;
    base.insert(rel.clone(), entry);
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    store
        .durable(
            DurableOp::SyncResolve {
                ids: ids.clone(),
                resolution: keep.name().to_string(),
                at_ms: unix_ms(at),
            },
            Some(STORE_WAIT),
        )
        .await
        .map_err(|e| {
            OpError::Store(format!(
                "resolved on disk, but the conflict is still listed open: {e}"
            ))
        })?;
    lock.release().await;
    Ok(Resolution {
        target: spec.name.clone(),
        path: rel,
        keep,
        backup,
        copy: copy_rel,
        copy_now,
        resolved: ids.len(),
    })
}

async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Result<R, OpError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| OpError::Io(format!("a file task failed: {e}")))
}
