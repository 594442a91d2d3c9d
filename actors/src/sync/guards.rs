//! A run's first phase, the guards: the target is there (an unmounted drive or an absent
//! cloud folder is offline: skipped, never read as deletions), it is readable, it is the folder
//! synced before (its marker), and no other run holds it (the lock).
//!
//! The marker (`.metasystem-sync` in the target) carries a nonce, which the store records as
//! adopted, and the nonces it replaced (its history, newest first). Each run that changes the
//! target gives it a fresh nonce first ([`rotate`]), so the target's nonce names its state: a
//! marker whose nonce this host adopted, or whose history holds it (another host changed the
//! target since), is the folder as this host knows it. A marker with another nonce (a drive or
//! cloud folder restored from an image taken before this host's last run, a copy of the folder
//! that went on separately, a different folder with a marker of its own) or none (put back by
//! hand) makes the run a first sync: the base is let go and the run is a union of both sides,
//! with no deletions. A target synced before whose marker is gone is refused: it may be a bare
//! mountpoint.
//!
//! The run then holds the target's [`TargetId`] (the marker's nonce and both roots' device and
//! inode) and checks it before each batch and before the base is recorded: a drive that drops
//! out in the middle of a run (lazily unmounted, the path now a bare mountpoint) stops it, and
//! nothing unverified is recorded as synced.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::SystemTime;

use super::engine::{blocking, Progress, RunOptions, SyncSpec, STORE_WAIT};
use super::lock::{LockError, TargetLock};
use super::report::{Refusal, Stop};
use super::scan::MARKER;
use crate::store::sync::{target_record, TargetRecord};
use crate::store::{unix_ms, DurableOp, Store};

/// What the guards let through.
pub struct Guarded {
    /// The target's lock, held until the run ends (none for a dry run).
    pub lock: Option<TargetLock>,
    /// The run is a first sync: a union of both sides against no base, deleting nothing.
    pub union: bool,
    /// Where the run started (none for a dry run of a target not created yet); its nonce
    /// the fresh one once the run has [`rotate`]d the marker.
    pub id: Option<TargetId>,
    /// Whether the run has given the marker a fresh nonce ([`rotate`]).
    pub rotated: bool,
}

/// A folder as a run found it: its device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Root {
    dev: u64,
    ino: u64,
}

impl Root {
    fn of(path: &Path) -> io::Result<Root> {
        let md = std::fs::metadata(path)?;
        Ok(Root {
            dev: md.dev(),
            ino: md.ino(),
        })
    }
}

/// The identity of a run's two folders: the target's marker nonce, and both roots' device
/// and inode (a lazily unmounted drive's path leads to the bare mountpoint: another inode,
/// usually another device, and no marker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetId {
    nonce: Option<String>,
    target: Root,
    primary: Root,
}

impl TargetId {
    fn read(spec: &SyncSpec) -> io::Result<TargetId> {
        Ok(TargetId {
            target: Root::of(&spec.target)?,
            primary: Root::of(&spec.primary)?,
            nonce: match read_marker(&spec.target)? {
                Found::Present(n, _) => n,
                Found::Absent => None,
            },
        })
    }

    /// Whether both folders are still the ones the run started with (blocking I/O).
    pub fn check(&self, spec: &SyncSpec) -> Result<(), Stop> {
        let now = TargetId::read(spec);
        if now.as_ref().is_ok_and(|now| now == self) {
            return Ok(());
        }
        let what = match &now {
            Err(e) => format!("it cannot be read now ({e})"),
            Ok(now) if now.primary != self.primary => format!(
                "the primary {} is another folder now",
                spec.primary.display()
            ),
            Ok(now) if now.target != self.target => {
                "its folder is another one now (unmounted, or replaced)".to_string()
            }
            Ok(_) => "its marker changed".to_string(),
        };
        let reason = format!(
            "stopped: {} changed during the run: {what}. What was done before was recorded; \
             nothing after it was, and nothing written to the wrong place is ever read as a \
             deletion",
            spec.target.display()
        );
        Err(if spec.target.is_dir() {
            Stop::error(reason)
        } else {
            Stop::skipped(format!("offline: {reason}"), None)
        })
    }
}

