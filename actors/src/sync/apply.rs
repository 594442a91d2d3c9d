//! A run's apply phase: the plan's steps in chunks of [`COMMIT_BATCH`]. Plain files are copied
//! to temp files beside their destinations on the worker threads, made durable together, the
//! destinations' backups put in place, then each copy renamed over its destination if that is
//! still what the scan saw; deletions go through the backups first. Each chunk's base changes
//! are committed once its files are durable, so a run that is killed resumes without re-reading
//! what it finished. Databases go last, through snapshots ([`databases`](super::databases)).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::classify::{Action, Digest};
use super::databases;
use super::engine::{blocking, par_map, Phases, Progress, SyncSpec, COMMIT_BATCH};
use super::fsops::{self, InstallError};
use super::items::{side_state, Item, Slot};
use super::names;
use super::record::Record;
use super::report::{RunReport, Stop};
use super::scan::{self, Meta, Paths, FOLDER_HASH};
use super::temps::Temps;
use crate::store::sync::{Base, BaseChange, BaseEntry, ConflictRow};
use crate::store::unix_ms;

/// How often a running chunk's counts are passed on to [`Progress`].
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// What applying one path gave.
pub enum Applied {
    Copied {
        to_remote: bool,
        bytes: u64,
        backup: bool,
        change: BaseChange,
    },
    Deleted {
        remote: bool,
        /// Whether a backup was taken (an empty folder has none).
        backup: bool,
        change: BaseChange,
    },
    Kept {
        copy: String,
        conflict: ConflictRow,
    },
    /// Permission bits set (`kept`: the file system kept them).
    Chmod {
        kept: bool,
        change: BaseChange,
    },
    Deferred(String),
    Failed(String),
    /// A database: copied through a snapshot (async), after the plain files.
    NeedsSnapshot,
}

/// What every step of a run's apply needs.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub spec: SyncSpec,
    /// When the run's changes are made (backups' and conflict copies' names).
    pub at: SystemTime,
    /// The run's temp names (registered before the first step).
    pub temps: Arc<Temps>,
    /// Whether each side's file system keeps stable inode numbers (primary, target): where
    /// not, the base records no stamps there.
    pub stable: [bool; 2],
}

impl Ctx {
    /// Whether the target's (`remote`) or the primary's file system has stable inodes.
    pub fn stable(&self, remote: bool) -> bool {
        self.stable[usize::from(remote)]
    }
}

