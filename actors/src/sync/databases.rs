//! SQLite databases in a run: a database is copied as a consistent snapshot (`VACUUM INTO` a
//! temp file, `PRAGMA integrity_check`, then the same install as a plain file: the destination
//! re-checked and backed up first), since its writer may change it during the copy; and the
//! daemon's own live databases are pushed as per-host snapshots into the target.

use std::io;
use std::path::{Path, PathBuf};

use super::apply::Ctx;
use super::apply::{describe, Applied};
use super::classify::{Action, Digest};
use super::engine::SyncSpec;
use super::fsops::{self, InstallError};
use super::items::{side_state, Item};
use super::names::at;
use super::scan::{self, Meta};
use super::snapshot;
use super::temps;
use crate::store::sync::{BaseChange, BaseEntry};
use crate::store::Store;

/// A database copied through a snapshot (its source may be written meanwhile).
pub async fn apply_sqlite(cx: &Ctx, item: &Item, action: Action) -> Applied {
    let spec = &cx.spec;
    let to_remote = action == Action::CopyToRemote;
    let (src, dest) = if to_remote {
        (at(&spec.primary, &item.rel), at(&spec.target, &item.rel))
    } else {
        (at(&spec.target, &item.rel), at(&spec.primary, &item.rel))
    };
    let (src_meta, src_hash) = if to_remote {
        (item.local, item.lhash())
    } else {
        (item.remote, item.rhash())
    };
    let Some(sm) = src_meta else {
        return Applied::Deferred("changed during the run".into());
    };
    let sh = match src_hash {
        Some(h) => h,
        None if item.unhashed => {
            let src2 = src.clone();
            match tokio::task::spawn_blocking(move || fsops::hash_file(&src2, sm.live_wal)).await {
                Ok(Ok(h)) => h,
                Ok(Err(e)) => {
                    return Applied::Failed(format!("cannot read {}: {e}", src.display()))
                }
                Err(e) => return Applied::Failed(format!("cannot read {}: {e}", src.display())),
            }
        }
        None => return Applied::Deferred("changed during the run".into()),
    };
    let root = if to_remote {
        spec.target.clone()
    } else {
        spec.primary.clone()
    };
    let dest2 = dest.clone();
    match tokio::task::spawn_blocking(move || fsops::make_parents(&root, &dest2)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Applied::Failed(describe(&e)),
        Err(e) => return Applied::Failed(format!("a sync task failed: {e}")),
    }
    let temp = cx.temps.beside(&dest);
    if let Err(e) = snapshot::snapshot(&src, &temp).await {
        return Applied::Failed(e.to_string());
    }
    if to_remote {
        fsops::set_writer(&temp, &spec.host, sm.mtime_ns);
    }
    let cx2 = cx.clone();
    let item = item.clone();
    let dest2 = dest.clone();
    let r = tokio::task::spawn_blocking(move || -> io::Result<Applied> {
        let f = super::longfs::open_write(&temp)?;
        f.set_modified(fsops::time_of(sm.mtime_ns))?;
        f.sync_all()?;
        drop(f);
        let hash = fsops::hash_file(&temp, false)?;
        let bytes = super::longfs::metadata(&temp)?.len();
        let r = finish_copy(
            &cx2,
            &item,
            temp.clone(),
            &dest2,
            hash,
            sh,
            sm,
            to_remote,
            bytes,
        );
        if r.is_err() {
            let _ = super::longfs::remove_file(&temp);
        }
        r
    })
    .await;
    match r {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => Applied::Failed(describe(&e)),
        Err(e) => Applied::Failed(format!("the copy of {} failed: {e}", dest.display())),
    }
}

#[allow(clippy::too_many_arguments)]
fn finish_copy(
    cx: &Ctx,
    item: &Item,
    temp: PathBuf,
    dest: &Path,
    copy_hash: Digest,
    src_hash: Digest,
    src_meta: Meta,
    to_remote: bool,
    bytes: u64,
) -> io::Result<Applied> {
    let dest_meta = if to_remote { item.remote } else { item.local };
    let mut backed_up = false;
    if dest_meta.is_some() {
        if !fsops::unchanged(dest, dest_meta)? {
            let _ = super::longfs::remove_file(&temp);
            return Ok(Applied::Deferred(format!(
                "{} changed during the run",
                dest.display()
            )));
        }
        if let Err(e) = fsops::backup(dest, &cx.spec.backups, &item.rel, cx.at, false, &cx.temps) {
            let _ = super::longfs::remove_file(&temp);
            return Err(io::Error::new(
                e.kind(),
                format!("cannot back up {} before replacing it: {e}", dest.display()),
            ));
        }
        backed_up = true;
    }
    match fsops::install(&temp, dest, dest_meta) {
        Ok(()) => {}
        Err(InstallError::Changed) => {
            return Ok(Applied::Deferred(format!(
                "{} changed during the run",
                dest.display()
            )))
        }
        Err(InstallError::Io(e)) => return Err(e),
    }
    let Some(new_meta) = scan::meta_on(dest, cx.stable(to_remote))? else {
        return Ok(Applied::Deferred(format!(
            "{} vanished after the copy",
            dest.display()
        )));
    };
    let (local, remote) = if to_remote {
        (
            side_state(src_hash, src_meta),
            side_state(copy_hash, new_meta),
        )
    } else {
        (
            side_state(copy_hash, new_meta),
            side_state(src_hash, src_meta),
        )
    };
    Ok(Applied::Copied {
        to_remote,
        bytes,
        backup: backed_up,
        change: BaseChange::Put(item.rel.to_string(), BaseEntry { local, remote }),
    })
}

