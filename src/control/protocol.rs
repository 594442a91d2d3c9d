//! The control protocol: newline-delimited JSON over the Unix socket, one request per line, one
//! response line per request, in order.
//!
//! ```text
//! → {"v":1,"id":1,"cmd":"status"}
//! ← {"v":1,"id":1,"ok":true,"result":{...}}
//! ← {"v":1,"id":1,"ok":false,"error":{"code":"not_found","message":"root/x: no such actor"}}
//! ```
//! `v` is optional (1). A request that cannot be read still gets an error response (`id` null
//! when it could not be found); the connection stays open.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const PROTOCOL_VERSION: u32 = 1;
/// Longest request line accepted; longer ones get `line_too_long` and are skipped.
pub const MAX_LINE: usize = 64 * 1024;

pub use super::request::Command;

/// What `sync` answers: one report per target run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncResult {
    pub reports: Vec<metasystem_actors::sync::RunReport>,
}

/// What `sync status` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncStatusResult {
    pub targets: Vec<metasystem_actors::sync::TargetStatus>,
}

/// What `conflicts` answers, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConflictsResult {
    pub conflicts: Vec<ConflictView>,
}

/// What `backups` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupsResult {
    /// Newest first, every target's together (at most 5,000).
    pub backups: Vec<metasystem_actors::sync::backups::BackupEntry>,
    /// There are more, older ones than listed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Each target's backups folder, how many backups it holds (listed: at most 5,000 per
    /// target), or why it could not be read.
    pub dirs: Vec<BackupDir>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupDir {
    pub target: String,
    pub dir: String,
    pub count: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One kept conflict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConflictView {
    pub id: i64,
    pub target: String,
    /// The path, relative to the primary.
    pub path: String,
    /// When the run kept both versions (RFC 3339).
    pub detected: String,
    /// The target's version, beside it in the primary (relative to the primary).
    pub copy: String,
    /// The copy's absolute path, when the target is running (its primary is known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<String>,
    /// local | remote | both
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
}

/// One probe's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeView {
    pub path: String,
    pub check: String,
    /// pass | warn | fail (after the probe's thresholds), or pending until its first check
    /// completes
    pub status: metasystem_actors::probes::actor::ProbeStatus,
    /// No check has completed yet (`status` is `pending`).
    #[serde(default)]
    pub pending: bool,
    /// The latest check's own result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<metasystem_actors::probes::Health>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_ms: Option<u64>,
    pub consecutive_failures: u32,
    /// When the status last changed.
    pub since: String,
}

/// The answer to `health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthResult {
    /// The worst probe status: fail, warn, pending (one has not checked yet, none is worse)
    /// or pass (with no probes too).
    pub status: metasystem_actors::probes::actor::ProbeStatus,
    pub probes: Vec<ProbeView>,
}

/// One self-heal action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealView {
    pub probe: String,
    pub action: String,
    pub target: String,
    pub at: String,
    pub took_ms: i64,
    /// done | failed
    pub outcome: String,
    pub detail: String,
    /// The probe's check right after the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recheck: Option<String>,
}

/// The answer to `heal`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealResult {
    pub actions: Vec<HealView>,
}

/// The answer to `retries`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetriesResult {
    /// The window's start.
    pub since: String,
    /// Runs read (at most the latest 50,000 of the window).
    pub runs: u64,
    /// The window held more runs than were read: the statistics are of the latest.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// By operation name.
    pub ops: Vec<RetryOpView>,
}

/// One retried operation: what its runs say, and the schedule they suggest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryOpView {
    /// `heal:PROBE:ACTION:TARGET`, `alert:CHANNEL`, ...
    pub op: String,
    pub runs: u32,
    /// Runs by how they ended: success, exhausted (gave up), permanent, rejected (by a breaker).
    pub outcomes: std::collections::BTreeMap<String, u32>,
    /// successes / runs.
    pub success_rate: f64,
    /// Calls that failed, over all runs, and the shares of them that were transient and
    /// permanent (both 0 when none failed).
    pub failed_attempts: u32,
    pub transient_share: f64,
    pub permanent_share: f64,
    /// The commonest error labels (at most three), commonest first.
    pub commonest_errors: Vec<ErrorCount>,
    /// Runs that succeeded after failing, and how long they took to recover.
    pub recovered_runs: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_recovery_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90_recovery_ms: Option<u64>,
    /// The latest run's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<String>,
    /// The policy the runs are judged by.
    pub policy: RetryPolicyView,
    pub recommendation: RecommendationView,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorCount {
    pub label: String,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicyView {
    /// configured (the operation's own) | default (the operation is not in the config)
    pub source: String,
    pub initial_ms: u64,
    pub max_ms: u64,
    /// `None`: retried until it succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    pub adaptive: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecommendationView {
    pub initial_ms: u64,
    pub max_attempts: u32,
    /// One sentence for an operator.
    pub text: String,
}

/// What an operator can do to a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerAction {
    /// Back to CLOSED, counts cleared.
    Reset,
    /// FORCED_OPEN: rejects every call until reset.
    Open,
    /// DISABLED: allows every call, opens on nothing, until reset.
    Disable,
    /// HALF_OPEN now: the next calls are trials.
    HalfOpen,
}

