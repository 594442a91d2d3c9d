//! The retry loop: [`retry()`] calls an operation until it succeeds, fails permanently, runs out
//! of attempts or is refused by its [`Guard`], and returns the result with a [`RunSummary`] of
//! the run for the caller to store.
//!
//! **Guards** (circuit breakers). Before every attempt, the first included, the loop asks the
//! guard for a permit; after the attempt it reports the permit `done(ok)`, `ok` being whether
//! the operation returned `Ok` (a permanent error is reported as a failure too: a full disk is a
//! sick dependency; a breaker that wants to ignore some errors classifies them itself).
//! A refusal (`Err(reason)`) ends the run at once with [`Outcome::Rejected`], without calling
//! the operation: it counts as a **transient** failure ([`RetryError`] classifies as transient,
//! label `rejected`), but it is **not retried within the run**. A breaker that is open stays
//! open for its own cool-down, longer than any sensible retry delay, and asking again at once
//! would be refused again; the caller's scheduler runs the operation again later, when the
//! breaker may let a probe through. A refusal is not an attempt: `attempts` and `errors` count
//! calls to the operation only. A permit dropped without `done` (the run's future was dropped,
//! or the operation panicked) means the attempt's outcome is unknown; the breaker decides what
//! that counts as (typically: release a half-open probe slot, count nothing).
//!
//! **Time.** Waits and durations use tokio's clock (so a paused test clock drives them);
//! `started_ms` is the wall clock.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use super::policy::{Classify, ErrorKind, RetryPolicy};

/// Something that may refuse an attempt: a circuit breaker.
pub trait Guard: Send + Sync {
    /// A permit for one attempt, or why not (the breaker is open, the half-open probe is
    /// taken, ...). A refusal ends the run with [`Outcome::Rejected`].
    fn try_acquire(&self) -> Result<Box<dyn GuardPermit>, String>;
}

/// One admitted attempt.
pub trait GuardPermit: Send {
    /// The attempt ended: `ok` is whether the operation returned `Ok`.
    fn done(self: Box<Self>, ok: bool);
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// An attempt succeeded (possibly after transient failures).
    Success,
    /// Every attempt (`max_attempts`) failed with a transient error.
    Exhausted,
    /// An attempt failed with a permanent error; nothing more was tried.
    Permanent,
    /// The guard refused an attempt; nothing more was tried in this run.
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Exhausted => "exhausted",
            Outcome::Permanent => "permanent",
            Outcome::Rejected => "rejected",
        }
    }
}

/// Why a run did not succeed.
#[derive(Debug)]
pub enum RetryError<E> {
    /// An attempt failed with a permanent error.
    Permanent(E),
    /// Every attempt failed with a transient error; `last` is the last one's.
    Exhausted { last: E, attempts: u32 },
    /// The guard refused an attempt. `last` is the error of the attempt before, if any.
    Rejected { reason: String, last: Option<E> },
}

impl<E> RetryError<E> {
    /// The last error the operation returned (none when the guard refused the first attempt).
    pub fn last(&self) -> Option<&E> {
        match self {
            RetryError::Permanent(e) | RetryError::Exhausted { last: e, .. } => Some(e),
            RetryError::Rejected { last, .. } => last.as_ref(),
        }
    }

    pub fn into_last(self) -> Option<E> {
        match self {
            RetryError::Permanent(e) | RetryError::Exhausted { last: e, .. } => Some(e),
            RetryError::Rejected { last, .. } => last,
        }
    }
}

/// A failed run as an error of its own (for an outer scheduler): permanent when the operation
/// failed permanently (its label), transient when the attempts ran out (the last error's label)
/// or the guard refused (label `rejected`).
impl<E: Classify> Classify for RetryError<E> {
    fn kind(&self) -> ErrorKind {
        match self {
            RetryError::Permanent(e) => e.kind(),
            RetryError::Exhausted { .. } | RetryError::Rejected { .. } => ErrorKind::Transient,
        }
    }
    fn label(&self) -> String {
        match self {
            RetryError::Permanent(e) | RetryError::Exhausted { last: e, .. } => e.label(),
            RetryError::Rejected { .. } => "rejected".to_string(),
        }
    }
}

