//! A run's hashing: the sides the quick check could not settle are read and hashed on the
//! worker threads. A file created on one side only is left to its copy, which hashes it in the
//! same read; a side that cannot be read is reported and not decided on this run.

use std::collections::HashSet;
use std::io;
use std::path::PathBuf;

use super::engine::{blocking, par_map, SyncSpec};
use super::fsops;
use super::items::Slot;
use super::names::at;
use super::report::{RunReport, Stop};
use super::scan::Paths;

/// Hashes what the quick check could not settle, on the worker threads; a file created on one
/// side only is left to its copy.
pub async fn hash_sides(
    spec: &SyncSpec,
    items: &mut [Slot],
    names: &Paths,
    disputed: &HashSet<&str>,
    report: &mut RunReport,
) -> Result<(), Stop> {
    // Created on one side only (not a database in use): copied whatever its hash, which the
    // copy takes in the same read. Not a path with an open conflict: its hash is compared
    // with the versions the conflict recorded.
    for it in items.iter_mut() {
        it.unhashed = it.base.is_none()
            && !disputed.contains(it.rel.of(names))
            && it.local.is_some() != it.remote.is_some()
            && !it.local.or(it.remote).is_some_and(|m| m.live_wal);
    }
    let jobs: Vec<(usize, bool, PathBuf, bool)> = items
        .iter()
        .enumerate()
        .flat_map(|(i, it)| {
            let mut v = Vec::new();
            if it.unhashed {
                return v;
            }
            if it.lhash().is_none() {
                if let Some(m) = it.local {
                    v.push((i, true, at(&spec.primary, it.rel.of(names)), m.live_wal));
                }
            }
            if it.rhash().is_none() {
                if let Some(m) = it.remote {
                    v.push((i, false, at(&spec.target, it.rel.of(names)), m.live_wal));
                }
            }
            v
        })
        .collect();
    if jobs.is_empty() {
        return Ok(());
    }
    let (jobs, hashes) = blocking(move || {
        let hashes = par_map(&jobs, |(_, _, path, wal)| fsops::hash_file(path, *wal));
        (jobs, hashes)
    })
    .await?;
    let mut failed = HashSet::new();
    for ((i, is_local, path, _), h) in jobs.into_iter().zip(hashes) {
        match h {
            Ok(h) => items[i].set_hash(is_local, Some(h)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Gone since the scan: as if absent (the next run sees it settled).
                if is_local {
                    items[i].local = None;
                } else {
                    items[i].remote = None;
                }
            }
            Err(e) => {
                report.errors.push((
                    items[i].rel.of(names).to_string(),
                    format!("cannot read {}: {e}", path.display()),
                ));
                failed.insert(i);
            }
        }
    }
    if !failed.is_empty() {
        // A side that cannot be read is not decided on: neither copied over nor deleted.
        let mut i = 0;
        items.iter_mut().for_each(|it| {
            if failed.contains(&i) {
                it.local = None;
                it.remote = None;
                it.base = None;
            }
            i += 1;
        });
    }
    Ok(())
}
