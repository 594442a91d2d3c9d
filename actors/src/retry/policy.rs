//! The retry schedule and error classification. Pure: no clock, no randomness of its own (the
//! caller passes a uniform sample), no I/O.
//!
//! **Schedule.** AWS's "full jitter": the wait after attempt `n` (0-based) failed is uniform in
//! `[0, min(max, initial × factor^n)]`. Jitter spreads the retries of many callers that failed
//! together; the exponential keeps a long outage from being hammered.
//!
//! **Classification.** An error is [`ErrorKind::Transient`] when trying again later can succeed
//! (timeouts, refused or reset connections, busy databases, 5xx, 429) and
//! [`ErrorKind::Permanent`] when it cannot until someone acts (full disk, permissions, missing
//! files, corrupt databases, 4xx). Its label is a short stable class (`timeout`, `disk_full`,
//! `http_503`) that statistics group by and that is stored, so labels never change meaning.
//! Errors nobody can place are transient when they come from the environment (an unknown I/O
//! error: retrying a bounded number of times is cheap) and permanent when they are a program's
//! mistake (a decode error, a misused API: retrying repeats it).

use std::borrow::Cow;
use std::io;
use std::time::Duration;

/// How retries are scheduled. `Default`: 1 s, 5 min, ×2, 5 attempts, not adaptive (adaptive
/// bounds 100 ms..10 min).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RetryPolicy {
    /// The upper bound of the first wait (after attempt 0 failed). Replaced by the adaptive
    /// value when the caller passes one to [`super::retry()`].
    pub initial: Duration,
    /// The cap on any wait's upper bound.
    pub max: Duration,
    /// Growth per attempt. Values below 1 (and NaN) are treated as 1: the bound never shrinks.
    pub factor: f64,
    /// Calls to the operation in one run, the first included. 0 is treated as 1.
    pub max_attempts: u32,
    /// Start from the operation's measured recovery time ([`super::adaptive_initial`]) instead
    /// of `initial`.
    pub adaptive: bool,
    /// Bounds of the adaptive initial delay.
    pub adaptive_min: Duration,
    pub adaptive_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(5 * 60),
            factor: 2.0,
            max_attempts: 5,
            adaptive: false,
            adaptive_min: Duration::from_millis(100),
            adaptive_max: Duration::from_secs(10 * 60),
        }
    }
}

impl RetryPolicy {
    /// The upper bound of the wait after attempt `attempt` (0-based) failed, before jitter:
    /// `min(max, initial × factor^attempt)`. Saturates at `max` (overflow, infinite factor);
    /// never panics.
    pub fn nominal(&self, attempt: u32, initial: Duration) -> Duration {
        let cap = self.max;
        let factor = if self.factor >= 1.0 { self.factor } else { 1.0 }; // NaN → 1
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
        let secs = initial.as_secs_f64() * factor.powi(exponent);
        if !secs.is_finite() || secs >= cap.as_secs_f64() {
            return cap;
        }
        match Duration::try_from_secs_f64(secs) {
            Ok(d) => d.min(cap),
            Err(_) => cap,
        }
    }

    /// The wait after attempt `attempt` (0-based) failed, with full jitter: uniform in
    /// `[0, nominal(attempt, initial)]` given `rand01`, a uniform sample in `[0, 1)` (clamped
    /// to `[0, 1]`; NaN counts as 1, the longest wait, so a broken source never hammers).
    /// `initial` is the policy's own or the adaptive one.
    pub fn delay(&self, attempt: u32, initial: Duration, rand01: f64) -> Duration {
        let r = if rand01.is_nan() {
            1.0
        } else {
            rand01.clamp(0.0, 1.0)
        };
        scale(self.nominal(attempt, initial), r)
    }

