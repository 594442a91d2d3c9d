//! What a check is, what it answers, what it keeps between runs, and [`run`].
//!
//! A [`CheckSpec`] is typed config (the config layer builds it, with the defaults of each
//! spec's `new`); [`run`] executes one under a timeout that bounds the whole check and answers
//! a [`CheckOutcome`]. A check never panics and never returns an error: whatever goes wrong
//! (a missing file, a refused connection, a timeout) is an outcome, usually [`Health::Fail`]
//! with a message saying what.
//!
//! One [`CheckState`] per configured check, kept by the actor from run to run (the disk trend,
//! the HTTP client, a detached check still running). A check whose spec changes should start
//! from a new state.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::{command, disk, fmt_limit, memory, net, sqlite};

/// A check's result, and a probe's reported status. Ordered: `Pass < Warn < Fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Pass,
    Warn,
    Fail,
}

impl Health {
    /// `pass`, `warn`, `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Pass => "pass",
            Health::Warn => "warn",
            Health::Fail => "fail",
        }
    }

    /// The worse of the two.
    pub fn worst(self, other: Health) -> Health {
        self.max(other)
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The units a [`CheckOutcome::value`] is in.
pub mod unit {
    pub const BYTES: &str = "bytes";
    pub const SECONDS: &str = "seconds";
    pub const COUNT: &str = "count";
    /// No value.
    pub const NONE: &str = "";
}

/// What one run of a check found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckOutcome {
    pub status: Health,
    /// The measured quantity (free bytes, response time, ...), when there is one.
    pub value: Option<f64>,
    /// One of [`mod@unit`]: `bytes`, `seconds`, `count`; empty without a value.
    pub unit: &'static str,
    /// One line for people: what was found, and why it is not a pass.
    pub message: String,
    /// Structured facts for the record (always a JSON object, possibly empty).
    pub details: serde_json::Value,
}

impl CheckOutcome {
    pub fn new(status: Health, message: impl Into<String>) -> Self {
        CheckOutcome {
            status,
            value: None,
            unit: unit::NONE,
            message: message.into(),
            details: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    pub fn pass(message: impl Into<String>) -> Self {
        CheckOutcome::new(Health::Pass, message)
    }

    pub fn warn(message: impl Into<String>) -> Self {
        CheckOutcome::new(Health::Warn, message)
    }

    pub fn fail(message: impl Into<String>) -> Self {
        CheckOutcome::new(Health::Fail, message)
    }

    /// `timed out after 2s`, a failure.
    pub fn timed_out(timeout: Duration) -> Self {
        CheckOutcome::fail(format!("timed out after {}", fmt_limit(timeout))).with_details(
            serde_json::json!({ "timeout_ms": u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX) }),
        )
    }

    /// `not checked: timed out after 2s waiting for a slot (4 blocking checks running, the
    /// most at once)`, a Warn: the target was not looked at (the daemon is busy with other
    /// blocking checks), so nothing is known of it, which is not a failure of the target.
    pub fn no_slot(timeout: Duration, slots: &Slots) -> Self {
        CheckOutcome::warn(format!(
            "not checked: timed out after {} waiting for a slot ({} blocking checks running, the most at once)",
            fmt_limit(timeout),
            slots.limit(),
        ))
        .with_details(serde_json::json!({
            "timeout_ms": u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            "blocking_checks_limit": slots.limit(),
        }))
    }

    pub fn with_value(mut self, value: f64, unit: &'static str) -> Self {
        self.value = Some(value);
        self.unit = unit;
        self
    }

    /// Replaces the details (a non-object is wrapped as `{"value": ...}`).
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = match details {
            serde_json::Value::Object(_) => details,
            serde_json::Value::Null => serde_json::Value::Object(serde_json::Map::new()),
            other => serde_json::json!({ "value": other }),
        };
        self
    }
}

// ------------------------------------------------------------------------------------------
// Specs

/// Decimal units, as the defaults are written.
const GB: u64 = 1_000_000_000;
const MB: u64 = 1_000_000;