/// Applies `steps` (indices into `items`, whose paths are in `names`), committing to `base`
/// through `record` as chunks become durable.
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    cx: &Ctx,
    base: &mut Base,
    items: &[Slot],
    names: &Paths,
    steps: &[(usize, Action)],
    mut record: Record<'_>,
    progress: &Progress,
    report: &mut RunReport,
    phases: &mut Phases,
) -> Result<(), Stop> {
    progress
        .files_total
        .store(steps.len() as u64, Ordering::Relaxed);
    let bytes_total: u64 = steps
        .iter()
        .map(|&(i, a)| match a {
            Action::CopyToRemote => items[i].local.map_or(0, |m| m.size),
            Action::CopyToLocal | Action::KeepBoth => items[i].remote.map_or(0, |m| m.size),
            _ => 0,
        })
        .sum();
    progress.bytes_total.store(bytes_total, Ordering::Relaxed);
    // Paths the base will learn: grown once, not per chunk.
    let (more, bytes) = steps
        .iter()
        .filter(|&&(i, _)| items[i].base.is_none())
        .fold((0, 0), |(n, b), &(i, _)| {
            (n + 1, b + items[i].rel.of(names).len())
        });
    base.reserve(more, bytes);
    let mut snapshots_needed = Vec::new();
    // Plain files in chunks: each chunk's base changes are committed once its files are durable.
    let chunk = COMMIT_BATCH.max(1);
    let mut start = 0;
    while start < steps.len() {
        record.check().await?;
        let end = (start + chunk).min(steps.len());
        let part: Vec<(Item, Action)> = steps[start..end]
            .iter()
            .map(|&(i, a)| (items[i].with_rel(names), a))
            .collect();
        let cx2 = cx.clone();
        let prog = Arc::new(ProgressCell::default());
        let prog2 = prog.clone();
        let work = blocking(move || {
            let dur = fsops::Durability::new();
            let steps = par_map(&part, |(item, a)| {
                let r = apply_plain(&cx2, item, *a, &dur);
                prog2.files.fetch_add(1, Ordering::Relaxed);
                if let Step::Staged(st) = &r {
                    prog2.bytes.fetch_add(st.copy.size, Ordering::Relaxed);
                }
                r
            });
            let out = settle(&cx2, &part, steps, &dur);
            (part, out, dur.flushing())
        });
        // The chunk's counts reach `progress` as its files are done, not when all are (a
        // chunk is up to 2,000 files: the progress bar would stand still for its length).
        let (files0, bytes0) = (
            progress.files_done.load(Ordering::Relaxed),
            progress.bytes_done.load(Ordering::Relaxed),
        );
        let relay = || {
            let files = prog.files.load(Ordering::Relaxed);
            let bytes = prog.bytes.load(Ordering::Relaxed);
            progress.files_done.store(files0 + files, Ordering::Relaxed);
            progress.bytes_done.store(bytes0 + bytes, Ordering::Relaxed);
        };
        tokio::pin!(work);
        let results = loop {
            tokio::select! {
                r = &mut work => break r?,
                () = tokio::time::sleep(PROGRESS_EVERY) => relay(),
            }
        };
        relay();
        let (part, out, flushing) = results;
        phases.add("apply's syncfs", flushing);
        for ((item, a), r) in part.into_iter().zip(out) {
            snapshots_needed.extend(record.absorb(report, item, a, r).await);
        }
        let committing = Instant::now();
        record.commit(base).await?;
        phases.add("apply's commits", committing.elapsed());
        start = end;
    }
    phases.mark("apply");
    for (item, a) in snapshots_needed {
        let r = databases::apply_sqlite(cx, &item, a).await;
        progress.files_done.fetch_add(1, Ordering::Relaxed);
        // A database's step never asks for a snapshot again.
        let _ = record.absorb(report, item, a, r).await;
    }
    record.commit(base).await?;
    phases.mark("databases");
    Ok(())
}

#[derive(Default)]
struct ProgressCell {
    files: AtomicU64,
    bytes: AtomicU64,
}

/// One plain-file action (blocking).
fn apply_plain(cx: &Ctx, item: &Item, action: Action, dur: &fsops::Durability) -> Step {
    let spec = &cx.spec;
    let lpath = names::at(&spec.primary, &item.rel);
    let rpath = names::at(&spec.target, &item.rel);
    let done =
        |r: io::Result<Applied>| Step::Done(r.unwrap_or_else(|e| Applied::Failed(describe(&e))));
    if item.local.or(item.remote).is_some_and(|m| m.dir) {
        return done(folder(item, action, &lpath, &rpath));
    }
    let r = match action {
        Action::Agree => {
            let (Some(l), Some(r), Some(lh), Some(rh)) =
                (item.local, item.remote, item.lhash(), item.rhash())
            else {
                return Step::Done(Applied::Deferred("changed during the run".into()));
            };
            return Step::Done(Applied::Copied {
                to_remote: false,
                bytes: 0,
                backup: false,
                change: BaseChange::Put(
                    item.rel.to_string(),
                    BaseEntry {
                        local: side_state(lh, l),
                        remote: side_state(rh, r),
                    },
                ),
            });
        }
        Action::Forget => {
            return Step::Done(Applied::Deleted {
                remote: false,
                backup: false,
                change: BaseChange::Forget(item.rel.to_string()),
            })
        }
        Action::CopyToRemote => return stage_copy(cx, item, &lpath, &rpath, true, dur),
        Action::CopyToLocal => return stage_copy(cx, item, &rpath, &lpath, false, dur),
        Action::DeleteRemote => delete(cx, item, &rpath, false),
        Action::DeleteLocal => delete(cx, item, &lpath, true),
        Action::KeepBoth => keep_both(cx, item, &rpath),
        Action::ChmodRemote => chmod(cx, item, &rpath, true),
        Action::ChmodLocal => chmod(cx, item, &lpath, false),
        Action::ChmodBoth => chmod_both(cx, item, &lpath, &rpath),
        Action::Nothing | Action::Pending(_) => {
            return Step::Done(Applied::Deferred(String::new()))
        }
    };
    done(r)
}

