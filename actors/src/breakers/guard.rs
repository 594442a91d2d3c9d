//! A [`Breaker`] as the [`Guard`] of a retry loop ([`crate::retry::retry()`]): each attempt
//! asks the breaker first (`allow`), and reports its outcome to it (`record`).
//!
//! The dependency goes from the breakers to the retry library, never back: the library knows
//! only its [`Guard`] trait.
//!
//! - `try_acquire` is [`Breaker::allow`]; a rejection is the refusal's reason: the breaker's
//!   name, its state and, when OPEN, how long until it lets a trial through.
//! - The permit's `done(ok)` is [`Breaker::record`].
//! - A permit dropped without `done` (the run's future was dropped mid-attempt) is given back
//!   with [`Breaker::release`]: nothing is counted, a half-open trial slot is freed. Dropped
//!   while the thread panics (the operation panicked), it counts as a failure, as in
//!   [`Breaker::call`].

use std::time::Duration;

use super::handle::Breaker;
use super::machine::{Permit, Rejected};
use crate::retry::{Guard, GuardPermit};

impl Guard for Breaker {
    fn try_acquire(&self) -> Result<Box<dyn GuardPermit>, String> {
        match self.allow() {
            Ok(permit) => Ok(Box::new(BreakerPermit {
                breaker: self.clone(),
                permit: Some(permit),
            })),
            Err(rejected) => Err(rejection(self.name(), &rejected)),
        }
    }
}

/// Why a breaker refused, in words: `circuit breaker NAME is open (retry in 42s)`.
pub fn rejection(name: &str, rejected: &Rejected) -> String {
    let state = rejected.state.as_str();
    match rejected.retry_after {
        Some(wait) => format!(
            "circuit breaker {name} is {state} (retry in {})",
            humantime::format_duration(round_up(wait))
        ),
        None => format!("circuit breaker {name} is {state}"),
    }
}

/// A wait as people read it: whole seconds (rounded up) from one second on, else whole ms.
fn round_up(wait: Duration) -> Duration {
    if wait >= Duration::from_secs(1) {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Duration::from_secs(secs)
    } else {
        Duration::from_millis(wait.as_millis() as u64)
    }
}

/// One attempt admitted by a breaker.
struct BreakerPermit {
    breaker: Breaker,
    permit: Option<Permit>,
}

