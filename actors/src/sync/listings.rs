//! A run's listings: both sides scanned at once on the blocking pool, what a side skipped
//! reported (an unreadable folder is an error to see, a symlink is not), and the temp files an
//! interrupted run or job of this target left removed: only those whose nonce the store lists
//! for it ([`temps`](super::temps)).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::engine::{blocking, spawn_low, SyncSpec};
use super::report::{RunReport, Stop};
use super::scan::{self, Listing};
use crate::store::{unix_ms, DurableOp, Store};

/// Both sides' listings (`dry`: nothing is removed). `room`: the paths (count, bytes) each side
/// likely holds, the base's ([`scan::scan_side`]).
pub async fn list_both(
    spec: &SyncSpec,
    dry: bool,
    store: &Store,
    report: &mut RunReport,
    room: (usize, usize),
) -> Result<(Listing, Listing), Stop> {
    let (lsel, rsel) = (spec.selection.clone(), spec.selection.clone());
    let (lroot, rroot) = (spec.primary.clone(), spec.target.clone());
    // Each side on a thread of its own, at a lower priority than the daemon's scheduler.
    let lscan = spawn_low("sync-scan", move || {
        scan::scan_side(&lroot, &lsel, true, room)
    })?;
    let rscan = spawn_low("sync-scan", move || {
        scan::scan_side(&rroot, &rsel, false, room)
    })?;
    let failed = |_| Stop::error("the scan failed (it panicked)".to_string());
    let local = lscan
        .await
        .map_err(failed)?
        .map_err(|e| Stop::error(format!("cannot read {}: {e}", spec.primary.display())))?;
    let remote = match rscan.await.map_err(failed)? {
        Ok(l) => l,
        Err(e) => {
            let target = spec.target.clone();
            // Gone between the check and the scan: unplugged.
            return Err(if blocking(move || target.is_dir()).await? {
                Stop::error(format!("cannot read {}: {e}", spec.target.display()))
            } else {
                Stop::skipped(format!("offline: {}: {e}", spec.target.display()), None)
            });
        }
    };
    report.local_files = local.len();
    report.remote_files = remote.len();
    for (rel, why) in local.skipped.iter().chain(&remote.skipped) {
        report.skipped.push((rel.clone(), why.clone()));
        // A folder or file that cannot be read is a fault to see and fix (an event, an
        // alert), not a quiet skip like a symlink; it does not count on the breaker.
        if scan::is_fault(why) {
            report.errors.push((rel.clone(), why.clone()));
        }
    }
    let ours: HashSet<String> = crate::store::sync::temp_nonces(store.reader(), &spec.name)
        .await
        .map_err(Stop::error)?
        .into_iter()
        .collect();
    let mut stale: Vec<PathBuf> = Vec::new();
    for (root, listing) in [(&spec.primary, &local), (&spec.target, &remote)] {
        for (rel, nonce) in &listing.temps {
            if ours.contains(nonce) {
                stale.push(super::names::at(root, rel));
            } else {
                report.skipped.push((
                    rel.clone(),
                    "a temp file of another run (another target or host, or still being \
                     written): left alone"
                        .into(),
                ));
            }
        }
    }
    if !dry && !ours.is_empty() {
        // Left by a run or job of this target that was killed: removed, and their nonces
        // forgotten once nothing of theirs is left.
        let kept = blocking(move || {
            let nonce = |t: &PathBuf| {
                t.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(super::temps::nonce_of)
                    .map(str::to_string)
            };
            let mut kept = HashSet::new();
            let mut removed: Vec<PathBuf> = Vec::new();
            for t in stale {
                match super::longfs::remove_file(&t) {
                    Ok(()) => removed.push(t),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(temp = %t.display(), error = %e, "cannot remove a temp file");
                        kept.extend(nonce(&t));
                    }
                }
            }
            // The removals are made durable before their nonces are forgotten: a power cut
            // that undid an unlink after the store forgot its nonce left a temp nobody
            // removes (another run's, for every run after: the sides never converged).
            let mut synced: HashSet<PathBuf> = HashSet::new();
            for t in &removed {
                let Some(dir) = t.parent() else { continue };
                if synced.contains(dir) {
                    continue;
                }
                match super::fsops::sync_dir(t) {
                    Ok(()) => {
                        synced.insert(dir.to_path_buf());
                    }
                    Err(e) => {
                        tracing::warn!(folder = %dir.display(), error = %e, "cannot make the removal of temp files durable");
                        kept.extend(removed.iter().filter(|r| r.parent() == Some(dir)).filter_map(nonce));
                    }
                }
            }
            kept
        })
        .await?;
        let forget: Vec<String> = ours.into_iter().filter(|n| !kept.contains(n)).collect();
        if !forget.is_empty() {
            store
                .durable(
                    DurableOp::SyncTemps {
                        target: spec.name.clone(),
                        add: None,
                        forget,
                        at_ms: unix_ms(SystemTime::now()),
                    },
                    Some(Duration::from_secs(60)),
                )
                .await
                .map_err(|e| Stop::error(format!("cannot record the temp files: {e}")))?;
        }
    }
    Ok((local, remote))
}

/// The listed paths (`paths`) missing from the primary that the base holds (synced before): a
/// folder of the primary that is a link to an unplugged drive, or a path moved away, is not
/// the user deleting all of it. Each is skipped (nothing under it is synced or deleted, on
/// either side, its base kept) and is an error that says what to do. One never synced is
/// simply not there yet: the target's files under it are copied in.
pub fn missing_listed(primary: &Listing, base: &crate::store::sync::Base, report: &mut RunReport) {
    for (rel, what) in &primary.missing {
        // Never synced: not there yet. A listed file (nothing under it): deleted like any file.
        let held = base.count_under(rel);
        if held == 0 || (held == 1 && base.contains_key(rel)) {
            continue;
        }
        let why = format!(
            "{}: the listed path {rel} was synced before but {what} (an unplugged drive? a \
             moved folder?): nothing under it is synced or deleted until it is back. If you \
             removed it on purpose, make it an empty folder (its deletions then reach the \
             target) or take it out of `paths`",
            scan::UNREADABLE
        );
        report.skipped.push((rel.clone(), why.clone()));
        report.errors.push((rel.clone(), why));
    }
}
