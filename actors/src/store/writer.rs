//! The store's one writer: owns the only write connection to `metastore.db` and serves two
//! lanes.
//!
//! - **durable** (breaker state, sync base state, the alert outbox; today the daemon's runs):
//!   request/reply, each operation in its own transaction, answered only after COMMIT, kept in
//!   order and retried until the disk takes it, served before telemetry;
//! - **telemetry** (events; metric samples later): taken from the bounded intake in batches,
//!   one multi-row INSERT per transaction. A batch the disk refuses stays in hand and is
//!   retried with backoff while the intake keeps filling (dropping its oldest when full).
//!
//! Transactions are explicit (`BEGIN IMMEDIATE` … `COMMIT`) and every failure is followed by a
//! `ROLLBACK`: a failed COMMIT can leave SQLite inside the transaction, and sqlx's own
//! transaction bookkeeping then disagrees with SQLite's, so later batches nested inside the
//! dead transaction and vanished when the connection closed (events lost after one full-disk
//! write). Nothing is counted as written, published to subscribers or acknowledged before its
//! COMMIT succeeded.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use super::events::{self, EventRow, StoredEvent};
use super::health::{self, BreakerSave, HealRow, RetryRunRow};
use super::outbox::{self, Attempt, OutboxEntry};
use super::samples::{self, Rollups};
use super::sync::{self, BaseChange, ConflictRow};
use super::{runs, Shared};
use crate::metrics::Sample;

/// Rows per telemetry transaction.
pub(super) const BATCH: usize = 512;
/// Samples per telemetry transaction (rows are small; bigger transactions amortise the
/// COMMIT and the rollup update).
pub(super) const SAMPLE_BATCH: usize = 8_192;
/// Samples deleted per pruning transaction (a long delete would hold up every other write).
const PRUNE_CHUNK: i64 = 50_000;
/// How long telemetry may wait for a batch to fill.
pub(super) const FLUSH_AFTER: Duration = Duration::from_millis(50);
/// How often old events are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

pub struct StoreActor;

pub struct StoreArgs {
    /// The database file.
    pub path: PathBuf,
    /// The write connection, opened and migrated (`Store::open`).
    pub(super) conn: SqliteConnection,
    /// Events older than this are pruned (hourly).
    pub retention: Duration,
    pub(super) shared: Arc<Shared>,
}

/// A write on the durable lane. Each is one transaction, acknowledged after its COMMIT.
#[derive(Debug, Clone, PartialEq)]
pub enum DurableOp {
    /// The daemon started: a new row in `daemon_runs`; answers its id.
    RunStarted {
        started_ms: i64,
        pid: u32,
        version: String,
        config: String,
    },
    /// The daemon stopped in order.
    RunEnded {
        id: i64,
        stopped_ms: i64,
        exit_code: i32,
    },
    /// Notifications into the alert outbox; answers their ids.
    OutboxAdd(Vec<OutboxEntry>),
    /// A delivery attempt of outbox rows, and the state it leaves them in.
    OutboxAttempt(Attempt),
    /// Sets a silence until `until_ms`, or removes it (`None`).
    Silence {
        pattern: String,
        until_ms: Option<i64>,
        created_ms: i64,
    },
    /// Breakers' state (and their transitions), in order.
    BreakersSave(Vec<BreakerSave>),
    /// Runs of retried operations.
    RetryRuns(Vec<RetryRunRow>),
    /// A self-heal action; answers its id.
    Heal(HealRow),
    /// Changes to a sync target's base state, in one transaction.
    SyncBase {
        target: String,
        changes: Vec<BaseChange>,
    },
    /// A conflict the manual strategy kept; answers its id.
    SyncConflict(ConflictRow),
    /// Conflicts resolved (`resolution`: local | remote | both | gone | edited | superseded).
    SyncResolve {
        ids: Vec<i64>,
        resolution: String,
        at_ms: i64,
    },
    /// A target's first run wrote its marker: from now on it has been synced before.
    SyncFirst { target: String, at_ms: i64 },
    /// Temp-file nonces of a target: one recorded before its first temp is created, others
    /// forgotten once what they named is gone.
    SyncTemps {
        target: String,
        add: Option<String>,
        forget: Vec<String>,
        at_ms: i64,
    },
    /// The nonce of a target's marker, adopted (the target counts as synced before); with
    /// `forget_base`, its base is let go in the same transaction (a first sync follows).
    SyncMarker {
        target: String,
        nonce: String,
        forget_base: bool,
        /// The primary folder synced from ("MAJOR:MINOR INODE BIRTH_NS PATH"), when to record it.
        primary: Option<String>,
        at_ms: i64,
    },
    /// This host as the next snapshot of the store carries it (the one `host_info` row).
    HostInfo(super::hosts::HostInfo),
}