/// What to check, one variant per kind, each with its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckSpec {
    /// Free space on the filesystem holding a path.
    Disk(DiskSpec),
    /// Memory available to start new work (`MemAvailable`; Linux only).
    Memory(MemorySpec),
    /// An SQLite database: integrity, size, row counts.
    Sqlite(SqliteSpec),
    /// A TCP connect.
    Tcp(TcpSpec),
    /// An HTTP GET.
    Http(HttpSpec),
    /// A program's exit status (no shell).
    Command(CommandSpec),
    /// How long since a sync target last succeeded. Evaluated by the actor from the data it
    /// holds, with [`super::sync_recency`]; [`run`] does not run it.
    SyncRecency(SyncRecencySpec),
    /// Open circuit breakers. Evaluated by the actor with [`super::breakers`]; [`run`] does not
    /// run it.
    Breakers,
    /// A managed process: running, for how long, how often restarted. Evaluated by the actor
    /// from the processes' registry with [`super::process`]; [`run`] does not run it.
    Process(ProcessCheckSpec),
}

/// `check = "process"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessCheckSpec {
    /// The process's tree path (`root/web`).
    pub path: String,
    /// A run younger than this warns (it was just restarted); `None`: no such warning.
    pub min_uptime: Option<Duration>,
    /// More restarts than this within `window` warns; `None`: no such warning.
    pub max_restarts: Option<u32>,
    /// The window `max_restarts` counts in.
    pub window: Duration,
}

impl CheckSpec {
    /// The kind's name, as config would write it: `disk`, `memory`, `sqlite`, `tcp`, `http`,
    /// `command`, `sync_recency`, `breakers`.
    pub fn kind(&self) -> &'static str {
        match self {
            CheckSpec::Disk(_) => "disk",
            CheckSpec::Memory(_) => "memory",
            CheckSpec::Sqlite(_) => "sqlite",
            CheckSpec::Tcp(_) => "tcp",
            CheckSpec::Http(_) => "http",
            CheckSpec::Command(_) => "command",
            CheckSpec::SyncRecency(_) => "sync_recency",
            CheckSpec::Breakers => "breakers",
            CheckSpec::Process(_) => "process",
        }
    }

    /// Whether the actor evaluates this check from data it holds (sync recency, breakers)
    /// instead of calling [`run`].
    pub fn is_evaluated_from_data(&self) -> bool {
        matches!(
            self,
            CheckSpec::SyncRecency(_) | CheckSpec::Breakers | CheckSpec::Process(_)
        )
    }

    /// Whether a run holds one of the [`Slots`] while it works: the checks whose work runs
    /// on threads of their own (a `statvfs` and `/proc/meminfo` on the blocking pool, SQLite
    /// on a worker thread of sqlx's per connection) and that cannot be interrupted. The
    /// others (tcp, http, a command's program, whose exit is polled) wait on the scheduler
    /// without a thread.
    pub fn needs_slot(&self) -> bool {
        matches!(
            self,
            CheckSpec::Disk(_) | CheckSpec::Memory(_) | CheckSpec::Sqlite(_)
        )
    }
}

// ------------------------------------------------------------------------------------------
// Slots

/// The bound on blocking checks running at once, shared by every probe of a daemon (a
/// clone is the same bound).
///
/// A run of a check that [needs a slot](CheckSpec::needs_slot) waits for one within its
/// timeout, then holds it until its work is really done, past a timeout that abandoned it
/// too: a slot is a thread busy. A run that gets none in time is a Warn,
/// [`CheckOutcome::no_slot`]. So however many probes there are and however slow their
/// targets, at most [`Slots::limit`] such checks run (each probe at most one, see
/// [`CheckState::busy`]), the rest wait in a queue bounded by the number of probes, and the
/// scheduler's thread keeps its share of the CPU.
#[derive(Debug, Clone)]
pub struct Slots {
    semaphore: Arc<Semaphore>,
    limit: usize,
}

