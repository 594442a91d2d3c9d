//! A run's listings: both sides scanned at once on the blocking pool, what a side skipped
//! reported (an unreadable folder is an error to see, a symlink is not), and the temp files an
//! interrupted run left removed.

use std::path::PathBuf;

use super::engine::{blocking, SyncSpec};
use super::report::{RunReport, Stop};
use super::scan::{self, Listing};

/// Both sides' listings (`dry`: nothing is removed).
pub async fn list_both(
    spec: &SyncSpec,
    dry: bool,
    report: &mut RunReport,
) -> Result<(Listing, Listing), Stop> {
    let (lsel, rsel) = (spec.selection.clone(), spec.selection.clone());
    let (lroot, rroot) = (spec.primary.clone(), spec.target.clone());
    let lscan = tokio::task::spawn_blocking(move || scan::scan(&lroot, &lsel));
    let rscan = tokio::task::spawn_blocking(move || scan::scan(&rroot, &rsel));
    let local = lscan
        .await
        .map_err(|e| Stop::error(format!("the scan failed: {e}")))?
        .map_err(|e| Stop::error(format!("cannot read {}: {e}", spec.primary.display())))?;
    let remote = match rscan
        .await
        .map_err(|e| Stop::error(format!("the scan failed: {e}")))?
    {
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
    if !dry {
        let stale: Vec<PathBuf> = local
            .stale_temps
            .iter()
            .chain(&remote.stale_temps)
            .cloned()
            .collect();
        if !stale.is_empty() {
            blocking(move || {
                for t in stale {
                    let _ = std::fs::remove_file(t);
                }
            })
            .await?;
        }
    }
    Ok((local, remote))
}