/// One circuit breaker, as `breakers` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerRow {
    pub name: String,
    /// closed | open | half_open | forced_open | disabled
    pub state: metasystem_actors::breakers::StateName,
    /// When it entered this state (RFC 3339).
    pub since: String,
    /// OPEN: when it lets a trial call through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_until: Option<String>,
    /// The wait the next opening uses (grows after failed trials).
    pub wait_s: f64,
    pub consecutive_failures: u32,
    pub calls: u64,
    pub failures: u64,
    pub rejections: u64,
    pub failure_threshold: u32,
    pub success_threshold: u32,
}

/// One breaker transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionView {
    pub name: String,
    pub at: String,
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// The answer to `breakers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakersResult {
    pub breakers: Vec<BreakerRow>,
    /// Newest first.
    pub transitions: Vec<TransitionView>,
}

/// One series' (or metric's, or the system's) summary over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesRow {
    pub name: String,
    /// Of what; `*` for a metric's total over its subjects, `""` for the daemon as a whole.
    pub subject: String,
    pub unit: String,
    pub count: u64,
    pub ok: u64,
    pub failed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<f64>,
}

/// The answer to `metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsResult {
    /// The window covered (RFC 3339): summaries come from hourly rollups, so it starts at the
    /// hour `--since` falls in.
    pub from: String,
    pub to: String,
    /// Per metric and subject.
    pub series: Vec<SeriesRow>,
    /// Per metric, over all its subjects.
    pub metrics: Vec<SeriesRow>,
    /// The whole system: every operation with an outcome (count, success rate).
    pub system: SystemSummary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemSummary {
    pub samples: u64,
    pub operations: u64,
    pub failed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<f64>,
    pub series: usize,
}

/// One detected anomaly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyRow {
    pub at: String,
    pub metric: String,
    pub subject: String,
    pub value: f64,
    /// The strongest score (signed, in standard deviations) and its method.
    pub score: f64,
    pub method: String,
    pub expected: f64,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomaliesResult {
    pub anomalies: Vec<AnomalyRow>,
    /// More matched than the answer holds (the most recent are kept).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// One stored notification for one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRow {
    pub id: i64,
    pub created: String,
    pub channel: String,
    pub severity: String,
    /// firing | resolved
    pub status: String,
    pub title: String,
    pub key: String,
    pub fingerprint: String,
    pub occurrences: u64,
    /// pending | sent | partial | failed | skipped (partial: some recipients took it, the
    /// others refused it for good; see `recipients`)
    pub state: String,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<String>,
    /// Every delivery attempt, oldest first.
    #[serde(default)]
    pub history: Vec<AttemptInfo>,
    /// Per recipient (email): who took it, who refused it, who is still to be retried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<RecipientInfo>,
}

/// One recipient's delivery of an email notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipientInfo {
    pub recipient: String,
    /// sent | failed | pending
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    pub detail: String,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptInfo {
    pub at: String,
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    pub duration_ms: i64,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub pattern: String,
    pub until: String,
}

/// The answer to `alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertsResult {
    /// Newest first.
    pub alerts: Vec<AlertRow>,
    pub undelivered: u64,
    pub silences: Vec<Silence>,
}

/// What a subscription streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// Events as they are written to the store.
    Events,
    /// A managed process's output (`logs -f`; not a `subscribe` topic).
    Logs,
}

/// The answer to `logs` (without `follow`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogsResult {
    pub path: String,
    /// The log file read (its rotated files too when it held fewer lines).
    pub file: String,
    /// The lines, as UTF-8 (bytes that are not are replaced).
    pub text: String,
}

/// One line of a stream (the `result` of each line after the subscription's answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamItem {
    Subscribed(Topic),
    Event(Event),
    /// A piece of a process's output (`logs -f`), as UTF-8 (bytes that are not are replaced).
    Log(String),
    /// This client fell behind: this many of the oldest items were dropped.
    Dropped(u64),
    /// The stream ends (the daemon is shutting down).
    End(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Envelope {
    pub v: u32,
    pub id: u64,
    /// How long the daemon may take to answer (it answers `timeout` after that; the work may
    /// still finish). Default 30 s, at most 10 min.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    #[serde(flatten)]
    pub command: Command,
}

/// A request as the server read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub id: Option<u64>,
    /// `deadline_ms`, when given.
    pub deadline: Option<std::time::Duration>,
    pub command: Command,
}

/// Error codes.
/// An error's code: what kind of failure, for programs (the message is for people). On the
/// wire, snake_case (`bad_request`); a code this client does not know reads as [`Code::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    BadRequest,
    LineTooLong,
    UnsupportedVersion,
    TooManyConnections,
    Forbidden,
    InvalidPath,
    NotFound,
    NotRunning,
    AlreadyRunning,
    AlreadyStopped,
    AlreadyExists,
    NotASupervisor,
    Root,
    StartFailed,
    InvalidConfig,
    Unavailable,
    /// The daemon did not finish the request within its deadline; it may still finish it.
    Timeout,
    /// Too many streams are open; requests are still served.
    TooManyStreams,
    /// An idle connection was closed to make room for a new one.
    Evicted,
    Internal,
    /// The request was understood and could not be carried out as asked (a file changed
    /// meanwhile, a name that is not a backup's): nothing was half done.
    Refused,
    /// What it needs is not there now (a sync target unplugged or unmounted): nothing was
    /// done; it can be done once it is back.
    Offline,
    /// Something else holds what it needs (another run's lock, a live database): nothing was
    /// done; trying again later may do it.
    Busy,
    /// The disk refused (a read or a write failed): nothing was half done.
    IoError,
    /// A code this client does not know (from a newer daemon).
    #[serde(other)]
    Other,
}