impl Slots {
    /// The most accepted.
    pub const MAX: usize = 256;

    /// `limit` slots (1 to [`Slots::MAX`]).
    pub fn new(limit: usize) -> Self {
        let limit = limit.clamp(1, Self::MAX);
        Slots {
            semaphore: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    /// Twice the CPUs, at least 4 and at most 32: SQLite's integrity check is CPU-bound,
    /// a `statvfs` mostly waits.
    pub fn default_limit() -> usize {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        (2 * cpus).clamp(4, 32)
    }

    /// How many may run at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// How many are running now.
    pub fn running(&self) -> usize {
        self.limit
            .saturating_sub(self.semaphore.available_permits())
    }

    /// A slot, once one is free (FIFO).
    async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        self.semaphore.clone().acquire_owned().await.ok()
    }
}

impl Default for Slots {
    /// [`Slots::default_limit`] slots of its own.
    fn default() -> Self {
        Slots::new(Slots::default_limit())
    }
}

/// Free space on the filesystem holding `path`, for unprivileged users (what `df` shows as
/// available). Fail below `fail_below_bytes`, Warn below `warn_below_bytes`, Warn when the
/// trend says the disk is full within `warn_full_within`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    pub path: PathBuf,
    pub warn_below_bytes: u64,
    pub fail_below_bytes: u64,
    /// `None`: no trend warning.
    pub warn_full_within: Option<Duration>,
}

impl DiskSpec {
    pub const DEFAULT_WARN_BELOW: u64 = 10 * GB;
    pub const DEFAULT_FAIL_BELOW: u64 = 5 * GB;
    pub const DEFAULT_WARN_FULL_WITHIN: Duration = Duration::from_secs(24 * 3600);

    /// With the defaults: warn below 10 GB, fail below 5 GB, warn when full within 24 h.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DiskSpec {
            path: path.into(),
            warn_below_bytes: Self::DEFAULT_WARN_BELOW,
            fail_below_bytes: Self::DEFAULT_FAIL_BELOW,
            warn_full_within: Some(Self::DEFAULT_WARN_FULL_WITHIN),
        }
    }
}

/// Available memory (`MemAvailable`): Fail below `fail_below_bytes`, Warn below
/// `warn_below_bytes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemorySpec {
    pub warn_below_bytes: u64,
    pub fail_below_bytes: u64,
}

impl MemorySpec {
    pub const DEFAULT_WARN_BELOW: u64 = 500 * MB;
    pub const DEFAULT_FAIL_BELOW: u64 = 100 * MB;
}

impl Default for MemorySpec {
    /// Warn below 500 MB, fail below 100 MB.
    fn default() -> Self {
        MemorySpec {
            warn_below_bytes: Self::DEFAULT_WARN_BELOW,
            fail_below_bytes: Self::DEFAULT_FAIL_BELOW,
        }
    }
}

/// An SQLite database, opened read-only: `PRAGMA integrity_check` (Fail when not `ok`), its
/// size with the WAL (Warn over `warn_size_bytes`), the row count of each of `tables` (Warn
/// when one is missing; names must pass [`super::sqlite::valid_table_name`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteSpec {
    pub path: PathBuf,
    pub warn_size_bytes: u64,
    pub tables: Vec<String>,
}

impl SqliteSpec {
    pub const DEFAULT_WARN_SIZE: u64 = 500 * MB;

    /// With the defaults: warn over 500 MB, no row counts.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteSpec {
            path: path.into(),
            warn_size_bytes: Self::DEFAULT_WARN_SIZE,
            tables: Vec::new(),
        }
    }
}

/// A TCP connect to `addr` (`host:port`; see [`super::net::check_tcp_addr`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSpec {
    pub addr: String,
}

/// An HTTP GET of `url` (see [`super::net::parse_http_url`]). Redirects are not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSpec {
    pub url: String,
    /// `None`: any 2xx.
    pub expect_status: Option<u16>,
    /// Searched in the first 64 KiB of the body, byte for byte.
    pub body_contains: Option<String>,
}