pub(super) fn describe(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) if code == rustix::io::Errno::NOSPC.raw_os_error() => {
            format!("no space left on the device ({e}); nothing was replaced")
        }
        _ => e.to_string(),
    }
}

/// A plain-file action's first step: done (or failed, or deferred) at once, or a copy staged.
enum Step {
    Done(Applied),
    Staged(Staged),
}

/// A copy written to its temp file (and the destination's backup: a second name of it, or a
/// copy in its own temp), waiting
/// for its chunk's files to be durable before it is renamed into place.
struct Staged {
    copy: fsops::TempCopy,
    dest: PathBuf,
    src_hash: Digest,
    src_meta: Meta,
    to_remote: bool,
    /// The destination's backup.
    backup: Option<Backup>,
    /// The destination as the install must find it: as the scan saw it, or as it is since a
    /// linked backup gave it another change time.
    expected: Option<Meta>,
}

/// A staged copy's backup of its destination.
enum Backup {
    /// A copy: its temp, its name, where (renamed to its name once durable).
    Copied(PathBuf, PathBuf, fsops::Dev),
    /// A second name of the destination itself (`fsops::backup_linked`): in place already.
    Linked(PathBuf),
}

impl Staged {
    /// Removes what was staged (a step that will not happen).
    fn discard(&self) {
        let _ = super::longfs::remove_file(&self.copy.temp);
        match &self.backup {
            Some(Backup::Copied(temp, _, _)) => {
                let _ = super::longfs::remove_file(temp);
            }
            // Nothing was replaced: the second name goes (the file keeps its own).
            Some(Backup::Linked(name)) => {
                let _ = super::longfs::remove_file(name);
            }
            None => {}
        }
    }
}

