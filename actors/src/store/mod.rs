//! The event store: one SQLite database (sqlx, WAL, migrations), written by this one actor in
//! batches (multi-row INSERTs in a transaction). It records every lifecycle event of the tree
//! and the events actors report (heartbeats, ...), and answers queries.
//!
//! It never fails because of the disk: a failed write is logged, the batch is kept (bounded;
//! the oldest are dropped and counted past the cap) and retried with backoff. Its own failure
//! (a bug) stops it; the daemon watches it and exits so the service manager restarts us.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, SqlitePool};

use crate::supervision::event::{EventKind, LifecycleEvent};
use crate::supervision::exit::ExitReason;

/// Write when this many events are pending, or after `FLUSH_AFTER`, whichever comes first.
const BATCH: usize = 512;
const FLUSH_AFTER: Duration = Duration::from_millis(50);
/// Pending events kept while the disk refuses writes; past this the oldest are dropped.
const MAX_PENDING: usize = 50_000;
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How often old events are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// One stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub at: SystemTime,
    pub path: String,
    pub kind: String,
    pub message: String,
    /// The typed fields as a JSON object.
    pub data: serde_json::Value,
}

impl StoredEvent {
    pub fn new(
        path: impl Into<String>,
        kind: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        StoredEvent {
            at: SystemTime::now(),
            path: path.into(),
            kind: kind.into(),
            message: message.into(),
            data: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn at_ms(&self) -> i64 {
        unix_ms(self.at)
    }
}

/// Unix milliseconds (0 before the epoch, saturating far in the future).
pub fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn reason_json(reason: &ExitReason) -> serde_json::Value {
    match reason {
        ExitReason::Failed(message) => {
            serde_json::json!({ "reason": reason.tag(), "error": message })
        }
        other => serde_json::json!({ "reason": other.tag() }),
    }
}

impl From<&LifecycleEvent> for StoredEvent {
    fn from(e: &LifecycleEvent) -> Self {
        use serde_json::json;
        let data = match &e.kind {
            EventKind::Started { incarnation } | EventKind::Restarted { incarnation } => {
                json!({ "incarnation": incarnation })
            }
            EventKind::StartFailed { error } => json!({ "error": error }),
            EventKind::Exited {
                reason,
                incarnation,
            } => {
                let mut v = reason_json(reason);
                v["incarnation"] = json!(incarnation);
                v
            }
            EventKind::RestartScheduled { delay, attempt } => {
                json!({ "delay_ms": delay.as_millis() as u64, "attempt": attempt })
            }
            EventKind::GaveUp { intensity, period } => {
                json!({ "intensity": intensity, "period_ms": period.as_millis() as u64 })
            }
        };
        StoredEvent {
            at: e.at,
            path: e.path.clone(),
            kind: e.kind.tag().to_string(),
            message: e.kind.to_string(),
            data,
        }
    }
}

/// What to read back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventQuery {
    /// Only events at or after this time.
    pub since: Option<SystemTime>,
    /// Only events about this path or anything below it.
    pub path: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// At most this many (the most recent), oldest first. 0 means 1,000.
    pub limit: usize,
}

pub struct StoreActor;

pub struct StoreArgs {
    /// The database file (created if missing).
    pub path: PathBuf,
    /// Events older than this are pruned (hourly).
    pub retention: Duration,
}

pub enum StoreMessage {
    Record(StoredEvent),
    /// Write everything pending now; answers once it is on disk (or failed to be).
    Flush(RpcReplyPort<Result<(), String>>),
    /// Flushes, then reads.
    Query(EventQuery, RpcReplyPort<Result<Vec<StoredEvent>, String>>),
    /// Internal: the batch timer or a retry elapsed.
    FlushDue,
    /// Internal: time to prune old events.
    PruneDue,
}

pub struct StoreState {
    pool: SqlitePool,
    retention: Duration,
    /// Recorded but not yet written, oldest first.
    pending: Vec<StoredEvent>,
    /// A FlushDue is on its way; no need to arm another.
    timer_armed: bool,
    /// Consecutive failed writes (drives the retry delay).
    failures: u32,
    /// Events dropped because the disk kept refusing and the pending cap was reached.
    dropped: u64,
}

/// Opens (creating if needed) the database at `path` in WAL mode and runs the migrations.
pub async fn open(path: &std::path::Path) -> Result<SqlitePool, String> {
    let options = SqliteConnectOptions::from_str("sqlite:")
        .map_err(|e| e.to_string())?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5));
    // One connection: this actor is the only user (writes and reads are serialized here).
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .map_err(|e| format!("cannot migrate {}: {e}", path.display()))?;
    Ok(pool)
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
        let pool = open(&args.path).await?;
        let mut state = StoreState {
            pool,
            retention: args.retention,
            pending: Vec::new(),
            timer_armed: false,
            failures: 0,
            dropped: 0,
        };
        state.prune().await;
        myself.send_interval(PRUNE_EVERY, || StoreMessage::PruneDue);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: StoreMessage,
        state: &mut StoreState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            StoreMessage::Record(event) => {
                state.pending.push(event);
                if state.pending.len() > MAX_PENDING {
                    let excess = state.pending.len() - MAX_PENDING;
                    state.pending.drain(..excess);
                    state.dropped += excess as u64;
                }
                if state.pending.len() >= BATCH && state.failures == 0 {
                    // A failure is logged and retried by the timer.
                    let _ = state.write().await;
                }
                state.arm(&myself);
            }
            StoreMessage::FlushDue => {
                state.timer_armed = false;
                let _ = state.write().await;
                state.arm(&myself);
            }
            StoreMessage::Flush(reply) => {
                let result = state.write().await;
                state.arm(&myself);
                let _ = reply.send(result);
            }
            StoreMessage::Query(query, reply) => {
                let flushed = state.write().await;
                state.arm(&myself);
                let result = match flushed {
                    Ok(()) => state.query(&query).await,
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            StoreMessage::PruneDue => state.prune().await,
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut StoreState,
    ) -> Result<(), ActorProcessingErr> {
        if let Err(e) = state.write().await {
            tracing::error!(error = %e, lost = state.pending.len(), "events not written at shutdown");
        }
        state.pool.close().await;
        Ok(())
    }
}

