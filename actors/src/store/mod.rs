//! The store: one SQLite database (`metastore.db`, WAL), one writer, two lanes, and a separate
//! read-only pool.
//!
//! - [`writer`]: `StoreActor`, the only writer. The **durable** lane (request/reply, answered
//!   after COMMIT, never dropped, served first) and the **telemetry** lane (batched from a
//!   bounded intake; dropped rows counted).
//! - [`intake`]: the bounded queue in front of the telemetry lane.
//! - typed tables: [`events`] and [`samples`] (telemetry), [`runs`] and [`outbox`] (durable).
//! - `migrations/` (one folder, each file named `<version>_<domain>_<what>.sql`).
//!
//! Reads (CLI queries, the dashboard) go through [`Store::reader`], a read-only pool that never
//! waits behind writes and keeps answering while the disk refuses them. Committed events are
//! published to subscribers ([`Store::subscribe`]) with their row ids.
//!
//! The store outlives the tree: the daemon opens it before the tree starts and closes it after
//! the tree has stopped.

pub mod base_file;
pub mod error;
pub mod events;
pub mod health;
pub mod hosts;
pub mod intake;
pub mod outbox;
pub mod runs;
pub mod samples;
pub mod sync;
pub mod writer;

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::SqlitePool;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

pub use error::{StoreError, StoreErrorKind};
pub use events::{format_ms, unix_ms, EventQuery, EventRow, StoredEvent};
pub use intake::Intake;
pub use runs::Run;
pub use writer::{DurableOp, DurableReply, StoreActor, StoreArgs, StoreMessage};

/// Telemetry rows the intake holds while the writer is behind or the disk refuses writes;
/// past this the oldest are dropped (and counted).
pub const INTAKE_CAPACITY: usize = 50_000;
/// Metric samples the sample intake holds (a separate intake: a burst of samples never
/// pushes lifecycle events out).
pub const SAMPLE_CAPACITY: usize = 100_000;
/// How long samples and their hourly rollups are kept unless the metrics kind says otherwise.
pub const SAMPLE_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
pub const ROLLUP_RETENTION: Duration = Duration::from_secs(400 * 24 * 3600);
/// Committed events kept for each subscriber that falls behind; past this its oldest are
/// dropped (and it is told how many).
const SUBSCRIBE_BUFFER: usize = 1024;
/// Read connections (WAL readers run beside the writer).
const READERS: u32 = 2;

/// State shared by the handle (many recorders, `status`) and the writer.
pub(crate) struct Shared {
    pub(crate) intake: Intake<StoredEvent>,
    pub(crate) samples: Intake<crate::metrics::Sample>,
    /// Sample and rollup retention in seconds (set by the metrics kind).
    pub(crate) sample_retention_s: AtomicU64,
    pub(crate) rollup_retention_s: AtomicU64,
    /// A Drain is on its way (a timer or a message): recorders need not send another.
    pub(crate) drain_armed: AtomicBool,
    pub(crate) stats: Stats,
    /// Committed events, for subscribers.
    pub(crate) committed: broadcast::Sender<Arc<EventRow>>,
    /// How the daemon describes itself in its store's snapshots (`host_info`).
    describe: Mutex<Option<hosts::Describe>>,
    /// Held from the `host_info` write to the end of the snapshot it is for.
    snapshotting: tokio::sync::Mutex<()>,
    /// When the store was opened (Unix ms): the start given when nobody describes the daemon.
    opened_ms: i64,
}

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) inflight: AtomicUsize,
    pub(crate) durable_waiting: AtomicUsize,
    pub(crate) written: AtomicU64,
    pub(crate) write_failures: AtomicU64,
    /// Unix ms of the first of the current run of failed writes; 0 when writes succeed.
    pub(crate) failing_since_ms: AtomicI64,
    pub(crate) last_error: Mutex<Option<String>>,
}

/// What `status` shows about the store.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoreStats {
    /// Telemetry rows waiting in the intake.
    pub queued: usize,
    /// Telemetry rows taken for writing and not yet committed (the disk refused them).
    pub inflight: usize,
    /// Durable writes waiting for the disk.
    pub durable_waiting: usize,
    /// Telemetry rows (events and samples) dropped because an intake was full.
    pub dropped: u64,
    /// Samples waiting in their intake.
    #[serde(default)]
    pub samples_queued: usize,
    /// Telemetry rows written by this daemon.
    pub written: u64,
    /// Failed write attempts by this daemon.
    pub write_failures: u64,
    /// Writes have been failing since then (Unix ms), if they are failing now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A cloneable handle to the running store.
#[derive(Clone)]
pub struct Store {
    actor: ActorRef<StoreMessage>,
    shared: Arc<Shared>,
    reader: SqlitePool,
    path: Arc<std::path::PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("actor", &self.actor).finish()
    }
}