/// A copy, up to its temp file and the destination's backup (durable at the chunk's flush).
fn stage_copy(
    cx: &Ctx,
    item: &Item,
    src: &Path,
    dest: &Path,
    to_remote: bool,
    dur: &fsops::Durability,
) -> Step {
    let spec = &cx.spec;
    let (src_meta, src_hash, dest_meta) = if to_remote {
        (item.local, item.lhash(), item.remote)
    } else {
        (item.remote, item.rhash(), item.local)
    };
    let Some(sm) = src_meta else {
        return Step::Done(Applied::Deferred("changed during the run".into()));
    };
    if src_hash.is_none() && !item.unhashed {
        return Step::Done(Applied::Deferred("changed during the run".into()));
    }
    if dest_meta.is_some_and(|m| m.live_wal) {
        return Step::Done(Applied::Deferred(format!(
            "{} is a database in use (a live -wal beside it): not replaced under its writer",
            dest.display()
        )));
    }
    if sm.live_wal {
        return Step::Done(Applied::NeedsSnapshot);
    }
    let (root, like) = if to_remote {
        (&spec.target, &spec.primary)
    } else {
        (&spec.primary, &spec.target)
    };
    let staged = (|| -> io::Result<Step> {
        if let Err(e) = fsops::make_parents_in(root, dest, like, dur) {
            // A file stands where a folder of this path goes (a file replaced by a folder on
            // the other side): it is deleted in this run, the folder's files follow.
            if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error())
                || e.kind() == io::ErrorKind::AlreadyExists
            {
                return Ok(Step::Done(Applied::Deferred(format!(
                    "a file stands where the folder of {} goes (a file replaced by a folder): \
                     it goes first, this follows at the next run",
                    dest.display()
                ))));
            }
            return Err(e);
        }
        let copy = match fsops::copy_staged(src, cx.temps.beside(dest), sm.mtime_ns, dur) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(Step::Done(Applied::NeedsSnapshot)),
            // Gone since the scan: the next run sees it absent.
            Err(e) if e.kind() == io::ErrorKind::NotFound && !super::longfs::exists(src) => {
                return Ok(Step::Done(Applied::Deferred(format!(
                    "{} vanished during the run",
                    src.display()
                ))))
            }
            Err(e) => return Err(e),
        };
        if to_remote {
            // Whose version this is, for a conflict copy another host may make of it.
            fsops::set_writer(&copy.temp, &spec.host, sm.mtime_ns);
        }
        // What was copied is what the scan saw: the hash taken before, or (unhashed) the
        // source's size and time once read, as the quick check does.
        let same = match src_hash {
            Some(sh) => copy.hash == sh,
            None => copy.source == (sm.size, sm.mtime_ns),
        };
        if !same {
            let _ = super::longfs::remove_file(&copy.temp);
            return Ok(Step::Done(Applied::Deferred(format!(
                "{} changed during the run",
                src.display()
            ))));
        }
        let sh = src_hash.unwrap_or(copy.hash);
        let mut backup = None;
        let mut expected = dest_meta;
        if let Some(dm) = dest_meta {
            let b = match fsops::unchanged(dest, dest_meta) {
                Ok(true) => match fsops::backup_linked(
                    dest,
                    &spec.backups,
                    &item.rel,
                    cx.at,
                    dm,
                    dur,
                    copy.dev,
                ) {
                    Ok(fsops::Linked::Made(name, now)) => {
                        expected = Some(now);
                        Ok(Backup::Linked(name))
                    }
                    Ok(fsops::Linked::Changed) => {
                        let _ = super::longfs::remove_file(&copy.temp);
                        return Ok(Step::Done(Applied::Deferred(format!(
                            "{} changed during the run",
                            dest.display()
                        ))));
                    }
                    Ok(fsops::Linked::Cannot) => {
                        fsops::backup_staged(dest, &spec.backups, &item.rel, cx.at, dur, &cx.temps)
                            .map(|(t, n, d)| Backup::Copied(t, n, d))
                    }
                    Err(e) => Err(e),
                },
                Ok(false) => {
                    let _ = super::longfs::remove_file(&copy.temp);
                    return Ok(Step::Done(Applied::Deferred(format!(
                        "{} changed during the run",
                        dest.display()
                    ))));
                }
                Err(e) => Err(e),
            };
            match b {
                Ok(b) => backup = Some(b),
                Err(e) => {
                    let _ = super::longfs::remove_file(&copy.temp);
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot back up {} before replacing it: {e}", dest.display()),
                    ));
                }
            }
        }
        Ok(Step::Staged(Staged {
            copy,
            dest: dest.to_path_buf(),
            src_hash: sh,
            src_meta: sm,
            to_remote,
            backup,
            expected,
        }))
    })();
    staged.unwrap_or_else(|e| Step::Done(Applied::Failed(describe(&e))))
}

/// The chunk's staged copies put in place, in the order that leaves no torn file and no
/// replaced file without its backup: their temp files (and the backups: links, or copies in
/// temps) durable, the copied backups renamed to their names and durable, the copies renamed over their destinations
/// (each re-checked just before) and durable. Answers one result per step.
fn settle(
    cx: &Ctx,
    part: &[(Item, Action)],
    steps: Vec<Step>,
    dur: &fsops::Durability,
) -> Vec<Applied> {
    let mut out: Vec<Option<Applied>> = Vec::with_capacity(steps.len());
    let mut staged: Vec<(usize, Staged)> = Vec::new();
    for (i, step) in steps.into_iter().enumerate() {
        match step {
            Step::Done(a) => out.push(Some(a)),
            Step::Staged(s) => {
                out.push(None);
                staged.push((i, s));
            }
        }
    }
    let fail = |staged: &mut Vec<(usize, Staged)>, out: &mut [Option<Applied>], why: &str| {
        for (i, s) in staged.drain(..) {
            s.discard();
            out[i] = Some(Applied::Failed(why.to_string()));
        }
    };
    if !staged.is_empty() {
        if let Err(e) = dur.flush() {
            let why = format!("cannot make the copy durable: {}", describe(&e));
            fail(&mut staged, &mut out, &why);
        }
    }
    // Backups under their names, durable before anything they keep is replaced.
    let mut placed = false;
    staged.retain(|(i, s)| {
        let Some(Backup::Copied(temp, name, dev)) = &s.backup else {
            return true;
        };
        match fsops::place_backup(temp, name, dur, *dev) {
            Ok(()) => {
                placed = true;
                true
            }
            Err(e) => {
                s.discard();
                out[*i] = Some(Applied::Failed(format!(
                    "cannot back up {} before replacing it: {}",
                    s.dest.display(),
                    describe(&e)
                )));
                false
            }
        }
    });
    if placed {
        if let Err(e) = dur.flush() {
            let why = format!("cannot make the backups durable: {}", describe(&e));
            fail(&mut staged, &mut out, &why);
        }
    }
    let installed = par_map(&staged, |(i, s)| install_staged(cx, &part[*i].0, s, dur));
    let flushed = if staged.is_empty() {
        Ok(())
    } else {
        dur.flush()
    };
    for ((i, _), r) in staged.iter().zip(installed) {
        out[*i] = Some(match (&flushed, r) {
            // In place but maybe not durable: not recorded (the next run finds them agreeing).
            (Err(e), Applied::Copied { .. }) => {
                Applied::Failed(format!("cannot make the copy durable: {}", describe(e)))
            }
            (_, r) => r,
        });
    }
    out.into_iter()
        .map(|a| a.unwrap_or_else(|| Applied::Failed("not applied".into())))
        .collect()
}