/// What a durable write answers.
#[derive(Debug, Clone, PartialEq)]
pub enum DurableReply {
    Done,
    /// The new row's id.
    Id(i64),
    /// The new rows' ids, in order.
    Ids(Vec<i64>),
}

pub enum StoreMessage {
    /// Telemetry is waiting in the intake: write a batch.
    Drain,
    /// A durable write: answered after its COMMIT (an error only for a write the database
    /// rejects as such; a disk that refuses is retried, never answered with an error).
    Durable(DurableOp, RpcReplyPort<Result<DurableReply, String>>),
    /// Write everything waiting now; answers once it is on disk, or with the error at the
    /// first write the disk refuses (the retries go on).
    Flush(RpcReplyPort<Result<(), String>>),
    /// Internal: retry after failed writes.
    Retry,
    /// Internal: prune old events.
    Prune,
}

/// Which of the store's two lanes a transaction belongs to (how durable its commit is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Durable,
    Telemetry,
}

struct Pending {
    op: DurableOp,
    reply: RpcReplyPort<Result<DurableReply, String>>,
}

pub struct StoreState {
    path: PathBuf,
    /// The write connection; `None` after it broke, until it opens again.
    conn: Option<SqliteConnection>,
    /// The intake, the counters `status` shows, the subscribers.
    shared: Arc<Shared>,
    /// Durable writes waiting, in order (the first is retried until the disk takes it).
    durable: VecDeque<Pending>,
    /// Telemetry taken from the intake and not yet committed: kept across failures.
    inflight: Vec<StoredEvent>,
    /// Samples taken from their intake and not yet committed: kept across failures.
    samples_inflight: Vec<Sample>,
    /// Recent hourly and daily rollup rows as committed (merged with each batch of samples).
    rollups: Rollups,
    /// Consecutive failed writes (drives the retry delay and the logging).
    failures: u32,
    /// A Retry is on its way: until it arrives, new telemetry does not hit a failing disk.
    retry_armed: bool,
    retention: Duration,
}

/// Opens (creating if needed) the database for writing, in WAL mode.
pub(super) async fn connect(path: &Path) -> Result<SqliteConnection, sqlx::Error> {
    SqliteConnectOptions::from_str("sqlite:")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .connect()
        .await
}

/// Whether a failed write is the disk's or the system's doing (worth retrying), rather than
/// the database refusing the statement itself.
fn environmental(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0) & 0xff;
            // PERM, BUSY, LOCKED, NOMEM, READONLY, IOERR, FULL, CANTOPEN, PROTOCOL
            matches!(code, 3 | 5 | 6 | 7 | 8 | 10 | 13 | 14 | 15)
        }
        sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

/// The delay before retry number `failures` (1, 2, ...): 0.5 s doubling to 5 s. A failed write
/// costs little; a long wait after the disk recovers fills the intake and drops telemetry.
pub(super) fn retry_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    (Duration::from_millis(500) * 2u32.pow(exp)).min(Duration::from_secs(5))
}

async fn begin(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(conn)
        .await
        .map(drop)
}

async fn commit(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("COMMIT").execute(conn).await.map(drop)
}