impl<E: std::fmt::Display> std::fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetryError::Permanent(e) => write!(f, "{e} (permanent, not retried)"),
            RetryError::Exhausted { last, attempts } => {
                write!(f, "{last} (gave up after {attempts} attempts)")
            }
            RetryError::Rejected { reason, last: None } => write!(f, "rejected: {reason}"),
            RetryError::Rejected {
                reason,
                last: Some(last),
            } => write!(f, "rejected: {reason} (after {last})"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for RetryError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.last().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// What a run did: one stored row per run. Durations are serialized as whole milliseconds
/// (`recovered_after_ms`, `took_ms`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunSummary {
    pub op: String,
    /// Wall clock at the start, Unix ms.
    pub started_ms: i64,
    /// Calls to the operation (a guard's refusal is not one).
    pub attempts: u32,
    pub outcome: Outcome,
    /// One entry per failed attempt, in order: its label and kind.
    pub errors: Vec<(String, ErrorKind)>,
    /// When the run succeeded after at least one (transient) failure: from the end of the
    /// first failed attempt to the end of the successful one. An upper bound of the outage,
    /// measured at the schedule's granularity.
    #[serde(rename = "recovered_after_ms", with = "opt_ms", default)]
    pub recovered_after: Option<Duration>,
    /// The whole run, waits included.
    #[serde(rename = "took_ms", with = "ms")]
    pub took: Duration,
    /// The guard's reason when the outcome is [`Outcome::Rejected`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
}

/// The result of a run and its summary.
#[derive(Debug)]
pub struct RunRecord<T, E> {
    pub result: Result<T, RetryError<E>>,
    pub summary: RunSummary,
}

/// Runs `f` until it succeeds, with at most `policy.max_attempts` calls (at least 1).
///
/// `f(attempt)` gets the 0-based attempt number. A permanent error ends the run at once. After
/// a transient error the loop waits [`RetryPolicy::delay`]`(attempt, initial, random)` (full
/// jitter), `initial` being `initial_override` (the adaptive delay,
/// [`super::adaptive_initial`]) or else `policy.initial`. `guard` is asked before each
/// attempt; a refusal ends the run (see the module documentation).
pub async fn retry<T, E, F, Fut>(
    op: &str,
    policy: &RetryPolicy,
    initial_override: Option<Duration>,
    guard: Option<&dyn Guard>,
    f: F,
) -> RunRecord<T, E>
where
    E: Classify,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    retry_with(
        op,
        policy,
        initial_override,
        guard,
        &mut || fastrand::f64(),
        f,
    )
    .await
}

/// [`retry()`] with the jitter's uniform samples from `rand01`.
pub(crate) async fn retry_with<T, E, F, Fut>(
    op: &str,
    policy: &RetryPolicy,
    initial_override: Option<Duration>,
    guard: Option<&dyn Guard>,
    rand01: &mut (dyn FnMut() -> f64 + Send),
    mut f: F,
) -> RunRecord<T, E>
where
    E: Classify,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started_ms = unix_ms();
    let start = Instant::now();
    let initial = initial_override.unwrap_or(policy.initial);
    let max_attempts = policy.attempts();
    let mut errors: Vec<(String, ErrorKind)> = Vec::new();
    let mut first_failure: Option<Instant> = None;
    let mut last: Option<E> = None;
    let mut attempt: u32 = 0;

    let (result, outcome, rejected) = loop {
        let permit = match guard.map(|g| g.try_acquire()) {
            None => None,
            Some(Ok(permit)) => Some(permit),
            Some(Err(reason)) => {
                tracing::debug!(op, attempt, %reason, "retry: attempt refused by the guard");
                let err = RetryError::Rejected {
                    reason: reason.clone(),
                    last: last.take(),
                };
                break (Err(err), Outcome::Rejected, Some(reason));
            }
        };
        let answer = f(attempt).await;
        attempt += 1;
        if let Some(permit) = permit {
            permit.done(answer.is_ok());
        }
        let e = match answer {
            Ok(value) => break (Ok(value), Outcome::Success, None),
            Err(e) => e,
        };
        let (label, kind) = (e.label(), e.kind());
        errors.push((label, kind));
        first_failure.get_or_insert_with(Instant::now);
        if kind == ErrorKind::Permanent {
            break (Err(RetryError::Permanent(e)), Outcome::Permanent, None);
        }
        if attempt >= max_attempts {
            let err = RetryError::Exhausted {
                last: e,
                attempts: attempt,
            };
            break (Err(err), Outcome::Exhausted, None);
        }
        let wait = policy.delay(attempt - 1, initial, rand01());
        tracing::debug!(
            op,
            attempt = attempt - 1,
            error = errors.last().map_or("", |(label, _)| label.as_str()),
            wait_ms = millis(wait),
            "retry: transient failure, retrying"
        );
        last = Some(e);
        tokio::time::sleep(wait).await;
    };

    let now = Instant::now();
    let recovered_after = match (outcome, first_failure) {
        (Outcome::Success, Some(first)) => Some(now.saturating_duration_since(first)),
        _ => None,
    };
    RunRecord {
        result,
        summary: RunSummary {
            op: op.to_string(),
            started_ms,
            attempts: attempt,
            outcome,
            errors,
            recovered_after,
            took: now.saturating_duration_since(start),
            rejected,
        },
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A `Duration` as whole milliseconds.
pub(crate) mod ms {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(super::millis(*d))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = <u64 as serde::Deserialize>::deserialize(d)?;
        Ok(Duration::from_millis(ms))
    }
}