/// A staged copy renamed over its destination if that is still what the scan saw; the base
/// records the destination as a stat shows it after the rename (which gives the file a new
/// change time on most file systems).
fn install_staged(cx: &Ctx, item: &Item, s: &Staged, dur: &fsops::Durability) -> Applied {
    match fsops::install_with(&s.copy.temp, &s.dest, s.expected, dur, s.copy.dev) {
        Ok(()) => {}
        Err(InstallError::Changed) if super::longfs::is_dir(&s.dest) => {
            return Applied::Deferred(format!(
                "{} is a folder there (a folder replaced by a file): it is emptied and removed \
                 first, the file follows at the next run",
                s.dest.display()
            ))
        }
        Err(InstallError::Changed) => {
            return Applied::Deferred(format!("{} changed during the run", s.dest.display()))
        }
        Err(InstallError::Io(e)) => return Applied::Failed(describe(&e)),
    }
    let installed = match scan::meta_on(&s.dest, cx.stable(s.to_remote)) {
        Ok(Some(m)) => m,
        Ok(None) => {
            return Applied::Deferred(format!("{} vanished after the copy", s.dest.display()))
        }
        Err(e) => return Applied::Failed(describe(&e)),
    };
    let (local, remote) = if s.to_remote {
        (
            side_state(s.src_hash, s.src_meta),
            side_state(s.copy.hash, installed),
        )
    } else {
        (
            side_state(s.copy.hash, installed),
            side_state(s.src_hash, s.src_meta),
        )
    };
    Applied::Copied {
        to_remote: s.to_remote,
        bytes: s.copy.size,
        backup: s.backup.is_some(),
        change: BaseChange::Put(item.rel.to_string(), BaseEntry { local, remote }),
    }
}

fn delete(cx: &Ctx, item: &Item, path: &Path, local: bool) -> io::Result<Applied> {
    let meta = if local { item.local } else { item.remote };
    let Some(meta) = meta else {
        return Ok(Applied::Deferred("changed during the run".into()));
    };
    if meta.live_wal {
        return Ok(Applied::Deferred(format!(
            "{} is a database in use: not deleted under its writer",
            path.display()
        )));
    }
    if !fsops::unchanged(path, Some(meta))? {
        return Ok(Applied::Deferred(format!(
            "{} changed during the run",
            path.display()
        )));
    }
    // The primary's file moves into the backups (same disk as a rule); the target's is copied.
    fsops::backup(path, &cx.spec.backups, &item.rel, cx.at, local, &cx.temps)?;
    if !local {
        match fsops::remove(path, meta) {
            Ok(()) => {}
            Err(InstallError::Changed) => {
                return Ok(Applied::Deferred(format!(
                    "{} changed during the run",
                    path.display()
                )))
            }
            Err(InstallError::Io(e)) => return Err(e),
        }
    }
    let (root, other) = if local {
        (&cx.spec.primary, &cx.spec.target)
    } else {
        (&cx.spec.target, &cx.spec.primary)
    };
    remove_emptied_folders(root, other, &item.rel);
    Ok(Applied::Deleted {
        remote: !local,
        backup: true,
        change: BaseChange::Forget(item.rel.to_string()),
    })
}

