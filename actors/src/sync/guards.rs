//! A run's first phase, the guards: the target is there (an unmounted drive or an absent
//! cloud folder is offline: skipped, never read as deletions), it is the folder synced before
//! (its marker), and no other run holds it (the lock). The first run of a target creates it
//! (under an existing parent) and writes its marker.

use std::path::Path;
use std::time::SystemTime;

use super::engine::{blocking, SyncSpec, STORE_WAIT};
use super::lock::{LockError, TargetLock};
use super::report::{Refusal, Stop};
use super::scan::MARKER;
use crate::store::{unix_ms, DurableOp, Store};

/// What the guards let through.
pub struct Guarded {
    /// The target's lock, held until the run ends (none for a dry run).
    pub lock: Option<TargetLock>,
}

/// Whether the target can be synced now, and whether this run is its first.
enum Online {
    Yes,
    /// Absent but its parent is there and nothing was ever synced: created by the first run.
    Create,
    No(String),
}

fn online(spec: &SyncSpec, first: bool) -> Online {
    match std::fs::metadata(&spec.target) {
        Ok(m) if m.is_dir() => Online::Yes,
        Ok(_) => Online::No(format!("{} is not a folder", spec.target.display())),
        Err(_) if first && spec.target.parent().is_some_and(Path::is_dir) => Online::Create,
        Err(e) => Online::No(format!(
            "offline: {} is not there ({e}); an unmounted drive or an absent cloud folder is \
             skipped, never read as deletions",
            spec.target.display()
        )),
    }
}

/// The guards of a run of `spec` (`dry`: a dry run takes no lock and writes nothing;
/// `base_empty`: the target's base has no path).
pub async fn check(
    spec: &SyncSpec,
    dry: bool,
    base_empty: bool,
    store: &Store,
) -> Result<Guarded, Stop> {
    // The first sync of this target: nothing in the base, and never recorded as synced (an
    // empty base alone is also what deleting everything on both sides leaves).
    let first = base_empty
        && !crate::store::sync::synced_before(store.reader(), &spec.name)
            .await
            .map_err(Stop::error)?;
    let s = spec.clone();
    let lock = blocking(move || -> Result<Option<TargetLock>, Stop> {
        match online(&s, first) {
            Online::Yes => {}
            Online::Create if dry => return Ok(None),
            Online::Create => std::fs::create_dir(&s.target).map_err(|e| {
                Stop::error(format!("cannot create {}: {e}", s.target.display()))
            })?,
            Online::No(why) => return Err(Stop::skipped(why, None)),
        }
        if !s.primary.is_dir() {
            return Err(Stop::error(format!(
                "the primary {} is not a folder",
                s.primary.display()
            )));
        }
        let marker = s.target.join(MARKER);
        if !first && !marker.exists() {
            return Err(Stop::refused(
                format!(
                    "refused: {} has no {MARKER} marker although it was synced before: it is not \
                     the folder synced before (a different drive, a fresh cloud folder?). If it is the \
                     right folder, put the marker back (`touch {}`) and sync again",
                    s.target.display(),
                    marker.display()
                ),
                Refusal::MarkerMissing,
            ));
        }
        if dry {
            return Ok(None);
        }
        let lock = TargetLock::take(&s.target, &s.host).map_err(|e| match e {
            LockError::Held(why) => Stop::skipped(why, Some(Refusal::Locked)),
            LockError::Failed(why) => Stop::error(why),
        })?;
        if !marker.exists() {
            let text = format!(
                "metasystem sync target {:?}, first synced by {} at {}\n",
                s.name,
                s.host,
                humantime::format_rfc3339_seconds(SystemTime::now())
            );
            std::fs::write(&marker, text)
                .and_then(|()| std::fs::File::open(&marker)?.sync_all())
                .map_err(|e| {
                    Stop::error(format!("cannot write the marker {}: {e}", marker.display()))
                })?;
        }
        Ok(Some(lock))
    })
    .await??;
    if first && lock.is_some() {
        // The marker is written: from now on the target counts as synced before.
        store
            .durable(
                DurableOp::SyncFirst {
                    target: spec.name.clone(),
                    at_ms: unix_ms(SystemTime::now()),
                },
                Some(STORE_WAIT),
            )
            .await
            .map_err(|e| {
                Stop::error(format!(
                    "cannot record the first sync of {}: {e}",
                    spec.name
                ))
            })?;
    }
    Ok(Guarded { lock })
}
