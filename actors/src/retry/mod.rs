//! Adaptive retry: a bounded, jittered retry loop that records what happened, and the statistics
//! that tune it from those records.
//!
//! The pieces, each usable alone:
//!
//! - [`policy`] (pure): [`RetryPolicy`] and its full-jitter delay; [`ErrorKind`] and the
//!   [`Classify`] trait (transient or permanent, plus a short stable label), implemented for
//!   `std::io::Error`, `sqlx::Error`, `reqwest::Error` and HTTP statuses ([`HttpStatus`],
//!   [`classify_http`]).
//! - [`run`]: [`retry()`], the loop. It asks an optional [`Guard`] (a circuit breaker) before
//!   each attempt, stops at once on a permanent error, sleeps with full jitter between attempts
//!   and gives up after `max_attempts`. It returns a [`RunRecord`]: the result and a
//!   [`RunSummary`] (serializable) that the caller stores, one row per run.
//! - [`stats`] (pure): [`OpStats`] of one operation from its stored summaries (success rate,
//!   shares of transient and permanent failures, commonest errors, median recovery time) with a
//!   reasoned [`Recommendation`], and [`adaptive_initial`], the first delay to pass to
//!   [`retry()`] when the policy is adaptive.
//! - [`record`](mod@record): [`record()`] stores a [`RunSummary`] (one `retry_runs` row, written
//!   by a task of its own with a bounded wait) and reports its `retry_run` sample; [`load`]
//!   reads the rows back.
//!
//! The loop in the integrator's hands, for an adaptive policy:
//!
//! ```ignore
//! let stats = op_stats("sync.push", &stored_summaries, &policy);
//! let run = retry("sync.push", &policy, Some(adaptive_initial(&policy, &stats)),
//!                 Some(&breaker), |attempt| push(attempt)).await;
//! record(&store, &run.summary);
//! run.result?;
//! ```
//!
//! Attempts are numbered from 0 everywhere: `f(0)` is the first call, and
//! [`RetryPolicy::delay`]`(n, ..)` is the wait after attempt `n` failed.
//!
//! Only [`record`](mod@record) knows of the store; nothing here knows of breakers' state or of
//! the CLI: a breaker implements [`Guard`] (`crate::breakers::guard`), the CLI renders
//! [`OpStats`].

pub mod policy;
pub mod record;
pub mod run;
pub mod stats;

pub use policy::{classify_http, Classify, ErrorKind, HttpStatus, RetryPolicy};
pub use record::{load, record, record_to};
pub use run::{retry, Guard, GuardPermit, Outcome, RetryError, RunRecord, RunSummary};
pub use stats::{
    adaptive_initial, op_stats, OpStats, Recommendation, MAX_RECOMMENDED_ATTEMPTS,
    MIN_RECOVERED_RUNS,
};