impl Code {
    /// As on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BadRequest => "bad_request",
            Code::LineTooLong => "line_too_long",
            Code::UnsupportedVersion => "unsupported_version",
            Code::TooManyConnections => "too_many_connections",
            Code::Forbidden => "forbidden",
            Code::InvalidPath => "invalid_path",
            Code::NotFound => "not_found",
            Code::NotRunning => "not_running",
            Code::AlreadyRunning => "already_running",
            Code::AlreadyStopped => "already_stopped",
            Code::AlreadyExists => "already_exists",
            Code::NotASupervisor => "not_a_supervisor",
            Code::Root => "root",
            Code::StartFailed => "start_failed",
            Code::InvalidConfig => "invalid_config",
            Code::Unavailable => "unavailable",
            Code::Timeout => "timeout",
            Code::TooManyStreams => "too_many_streams",
            Code::Evicted => "evicted",
            Code::Internal => "internal",
            Code::Refused => "refused",
            Code::Offline => "offline",
            Code::Busy => "busy",
            Code::IoError => "io_error",
            Code::Other => "other",
        }
    }

    /// Whether the failure is the caller's way of asking (a usage error, or a refusal to
    /// talk at all), not the daemon's answer about what it runs: the CLI's exit code.
    pub fn is_usage(self) -> bool {
        matches!(
            self,
            Code::BadRequest
                | Code::InvalidPath
                | Code::UnsupportedVersion
                | Code::TooManyConnections
                | Code::Forbidden
        )
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The codes by their old names (`code::BAD_REQUEST`).
pub mod code {
    use super::Code;

    pub const BAD_REQUEST: Code = Code::BadRequest;
    pub const LINE_TOO_LONG: Code = Code::LineTooLong;
    pub const UNSUPPORTED_VERSION: Code = Code::UnsupportedVersion;
    pub const TOO_MANY_CONNECTIONS: Code = Code::TooManyConnections;
    pub const FORBIDDEN: Code = Code::Forbidden;
    pub const INVALID_PATH: Code = Code::InvalidPath;
    pub const NOT_FOUND: Code = Code::NotFound;
    pub const NOT_RUNNING: Code = Code::NotRunning;
    pub const ALREADY_RUNNING: Code = Code::AlreadyRunning;
    pub const ALREADY_STOPPED: Code = Code::AlreadyStopped;
    pub const ALREADY_EXISTS: Code = Code::AlreadyExists;
    pub const NOT_A_SUPERVISOR: Code = Code::NotASupervisor;
    pub const ROOT: Code = Code::Root;
    pub const START_FAILED: Code = Code::StartFailed;
    pub const INVALID_CONFIG: Code = Code::InvalidConfig;
    pub const UNAVAILABLE: Code = Code::Unavailable;
    pub const TIMEOUT: Code = Code::Timeout;
    pub const TOO_MANY_STREAMS: Code = Code::TooManyStreams;
    pub const EVICTED: Code = Code::Evicted;
    pub const INTERNAL: Code = Code::Internal;
    pub const REFUSED: Code = Code::Refused;
    pub const OFFLINE: Code = Code::Offline;
    pub const BUSY: Code = Code::Busy;
    pub const IO_ERROR: Code = Code::IoError;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: Code,
    pub message: String,
    /// More lines (every config error, for `invalid_config`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

/// A tree operation's error, with the code that says what went wrong.
impl From<metasystem_actors::TreeError> for ErrorBody {
    fn from(e: metasystem_actors::TreeError) -> Self {
        use metasystem_actors::TreeError;
        let code = match &e {
            TreeError::NotFound(_) => code::NOT_FOUND,
            TreeError::InvalidPath(_) => code::INVALID_PATH,
            TreeError::Root => code::ROOT,
            TreeError::NotASupervisor(_) => code::NOT_A_SUPERVISOR,
            TreeError::AlreadyExists(_) => code::ALREADY_EXISTS,
            TreeError::AlreadyRunning(_) => code::ALREADY_RUNNING,
            TreeError::AlreadyStopped(_) => code::ALREADY_STOPPED,
            TreeError::NotRunning(_) => code::NOT_RUNNING,
            TreeError::Invalid(_) => code::BAD_REQUEST,
            TreeError::StartFailed { .. } => code::START_FAILED,
            TreeError::Timeout(_) => code::TIMEOUT,
            TreeError::Unavailable => code::UNAVAILABLE,
        };
        ErrorBody::new(code, e.to_string())
    }
}

/// A sync operation's error (resolve, restore), with the code that says what went wrong.
impl From<metasystem_actors::sync::OpError> for ErrorBody {
    fn from(e: metasystem_actors::sync::OpError) -> Self {
        use metasystem_actors::sync::OpError;
        let code = match &e {
            OpError::NotFound(_) => code::NOT_FOUND,
            OpError::Offline(_) => code::OFFLINE,
            OpError::Busy(_) => code::BUSY,
            OpError::Refused(_) => code::REFUSED,
            OpError::Io(_) => code::IO_ERROR,
            OpError::Store(_) => code::UNAVAILABLE,
        };
        ErrorBody::new(code, e.to_string())
    }
}

/// A store read's error: busy, the disk refusing, or the store unusable.
impl From<metasystem_actors::store::StoreError> for ErrorBody {
    fn from(e: metasystem_actors::store::StoreError) -> Self {
        use metasystem_actors::store::StoreErrorKind;
        let code = match e.kind {
            StoreErrorKind::Busy => code::BUSY,
            StoreErrorKind::Io => code::IO_ERROR,
            StoreErrorKind::Corrupt | StoreErrorKind::Other => code::UNAVAILABLE,
        };
        ErrorBody::new(code, e.message)
    }
}

/// Why a command failed, as a handler says it: what [`Response::answer`] sends as `error`.
pub type Failure = ErrorBody;

impl ErrorBody {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ErrorBody::with_details(code, message, Vec::new())
    }

    pub fn with_details(code: Code, message: impl Into<String>, details: Vec<String>) -> Self {
        ErrorBody {
            code,
            message: message.into(),
            details,
        }
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub v: u32,
    pub id: Option<u64>,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Response {
    pub fn ok(id: Option<u64>, result: Value) -> Self {
        Response {
            v: PROTOCOL_VERSION,
            id,
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    pub fn error(id: Option<u64>, code: Code, message: impl Into<String>) -> Self {
        Response::error_with(id, code, message, Vec::new())
    }

    pub fn error_with(
        id: Option<u64>,
        code: Code,
        message: impl Into<String>,
        details: Vec<String>,
    ) -> Self {
        Response {
            v: PROTOCOL_VERSION,
            id,
            ok: false,
            result: None,
            error: Some(ErrorBody {
                code,
                message: message.into(),
                details,
            }),
        }
    }

    /// A handler's answer: its typed result, or why it failed.
    pub fn answer<T: Serialize>(id: Option<u64>, answer: Result<T, Failure>) -> Self {
        match answer.map(|t| serde_json::to_value(&t)) {
            Ok(Ok(result)) => Response::ok(id, result),
            Ok(Err(e)) => {
                Response::error(id, code::INTERNAL, format!("cannot encode the answer: {e}"))
            }
            Err(f) => Response {
                v: PROTOCOL_VERSION,
                id,
                ok: false,
                result: None,
                error: Some(f),
            },
        }
    }

    /// One line of JSON, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                r#"{{"v":{PROTOCOL_VERSION},"id":null,"ok":false,"error":{{"code":"internal","message":"cannot encode response: {e}"}}}}"#
            )
        })
    }
}

/// Reads one request line. On failure, the error response to send (with the request's id when
/// it could be found).
pub fn parse_request(line: &str) -> Result<Parsed, Box<Response>> {
    parse(line).map_err(Box::new)
}

/// Walks a JSON document and fails on the first object with a key given twice: JSON parsers
/// keep the last one silently (`{"cmd":"status","cmd":"shutdown"}` would shut down).
struct Unique;

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Unique, D::Error> {
        d.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!("duplicate key `{key}`")));
            }
            map.next_value::<Unique>()?;
        }
        Ok(Unique)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        while seq.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique)
    }
}

