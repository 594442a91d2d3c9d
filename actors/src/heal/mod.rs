//! Self-heal: the actions a probe runs when it turns warn or fail, and the limits on how often
//! each may run. A library: the probe actor owns the limiters, decides when to act, and records
//! and alerts on what happened.
//!
//! - [`actions`]: [`HealAction`] (restart a tree node, run a sync, prune old backups, vacuum an
//!   SQLite database, clean up old files, move a breaker to half-open, run a command) and
//!   [`execute`], which runs one and answers a [`HealOutcome`], never an error or a panic. What
//!   the daemon's tree does (restart, sync) comes in through the [`Tree`] trait, in a
//!   [`HealContext`] with the breakers registry.
//! - [`limits`]: [`Limiter`], one per action: a cooldown between runs and a cap on the runs in
//!   any hour ([`HealLimits`], 5 min and 3 by default), with the moment the cap is reached (to
//!   alert once).
//! - [`guard`]: around each run, a circuit breaker of the action's own ([`breaker_config`]),
//!   the retry policy of its runs (one attempt), the operation name its runs are recorded
//!   under (`heal:PROBE_PATH:ACTION:TARGET`, distinct per action of a probe: [`guard::ops`]) and
//!   the classification of its failures.
//!
//! The expected use, per action of a probe whose status turned warn or fail:
//!
//! ```ignore
//! match limiter.check(now_ms) {
//!     Verdict::Run => {
//!         let run = retry(&names[i], &guard::retry_policy(), None, // guard::ops(probe, ..)
//!                         Some(&breaker), |_| attempt(&action, &cx)).await; // execute → Result
//!         if run.summary.attempts > 0 {
//!             if let Some(until_ms) = limiter.ran(now_ms) { /* alert: capped until until_ms */ }
//!         }
//!         /* record run.summary, and action.name(), action.target(), the outcome
//!            (done, failed, or rejected: its breaker is open) */
//!     }
//!     Verdict::Cooldown { .. } | Verdict::Capped { .. } => { /* skipped; say why */ }
//! }
//! ```

pub mod actions;
pub mod guard;
pub mod limits;

pub use actions::{
    execute, glob_match, HealAction, HealContext, HealOutcome, Tree, BACKUP_RETENTION,
};
pub use guard::{breaker_config, HealFailure};
pub use limits::{HealLimits, Limiter, Verdict};