    /// `max_attempts`, at least 1.
    pub fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }

    /// The bounds of an adaptive initial delay: `adaptive_min..=min(adaptive_max, max)` (an
    /// initial above the cap would be capped by [`RetryPolicy::nominal`] anyway; a min above
    /// the upper bound counts as the upper bound).
    pub fn adaptive_bounds(&self) -> (Duration, Duration) {
        let hi = self.adaptive_max.min(self.max);
        (self.adaptive_min.min(hi), hi)
    }

    /// `d` within [`RetryPolicy::adaptive_bounds`].
    pub fn clamp_adaptive(&self, d: Duration) -> Duration {
        let (lo, hi) = self.adaptive_bounds();
        d.max(lo).min(hi)
    }
}

/// `d × r` for `r` in `[0, 1]`, never above `d`, never panicking (`Duration::mul_f64` panics
/// when `d` is near `Duration::MAX`).
fn scale(d: Duration, r: f64) -> Duration {
    match Duration::try_from_secs_f64(d.as_secs_f64() * r) {
        Ok(scaled) => scaled.min(d),
        Err(_) => d,
    }
}

/// Whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Trying again later can succeed.
    Transient,
    /// It cannot until someone acts: [`super::retry()`] stops at once.
    Permanent,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Transient => "transient",
            ErrorKind::Permanent => "permanent",
        }
    }
}

/// What [`super::retry()`] needs to know of an error.
pub trait Classify {
    fn kind(&self) -> ErrorKind;
    /// A short stable class of the error, e.g. `timeout`, `connection_refused`, `http_503`,
    /// `disk_full`: statistics group by it and it is stored, so it never carries variable
    /// text (paths, messages).
    fn label(&self) -> String;
}

impl<C: Classify + ?Sized> Classify for &C {
    fn kind(&self) -> ErrorKind {
        (**self).kind()
    }
    fn label(&self) -> String {
        (**self).label()
    }
}

impl<C: Classify + ?Sized> Classify for Box<C> {
    fn kind(&self) -> ErrorKind {
        (**self).kind()
    }
    fn label(&self) -> String {
        (**self).label()
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// An HTTP status as an error: 408, 425, 429 and 5xx are transient, everything else (the other
/// 4xx, and any status that is not an error but was treated as one) permanent.
pub fn classify_http(status: u16) -> ErrorKind {
    match status {
        408 | 425 | 429 | 500..=599 => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    }
}

/// An HTTP error answer, for operations whose error is just the status. Label `http_<status>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HttpStatus(pub u16);

impl Classify for HttpStatus {
    fn kind(&self) -> ErrorKind {
        classify_http(self.0)
    }
    fn label(&self) -> String {
        format!("http_{}", self.0)
    }
}

impl std::fmt::Display for HttpStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.0)
    }
}

impl std::error::Error for HttpStatus {}

/// reqwest's errors: a status by [`classify_http`]; timeouts, failed connections and requests,
/// and broken bodies transient; builder, redirect-policy and decode errors permanent (the
/// request or the answer is wrong, not the moment).
impl Classify for reqwest::Error {
    fn kind(&self) -> ErrorKind {
        reqwest_class(self).1
    }
    fn label(&self) -> String {
        reqwest_class(self).0.into_owned()
    }
}

fn reqwest_class(e: &reqwest::Error) -> (Cow<'static, str>, ErrorKind) {
    use ErrorKind::{Permanent, Transient};
    if let Some(status) = e.status() {
        let status = status.as_u16();
        return (format!("http_{status}").into(), classify_http(status));
    }
    if e.is_timeout() {
        ("timeout".into(), Transient)
    } else if e.is_builder() {
        ("http_builder".into(), Permanent)
    } else if e.is_redirect() {
        ("http_redirect".into(), Permanent)
    } else if e.is_decode() {
        ("http_decode".into(), Permanent)
    } else if e.is_connect() {
        ("connect".into(), Transient)
    } else if e.is_body() {
        ("http_body".into(), Transient)
    } else if e.is_request() {
        ("http_request".into(), Transient)
    } else {
        ("http_other".into(), Transient)
    }
}

// ---------------------------------------------------------------------------------------------
// I/O