#[allow(clippy::result_large_err)] // private; boxed at the public boundary above
fn parse(line: &str) -> Result<Parsed, Response> {
    let value: Value = serde_json::from_str(line)
        .map_err(|e| Response::error(None, code::BAD_REQUEST, format!("malformed JSON: {e}")))?;
    if let Err(e) = serde_json::from_str::<Unique>(line) {
        let id = value.get("id").and_then(Value::as_u64);
        return Err(Response::error(
            id,
            code::BAD_REQUEST,
            format!("bad request: {e}"),
        ));
    }
    let Value::Object(mut object) = value else {
        return Err(Response::error(
            None,
            code::BAD_REQUEST,
            "a request must be a JSON object such as {\"id\":1,\"cmd\":\"status\"}",
        ));
    };
    let id = match object.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
        Some(other) => {
            return Err(Response::error(
                None,
                code::BAD_REQUEST,
                format!("`id` must be a non-negative integer, not {other}"),
            ))
        }
    };
    let deadline = match object.remove("deadline_ms") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some_and(|ms| ms > 0) => {
            n.as_u64().map(std::time::Duration::from_millis)
        }
        Some(other) => {
            return Err(Response::error(
                id,
                code::BAD_REQUEST,
                format!("`deadline_ms` must be a positive integer, not {other}"),
            ))
        }
    };
    match object.remove("v") {
        None => {}
        Some(Value::Number(n)) if n.as_u64() == Some(u64::from(PROTOCOL_VERSION)) => {}
        Some(other) => {
            return Err(Response::error(
                id,
                code::UNSUPPORTED_VERSION,
                format!(
                "protocol version {other} is not supported; this daemon speaks {PROTOCOL_VERSION}"
            ),
            ))
        }
    }
    if !object.contains_key("cmd") {
        return Err(Response::error(
            id,
            code::BAD_REQUEST,
            format!("missing `cmd` (one of {})", Command::NAMES.join(", ")),
        ));
    }
    let cmd = match object.get("cmd") {
        Some(Value::String(cmd)) if Command::NAMES.contains(&cmd.as_str()) => {
            format!(" for `{cmd}`")
        }
        _ => String::new(),
    };
    let command = serde_json::from_value::<Command>(Value::Object(object))
        .map_err(|e| Response::error(id, code::BAD_REQUEST, format!("bad request{cmd}: {e}")))?;
    Ok(Parsed {
        id,
        deadline,
        command,
    })
}