/// An `Option<Duration>` as whole milliseconds or null.
pub(crate) mod opt_ms {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&super::millis(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let ms = <Option<u64> as serde::Deserialize>::deserialize(d)?;
        Ok(ms.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    const S: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    #[derive(Debug, PartialEq)]
    enum TestErr {
        Transient(&'static str),
        Permanent(&'static str),
    }

    impl Classify for TestErr {
        fn kind(&self) -> ErrorKind {
            match self {
                TestErr::Transient(_) => ErrorKind::Transient,
                TestErr::Permanent(_) => ErrorKind::Permanent,
            }
        }
        fn label(&self) -> String {
            match self {
                TestErr::Transient(l) | TestErr::Permanent(l) => l.to_string(),
            }
        }
    }

    impl std::fmt::Display for TestErr {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            ..RetryPolicy::default()
        }
    }

    /// An operation that fails transiently `failures` times (each attempt taking `work`), then
    /// succeeds with its attempt number; it records the attempt numbers it was called with.
    fn flaky(
        failures: u32,
        work: Duration,
        calls: Arc<Mutex<Vec<u32>>>,
    ) -> impl FnMut(u32) -> std::pin::Pin<Box<dyn Future<Output = Result<u32, TestErr>> + Send>>
    {
        move |attempt| {
            calls.lock().unwrap().push(attempt);
            Box::pin(async move {
                tokio::time::sleep(work).await;
                if attempt < failures {
                    Err(TestErr::Transient("timeout"))
                } else {
                    Ok(attempt)
                }
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn succeeds_after_transient_failures_within_the_jitter_bounds() {
        for _ in 0..20 {
            let calls = Arc::new(Mutex::new(Vec::new()));
            let t0 = Instant::now();
            let rec = retry(
                "op",
                &policy(5),
                None,
                None,
                flaky(3, 100 * MS, calls.clone()),
            )
            .await;
            let elapsed = t0.elapsed();
            assert_eq!(rec.result.unwrap(), 3);
            assert_eq!(*calls.lock().unwrap(), vec![0, 1, 2, 3]);
            let s = &rec.summary;
            assert_eq!(s.op, "op");
            assert_eq!(s.attempts, 4);
            assert_eq!(s.outcome, Outcome::Success);
            assert_eq!(
                s.errors,
                vec![("timeout".to_string(), ErrorKind::Transient); 3]
            );
            // Work: 4 × 100 ms; waits: full jitter under 1 s, 2 s, 4 s.
            let work = 400 * MS;
            assert!(elapsed >= work && elapsed <= work + 7 * S, "{elapsed:?}");
            assert_eq!(s.took, elapsed);
            // From the end of attempt 0 to the end of attempt 3.
            assert_eq!(s.recovered_after, Some(elapsed - 100 * MS));
            assert!(s.rejected.is_none());
            assert!(s.started_ms > 1_600_000_000_000);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waits_follow_the_schedule_exactly_at_the_jitter_extremes() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let t0 = Instant::now();
        let rec = retry_with(
            "op",
            &policy(5),
            None,
            None,
            &mut || 1.0,
            flaky(3, Duration::ZERO, calls.clone()),
        )
        .await;
        assert!(rec.result.is_ok());
        assert_eq!(t0.elapsed(), 7 * S, "1 + 2 + 4 s");
        assert_eq!(rec.summary.recovered_after, Some(7 * S));

        // The adaptive initial replaces the policy's.
        let t0 = Instant::now();
        let rec = retry_with(
            "op",
            &policy(5),
            Some(300 * MS),
            None,
            &mut || 1.0,
            flaky(2, Duration::ZERO, calls.clone()),
        )
        .await;
        assert!(rec.result.is_ok());
        assert_eq!(t0.elapsed(), 900 * MS, "300 + 600 ms");

        let t0 = Instant::now();
        let rec = retry_with(
            "op",
            &policy(5),
            None,
            None,
            &mut || 0.0,
            flaky(3, Duration::ZERO, calls.clone()),
        )
        .await;
        assert!(rec.result.is_ok());
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn success_at_once_has_no_recovery() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let rec = retry("op", &policy(5), None, None, flaky(0, S, calls)).await;
        assert_eq!(rec.result.unwrap(), 0);
        assert_eq!(rec.summary.attempts, 1);
        assert!(rec.summary.errors.is_empty());
        assert_eq!(rec.summary.recovered_after, None);
        assert_eq!(rec.summary.took, S);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_at_once_on_a_permanent_error() {
        let mut calls = 0;
        let t0 = Instant::now();
        let rec: RunRecord<(), TestErr> =
            retry_with("write", &policy(5), None, None, &mut || 1.0, |attempt| {
                calls += 1;
                async move {
                    if attempt == 0 {
                        Err(TestErr::Transient("timeout"))
                    } else {
                        Err(TestErr::Permanent("disk_full"))
                    }
                }
            })
            .await;
        assert_eq!(calls, 2);
        assert_eq!(t0.elapsed(), S, "one wait, after the transient failure");
        match &rec.result {
            Err(RetryError::Permanent(TestErr::Permanent("disk_full"))) => {}
            other => panic!("{other:?}"),
        }
        let err = rec.result.as_ref().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Permanent);
        assert_eq!(err.label(), "disk_full");
        let s = &rec.summary;
        assert_eq!(s.attempts, 2);
        assert_eq!(s.outcome, Outcome::Permanent);
        assert_eq!(
            s.errors,
            vec![
                ("timeout".to_string(), ErrorKind::Transient),
                ("disk_full".to_string(), ErrorKind::Permanent)
            ]
        );
        assert_eq!(s.recovered_after, None);
    }

    #[tokio::test(start_paused = true)]
    async fn exhausts_max_attempts() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let t0 = Instant::now();
        let rec = retry(
            "op",
            &policy(4),
            None,
            None,
            flaky(100, 10 * MS, calls.clone()),
        )
        .await;
        let elapsed = t0.elapsed();
        assert_eq!(*calls.lock().unwrap(), vec![0, 1, 2, 3]);
        match &rec.result {
            Err(RetryError::Exhausted { last, attempts: 4 }) => {
                assert_eq!(*last, TestErr::Transient("timeout"))
            }
            other => panic!("{other:?}"),
        }
        let err = rec.result.as_ref().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transient);
        assert_eq!(
            err.to_string(),
            "Transient(\"timeout\") (gave up after 4 attempts)"
        );
        // 3 waits (none after the last attempt): under 1 + 2 + 4 s.
        assert!(
            elapsed >= 40 * MS && elapsed <= 40 * MS + 7 * S,
            "{elapsed:?}"
        );
        let s = &rec.summary;
        assert_eq!((s.attempts, s.outcome), (4, Outcome::Exhausted));
        assert_eq!(s.errors.len(), 4);
        assert_eq!(s.recovered_after, None);

        // max_attempts 0 still tries once.
        let calls = Arc::new(Mutex::new(Vec::new()));
        let rec = retry("op", &policy(0), None, None, flaky(100, MS, calls.clone())).await;
        assert_eq!(*calls.lock().unwrap(), vec![0]);
        assert_eq!(rec.summary.outcome, Outcome::Exhausted);
    }

    /// A guard that admits `admit` attempts then refuses, and records each permit's report.
    struct TestGuard {
        admit: Mutex<u32>,
        reports: Arc<Mutex<Vec<bool>>>,
    }

    struct TestPermit(Arc<Mutex<Vec<bool>>>);

    impl GuardPermit for TestPermit {
        fn done(self: Box<Self>, ok: bool) {
            self.0.lock().unwrap().push(ok);
        }
    }

    impl Guard for TestGuard {
        fn try_acquire(&self) -> Result<Box<dyn GuardPermit>, String> {
            let mut admit = self.admit.lock().unwrap();
            if *admit == 0 {
                return Err("circuit open".to_string());
            }
            *admit -= 1;
            Ok(Box::new(TestPermit(self.reports.clone())))
        }
    }

    fn guard(admit: u32) -> (TestGuard, Arc<Mutex<Vec<bool>>>) {
        let reports = Arc::new(Mutex::new(Vec::new()));
        let g = TestGuard {
            admit: Mutex::new(admit),
            reports: reports.clone(),
        };
        (g, reports)
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusing_guard_stops_without_calling_the_operation() {
        let (g, reports) = guard(0);
        let calls = Arc::new(Mutex::new(Vec::new()));
        let t0 = Instant::now();
        let rec = retry(
            "op",
            &policy(5),
            None,
            Some(&g),
            flaky(0, MS, calls.clone()),
        )
        .await;
        assert!(calls.lock().unwrap().is_empty());
        assert!(reports.lock().unwrap().is_empty());
        assert_eq!(t0.elapsed(), Duration::ZERO);
        match &rec.result {
            Err(RetryError::Rejected { reason, last: None }) => assert_eq!(reason, "circuit open"),
            other => panic!("{other:?}"),
        }
        let err = rec.result.as_ref().unwrap_err();
        assert_eq!(
            (err.kind(), err.label().as_str()),
            (ErrorKind::Transient, "rejected")
        );
        let s = &rec.summary;
        assert_eq!((s.attempts, s.outcome), (0, Outcome::Rejected));
        assert!(s.errors.is_empty());
        assert_eq!(s.rejected.as_deref(), Some("circuit open"));
    }

    #[tokio::test(start_paused = true)]
    async fn every_permit_is_reported_done() {
        let (g, reports) = guard(10);
        let calls = Arc::new(Mutex::new(Vec::new()));
        let rec = retry("op", &policy(5), None, Some(&g), flaky(2, MS, calls)).await;
        assert_eq!(rec.result.unwrap(), 2);
        assert_eq!(*reports.lock().unwrap(), vec![false, false, true]);

        // A permanent failure is reported as a failure.
        let (g, reports) = guard(10);
        let rec: RunRecord<(), _> = retry("op", &policy(5), None, Some(&g), |_| async {
            Err(TestErr::Permanent("not_found"))
        })
        .await;
        assert_eq!(rec.summary.outcome, Outcome::Permanent);
        assert_eq!(*reports.lock().unwrap(), vec![false]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_guard_that_opens_mid_run_ends_it_with_the_last_error() {
        let (g, reports) = guard(2);
        let calls = Arc::new(Mutex::new(Vec::new()));
        let rec = retry(
            "op",
            &policy(5),
            None,
            Some(&g),
            flaky(100, MS, calls.clone()),
        )
        .await;
        assert_eq!(*calls.lock().unwrap(), vec![0, 1]);
        assert_eq!(*reports.lock().unwrap(), vec![false, false]);
        match &rec.result {
            Err(RetryError::Rejected {
                reason,
                last: Some(TestErr::Transient("timeout")),
            }) => assert_eq!(reason, "circuit open"),
            other => panic!("{other:?}"),
        }
        let s = &rec.summary;
        assert_eq!((s.attempts, s.outcome), (2, Outcome::Rejected));
        assert_eq!(s.errors.len(), 2);
        assert_eq!(s.recovered_after, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_with_a_guard_can_be_spawned() {
        let (g, reports) = guard(5);
        let g = Arc::new(g);
        let task = tokio::spawn(async move {
            let guard: &dyn Guard = g.as_ref();
            let rec = retry("op", &policy(3), None, Some(guard), |attempt| async move {
                tokio::task::yield_now().await;
                Ok::<_, TestErr>(attempt)
            })
            .await;
            rec.result.is_ok()
        });
        assert!(task.await.unwrap());
        assert_eq!(*reports.lock().unwrap(), vec![true]);
    }

    #[test]
    fn summary_round_trips_through_json_in_milliseconds() {
        let s = RunSummary {
            op: "sync.push".to_string(),
            started_ms: 1_700_000_000_000,
            attempts: 3,
            outcome: Outcome::Success,
            errors: vec![
                ("timeout".to_string(), ErrorKind::Transient),
                ("http_503".to_string(), ErrorKind::Transient),
            ],
            recovered_after: Some(Duration::from_millis(4200)),
            took: Duration::from_millis(4310),
            rejected: None,
        };
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "op": "sync.push",
                "started_ms": 1_700_000_000_000i64,
                "attempts": 3,
                "outcome": "success",
                "errors": [["timeout", "transient"], ["http_503", "transient"]],
                "recovered_after_ms": 4200,
                "took_ms": 4310,
            })
        );
        let back: RunSummary = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
        let rejected = RunSummary {
            outcome: Outcome::Rejected,
            recovered_after: None,
            rejected: Some("open".to_string()),
            ..s
        };
        let text = serde_json::to_string(&rejected).unwrap();
        assert!(text.contains("\"recovered_after_ms\":null"), "{text}");
        assert_eq!(serde_json::from_str::<RunSummary>(&text).unwrap(), rejected);
    }
}