impl StoreState {
    /// Arms the flush timer if events are pending: the batch delay, or the retry delay after
    /// failures.
    fn arm(&mut self, myself: &ActorRef<StoreMessage>) {
        if self.pending.is_empty() || self.timer_armed {
            return;
        }
        let delay = if self.failures == 0 {
            FLUSH_AFTER
        } else {
            let exp = self.failures.saturating_sub(1).min(16);
            (Duration::from_millis(500) * 2u32.pow(exp)).min(RETRY_MAX)
        };
        self.timer_armed = true;
        myself.send_after(delay, || StoreMessage::FlushDue);
    }

    /// Writes everything pending, in batches, each in one transaction.
    async fn write(&mut self) -> Result<(), String> {
        while !self.pending.is_empty() {
            let n = self.pending.len().min(BATCH);
            match insert(&self.pool, &self.pending[..n]).await {
                Ok(()) => {
                    self.pending.drain(..n);
                    if self.failures > 0 {
                        tracing::info!(
                            after_failures = self.failures,
                            dropped = self.dropped,
                            "event store writes again"
                        );
                    }
                    self.failures = 0;
                }
                Err(e) => {
                    self.failures = self.failures.saturating_add(1);
                    if self.failures == 1 || self.failures.is_power_of_two() {
                        tracing::warn!(
                            error = %e,
                            pending = self.pending.len(),
                            failures = self.failures,
                            "cannot write events; keeping them and retrying"
                        );
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    async fn prune(&mut self) {
        let cutoff = SystemTime::now()
            .checked_sub(self.retention)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64);
        let Some(cutoff) = cutoff else { return };
        if let Err(e) = sqlx::query("DELETE FROM events WHERE at_ms < ?")
            .bind(cutoff)
            .execute(&self.pool)
            .await
        {
            tracing::warn!(error = %e, "cannot prune old events");
        }
    }

    async fn query(&self, q: &EventQuery) -> Result<Vec<StoredEvent>, String> {
        let limit = if q.limit == 0 { 1000 } else { q.limit };
        let mut sql =
            QueryBuilder::new("SELECT at_ms, path, kind, message, data FROM events WHERE 1=1");
        if let Some(since) = q.since {
            let ms = since
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            sql.push(" AND at_ms >= ").push_bind(ms);
        }
        if let Some(path) = &q.path {
            // The path itself or anything below it; GLOB is case-sensitive and byte-exact
            // (LIKE folds ASCII case; substr counts characters), its wildcards escaped.
            let mut pattern = String::with_capacity(path.len() + 2);
            for c in path.chars() {
                match c {
                    '*' | '?' | '[' => {
                        pattern.push('[');
                        pattern.push(c);
                        pattern.push(']');
                    }
                    _ => pattern.push(c),
                }
            }
            pattern.push_str("/*");
            sql.push(" AND (path = ")
                .push_bind(path.clone())
                .push(" OR path GLOB ")
                .push_bind(pattern)
                .push(")");
        }
        if let Some(kind) = &q.kind {
            sql.push(" AND kind = ").push_bind(kind.clone());
        }
        sql.push(" ORDER BY id DESC LIMIT ").push_bind(limit as i64);
        let rows = sql
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| format!("cannot read events: {e}"))?;
        let mut events: Vec<StoredEvent> = rows
            .iter()
            .map(|row| {
                let at_ms: i64 = row.get(0);
                let data: String = row.get(4);
                StoredEvent {
                    at: UNIX_EPOCH + Duration::from_millis(at_ms.max(0) as u64),
                    path: row.get(1),
                    kind: row.get(2),
                    message: row.get(3),
                    data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
                }
            })
            .collect();
        events.reverse();
        Ok(events)
    }
}

/// One multi-row INSERT in one transaction.
async fn insert(pool: &SqlitePool, events: &[StoredEvent]) -> Result<(), String> {
    let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
    // SQLite allows 32,766 bound parameters; 5 per row and BATCH rows stay well under.
    let mut sql = QueryBuilder::new("INSERT INTO events (at_ms, path, kind, message, data) ");
    sql.push_values(events, |mut row, e| {
        row.push_bind(e.at_ms())
            .push_bind(e.path.as_str())
            .push_bind(e.kind.as_str())
            .push_bind(e.message.as_str())
            .push_bind(e.data.to_string());
    });
    sql.build()
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())
}

/// A cloneable handle to the running store.
#[derive(Clone, Debug)]
pub struct Store {
    actor: ActorRef<StoreMessage>,
}

impl Store {
    pub fn new(actor: ActorRef<StoreMessage>) -> Self {
        Store { actor }
    }

    pub fn actor(&self) -> &ActorRef<StoreMessage> {
        &self.actor
    }

    /// Records an event; never blocks, never fails (a stopped store drops it).
    pub fn record(&self, event: StoredEvent) {
        let _ = self.actor.cast(StoreMessage::Record(event));
    }

    pub async fn flush(&self) -> Result<(), String> {
        match self.actor.call(StoreMessage::Flush, None).await {
            Ok(CallResult::Success(result)) => result,
            _ => Err("the event store is not running".into()),
        }
    }

    pub async fn query(&self, query: EventQuery) -> Result<Vec<StoredEvent>, String> {
        match self
            .actor
            .call(|reply| StoreMessage::Query(query, reply), None)
            .await
        {
            Ok(CallResult::Success(result)) => result,
            _ => Err("the event store is not running".into()),
        }
    }

    /// An engine event sink that records every lifecycle event here.
    pub fn sink(&self) -> crate::supervision::event::EventSink {
        let store = self.clone();
        crate::supervision::event::EventSink::from_fn(move |event| {
            store.record(StoredEvent::from(&event))
        })
    }
}