/// The daemon's `log_file` in `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogFileStatus {
    pub path: String,
    /// Lines the file refused since the start (they went to stderr instead).
    pub lines_refused: u64,
    /// Why it refuses lines now; `None` while it takes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `status` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub uptime_s: u64,
    pub config: String,
    pub state_dir: String,
    pub socket: String,
    /// Nodes by state.
    pub running: usize,
    pub restarting: usize,
    pub stopped: usize,
    pub failed: usize,
    /// Supervisors that did not answer in time (busy starting or stopping children): their
    /// children are missing from the count.
    #[serde(default)]
    pub unresponsive: usize,
    /// No node is failed, restarting or unresponsive, and the store's writes succeed.
    pub healthy: bool,
    /// The store: what waits to be written, what was dropped, whether writes fail.
    pub store: metasystem_actors::store::StoreStats,
    /// Lines of log lost because the log writer or stderr did not keep up.
    #[serde(default)]
    pub log_lines_dropped: u64,
    /// `[daemon] log_file`, when set: the lines it refused (they went to stderr) and why it
    /// refuses them now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_file: Option<LogFileStatus>,
    /// The run before this one, from the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_run: Option<RunInfo>,
    /// Alert notifications stored and not yet accepted by their channel.
    #[serde(default)]
    pub alerts_undelivered: u64,
    /// The kinds' parts (`src/kinds/`, `ActorKind::status`): `sync`, `probes_failing`,
    /// `breakers_open`, `heartbeats`, ... each kind's keys, typed in its file.
    #[serde(flatten)]
    pub kinds: serde_json::Map<String, Value>,
}

/// A past run of the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub started: String,
    pub pid: i64,
    pub version: String,
    /// When it stopped in order; `None` if it ended without a clean shutdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// It stopped in order, with exit 0.
    pub clean: bool,
}

/// One node of `tree`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub path: String,
    pub name: String,
    pub depth: usize,
    pub kind: String,
    pub state: metasystem_actors::NodeState,
    pub restart: metasystem_actors::Restart,
    pub restarts: u64,
    pub incarnation: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<metasystem_actors::Strategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_in_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unresponsive: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeResult {
    pub nodes: Vec<Node>,
    /// Whether the tree is healthy (what `status` says of it, without the store): the
    /// daemon's one judgement, which the CLI's exit code follows.
    #[serde(default)]
    pub healthy: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The event's id: ids grow with time.
    pub id: i64,
    /// RFC 3339, UTC, milliseconds.
    pub at: String,
    pub at_ms: i64,
    pub path: String,
    pub kind: String,
    pub message: String,
    pub data: Value,
}