impl HttpSpec {
    /// Any 2xx, no body match.
    pub fn new(url: impl Into<String>) -> Self {
        HttpSpec {
            url: url.into(),
            expect_status: None,
            body_contains: None,
        }
    }
}

/// A program run without a shell, in its own process group: exit 0 Pass, 1 Warn, anything
/// else (or a signal) Fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// A path, or a name looked up in `PATH`.
    pub program: String,
    pub args: Vec<String>,
    /// `None`: the daemon's working directory.
    pub cwd: Option<PathBuf>,
    /// Added to (or replacing in) the daemon's environment, which the program inherits.
    pub env: Vec<(String, String)>,
}

impl CommandSpec {
    pub fn new(program: impl Into<String>, args: Vec<String>) -> Self {
        CommandSpec {
            program: program.into(),
            args,
            cwd: None,
            env: Vec::new(),
        }
    }
}

/// How long since `target` last synced successfully: Warn after `warn_after`, Fail after
/// `fail_after` (when set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRecencySpec {
    pub target: String,
    pub warn_after: Duration,
    pub fail_after: Option<Duration>,
    /// A target never synced that is offline (or has had no run yet) warns; by default it is
    /// informational (passes, saying so): a fresh install without the drive or the cloud
    /// folder must not raise a warning.
    pub alert_offline: bool,
}

impl SyncRecencySpec {
    pub const DEFAULT_WARN_AFTER: Duration = Duration::from_secs(6 * 3600);

    /// Warn after 6 h, never fail.
    pub fn new(target: impl Into<String>) -> Self {
        SyncRecencySpec {
            target: target.into(),
            warn_after: Self::DEFAULT_WARN_AFTER,
            fail_after: None,
            alert_offline: false,
        }
    }
}

// ------------------------------------------------------------------------------------------
// State

/// What a check keeps from one run to the next. One per configured check.
#[derive(Debug, Default)]
pub struct CheckState {
    /// The bound on blocking checks this one shares (its own unless given).
    pub(crate) slots: Slots,
    /// The free-space history of a disk check.
    pub(crate) trend: disk::DiskTrend,
    /// A disk check's `statvfs` still running on the blocking pool.
    pub(crate) disk_pending: Option<Pending<Result<disk::FsSpace, String>>>,
    /// An SQLite check still running (its integrity check cannot be interrupted).
    pub(crate) sqlite_pending: Option<Pending<CheckOutcome>>,
    /// A memory check's read of `/proc/meminfo` still running on the blocking pool.
    pub(crate) memory_pending: Option<Pending<std::io::Result<String>>>,
    /// The HTTP client, built at the first HTTP run unless given.
    pub(crate) http: Option<reqwest::Client>,
}

impl CheckState {
    pub fn new() -> Self {
        CheckState::default()
    }

    /// With an HTTP client of the caller's (shared pool, proxies, TLS roots). It should not
    /// follow redirects, as the one built here does not; its own timeout, if any, adds to the
    /// one [`run`] applies.
    pub fn with_http_client(client: reqwest::Client) -> Self {
        CheckState {
            http: Some(client),
            ..CheckState::default()
        }
    }

    /// Sharing `slots` with the other checks given them: the daemon's probes share one.
    pub fn with_slots(mut self, slots: Slots) -> Self {
        self.slots = slots;
        self
    }

    /// The free-space history a disk check keeps.
    pub fn disk_trend(&self) -> &disk::DiskTrend {
        &self.trend
    }

    /// Whether a detached part of a previous run (a `statvfs`, a read of `/proc/meminfo`,
    /// an SQLite check) still runs. The next run then answers at once that it has not
    /// finished, and starts nothing: one check of a probe in flight at a time.
    pub fn busy(&self) -> bool {
        fn running<T>(p: &Option<Pending<T>>) -> bool {
            p.as_ref().is_some_and(|p| !p.handle.is_finished())
        }
        running(&self.disk_pending)
            || running(&self.sqlite_pending)
            || running(&self.memory_pending)
    }
}