/// The raw OS errors classified before the error's kind (the same numbers on Linux, the BSDs
/// and macOS, except `EDQUOT`).
#[cfg(unix)]
mod errno {
    pub const EPERM: i32 = 1;
    pub const ENOENT: i32 = 2;
    pub const EIO: i32 = 5;
    pub const EACCES: i32 = 13;
    pub const ENFILE: i32 = 23;
    pub const EMFILE: i32 = 24;
    pub const ENOSPC: i32 = 28;
    pub const EROFS: i32 = 30;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub const EDQUOT: i32 = 122;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub const EDQUOT: i32 = 69;
}

/// I/O errors: first by raw OS error (`ENOSPC`, `EDQUOT`, `EACCES`, `EPERM`, `EROFS`, `ENOENT`
/// permanent; `EMFILE`, `ENFILE`, `EIO` transient), then by kind (timeouts, refused, reset or
/// aborted connections, interruptions, would-block, unreachable networks, busy resources
/// transient; full storage, quotas, permissions, read-only file systems, missing files,
/// invalid input or data, unsupported operations permanent). Unknown kinds are transient,
/// labelled `os_error_<n>` when the OS gave a number, `io_other` otherwise.
impl Classify for io::Error {
    fn kind(&self) -> ErrorKind {
        io_class(self).1
    }
    fn label(&self) -> String {
        io_class(self).0.into_owned()
    }
}

fn io_class(e: &io::Error) -> (Cow<'static, str>, ErrorKind) {
    if let Some(class) = e.raw_os_error().and_then(errno_class) {
        return (class.0.into(), class.1);
    }
    if let Some(class) = io_kind_class(e.kind()) {
        return (class.0.into(), class.1);
    }
    match e.raw_os_error() {
        Some(n) => (format!("os_error_{n}").into(), ErrorKind::Transient),
        None => ("io_other".into(), ErrorKind::Transient),
    }
}

#[cfg(unix)]
fn errno_class(n: i32) -> Option<(&'static str, ErrorKind)> {
    use errno::*;
    use ErrorKind::{Permanent, Transient};
    Some(match n {
        ENOSPC => ("disk_full", Permanent),
        EDQUOT => ("quota_exceeded", Permanent),
        EACCES | EPERM => ("permission_denied", Permanent),
        EROFS => ("read_only_fs", Permanent),
        ENOENT => ("not_found", Permanent),
        EMFILE | ENFILE => ("too_many_open_files", Transient),
        EIO => ("io_error", Transient),
        _ => return None,
    })
}

#[cfg(not(unix))]
fn errno_class(_n: i32) -> Option<(&'static str, ErrorKind)> {
    None
}