impl From<&metasystem_actors::store::EventRow> for Event {
    fn from(e: &metasystem_actors::store::EventRow) -> Self {
        Event {
            id: e.id,
            at: metasystem_actors::store::format_ms(e.at_ms),
            at_ms: e.at_ms,
            path: e.path.clone(),
            kind: e.kind.clone(),
            message: e.message.clone(),
            data: e.data.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsResult {
    pub events: Vec<Event>,
    /// On the first page: the newest event id when it was read. Events with a higher id were
    /// written after (what `events -f` follows from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_water: Option<i64>,
    /// More to read: ask again with these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<EventsCursor>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsCursor {
    /// Ask with `after` set to this.
    pub after: i64,
    /// And `limit` set to this.
    pub remaining: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub action: String,
    pub path: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why it did nothing, when that is fine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `call PATH` without an operation: what the actor's kind offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpsResult {
    pub path: String,
    pub kind: String,
    pub ops: Vec<OpInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpInfo {
    pub name: String,
    pub args: String,
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadResult {
    pub config: String,
    /// Nothing was applied: `changes` is the plan.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    pub changes: Vec<Change>,
    /// Things that will only take effect at the next start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One kill of a chaos run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChaosKill {
    /// 1 for the run's first kill.
    pub n: u64,
    pub path: String,
    /// When the kill was sent (RFC 3339, UTC, milliseconds).
    pub at: String,
    pub at_ms: i64,
    /// The incarnation killed.
    pub incarnation: u64,
    /// Running again this long after the kill (a new incarnation started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_after_ms: Option<f64>,
    /// Why it is reported as not recovered: not back within the bound (60 s), removed,
    /// not restarted, or the run ended before it came back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_recovered: Option<String>,
}

impl ChaosKill {
    /// Its recovery is still being measured.
    pub fn pending(&self) -> bool {
        self.recovered_after_ms.is_none() && self.not_recovered.is_none()
    }
}

/// A chaos run: while it runs, its progress; once ended, its report (also recorded as a
/// `chaos` event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChaosRun {
    /// Numbered from 1 since the daemon started.
    pub run: u64,
    pub path: String,
    pub seed: u64,
    pub every_min_ms: u64,
    pub every_max_ms: u64,
    pub for_ms: u64,
    pub started: String,
    pub started_ms: i64,
    /// running | ending (no more kills; recoveries still measured) | ended
    pub state: String,
    /// Why it stopped killing: duration | stopped | shutdown | kill_limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<i64>,
    /// Kills made (each one is a `chaos` event).
    pub kill_count: u64,
    pub recovered: u64,
    pub not_recovered: u64,
    /// Recoveries still being measured.
    pub pending: u64,
    /// Steps that killed nothing: nothing was running under PATH, or the chosen actor was
    /// already down when the kill reached it.
    pub skipped: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_recovery_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_recovery_ms: Option<f64>,
    /// The kills asked for (at most 1,000, oldest first): `kill_count` says how many there
    /// are in all.
    pub kills: Vec<ChaosKill>,
}

impl ChaosRun {
    pub fn ended(&self) -> bool {
        self.state == "ended"
    }
}

/// The answer to `chaos_status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChaosStatusResult {
    /// A run is going on (running or ending).
    pub running: bool,
    /// That run, else the last one since the daemon started; `None` if there was none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<ChaosRun>,
}

/// The answer to `chaos_stop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChaosStopResult {
    /// A run was going on and was told to stop (`false`: nothing was running).
    pub stopped: bool,
    /// The stopped run (its report once ended), else the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<ChaosRun>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (`fuzz/artifacts`): serde_json's default parser read a large integer
    /// 1 ULP off, so a request read, written and read again carried another number.
    #[test]
    fn numbers_in_a_request_read_back_the_same() {
        let line =
            r#"{"cmd":"call","path":"roQus","args":{"*cmd":"m=Trics","":15555555555555555555509}}"#;
        let Ok(parsed) = parse_request(line) else {
            panic!("{line} does not parse");
        };
        let again = serde_json::to_string(&Envelope {
            v: 1,
            id: 0,
            deadline_ms: None,
            command: parsed.command.clone(),
        })
        .unwrap_or_default();
        assert_eq!(parse_request(&again).map(|p| p.command), Ok(parsed.command));
    }

    #[test]
    fn requests_parse() {
        let parsed = |id, deadline: Option<u64>, command| Parsed {
            id,
            deadline: deadline.map(std::time::Duration::from_millis),
            command,
        };
        assert_eq!(
            parse_request(r#"{"id":1,"cmd":"status"}"#),
            Ok(parsed(
                Some(1),
                None,
                Command::Status(crate::control::request::Status {})
            ))
        );
        assert_eq!(
            parse_request(r#"{"v":1,"id":7,"cmd":"stop","path":"root/a"}"#),
            Ok(parsed(
                Some(7),
                None,
                Command::Stop(crate::control::request::Stop {
                    path: "root/a".into()
                })
            ))
        );
        assert_eq!(
            parse_request(r#"{"cmd":"events","since_s":60}"#),
            Ok(parsed(
                None,
                None,
                Command::Events(crate::control::request::Events {
                    since_s: Some(60),
                    path: None,
                    kind: None,
                    limit: None,
                    after: None
                })
            ))
        );
        let line = serde_json::to_string(&Envelope {
            v: 1,
            id: 3,
            deadline_ms: Some(500),
            command: Command::Kill(crate::control::request::Kill {
                path: "root/x".into(),
            }),
        })
        .unwrap_or_default();
        assert_eq!(
            parse_request(&line),
            Ok(parsed(
                Some(3),
                Some(500),
                Command::Kill(crate::control::request::Kill {
                    path: "root/x".into()
                })
            ))
        );
        assert_eq!(
            parse_request(r#"{"cmd":"retries","since_s":3600,"op":"alert:hook"}"#),
            Ok(parsed(
                None,
                None,
                Command::Retries(crate::control::request::Retries {
                    since_s: Some(3600),
                    op: Some("alert:hook".into())
                })
            ))
        );
        assert_eq!(
            parse_request(r#"{"cmd":"retries"}"#),
            Ok(parsed(
                None,
                None,
                Command::Retries(crate::control::request::Retries {
                    since_s: None,
                    op: None
                })
            ))
        );
        assert!(Command::Retries(crate::control::request::Retries {
            since_s: None,
            op: None
        })
        .is_read_only());
    }

    #[test]
    fn sync_operator_requests_parse() {
        let cmd = |line: &str| parse_request(line).map(|p| p.command);
        assert_eq!(
            cmd(r#"{"cmd":"conflicts"}"#),
            Ok(Command::Conflicts(crate::control::request::Conflicts {
                all: false,
                target: None
            }))
        );
        assert_eq!(
            cmd(r#"{"cmd":"conflict_resolve","path":"a.txt","keep":"both","target":"t"}"#),
            Ok(Command::ConflictResolve(
                crate::control::request::ConflictResolve {
                    path: "a.txt".into(),
                    target: Some("t".into()),
                    keep: metasystem_actors::sync::Keep::Both
                }
            ))
        );
        assert_eq!(
            cmd(r#"{"cmd":"verify"}"#),
            Ok(Command::Verify(crate::control::request::Verify {}))
        );
        assert_eq!(
            cmd(r#"{"cmd":"backup_restore","name":"a.txt-20260101-000000.bak"}"#),
            Ok(Command::BackupRestore(
                crate::control::request::BackupRestore {
                    name: "a.txt-20260101-000000.bak".into(),
                    target: None
                }
            ))
        );
        assert_eq!(
            cmd(r#"{"cmd":"backup_restore_run","run":"20261201-101500"}"#),
            Ok(Command::BackupRestoreRun(
                crate::control::request::BackupRestoreRun {
                    run: Some("20261201-101500".into()),
                    since_unix_ms: None,
                    target: None
                }
            ))
        );
        assert_eq!(
            cmd(r#"{"cmd":"backup_restore_run","since_unix_ms":1796119200000,"target":"t"}"#),
            Ok(Command::BackupRestoreRun(
                crate::control::request::BackupRestoreRun {
                    run: None,
                    since_unix_ms: Some(1_796_119_200_000),
                    target: Some("t".into())
                }
            ))
        );
        assert!(
            !Command::BackupRestoreRun(crate::control::request::BackupRestoreRun {
                run: None,
                since_unix_ms: None,
                target: None
            })
            .is_read_only()
        );
        // `allow_deletes` is optional and left out when absent.
        let sync = cmd(r#"{"cmd":"sync","target":"t","allow_deletes":12}"#);
        assert!(
            matches!(
                sync,
                Ok(Command::Sync(crate::control::request::Sync {
                    allow_deletes: Some(12),
                    ..
                }))
            ),
            "{sync:?}"
        );
        let plain = Command::Sync(crate::control::request::Sync {
            target: None,
            direction: None,
            strategy: None,
            dry_run: false,
            lock_wait_ms: None,
            allow_deletes: None,
        });
        let text = serde_json::to_string(&plain).unwrap_or_default();
        assert!(!text.contains("allow_deletes"), "{text}");
        assert!(cmd(r#"{"cmd":"conflict_resolve","path":"a.txt"}"#).is_err());
        assert!(Command::Verify(crate::control::request::Verify {}).is_read_only());
        assert!(Command::Backups(crate::control::request::Backups { target: None }).is_read_only());
        assert!(
            !Command::BackupRestore(crate::control::request::BackupRestore {
                name: String::new(),
                target: None
            })
            .is_read_only()
        );
        assert!(
            !Command::ConflictResolve(crate::control::request::ConflictResolve {
                path: String::new(),
                target: None,
                keep: metasystem_actors::sync::Keep::Local
            })
            .is_read_only()
        );
    }

    /// A status from a daemon before the `sync` field reads (as an empty list).
    #[test]
    fn an_old_status_without_sync_lines_reads() {
        let old = serde_json::json!({
            "version": "0.1.0", "pid": 1, "uptime_s": 2, "config": "c", "state_dir": "s",
            "socket": "k", "running": 1, "restarting": 0, "stopped": 0, "failed": 0,
            "healthy": true, "store": { "queued": 0, "inflight": 0, "durable_waiting": 0,
                "dropped": 0, "written": 0, "write_failures": 0 },
        });
        let s: Status = serde_json::from_value(old).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.kinds.is_empty());
    }

    fn error_of(line: &str) -> (Option<u64>, Code, String) {
        match parse_request(line) {
            Ok(ok) => panic!("{line} parsed as {ok:?}"),
            Err(r) => {
                let r = *r;
                let e = r.error.unwrap_or_else(|| panic!("no error body"));
                (r.id, e.code, e.message)
            }
        }
    }

    #[test]
    fn chaos_requests_parse() {
        let command = |line: &str| parse_request(line).map(|p| p.command);
        assert_eq!(
            command(r#"{"cmd":"chaos","for_ms":120000}"#),
            Ok(Command::Chaos(crate::control::request::Chaos {
                path: "root".into(),
                for_ms: 120_000,
                every_min_ms: None,
                every_max_ms: None,
                seed: None
            }))
        );
        assert_eq!(
            command(
                r#"{"cmd":"chaos","path":"root/grp","for_ms":1,"every_min_ms":200,"every_max_ms":1000,"seed":7}"#
            ),
            Ok(Command::Chaos(crate::control::request::Chaos {
                path: "root/grp".into(),
                for_ms: 1,
                every_min_ms: Some(200),
                every_max_ms: Some(1000),
                seed: Some(7)
            }))
        );
        assert_eq!(
            command(r#"{"cmd":"chaos_stop"}"#),
            Ok(Command::ChaosStop(crate::control::request::ChaosStop {}))
        );
        assert_eq!(
            command(r#"{"cmd":"chaos_status","from":3}"#),
            Ok(Command::ChaosStatus(crate::control::request::ChaosStatus {
                from: Some(3)
            }))
        );
        assert!(error_of(r#"{"cmd":"chaos"}"#).2.contains("for_ms"));
        assert!(error_of(r#"{"cmd":"chaos_stop","path":"root"}"#)
            .2
            .contains("path"));
    }

    #[test]
    fn bad_requests_are_explained() {
        let (id, code, msg) = error_of("{not json");
        assert_eq!((id, code), (None, code::BAD_REQUEST));
        assert!(msg.starts_with("malformed JSON"), "{msg}");
        assert_eq!(error_of("[1,2]").1, code::BAD_REQUEST);
        assert_eq!(
            error_of(r#"{"id":"x","cmd":"status"}"#).1,
            code::BAD_REQUEST
        );
        let (id, code, msg) = error_of(r#"{"id":4,"cmd":"frobnicate"}"#);
        assert_eq!((id, code), (Some(4), code::BAD_REQUEST));
        assert!(msg.contains("frobnicate"), "{msg}");
        let (_, _, msg) = error_of(r#"{"id":5,"cmd":"stop"}"#);
        assert!(msg.contains("path"), "{msg}");
        let (_, _, msg) = error_of(r#"{"id":6,"cmd":"status","extra":1}"#);
        assert!(msg.contains("extra"), "{msg}");
        assert_eq!(error_of(r#"{"id":8}"#).1, code::BAD_REQUEST);
        let (id, code, _) = error_of(r#"{"v":2,"id":9,"cmd":"status"}"#);
        assert_eq!((id, code), (Some(9), code::UNSUPPORTED_VERSION));
        assert_eq!(
            error_of(r#"{"id":1,"cmd":"status","deadline_ms":0}"#).1,
            code::BAD_REQUEST
        );
    }

    /// Regression (issue 21): a field given with its default value was refused as unknown
    /// (the check compared the keys with the command serialized again, which leaves defaults
    /// out). Unknown keys are still refused, with and without fields.
    #[test]
    fn fields_given_with_their_default_are_accepted() {
        let command = |line: &str| parse_request(line).map(|p| p.command);
        assert_eq!(
            command(r#"{"cmd":"reload","dry_run":false}"#),
            command(r#"{"cmd":"reload"}"#)
        );
        assert!(command(r#"{"cmd":"reload","dry_run":false}"#).is_ok());
        for line in [
            r#"{"cmd":"events","since_s":null}"#,
            r#"{"cmd":"events","since_s":null,"limit":null}"#,
            r#"{"cmd":"chaos_status","from":null}"#,
        ] {
            assert!(command(line).is_ok(), "{line}: {:?}", command(line));
        }
        let (_, code, msg) = error_of(r#"{"id":1,"cmd":"reload","dry_run":false,"bogus":1}"#);
        assert_eq!(code, code::BAD_REQUEST);
        assert!(msg.contains("bogus"), "{msg}");
        let (_, _, msg) = error_of(r#"{"id":1,"cmd":"tree","dry_run":false}"#);
        assert!(msg.contains("for `tree`: unknown field `dry_run`"), "{msg}");
    }

    /// States, restart types, strategies and statuses are enums inside and on the wire, with
    /// the names they had as strings (issue 21): clients see the same JSON.
    #[test]
    fn enums_on_the_wire_keep_their_names() {
        use metasystem_actors::breakers::StateName;
        use metasystem_actors::probes::actor::ProbeStatus;
        use metasystem_actors::{NodeState, Restart, Strategy};
        let name = |v: Value| v.as_str().unwrap_or("").to_string();
        for (state, wire) in [
            (NodeState::Starting, "starting"),
            (NodeState::Running, "running"),
            (NodeState::Restarting, "restarting"),
            (NodeState::Stopped, "stopped"),
            (NodeState::Failed, "failed"),
        ] {
            assert_eq!(name(serde_json::json!(state)), wire);
            assert_eq!(state.as_str(), wire);
        }
        for (restart, wire) in [
            (Restart::Permanent, "permanent"),
            (Restart::Transient, "transient"),
            (Restart::Temporary, "temporary"),
        ] {
            assert_eq!(name(serde_json::json!(restart)), wire);
        }
        for strategy in [
            Strategy::OneForOne,
            Strategy::OneForAll,
            Strategy::RestForOne,
            Strategy::Dynamic,
        ] {
            assert_eq!(name(serde_json::json!(strategy)), strategy.as_str());
        }
        for state in [
            StateName::Closed,
            StateName::Open,
            StateName::HalfOpen,
            StateName::ForcedOpen,
            StateName::Disabled,
        ] {
            assert_eq!(name(serde_json::json!(state)), state.as_str());
        }
        for status in [
            ProbeStatus::Pass,
            ProbeStatus::Pending,
            ProbeStatus::Warn,
            ProbeStatus::Fail,
        ] {
            let wire = serde_json::json!(status);
            assert_eq!(name(wire.clone()), status.as_str());
            assert_eq!(
                serde_json::from_value::<ProbeStatus>(wire).ok(),
                Some(status)
            );
        }
        let keep: crate::control::request::ConflictResolve =
            serde_json::from_value(serde_json::json!({"path": "a", "keep": "remote"})).unwrap();
        assert_eq!(keep.keep, metasystem_actors::sync::Keep::Remote);
        assert!(parse_request(r#"{"cmd":"conflict_resolve","path":"a","keep":"mine"}"#).is_err());
    }

    /// Error codes are an enum on the wire as they were strings: the same snake_case names;
    /// one a client does not know reads as `other`.
    #[test]
    fn error_codes_keep_their_wire_names() {
        let all = [
            Code::BadRequest,
            Code::LineTooLong,
            Code::UnsupportedVersion,
            Code::TooManyConnections,
            Code::Forbidden,
            Code::InvalidPath,
            Code::NotFound,
            Code::NotRunning,
            Code::AlreadyRunning,
            Code::AlreadyStopped,
            Code::AlreadyExists,
            Code::NotASupervisor,
            Code::Root,
            Code::StartFailed,
            Code::InvalidConfig,
            Code::Unavailable,
            Code::Timeout,
            Code::TooManyStreams,
            Code::Evicted,
            Code::Internal,
            Code::Refused,
            Code::Offline,
            Code::Busy,
            Code::IoError,
        ];
        for c in all {
            let wire = serde_json::to_value(c).unwrap();
            assert_eq!(wire, serde_json::json!(c.as_str()));
            assert_eq!(serde_json::from_value::<Code>(wire).unwrap(), c);
        }
        assert_eq!(code::NOT_A_SUPERVISOR.as_str(), "not_a_supervisor");
        assert_eq!(
            serde_json::from_str::<Code>("\"from_the_future\"").unwrap(),
            Code::Other
        );
        let r = Response::error(Some(1), code::REFUSED, "no");
        assert!(
            r.to_line().contains("\"code\":\"refused\""),
            "{}",
            r.to_line()
        );
    }

    /// Regression: `{"cmd":"status","cmd":"shutdown"}` shut a daemon down (the last key won).
    #[test]
    fn duplicate_keys_are_refused() {
        let (id, code, msg) = error_of(r#"{"id":3,"cmd":"status","cmd":"shutdown"}"#);
        assert_eq!((id, code), (Some(3), code::BAD_REQUEST));
        assert!(msg.contains("duplicate key `cmd`"), "{msg}");
        let (_, _, msg) =
            error_of(r#"{"cmd":"call","path":"root/a","op":"x","args":{"n":1,"n":2}}"#);
        assert!(msg.contains("duplicate key `n`"), "{msg}");
        assert!(parse_request(
            r#"{"cmd":"call","path":"root/a","op":"x","args":{"a":{"n":1},"b":{"n":2}}}"#
        )
        .is_ok());
    }
}