impl GuardPermit for BreakerPermit {
    fn done(mut self: Box<Self>, ok: bool) {
        if let Some(permit) = self.permit.take() {
            self.breaker.record(permit, ok);
        }
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            if std::thread::panicking() {
                self.breaker.record(permit, false);
            } else {
                self.breaker.release(permit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::breakers::handle::{no_notifier, Clock};
    use crate::breakers::machine::{BreakerConfig, Machine, StateName};
    use crate::retry::{retry, ErrorKind, Outcome, RetryError, RetryPolicy};

    const T0: i64 = 1_700_000_000_000;

    fn breaker(failure_threshold: u32) -> (Breaker, Arc<AtomicI64>) {
        let now = Arc::new(AtomicI64::new(T0));
        let read = now.clone();
        let clock: Clock = Arc::new(move || read.load(Ordering::SeqCst));
        let config = BreakerConfig {
            failure_threshold,
            success_threshold: 1,
            open_for: Duration::from_secs(60),
            open_for_max: Duration::from_secs(600),
            ..BreakerConfig::default()
        };
        let b = Breaker::with_clock(
            "dep",
            Machine::new(config, T0),
            no_notifier(),
            clock.clone(),
        );
        (b, now)
    }

    #[test]
    fn a_permit_reports_to_the_breaker_and_an_open_breaker_refuses_with_its_wait() {
        let (b, now) = breaker(2);
        let guard: &dyn Guard = &b;
        guard.try_acquire().unwrap().done(true);
        assert_eq!(b.snapshot().counters.successes, 1);
        guard.try_acquire().unwrap().done(false);
        assert_eq!(b.state(), StateName::Closed);
        guard.try_acquire().unwrap().done(false);
        assert_eq!(b.state(), StateName::Open);
        let s = b.snapshot();
        assert_eq!((s.counters.calls, s.counters.failures), (3, 2));

        now.fetch_add(500, Ordering::SeqCst);
        let why = guard.try_acquire().err().unwrap();
        assert_eq!(why, "circuit breaker dep is open (retry in 1m)");
        assert_eq!(b.snapshot().counters.rejections, 1);

        // Past the wait: a trial goes through (HALF_OPEN) and its success closes the breaker.
        now.fetch_add(60_000, Ordering::SeqCst);
        let trial = guard.try_acquire().unwrap();
        assert_eq!(b.state(), StateName::HalfOpen);
        // The one trial slot is taken: a second caller is refused, without a wait to tell.
        assert_eq!(
            guard.try_acquire().err().unwrap(),
            "circuit breaker dep is half_open"
        );
        trial.done(true);
        assert_eq!(b.state(), StateName::Closed);
    }

    #[test]
    fn a_permit_dropped_without_an_outcome_is_released() {
        let (b, now) = breaker(1);
        drop(b.try_acquire().unwrap());
        let s = b.snapshot();
        assert_eq!((s.counters.released, s.counters.failures), (1, 0));
        assert_eq!(b.state(), StateName::Closed);

        // A half-open trial dropped frees the slot for the next one.
        b.try_acquire().unwrap().done(false);
        assert_eq!(b.state(), StateName::Open);
        now.fetch_add(60_000, Ordering::SeqCst);
        drop(b.try_acquire().unwrap());
        assert_eq!(b.state(), StateName::HalfOpen);
        assert!(b.try_acquire().is_ok(), "the slot was given back");
    }

    #[test]
    fn waits_read_as_whole_seconds_rounded_up() {
        assert_eq!(
            round_up(Duration::from_millis(59_001)),
            Duration::from_secs(60)
        );
        assert_eq!(round_up(Duration::from_secs(5)), Duration::from_secs(5));
        assert_eq!(
            round_up(Duration::from_micros(250_400)),
            Duration::from_millis(250)
        );
        let r = Rejected {
            state: StateName::ForcedOpen,
            retry_after: None,
        };
        assert_eq!(rejection("db", &r), "circuit breaker db is forced_open");
    }

    #[derive(Debug)]
    struct Down;

    impl crate::retry::Classify for Down {
        fn kind(&self) -> ErrorKind {
            ErrorKind::Transient
        }
        fn label(&self) -> String {
            "connection_refused".into()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_run_stops_when_the_breaker_opens_and_the_next_run_is_rejected_at_once() {
        let (b, _) = breaker(3);
        let policy = RetryPolicy {
            max_attempts: 10,
            ..RetryPolicy::default()
        };
        let mut calls = 0;
        let rec = retry("dep.call", &policy, None, Some(&b), |_| {
            calls += 1;
            async { Err::<(), _>(Down) }
        })
        .await;
        assert_eq!(calls, 3, "the third failure opened the breaker");
        let s = &rec.summary;
        assert_eq!((s.attempts, s.outcome), (3, Outcome::Rejected));
        assert_eq!(s.errors.len(), 3);
        assert!(
            s.rejected
                .as_deref()
                .is_some_and(|r| r.starts_with("circuit breaker dep is open (retry in")),
            "{s:?}"
        );
        match rec.result {
            Err(RetryError::Rejected { last: Some(_), .. }) => {}
            other => panic!("{other:?}"),
        }

        let rec = retry("dep.call", &policy, None, Some(&b), |_| {
            calls += 1;
            async { Ok::<_, Down>(()) }
        })
        .await;
        assert_eq!(calls, 3, "not called");
        assert_eq!(
            (rec.summary.attempts, rec.summary.outcome),
            (0, Outcome::Rejected)
        );
        let c = b.snapshot().counters;
        assert_eq!((c.calls, c.failures, c.rejections), (3, 3, 2));
    }
}