/// After a deletion of `rel` under `root`: each folder above it, deepest first, that the
/// deletion left empty and that the other side (`other`) no longer has is removed (a folder
/// deleted on one side goes on the other once the sync has emptied it). A folder the other
/// side still has, even empty, stays: it is synced as an empty folder.
fn remove_emptied_folders(root: &Path, other: &Path, rel: &str) {
    let mut dir = rel;
    while let Some((parent, _)) = dir.rsplit_once('/') {
        if super::longfs::is_dir(&names::at(other, parent))
            || super::longfs::remove_dir(&names::at(root, parent)).is_err()
        {
            return;
        }
        dir = parent;
    }
}

/// A step of an empty folder (`rel` ends in `/`): created where it is not (with its mode),
/// removed where it was deleted from the other side (if still empty), recorded.
fn folder(item: &Item, action: Action, lpath: &Path, rpath: &Path) -> io::Result<Applied> {
    use std::os::unix::fs::PermissionsExt;
    let rel = item.rel.to_string();
    let entry = |l: Meta, r: Meta| {
        BaseChange::Put(
            rel.clone(),
            BaseEntry {
                local: side_state(FOLDER_HASH, l),
                remote: side_state(FOLDER_HASH, r),
            },
        )
    };
    let made = |src: Option<Meta>, dest: &Path| -> io::Result<Meta> {
        super::longfs::create_dir_all(dest)?;
        if let Some(m) = src.filter(|m| m.mode != 0) {
            let _ = super::longfs::set_permissions(dest, std::fs::Permissions::from_mode(m.mode));
        }
        Ok(Meta::folder(&super::longfs::symlink_metadata(dest)?))
    };
    let (l, r) = (item.local, item.remote);
    Ok(match action {
        Action::CopyToRemote => {
            let r = made(l, rpath)?;
            Applied::Copied {
                to_remote: true,
                bytes: 0,
                backup: false,
                change: entry(l.unwrap_or(r), r),
            }
        }
        Action::CopyToLocal => {
            let l = made(r, lpath)?;
            Applied::Copied {
                to_remote: false,
                bytes: 0,
                backup: false,
                change: entry(l, r.unwrap_or(l)),
            }
        }
        Action::Agree => match (l, r) {
            (Some(l), Some(r)) => Applied::Copied {
                to_remote: false,
                bytes: 0,
                backup: false,
                change: entry(l, r),
            },
            _ => Applied::Deferred("changed during the run".into()),
        },
        Action::DeleteRemote | Action::DeleteLocal => {
            let remote = action == Action::DeleteRemote;
            let path = if remote { rpath } else { lpath };
            match super::longfs::remove_dir(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // Something was put in it since: kept, its contents sync.
                Err(_) if super::longfs::is_dir(path) => {
                    return Ok(Applied::Deferred(format!(
                        "{} is not empty any more",
                        path.display()
                    )))
                }
                Err(e) => return Err(e),
            }
            Applied::Deleted {
                remote,
                backup: false,
                change: BaseChange::Forget(rel),
            }
        }
        Action::Forget => Applied::Deleted {
            remote: false,
            backup: false,
            change: BaseChange::Forget(rel),
        },
        _ => Applied::Deferred(String::new()),
    })
}

/// A chmod alone synced: `path` (the target's file when `remote`) gets the other side's
/// permission bits, if it is still what the scan saw; the base records both sides as a stat
/// shows them after (a file system that keeps no modes keeps its own: recorded as it is, so
/// nothing is tried again until a side changes).
fn chmod(cx: &Ctx, item: &Item, path: &Path, remote: bool) -> io::Result<Applied> {
    use std::os::unix::fs::PermissionsExt;
    let (Some(l), Some(r), Some(lh), Some(rh)) =
        (item.local, item.remote, item.lhash(), item.rhash())
    else {
        return Ok(Applied::Deferred("changed during the run".into()));
    };
    let (from, now) = if remote { (l, r) } else { (r, l) };
    if !fsops::unchanged(path, Some(now))? {
        return Ok(Applied::Deferred(format!(
            "{} changed during the run",
            path.display()
        )));
    }
    super::longfs::set_permissions(path, std::fs::Permissions::from_mode(from.mode))?;
    let after = scan::meta_on(path, cx.stable(remote))?;
    let Some(after) = after else {
        return Ok(Applied::Deferred(format!(
            "{} vanished during the run",
            path.display()
        )));
    };
    let (l, r) = if remote { (l, after) } else { (after, r) };
    Ok(Applied::Chmod {
        kept: after.mode == from.mode,
        change: BaseChange::Put(
            item.rel.to_string(),
            BaseEntry {
                local: side_state(lh, l),
                remote: side_state(rh, r),
            },
        ),
    })
}