/// Creates the database at `path` if needed (in WAL mode) and runs the migrations. Through a
/// one-connection pool: sqlx's migrator over a bare `&mut SqliteConnection` makes futures that
/// are not `Send` for every lifetime, which a spawned task needs.
async fn migrate(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let options = SqliteConnectOptions::from_str("sqlite:")
        .map_err(|e| e.to_string())?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| format!("cannot open {shown}: {e}"))?;
    let migrated = sqlx::migrate!("./migrations").run(&pool).await;
    pool.close().await;
    migrated.map_err(|e| format!("cannot migrate {shown}: {e}"))
}

/// A read-only pool on the database at `path` (which the writer has created and migrated).
pub async fn open_reader(path: &Path) -> Result<SqlitePool, String> {
    let options = SqliteConnectOptions::from_str("sqlite:")
        .map_err(|e| e.to_string())?
        .filename(path)
        .read_only(true)
        .busy_timeout(Duration::from_secs(5));
    SqlitePoolOptions::new()
        .max_connections(READERS)
        .min_connections(0)
        .connect_with(options)
        .await
        .map_err(|e| format!("cannot open {} for reading: {e}", path.display()))
}

impl Store {
    /// Opens the database at `path` (creating and migrating it if needed), starts the writer,
    /// and opens the read pool.
    pub async fn open(path: &Path, retention: Duration) -> Result<(Store, JoinHandle<()>), String> {
        let (committed, _) = broadcast::channel(SUBSCRIBE_BUFFER);
        let shared = Arc::new(Shared {
            intake: Intake::new(INTAKE_CAPACITY),
            samples: Intake::new(SAMPLE_CAPACITY),
            sample_retention_s: AtomicU64::new(SAMPLE_RETENTION.as_secs()),
            rollup_retention_s: AtomicU64::new(ROLLUP_RETENTION.as_secs()),
            drain_armed: AtomicBool::new(false),
            stats: Stats::default(),
            committed,
            describe: Mutex::new(None),
            snapshotting: tokio::sync::Mutex::new(()),
            opened_ms: unix_ms(std::time::SystemTime::now()),
        });
        migrate(path).await?;
        let conn = writer::connect(path)
            .await
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let args = StoreArgs {
            conn,
            path: path.to_path_buf(),
            retention,
            shared: shared.clone(),
        };
        let (actor, join) = Actor::spawn(None, StoreActor, args)
            .await
            .map_err(|e| match e {
                ractor::SpawnErr::StartupFailed(inner) => inner.to_string(),
                other => other.to_string(),
            })?;
        let reader = match open_reader(path).await {
            Ok(pool) => pool,
            Err(e) => {
                actor.stop(None);
                return Err(e);
            }
        };
        Ok((
            Store {
                actor,
                shared,
                reader,
                path: Arc::new(path.to_path_buf()),
            },
            join,
        ))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the daemon describes itself in the snapshots of its store (`host_info`).
    pub fn describe_with(&self, describe: hosts::Describe) {
        *self
            .shared
            .describe
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(describe);
    }

    /// Before a snapshot of the store is taken for host `host` every `every`: writes the
    /// `host_info` row it is to carry, and answers a guard to hold until the snapshot is
    /// taken (another target's row waits for it). The description is bounded to 5 s.
    pub async fn before_snapshot(
        &self,
        host: &str,
        every: Duration,
    ) -> Result<tokio::sync::MutexGuard<'_, ()>, String> {
        let guard = self.shared.snapshotting.lock().await;
        let describe = self
            .shared
            .describe
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let fallback = hosts::Described {
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_ms: self.shared.opened_ms,
            summary: serde_json::json!({}),
        };
        let described = match describe {
            Some(f) => tokio::time::timeout(Duration::from_secs(5), f())
                .await
                .unwrap_or(fallback),
            None => fallback,
        };
        let info = hosts::HostInfo {
            host: host.to_string(),
            version: described.version,
            started_ms: described.started_ms,
            taken_ms: unix_ms(std::time::SystemTime::now()),
            snapshot_every_ms: i64::try_from(every.as_millis()).unwrap_or(i64::MAX),
            summary: described.summary,
        };
        self.durable(DurableOp::HostInfo(info), Some(Duration::from_secs(30)))
            .await?;
        Ok(guard)
    }