async fn apply(conn: &mut SqliteConnection, op: &DurableOp) -> Result<DurableReply, sqlx::Error> {
    match op {
        DurableOp::RunStarted {
            started_ms,
            pid,
            version,
            config,
        } => runs::started(conn, *started_ms, *pid, version, config)
            .await
            .map(DurableReply::Id),
        DurableOp::RunEnded {
            id,
            stopped_ms,
            exit_code,
        } => runs::ended(conn, *id, *stopped_ms, *exit_code)
            .await
            .map(|()| DurableReply::Done),
        DurableOp::OutboxAdd(entries) => outbox::add(conn, entries).await.map(DurableReply::Ids),
        DurableOp::OutboxAttempt(attempt) => outbox::attempted(conn, attempt)
            .await
            .map(|()| DurableReply::Done),
        DurableOp::Silence {
            pattern,
            until_ms,
            created_ms,
        } => outbox::silence(conn, pattern, *until_ms, *created_ms)
            .await
            .map(|()| DurableReply::Done),
        DurableOp::BreakersSave(saves) => health::save_breakers(conn, saves)
            .await
            .map(|()| DurableReply::Done),
        DurableOp::RetryRuns(runs) => health::add_retry_runs(conn, runs)
            .await
            .map(|()| DurableReply::Done),
        DurableOp::Heal(row) => health::add_heal(conn, row).await.map(DurableReply::Id),
        DurableOp::SyncBase { target, changes } => sync::apply_base(conn, target, changes)
            .await
            .map(|()| DurableReply::Done),
        DurableOp::SyncConflict(row) => sync::add_conflict(conn, row).await.map(DurableReply::Id),
        DurableOp::SyncResolve {
            ids,
            resolution,
            at_ms,
        } => sync::resolve(conn, ids, resolution, *at_ms)
            .await
            .map(|()| DurableReply::Done),
        DurableOp::SyncFirst { target, at_ms } => sync::first_synced(conn, target, *at_ms)
            .await
            .map(|()| DurableReply::Done),
        DurableOp::SyncTemps {
            target,
            add,
            forget,
            at_ms,
        } => sync::temps(conn, target, add.as_deref(), forget, *at_ms)
            .await
            .map(|()| DurableReply::Done),
        DurableOp::SyncMarker {
            target,
            nonce,
            forget_base,
            primary,
            at_ms,
        } => sync::adopt_marker(
            conn,
            target,
            nonce,
            *forget_base,
            primary.as_deref(),
            *at_ms,
        )
        .await
        .map(|()| DurableReply::Done),
        DurableOp::HostInfo(info) => super::hosts::put(conn, info)
            .await
            .map(|()| DurableReply::Done),
    }
}