/// [`TargetId::check`] on the blocking pool.
pub async fn check_id(spec: &SyncSpec, id: Option<&TargetId>) -> Result<(), Stop> {
    let Some(id) = id.cloned() else {
        return Ok(());
    };
    let s = spec.clone();
    blocking(move || id.check(&s)).await?
}

/// The marker as found in the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Absent,
    /// There, with its nonce (`None`: empty, hand-made, or written before markers had one)
    /// and the nonces it replaced, newest first.
    Present(Option<String>, Vec<String>),
}

/// How many replaced nonces a marker keeps: a host whose last run was more than this many
/// target-changing runs (of other hosts) ago finds its nonce gone and makes a first sync (a
/// union: nothing lost, but a deletion made meanwhile elsewhere comes back from it).
const HISTORY: usize = 256;

/// The most a marker's text is read of (its history at [`HISTORY`] nonces takes ~8.5 KiB).
const MARKER_READ: u64 = 16 * 1024;

/// Reads the marker of `target`; an error is one reading it (not its absence). Only a
/// regular file is read, and only its first 16 KiB: a FIFO there must not hang the run, nor
/// a link to `/dev/zero` fill the memory.
fn read_marker(target: &Path) -> io::Result<Found> {
    use std::io::Read;
    let path = target.join(MARKER);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => {
            return Err(io::Error::other(
                "it is not a regular file (remove it, or put a marker file there)",
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Absent),
        Err(e) => return Err(e),
    }
    let mut text = Vec::new();
    std::fs::File::open(&path)?
        .take(MARKER_READ)
        .read_to_end(&mut text)?;
    let text = String::from_utf8_lossy(&text);
    Ok(Found::Present(nonce_of(&text), history_of(&text)))
}

/// The replaced nonces in a marker's text: a line `history: HEX HEX ...` (each as a nonce).
pub fn history_of(text: &str) -> Vec<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("history:"))
        .map(|h| {
            h.split_whitespace()
                .filter(|n| {
                    (16..=64).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_hexdigit())
                })
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default()
}

/// The nonce in a marker's text: a line `nonce: HEX` (16 to 64 hex digits).
pub fn nonce_of(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let n = l.trim().strip_prefix("nonce:")?.trim();
        ((16..=64).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| n.to_ascii_lowercase())
    })
}

/// What to do about the marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkerStep {
    /// The marker is the one adopted: a run like any other.
    Same,
    /// Write a new marker with a fresh nonce and adopt it.
    Write { union: bool },
    /// Adopt the nonce of the marker found.
    Adopt { nonce: String, union: bool },
    /// Synced before and no marker: not the folder synced before (a bare mountpoint?).
    Refuse,
}

/// The marker step (pure): `record` is what the store knows of the target, `base_empty`
/// whether its base has no path, `found` the marker in the target. A union is a first sync:
/// nothing in the base, no deletions. A target synced before this release (no nonce recorded,
/// a base) adopts the marker it finds as it is, without a union.
/// A marker whose history holds the adopted nonce descends from the target as this host last
/// knew it (other hosts changed it since): adopted without a union.
pub fn marker_step(record: &TargetRecord, base_empty: bool, found: &Found) -> MarkerStep {
    let upgrade = record.synced_before && record.marker.is_none() && !base_empty;
    match found {
        Found::Absent if record.synced_before => MarkerStep::Refuse,
        Found::Absent => MarkerStep::Write { union: true },
        Found::Present(Some(n), _) if record.marker.as_deref() == Some(n.as_str()) => {
            MarkerStep::Same
        }
        Found::Present(Some(n), history) => {
            let descends = !base_empty
                && record
                    .marker
                    .as_ref()
                    .is_some_and(|adopted| history.contains(adopted));
            MarkerStep::Adopt {
                nonce: n.clone(),
                union: !upgrade && !descends,
            }
        }
        Found::Present(None, _) => MarkerStep::Write { union: !upgrade },
    }
}

/// Whether the target can be synced now, and whether this run is its first.
enum Online {
    Yes,
    /// Absent but its parent is there and nothing was ever synced: created by the first run.
    Create,
    No(String),
    /// There but not readable (permissions, an I/O error): a fault, not "offline".
    Unreadable(String),
}