fn io_kind_class(kind: io::ErrorKind) -> Option<(&'static str, ErrorKind)> {
    use io::ErrorKind as K;
    use ErrorKind::{Permanent, Transient};
    Some(match kind {
        K::TimedOut => ("timeout", Transient),
        K::ConnectionRefused => ("connection_refused", Transient),
        K::ConnectionReset => ("connection_reset", Transient),
        K::ConnectionAborted => ("connection_aborted", Transient),
        K::NotConnected => ("not_connected", Transient),
        K::BrokenPipe => ("broken_pipe", Transient),
        K::Interrupted => ("interrupted", Transient),
        K::WouldBlock => ("would_block", Transient),
        K::UnexpectedEof => ("unexpected_eof", Transient),
        K::WriteZero => ("write_zero", Transient),
        K::AddrInUse => ("addr_in_use", Transient),
        K::AddrNotAvailable => ("addr_not_available", Transient),
        K::HostUnreachable => ("host_unreachable", Transient),
        K::NetworkUnreachable => ("network_unreachable", Transient),
        K::NetworkDown => ("network_down", Transient),
        K::ResourceBusy => ("resource_busy", Transient),
        K::ExecutableFileBusy => ("resource_busy", Transient),
        K::Deadlock => ("deadlock", Transient),
        K::StaleNetworkFileHandle => ("stale_file_handle", Transient),
        K::OutOfMemory => ("out_of_memory", Transient),
        K::StorageFull => ("disk_full", Permanent),
        K::QuotaExceeded => ("quota_exceeded", Permanent),
        K::PermissionDenied => ("permission_denied", Permanent),
        K::ReadOnlyFilesystem => ("read_only_fs", Permanent),
        K::NotFound => ("not_found", Permanent),
        K::AlreadyExists => ("already_exists", Permanent),
        K::InvalidInput => ("invalid_input", Permanent),
        K::InvalidData => ("invalid_data", Permanent),
        K::Unsupported => ("unsupported", Permanent),
        K::IsADirectory => ("is_a_directory", Permanent),
        K::NotADirectory => ("not_a_directory", Permanent),
        K::DirectoryNotEmpty => ("directory_not_empty", Permanent),
        K::FileTooLarge => ("file_too_large", Permanent),
        K::TooManyLinks => ("too_many_links", Permanent),
        K::ArgumentListTooLong => ("argument_list_too_long", Permanent),
        K::NotSeekable => ("not_seekable", Permanent),
        K::CrossesDevices => ("crosses_devices", Permanent),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// sqlx

/// sqlx's errors. From the database: SQLite's busy, locked, I/O, out-of-memory, interrupt,
/// abort, schema-changed and lock-protocol codes transient; full disk (`disk_full`),
/// constraints (`unique_violation`, ..., `constraint`), corruption (`sqlite_corrupt`), not a
/// database (`not_a_database`), read-only, can't-open, permission and SQL errors permanent.
/// Other databases (SQLSTATE codes): connection (08), transaction rollback (40: serialization
/// failures, deadlocks), insufficient resources (53) and "cannot connect now" (57P03)
/// transient, everything else permanent. Around the database: an I/O error as
/// [`io::Error`]'s classification, a pool timeout and a crashed worker transient, a closed
/// pool, protocol, configuration, decode and row/column errors permanent.
impl Classify for sqlx::Error {
    fn kind(&self) -> ErrorKind {
        sqlx_class(self).1
    }
    fn label(&self) -> String {
        sqlx_class(self).0.into_owned()
    }
}

fn sqlx_class(e: &sqlx::Error) -> (Cow<'static, str>, ErrorKind) {
    use sqlx::Error as E;
    use ErrorKind::{Permanent, Transient};
    let (label, kind): (&'static str, ErrorKind) = match e {
        E::Database(db) => return database_class(db.as_ref()),
        E::Io(io) => return io_class(io),
        E::PoolTimedOut => ("pool_timeout", Transient),
        E::WorkerCrashed => ("worker_crashed", Transient),
        E::BeginFailed => ("begin_failed", Transient),
        E::PoolClosed => ("pool_closed", Permanent),
        E::Tls(_) => ("tls", Permanent),
        E::Protocol(_) => ("protocol", Permanent),
        E::Configuration(_) => ("configuration", Permanent),
        E::InvalidArgument(_) => ("invalid_argument", Permanent),
        E::RowNotFound => ("row_not_found", Permanent),
        E::TypeNotFound { .. } => ("type_not_found", Permanent),
        E::ColumnIndexOutOfBounds { .. } | E::ColumnNotFound(_) => ("column_not_found", Permanent),
        E::ColumnDecode { .. } | E::Decode(_) => ("decode", Permanent),
        E::Encode(_) => ("encode", Permanent),
        E::Migrate(_) => ("migrate", Permanent),
        _ => ("sqlx_other", Permanent),
    };
    (label.into(), kind)
}

/// SQLite result codes (the primary code is the low byte of the extended one).
mod sqlite {
    pub const ERROR: i64 = 1;
    pub const PERM: i64 = 3;
    pub const ABORT: i64 = 4;
    pub const BUSY: i64 = 5;
    pub const LOCKED: i64 = 6;
    pub const NOMEM: i64 = 7;
    pub const READONLY: i64 = 8;
    pub const INTERRUPT: i64 = 9;
    pub const IOERR: i64 = 10;
    pub const CORRUPT: i64 = 11;
    pub const FULL: i64 = 13;
    pub const CANTOPEN: i64 = 14;
    pub const PROTOCOL: i64 = 15;
    pub const SCHEMA: i64 = 17;
    pub const TOOBIG: i64 = 18;
    pub const CONSTRAINT: i64 = 19;
    pub const MISMATCH: i64 = 20;
    pub const MISUSE: i64 = 21;
    pub const AUTH: i64 = 23;
    pub const RANGE: i64 = 25;
    pub const NOTADB: i64 = 26;
}

fn database_class(db: &dyn sqlx::error::DatabaseError) -> (Cow<'static, str>, ErrorKind) {
    use ErrorKind::{Permanent, Transient};
    let constraint = || -> &'static str {
        match db.kind() {
            sqlx::error::ErrorKind::UniqueViolation => "unique_violation",
            sqlx::error::ErrorKind::ForeignKeyViolation => "foreign_key_violation",
            sqlx::error::ErrorKind::NotNullViolation => "not_null_violation",
            sqlx::error::ErrorKind::CheckViolation => "check_violation",
            _ => "constraint",
        }
    };
    let Some(code) = db.code() else {
        return ("db_error".into(), Permanent);
    };
    // SQLite: the extended result code in decimal (at most 4 digits; a SQLSTATE is 5
    // characters, possibly all digits: "40001").
    let sqlite = db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() || code.len() < 5;
    if let Some(extended) = code.parse::<i64>().ok().filter(|_| sqlite) {
        use sqlite::*;
        let (label, kind) = match extended & 0xff {
            BUSY => ("sqlite_busy", Transient),
            LOCKED => ("sqlite_locked", Transient),
            IOERR => ("sqlite_ioerr", Transient),
            NOMEM => ("out_of_memory", Transient),
            INTERRUPT => ("sqlite_interrupt", Transient),
            ABORT => ("sqlite_abort", Transient),
            SCHEMA => ("sqlite_schema", Transient),
            PROTOCOL => ("sqlite_protocol", Transient),
            FULL => ("disk_full", Permanent),
            CONSTRAINT => (constraint(), Permanent),
            CORRUPT => ("sqlite_corrupt", Permanent),
            NOTADB => ("not_a_database", Permanent),
            READONLY => ("read_only_db", Permanent),
            CANTOPEN => ("sqlite_cantopen", Permanent),
            PERM | AUTH => ("permission_denied", Permanent),
            ERROR => ("sqlite_error", Permanent),
            TOOBIG => ("sqlite_toobig", Permanent),
            MISMATCH => ("sqlite_mismatch", Permanent),
            MISUSE => ("sqlite_misuse", Permanent),
            RANGE => ("sqlite_range", Permanent),
            primary => return (format!("sqlite_{primary}").into(), Permanent),
        };
        return (label.into(), kind);
    }
    // SQLSTATE (Postgres, MySQL): the class is the first two characters.
    let class = code.get(..2).unwrap_or("");
    match class {
        "08" => ("db_connection".into(), Transient),
        "40" => ("db_serialization".into(), Transient),
        "53" => ("db_resources".into(), Transient),
        "57" if code == "57P03" => ("db_unavailable".into(), Transient),
        "23" => (constraint().into(), Permanent),
        _ => {
            // Only characters a label may hold: a SQLSTATE is 5 alphanumerics, but any
            // driver may send anything.
            let clean: String = code
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .take(8)
                .collect();
            (
                format!("db_{}", clean.to_ascii_lowercase()).into(),
                Permanent,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const S: Duration = Duration::from_secs(1);

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    #[test]
    fn default_is_as_documented() {
        let p = policy();
        assert_eq!(p.initial, S);
        assert_eq!(p.max, 300 * S);
        assert_eq!(p.factor, 2.0);
        assert_eq!(p.max_attempts, 5);
        assert!(!p.adaptive);
        assert_eq!(p.adaptive_min, 100 * MS);
        assert_eq!(p.adaptive_max, 600 * S);
    }

    #[test]
    fn nominal_grows_by_factor_then_caps() {
        let p = RetryPolicy {
            max: 10 * S,
            ..policy()
        };
        let got: Vec<_> = (0..7).map(|n| p.nominal(n, S)).collect();
        assert_eq!(got, [1, 2, 4, 8, 10, 10, 10].map(|s| s * S).to_vec());
        // Another initial (the adaptive one) scales the same schedule.
        assert_eq!(p.nominal(1, 300 * MS), 600 * MS);
    }

    #[test]
    fn full_jitter_stays_within_zero_and_the_nominal() {
        let p = policy();
        for attempt in 0..12 {
            let top = p.nominal(attempt, S);
            assert_eq!(p.delay(attempt, S, 0.0), Duration::ZERO);
            assert_eq!(p.delay(attempt, S, 1.0), top);
            let mid = p.delay(attempt, S, 0.5);
            assert!(
                mid <= top && mid + MS >= top / 2,
                "{attempt}: {mid:?} of {top:?}"
            );
            for i in 0..100 {
                let d = p.delay(attempt, S, f64::from(i) / 100.0);
                assert!(d <= top);
            }
        }
        // Out-of-range samples are clamped; NaN is the longest wait.
        assert_eq!(p.delay(2, S, -3.0), Duration::ZERO);
        assert_eq!(p.delay(2, S, 7.0), 4 * S);
        assert_eq!(p.delay(2, S, f64::NAN), 4 * S);
    }

    #[test]
    fn jitter_is_uniform_enough() {
        // The mean of many samples is about half the bound.
        let p = policy();
        let mut rng = fastrand::Rng::with_seed(7);
        let n = 10_000;
        let total: f64 = (0..n).map(|_| p.delay(3, S, rng.f64()).as_secs_f64()).sum();
        let mean = total / f64::from(n);
        assert!((mean - 4.0).abs() < 0.15, "mean {mean}");
    }

    #[test]
    fn huge_attempts_and_factors_saturate() {
        let p = policy();
        assert_eq!(p.delay(u32::MAX, S, 1.0), p.max);
        assert_eq!(p.delay(5000, S, 0.5), p.max / 2);
        for factor in [1e300, f64::INFINITY, f64::MAX] {
            let p = RetryPolicy { factor, ..policy() };
            assert_eq!(p.delay(3, S, 1.0), p.max, "factor {factor}");
            assert_eq!(
                p.delay(0, S, 1.0),
                S,
                "attempt 0 is initial whatever the factor"
            );
        }
        // Bad factors never shrink the bound.
        for factor in [f64::NAN, 0.5, -2.0, f64::NEG_INFINITY] {
            let p = RetryPolicy { factor, ..policy() };
            assert_eq!(p.delay(6, S, 1.0), S, "factor {factor}");
        }
        // Extreme durations do not panic.
        let p = RetryPolicy {
            max: Duration::MAX,
            ..policy()
        };
        assert_eq!(p.delay(u32::MAX, S, 1.0), Duration::MAX);
        assert!(p.delay(u32::MAX, S, 0.999) <= Duration::MAX);
        assert!(p.delay(10, Duration::MAX, 0.5) <= Duration::MAX);
        // A cap below initial is the cap; zero initial never waits.
        let p = RetryPolicy {
            max: 100 * MS,
            ..policy()
        };
        assert_eq!(p.delay(0, S, 1.0), 100 * MS);
        assert_eq!(policy().delay(4, Duration::ZERO, 1.0), Duration::ZERO);
    }

    #[test]
    fn attempts_and_adaptive_clamp() {
        let p = RetryPolicy {
            max_attempts: 0,
            ..policy()
        };
        assert_eq!(p.attempts(), 1);
        let p = policy();
        assert_eq!(p.clamp_adaptive(MS), 100 * MS);
        assert_eq!(p.clamp_adaptive(3 * S), 3 * S);
        assert_eq!(
            p.clamp_adaptive(3600 * S),
            300 * S,
            "the cap, below adaptive_max"
        );
        let wide = RetryPolicy {
            max: 3600 * S,
            ..policy()
        };
        assert_eq!(wide.clamp_adaptive(3600 * S), 600 * S);
        let inverted = RetryPolicy {
            adaptive_min: 10 * S,
            adaptive_max: S,
            ..policy()
        };
        assert_eq!(inverted.clamp_adaptive(5 * S), S, "no panic, the max wins");
    }

    fn io(e: io::Error) -> (String, ErrorKind) {
        (e.label(), Classify::kind(&e))
    }

    #[test]
    #[cfg(unix)]
    fn io_errors_by_raw_os_error() {
        use ErrorKind::{Permanent, Transient};
        let cases = [
            (errno::ENOSPC, "disk_full", Permanent),
            (errno::EDQUOT, "quota_exceeded", Permanent),
            (errno::EACCES, "permission_denied", Permanent),
            (errno::EPERM, "permission_denied", Permanent),
            (errno::EROFS, "read_only_fs", Permanent),
            (errno::ENOENT, "not_found", Permanent),
            (errno::EMFILE, "too_many_open_files", Transient),
            (errno::EIO, "io_error", Transient),
        ];
        for (n, label, kind) in cases {
            assert_eq!(
                io(io::Error::from_raw_os_error(n)),
                (label.to_string(), kind),
                "errno {n}"
            );
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn io_errors_by_linux_errno_through_their_kind() {
        use ErrorKind::Transient;
        // ETIMEDOUT, ECONNREFUSED, ECONNRESET, EINTR, EAGAIN, EHOSTUNREACH, EPIPE.
        let cases = [
            (110, "timeout"),
            (111, "connection_refused"),
            (104, "connection_reset"),
            (4, "interrupted"),
            (11, "would_block"),
            (113, "host_unreachable"),
            (32, "broken_pipe"),
        ];
        for (n, label) in cases {
            assert_eq!(
                io(io::Error::from_raw_os_error(n)),
                (label.to_string(), Transient),
                "errno {n}"
            );
        }
        // An errno nobody placed: transient, labelled by its number.
        assert_eq!(
            io(io::Error::from_raw_os_error(75)),
            ("os_error_75".to_string(), Transient)
        );
    }

    #[test]
    fn io_errors_by_kind() {
        use io::ErrorKind as K;
        use ErrorKind::{Permanent, Transient};
        let cases = [
            (K::TimedOut, "timeout", Transient),
            (K::ConnectionRefused, "connection_refused", Transient),
            (K::ConnectionReset, "connection_reset", Transient),
            (K::Interrupted, "interrupted", Transient),
            (K::WouldBlock, "would_block", Transient),
            (K::StorageFull, "disk_full", Permanent),
            (K::PermissionDenied, "permission_denied", Permanent),
            (K::ReadOnlyFilesystem, "read_only_fs", Permanent),
            (K::NotFound, "not_found", Permanent),
            (K::InvalidData, "invalid_data", Permanent),
            (K::Other, "io_other", Transient),
        ];
        for (k, label, kind) in cases {
            assert_eq!(
                io(io::Error::new(k, "boom /some/path")),
                (label.to_string(), kind),
                "{k:?}"
            );
            assert_eq!(io(io::Error::from(k)), (label.to_string(), kind), "{k:?}");
        }
    }

    #[test]
    fn http_statuses() {
        use ErrorKind::{Permanent, Transient};
        for s in [408, 425, 429, 500, 502, 503, 504, 599] {
            assert_eq!(classify_http(s), Transient, "{s}");
        }
        for s in [
            400, 401, 403, 404, 409, 410, 413, 422, 499, 200, 302, 600, 0,
        ] {
            assert_eq!(classify_http(s), Permanent, "{s}");
        }
        assert_eq!(HttpStatus(503).label(), "http_503");
        assert_eq!(HttpStatus(503).kind(), Transient);
        assert_eq!(HttpStatus(404).kind(), Permanent);
        fn kind_of<C: Classify>(c: C) -> ErrorKind {
            c.kind()
        }
        let status = HttpStatus(429);
        let by_ref: &HttpStatus = &status;
        assert_eq!(kind_of(by_ref), Transient, "through a reference");
        assert_eq!(
            kind_of(Box::new(HttpStatus(404))),
            Permanent,
            "through a box"
        );
    }

    /// A database error with a given code, as a driver would report it.
    #[derive(Debug)]
    struct FakeDb(&'static str, sqlx::error::ErrorKind);

    impl std::fmt::Display for FakeDb {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "fake {}", self.0)
        }
    }
    impl std::error::Error for FakeDb {}
    impl sqlx::error::DatabaseError for FakeDb {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            match self.1 {
                sqlx::error::ErrorKind::UniqueViolation => sqlx::error::ErrorKind::UniqueViolation,
                _ => sqlx::error::ErrorKind::Other,
            }
        }
    }

    fn db(code: &'static str) -> sqlx::Error {
        sqlx::Error::Database(Box::new(FakeDb(code, sqlx::error::ErrorKind::Other)))
    }

    #[test]
    fn sqlx_errors() {
        use ErrorKind::{Permanent, Transient};
        let cases = [
            (db("5"), "sqlite_busy", Transient),
            (db("517"), "sqlite_busy", Transient), // SQLITE_BUSY_SNAPSHOT
            (db("6"), "sqlite_locked", Transient),
            (db("3338"), "sqlite_ioerr", Transient), // SQLITE_IOERR_FSYNC
            (db("13"), "disk_full", Permanent),
            (db("11"), "sqlite_corrupt", Permanent),
            (db("26"), "not_a_database", Permanent),
            (db("1299"), "constraint", Permanent), // NOTNULL, kind not reported here
            (db("40001"), "db_serialization", Transient),
            (db("08006"), "db_connection", Transient),
            (db("42P01"), "db_42p01", Permanent),
            (
                sqlx::Error::Io(io::Error::from(io::ErrorKind::ConnectionReset)),
                "connection_reset",
                Transient,
            ),
            (
                sqlx::Error::Io(io::Error::from(io::ErrorKind::StorageFull)),
                "disk_full",
                Permanent,
            ),
            (sqlx::Error::PoolTimedOut, "pool_timeout", Transient),
            (sqlx::Error::PoolClosed, "pool_closed", Permanent),
            (sqlx::Error::RowNotFound, "row_not_found", Permanent),
            (sqlx::Error::Protocol("x".into()), "protocol", Permanent),
        ];
        for (e, label, kind) in cases {
            assert_eq!(
                (e.label(), Classify::kind(&e)),
                (label.to_string(), kind),
                "{e}"
            );
        }
        let unique = sqlx::Error::Database(Box::new(FakeDb(
            "2067",
            sqlx::error::ErrorKind::UniqueViolation,
        )));
        assert_eq!(unique.label(), "unique_violation");
        assert_eq!(Classify::kind(&unique), Permanent);
    }

    #[tokio::test]
    async fn real_sqlite_errors() {
        use sqlx::Connection;
        use std::str::FromStr;
        let options = sqlx::sqlite::SqliteConnectOptions::from_str("sqlite::memory:").unwrap();
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t VALUES (1, 'a')")
            .execute(&mut conn)
            .await
            .unwrap();
        let dup = sqlx::query("INSERT INTO t VALUES (1, 'b')")
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert_eq!(dup.label(), "unique_violation");
        assert_eq!(Classify::kind(&dup), ErrorKind::Permanent);
        let null = sqlx::query("INSERT INTO t VALUES (2, NULL)")
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert_eq!(null.label(), "not_null_violation");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage.db");
        std::fs::write(&path, vec![0x5au8; 8192]).unwrap();
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
        let err = match sqlx::SqliteConnection::connect_with(&options).await {
            Err(e) => e,
            Ok(mut conn) => sqlx::query("SELECT * FROM sqlite_master")
                .fetch_all(&mut conn)
                .await
                .unwrap_err(),
        };
        assert_eq!(err.label(), "not_a_database", "{err}");
        assert_eq!(Classify::kind(&err), ErrorKind::Permanent);
    }
}
