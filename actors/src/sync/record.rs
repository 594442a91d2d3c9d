//! A run's record: what applied steps did is turned into base changes and report entries, and
//! committed to the store (durable lane) and the run's cached base together, chunk by chunk,
//! once the files they describe are durable. Conflict records settled by the run are closed
//! after the base that settles them is committed.

use std::time::SystemTime;

use super::apply::Applied;
use super::classify::Action;
use super::engine::{SyncSpec, STORE_WAIT};
use super::guards::{check_id, TargetId};
use super::items::Item;
use super::lock::TargetLock;
use super::plan::Closed;
use super::report::{ConflictReport, RunReport, Stop};
use crate::store::sync::{Base, BaseChange};
use crate::store::{DurableOp, Store};

/// What a run has applied and not committed yet.
pub struct Record<'a> {
    spec: &'a SyncSpec,
    store: &'a Store,
    /// Where the run started: checked before anything is recorded.
    id: Option<TargetId>,
    /// The target's lock: a lock taken over by another run (this one was too slow to
    /// refresh it: a suspended laptop) stops the run before it records anything more.
    lock: Option<&'a TargetLock>,
    /// When the run's changes were made (backups' and conflict copies' names, records).
    pub at: SystemTime,
    /// Base changes of applied steps (and touched entries), not committed yet.
    changes: Vec<BaseChange>,
    /// Conflict records to close once the base that settles them is committed.
    closing: Vec<(i64, Closed)>,
}

impl<'a> Record<'a> {
    pub fn new(
        spec: &'a SyncSpec,
        store: &'a Store,
        id: Option<TargetId>,
        lock: Option<&'a TargetLock>,
        at: SystemTime,
        touched: Vec<BaseChange>,
        closing: Vec<(i64, Closed)>,
    ) -> Self {
        Record {
            spec,
            store,
            id,
            lock,
            at,
            changes: touched,
            closing,
        }
    }

    /// Takes in what applying `item` by `action` gave: its base change, its report entries.
    /// Answers the step back when it needs a database snapshot (applied after the plain files).
    pub async fn absorb(
        &mut self,
        report: &mut RunReport,
        item: Item,
        action: Action,
        r: Applied,
    ) -> Option<(Item, Action)> {
        if matches!(
            r,
            Applied::Copied { .. } | Applied::Deleted { .. } | Applied::Kept { .. }
        ) {
            self.closing.extend(item.closes.as_deref().copied());
        }
        match r {
            Applied::Copied {
                to_remote,
                bytes,
                backup,
                change,
            } => {
                match action {
                    Action::Agree => report.agreed += 1,
                    _ if to_remote => report.copied_to_remote += 1,
                    _ => report.copied_to_local += 1,
                }
                if item.conflict {
                    // A conflict decided by the direction or the strategy.
                    report.conflicts.push(ConflictReport {
                        path: item.rel.to_string(),
                        kept: if to_remote { "local" } else { "remote" }.into(),
                        copy: None,
                    });
                }
                report.bytes += bytes;
                report.backups += usize::from(backup);
                self.changes.push(change);
            }
            Applied::Deleted {
                remote,
                backup,
                change,
            } => {
                match action {
                    Action::Forget => {}
                    _ if remote => report.deleted_remote += 1,
                    _ => report.deleted_local += 1,
                }
                report.backups += usize::from(backup);
                self.changes.push(change);
            }
            Applied::Kept { copy, conflict } => {
                if let Err(e) = self
                    .store
                    .durable(DurableOp::SyncConflict(conflict), Some(STORE_WAIT))
                    .await
                {
                    report.errors.push((
                        item.rel.to_string(),
                        format!("cannot record the conflict: {e}"),
                    ));
                }
                report.conflicts.push(ConflictReport {
                    path: item.rel.into(),
                    kept: "both".into(),
                    copy: Some(copy),
                });
            }
            Applied::Chmod { kept, change } => {
                if kept {
                    report.modes += 1;
                } else {
                    report.skipped.push((
                        item.rel.to_string(),
                        "permissions not kept by the other side's file system (recorded as they \
                     are)"
                            .into(),
                    ));
                }
                self.changes.push(change);
            }
            Applied::Deferred(why) if why.is_empty() => {}
            Applied::Deferred(why) => report.deferred.push((item.rel.into(), why)),
            Applied::Failed(why) => report.errors.push((item.rel.into(), why)),
            Applied::NeedsSnapshot => return Some((item, action)),
        }
        None
    }

    /// Whether the run's folders are still the ones it started on (see [`TargetId`]).
    pub async fn check(&self) -> Result<(), Stop> {
        if self.lock.is_some_and(TargetLock::lost) {
            return Err(Stop::error(format!(
                "stopped: the lock of {} was taken over by another run while this one held \
                 it (not refreshed in time); what was done before was recorded, the rest is \
                 left to the next run",
                self.spec.target.display()
            )));
        }
        check_id(self.spec, self.id.as_ref()).await
    }

    /// Commits the changes taken in so far to the base (durable lane) and the cache, then
    /// closes the conflict records they settle. Nothing is recorded when the target is not
    /// the folder the run started on any more: what was written since the last check may
    /// have gone to the wrong place.
    pub async fn commit(&mut self, base: &mut Base) -> Result<(), Stop> {
        // Checked even with nothing to record: files that failed because the target went are
        // told as the target gone, not as so many failed files.
        self.check().await?;
        if !self.changes.is_empty() {
            let batch = std::mem::take(&mut self.changes);
            if let Err(e) = self
                .store
                .durable(
                    DurableOp::SyncBase {
                        target: self.spec.name.clone(),
                        changes: batch.clone(),
                    },
                    Some(STORE_WAIT),
                )
                .await
            {
                return Err(Stop::error(format!(
                    "cannot record the sync state ({e}); the files are in place and the next \
                     run finds them agreeing"
                )));
            }
            base.apply(batch);
        }
        close(self.store, &mut self.closing, self.at).await;
        Ok(())
    }
}

/// Marks the conflict records in `closing` resolved. A failure leaves them open (the next run
/// retries: the same edit settles them again), so it is only logged.
async fn close(store: &Store, closing: &mut Vec<(i64, Closed)>, at: SystemTime) {
    for resolution in [Closed::Edited, Closed::Superseded, Closed::Gone] {
        let ids: Vec<i64> = closing
            .iter()
            .filter(|(_, r)| *r == resolution)
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            continue;
        }
        let op = DurableOp::SyncResolve {
            ids,
            resolution: resolution.as_str().to_string(),
            at_ms: crate::store::unix_ms(at),
        };
        if let Err(e) = store.durable(op, Some(STORE_WAIT)).await {
            tracing::warn!(error = %e, "cannot close conflict records; the next run retries");
        }
    }
    closing.clear();
}