fn online(spec: &SyncSpec, first: bool) -> Online {
    let t = &spec.target;
    match std::fs::metadata(t) {
        Ok(m) if m.is_dir() => match std::fs::read_dir(t) {
            Ok(_) => Online::Yes,
            Err(e) => Online::Unreadable(format!("cannot read the target {}: {e}", t.display())),
        },
        Ok(_) => Online::No(format!("{} is not a folder", t.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if first && t.parent().is_some_and(Path::is_dir) {
                Online::Create
            } else {
                Online::No(format!(
                    "offline: {} is not there ({e}); an unmounted drive or an absent cloud \
                     folder is skipped, never read as deletions",
                    t.display()
                ))
            }
        }
        Err(e) => Online::Unreadable(format!("cannot read the target {}: {e}", t.display())),
    }
}

/// A fresh marker's text, replacing the nonces of `history` (newest first).
fn marker_text(spec: &SyncSpec, history: &[String]) -> String {
    let mut text = format!(
        "metasystem sync target {:?}, marked by {} at {}\nnonce: {:016x}{:016x}\n",
        spec.name,
        spec.host,
        humantime::format_rfc3339_seconds(SystemTime::now()),
        fastrand::u64(..),
        fastrand::u64(..)
    );
    if !history.is_empty() {
        text.push_str("history:");
        for n in history.iter().take(HISTORY) {
            text.push(' ');
            text.push_str(n);
        }
        text.push('\n');
    }
    text
}

/// Writes a fresh marker (temp, fsync, rename over the old one, fsync of the folder) whose
/// history is `history`; answers its nonce.
fn write_marker(spec: &SyncSpec, history: &[String]) -> Result<String, Stop> {
    let marker = spec.target.join(MARKER);
    let text = marker_text(spec, history);
    let temp = spec.target.join(format!("{MARKER}.new"));
    let fail = |e: io::Error| {
        let _ = std::fs::remove_file(&temp);
        Stop::error(format!("cannot write the marker {}: {e}", marker.display()))
    };
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&temp).map_err(fail)?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(fail)?;
    }
    std::fs::rename(&temp, &marker).map_err(fail)?;
    super::fsops::sync_dir(&marker).map_err(fail)?;
    nonce_of(&text).ok_or_else(|| Stop::error("a fresh marker has no nonce"))
}