/// Whether `a` and `b` are the same file (device and inode). Blocking.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Moves this host's per-host snapshots from where versions before kept them
/// (`TARGET/hosts/HOSTNAME/NAME`, for each configured snapshot's NAME, an SQLite database)
/// to the reserved folder (`TARGET/.metasystem-hosts/HOST/NAME`), so that `hosts/` is the
/// user's again; the old folders go when left empty. Run under the target's lock, before
/// the target is listed (blocking I/O). Another host's old folder is that host's to move.
pub fn move_legacy_snapshots(spec: &SyncSpec) -> std::io::Result<usize> {
    let old_dir = spec
        .target
        .join(scan::LEGACY_HOSTS)
        .join(crate::host::hostname());
    if !old_dir.is_dir() {
        return Ok(0);
    }
    let new_dir = spec.target.join(scan::HOSTS).join(&spec.host);
    let mut moved = 0;
    for db in &spec.snapshots {
        let Some(name) = db.file_name() else {
            continue;
        };
        let old = old_dir.join(name);
        if !old.is_file() || !fsops::is_sqlite(&old) {
            continue;
        }
        super::longfs::create_dir_all(&new_dir)?;
        let new = new_dir.join(name);
        if new.exists() {
            // Pushed there already: the old copy is an older snapshot of the same database.
            super::longfs::remove_file(&old)?;
        } else {
            super::longfs::rename(&old, &new)?;
        }
        fsops::sync_dir(&new)?;
        fsops::sync_dir(&old)?;
        moved += 1;
    }
    for dir in [&old_dir, &spec.target.join(scan::LEGACY_HOSTS)] {
        let _ = super::longfs::remove_dir(dir); // only when empty
    }
    Ok(moved)
}

/// Pushes a consistent snapshot of `db` to `TARGET/.metasystem-hosts/HOST/NAME` when the one there is
/// older than `snapshot_every`. Snapshots are not backed up: each is a newer copy of a
/// database that lives on here. The host's folder is this host's alone: a temp file left in
/// it by a killed push is removed.
pub async fn push_snapshot(cx: &Ctx, store: &Store, db: &Path) -> Result<String, String> {
    let spec = &cx.spec;
    let name = db
        .file_name()
        .ok_or_else(|| format!("{} has no file name", db.display()))?;
    let dir = spec.target.join(scan::HOSTS).join(&spec.host);
    let dest = dir.join(name);
    let (dest2, db2, every) = (dest.clone(), db.to_path_buf(), spec.snapshot_every);
    let own = store.path().to_path_buf();
    let (target, host_rel) = (
        spec.target.clone(),
        format!("{}/{}", scan::HOSTS, spec.host),
    );
    let fresh = tokio::task::spawn_blocking(move || -> Result<(bool, bool), String> {
        // The host's folder is written through nothing but folders of the target.
        if scan::through_link(&target, &host_rel) {
            return Err(format!(
                "{} is a symlink (or under one): no snapshot is written through it",
                target.join(&host_rel).display()
            ));
        }
        // Fresh enough: taken less than `every` ago (a time in the future is not fresh: it
        // would be for years).
        if let Ok(Ok(age)) = super::longfs::symlink_metadata(&dest2)
            .and_then(|m| m.modified())
            .map(|t| t.elapsed())
        {
            if age < every {
                return Ok((true, false));
            }
        }
        if !db2.is_file() {
            return Err(format!("{} does not exist", db2.display()));
        }
        super::longfs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        for e in super::longfs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            if temps::nonce_of(&e.file_name().to_string_lossy()).is_some() {
                let _ = super::longfs::remove_file(&dir.join(e.file_name()));
            }
        }
        Ok((false, same_file(&db2, &own)))
    })
    .await
    .map_err(|e| e.to_string())??;
    let (fresh, is_store) = fresh;
    if fresh {
        return Ok("fresh enough".into());
    }
    cx.temps.register(store, &spec.name).await?;
    let temp = cx.temps.beside(&dest);
    // The store's own snapshot carries this host's `host_info`, written just before it.
    let guard = if is_store {
        Some(store.before_snapshot(&spec.host, every).await?)
    } else {
        None
    };
    snapshot::snapshot(db, &temp)
        .await
        .map_err(|e| e.to_string())?;
    drop(guard);
    let dest2 = dest.clone();
    let r = tokio::task::spawn_blocking(move || -> io::Result<u64> {
        super::longfs::open(&temp)?.sync_all()?;
        let n = super::longfs::metadata(&temp)?.len();
        if let Err(e) = super::longfs::rename(&temp, &dest2) {
            let _ = super::longfs::remove_file(&temp);
            return Err(e);
        }
        fsops::sync_dir(&dest2)?;
        Ok(n)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| describe(&e))?;
    Ok(format!("pushed {} ({r} bytes)", dest.display()))
}