impl Actor for StoreActor {
    type Msg = StoreMessage;
    type State = StoreState;
    type Arguments = StoreArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: StoreArgs,
    ) -> Result<StoreState, ActorProcessingErr> {
        myself.send_interval(PRUNE_EVERY, || StoreMessage::Prune);
        let _ = myself.cast(StoreMessage::Prune);
        Ok(StoreState {
            path: args.path,
            conn: Some(args.conn),
            shared: args.shared,
            durable: VecDeque::new(),
            inflight: Vec::new(),
            samples_inflight: Vec::new(),
            rollups: Rollups::default(),
            failures: 0,
            retry_armed: false,
            retention: args.retention,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: StoreMessage,
        state: &mut StoreState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            StoreMessage::Drain => {
                state.shared.drain_armed.store(false, Ordering::Release);
                if !state.retry_armed {
                    state.drain(&myself).await;
                }
            }
            StoreMessage::Retry => {
                state.retry_armed = false;
                state.drain(&myself).await;
            }
            StoreMessage::Durable(op, reply) => {
                state.durable.push_back(Pending { op, reply });
                state.publish_counts();
                // In order: while earlier writes wait for the disk, this one waits behind them.
                if !state.retry_armed {
                    state.write_durable(&myself).await;
                }
            }
            StoreMessage::Flush(reply) => {
                let result = state.flush(&myself).await;
                let _ = reply.send(result);
            }
            StoreMessage::Prune => state.prune().await,
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut StoreState,
    ) -> Result<(), ActorProcessingErr> {
        if let Err(e) = state.flush(&myself).await {
            tracing::error!(
                error = %e,
                lost = state.inflight.len() + state.shared.intake.len(),
                durable_lost = state.durable.len(),
                "the store stopped with writes the disk refused"
            );
        }
        if let Some(conn) = state.conn.take() {
            let _ = conn.close().await;
        }
        Ok(())
    }
}

impl StoreState {
    /// The write connection, opened again if it broke.
    async fn conn<'a>(
        slot: &'a mut Option<SqliteConnection>,
        path: &Path,
    ) -> Result<&'a mut SqliteConnection, sqlx::Error> {
        if slot.is_none() {
            *slot = Some(connect(path).await?);
        }
        match slot.as_mut() {
            Some(conn) => Ok(conn),
            None => Err(sqlx::Error::WorkerCrashed),
        }
    }

    /// Runs `body` in one transaction on the write connection (opened again if it broke):
    /// `BEGIN IMMEDIATE`, `body`, `COMMIT`. On any failure the transaction is rolled back, so
    /// nothing is left open for the next write to nest in; a connection that cannot even roll
    /// back is closed and opened again at the next write.
    /// One transaction. `lane` says how its COMMIT must survive: a durable write's must
    /// survive a power cut (`synchronous = FULL`: the WAL is fsynced at the commit), telemetry
    /// only a crash of the process (`NORMAL`: fsynced at checkpoints). Under NORMAL a power
    /// cut rolled back every durable write since the last checkpoint, the sync base included:
    /// a target forgot what both sides had agreed on.
    async fn transaction<T>(
        slot: &mut Option<SqliteConnection>,
        path: &Path,
        lane: Lane,
        body: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let outcome = async {
            let conn = Self::conn(slot, path).await?;
            // Between transactions (SQLite takes the setting at the next commit).
            sqlx::raw_sql(match lane {
                Lane::Durable => "PRAGMA synchronous = FULL",
                Lane::Telemetry => "PRAGMA synchronous = NORMAL",
            })
            .execute(&mut *conn)
            .await?;
            begin(conn).await?;
            let done = body(conn).await?;
            commit(conn).await?;
            Ok(done)
        }
        .await;
        if outcome.is_err() {
            if let Some(conn) = slot.as_mut() {
                match sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await {
                    Ok(_) => {}
                    Err(e) if e.to_string().contains("no transaction is active") => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot roll back; reopening the store's connection");
                        if let Some(conn) = slot.take() {
                            let _ = conn.close().await;
                        }
                    }
                }
            }
        }
        outcome
    }

    fn publish_counts(&self) {
        let stats = &self.shared.stats;
        stats.inflight.store(self.inflight.len(), Ordering::Relaxed);
        stats
            .durable_waiting
            .store(self.durable.len(), Ordering::Relaxed);
    }

    /// Durable writes first, then one telemetry batch; more batches go back through the
    /// mailbox so durable requests that arrive meanwhile are served between them.
    async fn drain(&mut self, myself: &ActorRef<StoreMessage>) {
        if !self.write_durable(myself).await {
            return;
        }
        if self.inflight.is_empty() {
            self.inflight = self.shared.intake.take(BATCH);
        }
        if !self.inflight.is_empty() && self.write_inflight(myself).await.is_err() {
            return;
        }
        if self.samples_inflight.is_empty() {
            self.samples_inflight = self.shared.samples.take(SAMPLE_BATCH);
        }
        if !self.samples_inflight.is_empty() && self.write_samples(myself).await.is_err() {
            return;
        }
        let more = !self.shared.intake.is_empty() || !self.shared.samples.is_empty();
        if more && !self.shared.drain_armed.swap(true, Ordering::AcqRel) {
            let _ = myself.cast(StoreMessage::Drain);
        }
    }

    /// Everything waiting right now: durable writes, the batch in hand, and what the intake
    /// holds at this moment (not what arrives while writing).
    async fn flush(&mut self, myself: &ActorRef<StoreMessage>) -> Result<(), String> {
        if !self.write_durable(myself).await {
            return Err(self.last_error());
        }
        let mut budget = self.shared.intake.len();
        let mut sample_budget = self.shared.samples.len();
        loop {
            if self.samples_inflight.is_empty() {
                let n = sample_budget.min(SAMPLE_BATCH);
                if n == 0 {
                    break;
                }
                self.samples_inflight = self.shared.samples.take(n);
                sample_budget = sample_budget.saturating_sub(self.samples_inflight.len());
                if self.samples_inflight.is_empty() {
                    break;
                }
            }
            self.write_samples(myself)
                .await
                .map_err(|()| self.last_error())?;
        }
        loop {
            if self.inflight.is_empty() {
                let n = budget.min(BATCH);
                if n == 0 {
                    return Ok(());
                }
                self.inflight = self.shared.intake.take(n);
                budget = budget.saturating_sub(self.inflight.len());
                if self.inflight.is_empty() {
                    return Ok(());
                }
            }
            self.write_inflight(myself)
                .await
                .map_err(|()| self.last_error())?;
        }
    }

    fn last_error(&self) -> String {
        self.shared
            .stats
            .last_error
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
            .unwrap_or_else(|| "the disk refused the write".into())
    }

    /// Writes the waiting durable operations in order; false if the disk refused one (it stays
    /// first in line and a retry is armed).
    async fn write_durable(&mut self, myself: &ActorRef<StoreMessage>) -> bool {
        while let Some(first) = self.durable.front() {
            let op = first.op.clone();
            let outcome =
                Self::transaction(&mut self.conn, &self.path, Lane::Durable, async |conn| {
                    apply(conn, &op).await
                })
                .await;
            match outcome {
                Ok(reply) => {
                    if let Some(done) = self.durable.pop_front() {
                        let _ = done.reply.send(Ok(reply));
                    }
                    self.succeeded();
                }
                Err(e) => {
                    if environmental(&e) {
                        self.failed(myself, &e);
                        self.publish_counts();
                        return false;
                    }
                    tracing::error!(error = %e, ?op, "the database rejected a durable write");
                    if let Some(done) = self.durable.pop_front() {
                        let _ = done.reply.send(Err(e.to_string()));
                    }
                }
            }
        }
        self.publish_counts();
        true
    }

    /// Writes the batch in hand in one transaction; `Err` if it was refused (it stays in hand
    /// and a retry is armed).
    async fn write_inflight(&mut self, myself: &ActorRef<StoreMessage>) -> Result<(), ()> {
        self.publish_counts();
        let inflight = &self.inflight;
        let outcome =
            Self::transaction(&mut self.conn, &self.path, Lane::Telemetry, async |conn| {
                events::insert(conn, inflight).await
            })
            .await;
        match outcome {
            Ok(rows) => {
                self.inflight.clear();
                self.committed(rows);
                self.succeeded();
                self.publish_counts();
                Ok(())
            }
            Err(e) => {
                // Kept and retried whatever the cause: the intake's bound protects memory, and
                // a database an operator repairs or restores gets them all.
                self.failed(myself, &e);
                Err(())
            }
        }
    }

    /// Writes the samples in hand (and their rollups) in one transaction; `Err` if refused
    /// (they stay in hand and a retry is armed).
    async fn write_samples(&mut self, myself: &ActorRef<StoreMessage>) -> Result<(), ()> {
        let batch = &self.samples_inflight;
        let rollups = &mut self.rollups;
        let outcome =
            Self::transaction(&mut self.conn, &self.path, Lane::Telemetry, async |conn| {
                samples::insert(conn, batch, rollups).await
            })
            .await;
        match outcome {
            Ok(()) => {
                let n = self.samples_inflight.len() as u64;
                self.samples_inflight.clear();
                self.shared.stats.written.fetch_add(n, Ordering::Relaxed);
                self.succeeded();
                Ok(())
            }
            Err(e) => {
                // Rolled back: the rows merged in memory are ahead of the table.
                self.rollups.forget();
                self.failed(myself, &e);
                Err(())
            }
        }
    }

    /// Rows are on disk: count them and hand them to subscribers.
    fn committed(&self, rows: Vec<EventRow>) {
        let shared = &self.shared;
        shared
            .stats
            .written
            .fetch_add(rows.len() as u64, Ordering::Relaxed);
        if shared.committed.receiver_count() > 0 {
            for row in rows {
                let _ = shared.committed.send(Arc::new(row));
            }
        }
    }

    fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(
                after_failures = self.failures,
                dropped = self.shared.intake.dropped(),
                "the store writes again"
            );
        }
        self.failures = 0;
        self.shared
            .stats
            .failing_since_ms
            .store(0, Ordering::Relaxed);
    }

    fn failed(&mut self, myself: &ActorRef<StoreMessage>, e: &sqlx::Error) {
        self.failures = self.failures.saturating_add(1);
        let stats = &self.shared.stats;
        stats.write_failures.fetch_add(1, Ordering::Relaxed);
        let now = events::unix_ms(SystemTime::now()).max(1);
        let _ =
            stats
                .failing_since_ms
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        if let Ok(mut last) = stats.last_error.lock() {
            *last = Some(e.to_string());
        }
        if self.failures == 1 || self.failures.is_power_of_two() {
            tracing::warn!(
                error = %e,
                waiting = self.inflight.len() + self.shared.intake.len(),
                durable_waiting = self.durable.len(),
                failures = self.failures,
                "cannot write to the store; keeping the writes and retrying"
            );
        }
        if !self.retry_armed {
            self.retry_armed = true;
            myself.send_after(retry_delay(self.failures), || StoreMessage::Retry);
        }
    }

    async fn prune(&mut self) {
        let Some(cutoff) = SystemTime::now().checked_sub(self.retention) else {
            return;
        };
        let cutoff = events::unix_ms(cutoff);
        let outcome =
            Self::transaction(&mut self.conn, &self.path, Lane::Telemetry, async |conn| {
                let events = events::prune(conn, cutoff).await?;
                outbox::prune(conn, cutoff).await?;
                health::prune(conn, cutoff).await?;
                Ok(events)
            })
            .await;
        match outcome {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "pruned old events"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot prune old events; trying again in an hour");
            }
        }
        self.prune_samples().await;
    }

    /// Samples past their retention, in chunks (other writes go between them), then rollups
    /// past theirs.
    async fn prune_samples(&mut self) {
        let now = SystemTime::now();
        self.rollups.evict(events::unix_ms(now));
        let age = |secs: &std::sync::atomic::AtomicU64| {
            let keep = Duration::from_secs(secs.load(Ordering::Relaxed));
            now.checked_sub(keep).map(events::unix_ms).unwrap_or(0)
        };
        let cutoff = age(&self.shared.sample_retention_s);
        let rollup_cutoff = age(&self.shared.rollup_retention_s);
        let (mut pruned, mut rollups) = (0, 0);
        for _ in 0..10_000 {
            let outcome =
                Self::transaction(&mut self.conn, &self.path, Lane::Telemetry, async |conn| {
                    samples::prune(conn, cutoff, rollup_cutoff, PRUNE_CHUNK).await
                })
                .await;
            match outcome {
                Ok((n, r)) => {
                    pruned += n;
                    rollups += r;
                    if n < PRUNE_CHUNK as u64 {
                        break;
                    }
                    // Let durable writes through between chunks.
                    if !self.durable.is_empty() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot prune old samples; trying again in an hour");
                    break;
                }
            }
        }
        if pruned > 0 || rollups > 0 {
            tracing::info!(samples = pruned, rollups, "pruned old samples");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_cap() {
        assert_eq!(retry_delay(1), Duration::from_millis(500));
        assert_eq!(retry_delay(2), Duration::from_secs(1));
        assert_eq!(retry_delay(4), Duration::from_secs(4));
        assert_eq!(retry_delay(5), Duration::from_secs(5));
        assert_eq!(retry_delay(u32::MAX), Duration::from_secs(5));
    }
}