/// The guards of a run of `spec` with `opts` (a dry run takes no lock and writes nothing; a
/// forced run waits for a held lock up to `opts.lock_wait`, telling `progress` whose it is);
/// `base_empty`: the target's base has no path.
pub async fn check(
    spec: &SyncSpec,
    opts: &RunOptions,
    base_empty: bool,
    store: &Store,
    progress: &Progress,
) -> Result<Guarded, Stop> {
    let dry = opts.dry_run;
    let record = target_record(store.reader(), &spec.name)
        .await
        .map_err(Stop::error)?;
    let first = base_empty && !record.synced_before;
    let s = spec.clone();
    let (wait, waiting) = (opts.lock_wait, progress.waiting.clone());
    let rec = record.clone();
    let (lock, step, id, primary_root) = blocking(move || -> Result<_, Stop> {
        let record = rec;
        // As `check` does, again now: a symlink may have changed since the config was read.
        if let Some(why) = super::nesting::nesting_error(&s.primary, &s.target, &s.state_dir) {
            return Err(Stop::error(format!("refused: {why}")));
        }
        match online(&s, first) {
            Online::Yes => {}
            Online::Create if dry => {
                return Ok((None, MarkerStep::Write { union: true }, None, String::new()))
            }
            Online::Create => std::fs::create_dir(&s.target)
                .map_err(|e| Stop::error(format!("cannot create {}: {e}", s.target.display())))?,
            Online::No(why) => return Err(Stop::skipped(why, None)),
            Online::Unreadable(why) => return Err(Stop::error(why)),
        }
        let primary_root = match std::fs::metadata(&s.primary) {
            // The folder, not only its path and inode: a freshly made folder reuses a freed
            // inode number at once on ext4, and every root of a file system has the same one;
            // the device and the time it was made tell them apart.
            Ok(md) if md.is_dir() => format!(
                "{}:{} {} {} {}",
                rustix::fs::major(md.dev()),
                rustix::fs::minor(md.dev()),
                md.ino(),
                md.created()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos()),
                s.primary.display()
            ),
            _ => {
                return Err(Stop::error(format!(
                    "the primary {} is not a folder",
                    s.primary.display()
                )))
            }
        };
        let decide = || -> Result<MarkerStep, Stop> {
            let marker = s.target.join(MARKER);
            let found = read_marker(&s.target).map_err(|e| {
                Stop::error(format!("cannot read the marker {}: {e}", marker.display()))
            })?;
            let step = marker_step(&record, base_empty, &found);
            if step == MarkerStep::Refuse {
                return Err(Stop::refused(
                    format!(
                        "refused: {} has no {MARKER} marker although it was synced before: it \
                         may not be the folder synced before (a bare mountpoint, a different \
                         drive, a fresh cloud folder). Nothing was changed. If it is the right \
                         folder, put a marker there (`touch {}`): the next run then syncs it as \
                         a new target, copying what either side lacks and deleting nothing",
                        s.target.display(),
                        marker.display()
                    ),
                    Refusal::MarkerMissing,
                ));
            }
            Ok(step)
        };
        // A refusal needs no lock (nor a lock file written in a bare mountpoint).
        let step = decide()?;
        if dry {
            return Ok((None, step, None, primary_root));
        }
        let taken = match wait {
            None => TargetLock::take(&s.target, &s.host),
            Some(wait) => {
                let set = |who: Option<&str>| {
                    *waiting.lock().unwrap_or_else(|e| e.into_inner()) = who.map(str::to_string);
                };
                let r = TargetLock::take_waiting(&s.target, &s.host, wait, |who| set(Some(who)));
                set(None);
                r
            }
        };
        let lock = taken.map_err(|e| match e {
            LockError::Held(why) => Stop::skipped(why, Some(Refusal::Locked)),
            LockError::Failed(why) => Stop::error(why),
        })?;
        // Again under the lock: another host's run may have written the marker meanwhile
        // (two first syncs at once), which this one adopts rather than overwrites.
        let step = if step == MarkerStep::Same {
            step
        } else {
            decide()?
        };
        let step = match step {
            MarkerStep::Write { union } => MarkerStep::Adopt {
                nonce: write_marker(&s, &[])?,
                union,
            },
            other => other,
        };
        if let Err(e) = super::databases::move_legacy_snapshots(&s) {
            tracing::warn!(target = %s.name, error = %e, "cannot move this host's snapshots out of hosts/");
        }
        let id = TargetId::read(&s)
            .map_err(|e| Stop::error(format!("cannot read {}: {e}", s.target.display())))?;
        Ok((Some(lock), step, Some(id), primary_root))
    })
    .await??;
    // Synced from another folder before (`primary` changed by a reload, or another folder in
    // its place): what that one held and this one lacks is not deleted: a first sync.
    let moved =
        !primary_root.is_empty() && record.primary.as_deref().is_some_and(|p| p != primary_root);
    let step = match step {
        MarkerStep::Same if moved => MarkerStep::Adopt {
            nonce: record.marker.clone().unwrap_or_default(),
            union: true,
        },
        MarkerStep::Adopt { nonce, union } => MarkerStep::Adopt {
            nonce,
            union: union || moved,
        },
        MarkerStep::Write { union } => MarkerStep::Write {
            union: union || moved,
        },
        other => other,
    };
    let union = match &step {
        MarkerStep::Adopt { union, .. } | MarkerStep::Write { union } => *union,
        MarkerStep::Same | MarkerStep::Refuse => false,
    };
    let adopting = match &step {
        MarkerStep::Adopt { nonce, union } => Some((nonce.clone(), *union)),
        // The primary not recorded yet (a target synced before it was).
        MarkerStep::Same if record.primary.as_deref() != Some(primary_root.as_str()) => {
            record.marker.clone().map(|n| (n, false))
        }
        _ => None,
    };
    if let (Some(_), Some((nonce, union))) = (&lock, &adopting) {
        // A union lets the base go in the same transaction: from now on no run can read a
        // path of the old base as deleted.
        store
            .durable(
                DurableOp::SyncMarker {
                    target: spec.name.clone(),
                    nonce: nonce.clone(),
                    forget_base: *union,
                    primary: Some(primary_root.clone()),
                    at_ms: unix_ms(SystemTime::now()),
                },
                Some(STORE_WAIT),
            )
            .await
            .map_err(|e| Stop::error(format!("cannot record the marker of {}: {e}", spec.name)))?;
    }
    Ok(Guarded {
        lock,
        union,
        id,
        rotated: false,
    })
}