/// Work running detached from the check that started it, which a timeout cannot cancel.
#[derive(Debug)]
pub(crate) struct Pending<T> {
    handle: JoinHandle<T>,
    started: Instant,
}

/// Starts `start()` (a spawned task) and waits for it, unless the one a previous run started
/// still runs: then nothing is started and the answer is an error saying so. If the caller's
/// future is dropped while waiting (a timeout), the task goes on and stays in `slot`. A
/// previous task's result that nobody waited for is stale and dropped.
pub(crate) async fn detached<T>(
    slot: &mut Option<Pending<T>>,
    start: impl FnOnce() -> JoinHandle<T>,
) -> Result<T, String> {
    if let Some(previous) = slot.as_ref() {
        if !previous.handle.is_finished() {
            return Err(format!(
                "the previous run, started {} ago, has not finished",
                fmt_limit(Duration::from_secs(previous.started.elapsed().as_secs()))
            ));
        }
    }
    let pending = slot.insert(Pending {
        handle: start(),
        started: Instant::now(),
    });
    let result = (&mut pending.handle).await;
    *slot = None;
    result.map_err(|e| {
        if e.is_panic() {
            "the check panicked".to_string()
        } else {
            "the check was cancelled".to_string()
        }
    })
}

// ------------------------------------------------------------------------------------------
// Running

/// Runs `spec` once. `timeout` bounds the whole check (waiting for a slot, name resolution,
/// connecting, reading, the program's run); past it the outcome is Fail `timed out after 2s`
/// and whatever the check started is cancelled: sockets closed, the program's process group
/// killed. The parts that cannot be cancelled run detached (see [`CheckState::busy`]) and
/// keep their slot until they end.
///
/// A check that [needs a slot](CheckSpec::needs_slot) and gets none within `timeout` is a Warn
/// saying so ([`CheckOutcome::no_slot`]), not a Fail: its target was not looked at.
///
/// `SyncRecency` and `Breakers` are evaluated by the actor from its data
/// ([`super::sync_recency`], [`super::breakers`]); given here, they are a Fail saying so.
pub async fn run(spec: &CheckSpec, timeout: Duration, state: &mut CheckState) -> CheckOutcome {
    let deadline = tokio::time::Instant::now() + timeout;
    // A run whose previous one still runs detached starts nothing (it says so): no slot.
    let permit = if spec.needs_slot() && !state.busy() {
        match tokio::time::timeout_at(deadline, state.slots.acquire()).await {
            Ok(Some(permit)) => Some(permit),
            Ok(None) | Err(_) => return CheckOutcome::no_slot(timeout, &state.slots),
        }
    } else {
        None
    };
    match tokio::time::timeout_at(deadline, run_unbounded(spec, state, permit)).await {
        Ok(outcome) => outcome,
        Err(_) => CheckOutcome::timed_out(timeout),
    }
}