    /// The read-only pool: queries never wait behind writes.
    pub fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    /// Records an event on the telemetry lane; never blocks, never fails (under overload or a
    /// disk that refuses writes, the oldest waiting rows are dropped and counted).
    pub fn record(&self, event: StoredEvent) {
        let len = self.shared.intake.push(event);
        if len >= writer::BATCH {
            // A full batch: write it now.
            if !self.shared.drain_armed.swap(true, Ordering::AcqRel) {
                let _ = self.actor.cast(StoreMessage::Drain);
            }
        } else if !self.shared.drain_armed.swap(true, Ordering::AcqRel) {
            // The first row of a batch: give the batch a moment to fill.
            if tokio::runtime::Handle::try_current().is_ok() {
                self.actor
                    .send_after(writer::FLUSH_AFTER, || StoreMessage::Drain);
            } else {
                let _ = self.actor.cast(StoreMessage::Drain);
            }
        }
    }

    /// Records metric samples on the telemetry lane (their own intake); never blocks, never
    /// fails, like [`Store::record`].
    pub fn record_samples(&self, samples: Vec<crate::metrics::Sample>) {
        if samples.is_empty() {
            return;
        }
        self.shared.samples.push_many(samples);
        self.arm_drain();
    }

    /// Arms a drain: at once when a batch is full, after a moment otherwise.
    fn arm_drain(&self) {
        if self.shared.drain_armed.swap(true, Ordering::AcqRel) {
            return;
        }
        let full = self.shared.samples.len() >= writer::SAMPLE_BATCH
            || self.shared.intake.len() >= writer::BATCH;
        if full || tokio::runtime::Handle::try_current().is_err() {
            let _ = self.actor.cast(StoreMessage::Drain);
        } else {
            self.actor
                .send_after(writer::FLUSH_AFTER, || StoreMessage::Drain);
        }
    }

    /// How long samples and their hourly rollups are kept (pruned hourly).
    pub fn set_sample_retention(&self, samples: Duration, rollups: Duration) {
        let s = &self.shared;
        s.sample_retention_s
            .store(samples.as_secs(), Ordering::Relaxed);
        s.rollup_retention_s
            .store(rollups.as_secs(), Ordering::Relaxed);
    }

    /// A durable write: returns once it is committed. While the disk refuses writes this waits
    /// (the writer retries); `timeout` bounds the wait, after which the write still happens.
    pub async fn durable(
        &self,
        op: DurableOp,
        timeout: Option<Duration>,
    ) -> Result<DurableReply, String> {
        match self
            .actor
            .call(|reply| StoreMessage::Durable(op, reply), timeout)
            .await
        {
            Ok(CallResult::Success(result)) => result,
            Ok(CallResult::Timeout) => Err(
                "the store did not commit in time (the disk refuses writes?); the write is kept and retried"
                    .into(),
            ),
            _ => Err("the store is not running".into()),
        }
    }

    /// Prunes what is past its retention now (it also happens hourly); a `flush` after it
    /// returns once it is done.
    pub fn prune(&self) {
        let _ = self.actor.cast(StoreMessage::Prune);
    }

    /// Writes everything waiting now. `Err` when the disk refused (the writer keeps retrying)
    /// or `timeout` passed first.
    pub async fn flush(&self, timeout: Option<Duration>) -> Result<(), String> {
        match self.actor.call(StoreMessage::Flush, timeout).await {
            Ok(CallResult::Success(result)) => result,
            Ok(CallResult::Timeout) => Err("the store is busy writing; try again".into()),
            _ => Err("the store is not running".into()),
        }
    }

    /// Events as they are committed (with their ids). A subscriber that falls behind by more
    /// than the buffer loses the oldest and learns how many (`RecvError::Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventRow>> {
        self.shared.committed.subscribe()
    }

    pub fn stats(&self) -> StoreStats {
        let s = &self.shared.stats;
        let failing = s.failing_since_ms.load(Ordering::Relaxed);
        StoreStats {
            queued: self.shared.intake.len(),
            inflight: s.inflight.load(Ordering::Relaxed),
            durable_waiting: s.durable_waiting.load(Ordering::Relaxed),
            dropped: self.shared.intake.dropped() + self.shared.samples.dropped(),
            samples_queued: self.shared.samples.len(),
            written: s.written.load(Ordering::Relaxed),
            write_failures: s.write_failures.load(Ordering::Relaxed),
            failing_since_ms: (failing != 0).then_some(failing),
            last_error: if failing != 0 {
                s.last_error.lock().ok().and_then(|e| e.clone())
            } else {
                None
            },
        }
    }

    /// An engine event sink that records every lifecycle event here.
    pub fn sink(&self) -> crate::supervision::event::EventSink {
        let store = self.clone();
        crate::supervision::event::EventSink::from_fn(move |event| {
            store.record(StoredEvent::from(&event))
        })
    }

    /// Stops the writer after it wrote what it could, and closes the read pool.
    pub async fn close(&self) {
        let _ = self.actor.stop_and_wait(None, None).await;
        self.reader.close().await;
    }
}