/// Gives the target a fresh nonce whose history starts with the one the run found, before the
/// run's first change to it (once a run; not for a dry run): the marker then names the state
/// this host leaves the target in, and an image of the folder taken before is told apart from
/// it ([`marker_step`]). The marker is written before the store records its nonce: a crash
/// between leaves a marker whose history holds the recorded nonce, which the next run adopts.
pub async fn rotate(spec: &SyncSpec, store: &Store, guarded: &mut Guarded) -> Result<(), Stop> {
    if guarded.rotated || guarded.lock.is_none() {
        return Ok(());
    }
    let Some(id) = guarded.id.clone() else {
        return Ok(());
    };
    let s = spec.clone();
    let fresh = blocking(move || -> Result<(String, TargetId), Stop> {
        id.check(&s)?;
        let nonce = write_next_marker(&s)?;
        let id = TargetId::read(&s)
            .map_err(|e| Stop::error(format!("cannot read {}: {e}", s.target.display())))?;
        Ok((nonce, id))
    })
    .await??;
    guarded.id = Some(fresh.1);
    guarded.rotated = true;
    record_nonce(spec, store, fresh.0).await
}

/// Once a run that rotated the marker has made its last change: a fresh nonce again, so an
/// image of the target taken while the run was writing (a backup or a cloud snapshot during a
/// long upload) does not carry the nonce this host records, and restored is a first sync,
/// not a rollback of what the run finished.
pub async fn rotate_after(
    spec: &SyncSpec,
    store: &Store,
    guarded: &mut Guarded,
) -> Result<(), Stop> {
    if !guarded.rotated {
        return Ok(());
    }
    guarded.rotated = false;
    rotate(spec, store, guarded).await
}

/// [`rotate`] for an operator's job on the target (`conflicts resolve`, which holds the lock):
/// before it changes the target.
pub async fn rotate_for_job(spec: &SyncSpec, store: &Store) -> Result<(), String> {
    let s = spec.clone();
    let nonce = blocking(move || write_next_marker(&s))
        .await
        .map_err(|e| e.reason)?
        .map_err(|e| e.reason)?;
    record_nonce(spec, store, nonce).await.map_err(|e| e.reason)
}

/// Writes a marker with a fresh nonce whose history starts with the current one (blocking).
fn write_next_marker(s: &SyncSpec) -> Result<String, Stop> {
    let history = match read_marker(&s.target) {
        Ok(Found::Present(Some(n), mut h)) => {
            h.insert(0, n);
            h
        }
        Ok(_) => Vec::new(),
        Err(e) => {
            return Err(Stop::error(format!(
                "cannot read the marker {}: {e}",
                s.target.join(MARKER).display()
            )))
        }
    };
    write_marker(s, &history)
}