/// The command check's future is boxed: it is ~9 KB (the child process, its pipes and the
/// process-group kill), and inline it would make every check's future that big, every kind's,
/// a task the actor spawns (allocated and moved) at each run; the other kinds' are under 300
/// bytes.
///
/// `permit`, for the kinds that need one, goes with the work that cannot be interrupted.
async fn run_unbounded(
    spec: &CheckSpec,
    state: &mut CheckState,
    permit: Option<OwnedSemaphorePermit>,
) -> CheckOutcome {
    match spec {
        CheckSpec::Disk(s) => disk::check(s, state, permit).await,
        CheckSpec::Memory(s) => memory::check(s, &mut state.memory_pending, permit).await,
        CheckSpec::Sqlite(s) => sqlite::check(s, &mut state.sqlite_pending, permit).await,
        CheckSpec::Tcp(s) => net::tcp(s).await,
        CheckSpec::Http(s) => net::http(s, &mut state.http).await,
        CheckSpec::Command(s) => Box::pin(command::check(s)).await,
        CheckSpec::SyncRecency(_) | CheckSpec::Breakers | CheckSpec::Process(_) => {
            CheckOutcome::fail(format!(
                "a {} check is evaluated by the probe actor from its data, not run",
                spec.kind()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_ordered_and_serialized_lowercase() {
        assert!(Health::Pass < Health::Warn && Health::Warn < Health::Fail);
        assert_eq!(Health::Warn.worst(Health::Pass), Health::Warn);
        assert_eq!(Health::Warn.worst(Health::Fail), Health::Fail);
        assert_eq!(serde_json::json!(Health::Fail), serde_json::json!("fail"));
        assert_eq!(Health::Pass.to_string(), "pass");
    }

    #[test]
    fn outcomes_serialize_with_object_details() {
        let o = CheckOutcome::warn("low")
            .with_value(3.0, unit::BYTES)
            .with_details(serde_json::Value::Null);
        assert_eq!(
            serde_json::to_value(&o).unwrap(),
            serde_json::json!({
                "status": "warn", "value": 3.0, "unit": "bytes", "message": "low", "details": {}
            })
        );
        let t = CheckOutcome::timed_out(Duration::from_secs(2));
        assert_eq!(t.status, Health::Fail);
        assert_eq!(t.message, "timed out after 2s");
        assert_eq!(t.details["timeout_ms"], 2000);
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let d = DiskSpec::new("/");
        assert_eq!(d.warn_below_bytes, 10_000_000_000);
        assert_eq!(d.fail_below_bytes, 5_000_000_000);
        assert_eq!(d.warn_full_within, Some(Duration::from_secs(86_400)));
        assert_eq!(SqliteSpec::new("x").warn_size_bytes, 500_000_000);
        assert_eq!(
            SyncRecencySpec::new("icloud").warn_after,
            Duration::from_secs(6 * 3600)
        );
        assert_eq!(HttpSpec::new("http://x").expect_status, None);
    }

    #[test]
    fn a_check_future_is_small_whatever_its_kind() {
        // The actor spawns one at every run: the command check's (~9 KB) must stay boxed.
        let mut state = CheckState::new();
        let spec = CheckSpec::Tcp(TcpSpec {
            addr: "127.0.0.1:1".into(),
        });
        let size = std::mem::size_of_val(&run(&spec, Duration::from_secs(1), &mut state));
        assert!(size < 2048, "{size} bytes");
    }

    #[tokio::test]
    async fn data_checks_are_not_run() {
        let mut state = CheckState::new();
        let o = run(&CheckSpec::Breakers, Duration::from_secs(1), &mut state).await;
        assert_eq!(o.status, Health::Fail);
        assert!(o.message.contains("breakers"), "{}", o.message);
        assert!(CheckSpec::Breakers.is_evaluated_from_data());
        assert!(!CheckSpec::Tcp(TcpSpec { addr: "x:1".into() }).is_evaluated_from_data());
    }

    #[tokio::test]
    async fn a_detached_run_still_going_is_not_started_again() {
        let mut slot: Option<Pending<u32>> = None;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        // The first run is abandoned (as a timeout would) while its task waits.
        let first = tokio::time::timeout(
            Duration::from_millis(20),
            detached(&mut slot, || {
                tokio::spawn(async move {
                    let _ = rx.await;
                    1
                })
            }),
        )
        .await;
        assert!(first.is_err());
        let mut started = false;
        let second = detached(&mut slot, || {
            started = true;
            tokio::spawn(async { 2 })
        })
        .await;
        assert!(!started);
        assert!(second.unwrap_err().contains("has not finished"));
        // Once it is done, the next run starts afresh (the stale result is dropped).
        let _ = tx.send(());
        for _ in 0..200 {
            if slot.as_ref().is_some_and(|p| p.handle.is_finished()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let third = detached(&mut slot, || tokio::spawn(async { 3 })).await;
        assert_eq!(third, Ok(3));
        assert!(slot.is_none());
    }
}