/// Both sides narrowed to the bits both allow (`local & remote`): the wider side first set to
/// it, then the other, each only if it is still what the scan saw.
fn chmod_both(cx: &Ctx, item: &Item, lpath: &Path, rpath: &Path) -> io::Result<Applied> {
    use std::os::unix::fs::PermissionsExt;
    let (Some(l), Some(r), Some(lh), Some(rh)) =
        (item.local, item.remote, item.lhash(), item.rhash())
    else {
        return Ok(Applied::Deferred("changed during the run".into()));
    };
    let mode = l.mode & r.mode;
    let mut after = [l, r];
    for (i, (path, now, remote)) in [(lpath, l, false), (rpath, r, true)]
        .into_iter()
        .enumerate()
    {
        if !fsops::unchanged(path, Some(now))? {
            return Ok(Applied::Deferred(format!(
                "{} changed during the run",
                path.display()
            )));
        }
        super::longfs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        match scan::meta_on(path, cx.stable(remote))? {
            Some(m) => after[i] = m,
            None => {
                return Ok(Applied::Deferred(format!(
                    "{} vanished during the run",
                    path.display()
                )))
            }
        }
    }
    Ok(Applied::Chmod {
        kept: after[0].mode == mode && after[1].mode == mode,
        change: BaseChange::Put(
            item.rel.to_string(),
            BaseEntry {
                local: side_state(lh, after[0]),
                remote: side_state(rh, after[1]),
            },
        ),
    })
}

fn keep_both(cx: &Ctx, item: &Item, rpath: &Path) -> io::Result<Applied> {
    let (spec, at) = (&cx.spec, cx.at);
    let (Some(rm), Some(lh), Some(rh)) = (item.remote, item.lhash(), item.rhash()) else {
        return Ok(Applied::Deferred("changed during the run".into()));
    };
    // The copy is named after the host whose version it holds: the one that installed it in
    // the target when noted, else the target (a version written there by hand, or by a
    // version of this tool that did not note it). A second conflict on the same path in the
    // same second gets `-2`, `-3`... after the name.
    let from = fsops::writer_of(rpath, rm.mtime_ns).unwrap_or_else(|| spec.name.clone());
    let mut copy_rel = fsops::conflict_name(&item.rel, at, &from);
    let mut n = 2;
    while n < 1000 && super::longfs::symlink_metadata(&names::at(&spec.primary, &copy_rel)).is_ok()
    {
        copy_rel = fsops::conflict_name(&item.rel, at, &format!("{from}-{n}"));
        n += 1;
    }
    let dest = names::at(&spec.primary, &copy_rel);
    fsops::make_parents(&spec.primary, &dest)?;
    let temp = cx.temps.beside(&dest);
    let (hash, _) = fsops::copy_to_temp(rpath, temp.clone(), rm.mtime_ns)?;
    if hash != rh {
        let _ = super::longfs::remove_file(&temp);
        return Ok(Applied::Deferred(format!(
            "{} changed during the run",
            rpath.display()
        )));
    }
    match fsops::install(&temp, &dest, None) {
        Ok(()) => {}
        Err(InstallError::Changed) => {
            return Ok(Applied::Deferred(format!(
                "{} exists already",
                dest.display()
            )))
        }
        Err(InstallError::Io(e)) => return Err(e),
    }
    Ok(Applied::Kept {
        copy: copy_rel.clone(),
        conflict: ConflictRow {
            id: 0,
            target: spec.name.clone(),
            path: item.rel.to_string(),
            local_hash: lh,
            remote_hash: rh,
            copy: copy_rel,
            detected_ms: unix_ms(at),
            resolved_ms: None,
            resolution: None,
        },
    })
}