/// The store adopts `nonce` as the target's (its base kept).
async fn record_nonce(spec: &SyncSpec, store: &Store, nonce: String) -> Result<(), Stop> {
    store
        .durable(
            DurableOp::SyncMarker {
                target: spec.name.clone(),
                nonce,
                forget_base: false,
                primary: None,
                at_ms: unix_ms(SystemTime::now()),
            },
            Some(STORE_WAIT),
        )
        .await
        .map_err(|e| Stop::error(format!("cannot record the marker of {}: {e}", spec.name)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(synced_before: bool, marker: Option<&str>) -> TargetRecord {
        TargetRecord {
            synced_before,
            marker: marker.map(str::to_string),
            primary: None,
        }
    }

    const N1: &str = "0123456789abcdef0123456789abcdef";
    const N2: &str = "fedcba9876543210fedcba9876543210";
    const N3: &str = "00112233445566778899aabbccddeeff";

    #[test]
    fn the_marker_step_for_every_case() {
        use MarkerStep::*;
        let some = |n: &str| Found::Present(Some(n.to_string()), Vec::new());
        // A marker written by a later run (of another host, or this one's before a crash)
        // over the one adopted.
        let later = |n: &str, was: &str| {
            Found::Present(Some(n.to_string()), vec![N3.to_string(), was.to_string()])
        };
        let adopt = |n: &str, union| Adopt {
            nonce: n.to_string(),
            union,
        };
        let cases = [
            // never synced: a first sync whatever is there
            (rec(false, None), true, Found::Absent, Write { union: true }),
            (rec(false, None), true, some(N1), adopt(N1, true)),
            (
                rec(false, None),
                true,
                Found::Present(None, Vec::new()),
                Write { union: true },
            ),
            // synced before, nonce recorded
            (rec(true, Some(N1)), false, some(N1), Same),
            (rec(true, Some(N1)), false, Found::Absent, Refuse),
            (rec(true, Some(N1)), true, Found::Absent, Refuse),
            // a restored drive, another folder's marker, a marker put back by hand: union
            (rec(true, Some(N1)), false, some(N2), adopt(N2, true)),
            (
                rec(true, Some(N1)),
                false,
                Found::Present(None, Vec::new()),
                Write { union: true },
            ),
            // changed since by another host: adopted, no union (its deletions hold)
            (rec(true, Some(N1)), false, later(N2, N1), adopt(N2, false)),
            // a marker that does not descend from the one adopted (an older image of the
            // folder, a copy that went on separately): union
            (rec(true, Some(N1)), false, later(N2, N3), adopt(N2, true)),
            // nothing in the base: a first sync whatever the history says
            (rec(true, Some(N1)), true, later(N2, N1), adopt(N2, true)),
            // synced before this release: the marker found is adopted as it is
            (rec(true, None), false, some(N2), adopt(N2, false)),
            (
                rec(true, None),
                false,
                Found::Present(None, Vec::new()),
                Write { union: false },
            ),
            (
                rec(true, None),
                true,
                Found::Present(None, Vec::new()),
                Write { union: true },
            ),
        ];
        for (i, (r, empty, found, want)) in cases.into_iter().enumerate() {
            assert_eq!(marker_step(&r, empty, &found), want, "case {i}");
        }
    }

    #[test]
    fn nonces_are_read_from_markers() {
        assert_eq!(nonce_of(&format!("x\nnonce: {N1}\n")).as_deref(), Some(N1));
        assert_eq!(
            nonce_of(&format!("nonce:{}", N1.to_uppercase())).as_deref(),
            Some(N1)
        );
        assert_eq!(nonce_of(""), None);
        assert_eq!(
            nonce_of("metasystem sync target \"t\", first synced by h"),
            None
        );
        assert_eq!(nonce_of("nonce: xyz"), None);
        assert_eq!(nonce_of("nonce: 12"), None);
    }

    #[test]
    fn histories_are_read_from_markers_and_kept_bounded() {
        let text = format!("x\nnonce: {N1}\nhistory: {N2} junk {}\n", N3.to_uppercase());
        assert_eq!(history_of(&text), [N2, N3]);
        assert!(history_of(&format!("nonce: {N1}\n")).is_empty());
        let spec = SyncSpec {
            name: "t".into(),
            primary: "/p".into(),
            target: "/t".into(),
            selection: crate::sync::scan::Selection::default(),
            direction: crate::sync::classify::Direction::Bidirectional,
            strategy: crate::sync::classify::Strategy::Newest,
            backups: "/b".into(),
            retention: std::time::Duration::from_secs(1),
            max_delete: 0.5,
            max_delete_floor: 10,
            snapshots: Vec::new(),
            snapshot_every: std::time::Duration::from_secs(1),
            host: "h".into(),
            state_dir: "/nonexistent/state".into(),
        };
        let long: Vec<String> = (0..HISTORY + 10).map(|i| format!("{i:032x}")).collect();
        let text = marker_text(&spec, &long);
        assert_eq!(history_of(&text).len(), HISTORY);
        assert!(text.len() as u64 <= MARKER_READ, "{}", text.len());
        assert_eq!(nonce_of(&text).map(|n| n.len()), Some(32));
    }
}
