//! `Breaker`: one [`Machine`] behind a lock, shared by every caller of one dependency, and
//! `Breakers`, the registry of them by name.
//!
//! The hot path (`allow` then `record`) reads the clock, takes the lock for a few comparisons
//! and allocates nothing unless the state changes. When it does change, the notifier given at
//! construction is called with the breaker's name, the transition and a snapshot — after the
//! lock is released, so the notifier may call back into the breaker (its `snapshot`, say) and
//! a slow notifier never holds up other callers. The notifier runs on the caller's thread:
//! it should hand the work off (a message to the breakers actor), not do it.
//!
//! Two threads may notify in the opposite order to that of their transitions; a consumer that
//! keeps state orders them by `Snapshot::counters.transitions` (one per transition, increasing).
//! A consumer that may miss notifications (an actor whose queued messages are dropped when it
//! stops) reads what it missed from [`Breaker::transitions_after`]: the breaker keeps its last
//! [`HISTORY`] transitions, numbered as that counter numbers them.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use super::machine::{BreakerConfig, Machine, Permit, Rejected, Snapshot, StateName, Transition};

/// Called on every transition with the breaker's name, the transition and the snapshot right
/// after it. Shared (an `Arc`) so one notifier can serve a whole registry.
pub type Notifier = Arc<dyn Fn(&str, &Transition, &Snapshot) + Send + Sync>;

/// How many of its latest transitions a breaker keeps for [`Breaker::transitions_after`].
pub const HISTORY: usize = 32;

/// Where a breaker reads the time (Unix ms): the wall clock, or a test's own clock.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// A notifier that does nothing.
pub fn no_notifier() -> Notifier {
    Arc::new(|_: &str, _: &Transition, _: &Snapshot| {})
}

/// The wall clock in Unix ms (negative before 1970, never a panic).
pub fn wall_clock_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// A call that did not succeed through [`Breaker::call`].
#[derive(Debug, PartialEq, Eq)]
pub enum CallError<E> {
    /// The breaker refused it; the call was not made.
    Rejected(Rejected),
    /// The call was made and failed (and was counted as a failure).
    Failed(E),
}

impl<E: std::fmt::Display> std::fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Rejected(r) => r.fmt(f),
            CallError::Failed(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CallError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CallError::Rejected(r) => Some(r),
            CallError::Failed(e) => Some(e),
        }
    }
}

/// A circuit breaker shared by its callers; clones share the same machine.
#[derive(Clone)]
pub struct Breaker {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    machine: Mutex<Machine>,
    /// The latest transitions with their numbers (`counters.transitions` right after each),
    /// oldest first. Locked inside `machine`'s lock, never the other way round.
    history: Mutex<VecDeque<(u64, Transition)>>,
    notify: Notifier,
    clock: Clock,
}

impl std::fmt::Debug for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

impl Breaker {
    /// A CLOSED breaker on the wall clock.
    pub fn new(name: impl Into<String>, config: BreakerConfig, notify: Notifier) -> Breaker {
        Breaker::from_machine(name, Machine::new(config, wall_clock_ms()), notify)
    }

    /// A breaker around a machine (one [`Machine::restore`]d from a snapshot, say), on the
    /// wall clock.
    pub fn from_machine(name: impl Into<String>, machine: Machine, notify: Notifier) -> Breaker {
        Breaker::with_clock(name, machine, notify, Arc::new(wall_clock_ms))
    }

    /// A breaker reading the time from `clock` (tests; a paused tokio clock).
    pub fn with_clock(
        name: impl Into<String>,
        machine: Machine,
        notify: Notifier,
        clock: Clock,
    ) -> Breaker {
        Breaker {
            inner: Arc::new(Inner {
                name: name.into(),
                machine: Mutex::new(machine),
                history: Mutex::new(VecDeque::new()),
                notify,
                clock,
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The time as this breaker reads it.
    pub fn now_ms(&self) -> i64 {
        (self.inner.clock)()
    }

    /// Whether a call may go ahead; a permit is reported with [`Breaker::record`].
    pub fn allow(&self) -> Result<Permit, Rejected> {
        self.apply(|m, now| m.admit(now))
    }

    /// The outcome of a permitted call.
    pub fn record(&self, permit: Permit, ok: bool) {
        self.apply(|m, now| ((), m.record(permit, ok, now)));
    }

    /// Gives back a permit whose call was cancelled (no outcome).
    pub fn release(&self, permit: Permit) {
        self.lock().release(permit);
    }

    /// Runs `f` if the breaker allows it and records its outcome: `Err` is a failure.
    ///
    /// Dropping the returned future before `f` finishes releases the permit without an
    /// outcome, so a timeout applied *outside* does not count as a failure: to count
    /// timeouts, apply them inside `f`. A panic in `f` counts as a failure.
    pub async fn call<T, E, F>(&self, f: F) -> Result<T, CallError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        let permit = self.allow().map_err(CallError::Rejected)?;
        let mut pending = Pending {
            breaker: self,
            permit: Some(permit),
        };
        let out = f.await;
        if let Some(permit) = pending.permit.take() {
            self.record(permit, out.is_ok());
        }
        out.map_err(CallError::Failed)
    }

    /// The timer path ([`Machine::tick`]); the actor arms its timer at [`Breaker::next_deadline`].
    pub fn tick(&self) -> Option<Transition> {
        self.apply_op(Machine::tick)
    }

    pub fn next_deadline(&self) -> Option<i64> {
        self.lock().next_deadline()
    }

    pub fn state(&self) -> StateName {
        self.lock().state_name()
    }

    pub fn snapshot(&self) -> Snapshot {
        let now = self.now_ms();
        self.lock().snapshot(now)
    }

    /// The transitions numbered after `seq` (by `counters.transitions`), oldest first, with
    /// their numbers; only the latest [`HISTORY`] are kept (and none from before the breaker
    /// was made: a restored breaker's history starts at its restore).
    pub fn transitions_after(&self, seq: u64) -> Vec<(u64, Transition)> {
        self.history()
            .iter()
            .filter(|(n, _)| *n > seq)
            .cloned()
            .collect()
    }

    /// The config the machine runs with (cloned).
    pub fn config(&self) -> BreakerConfig {
        self.lock().config().clone()
    }

    /// [`Machine::reconfigure`]: a reload that keeps the state.
    pub fn reconfigure(&self, config: BreakerConfig) {
        let now = self.now_ms();
        self.lock().reconfigure(config, now);
    }

    pub fn force_open(&self) -> Option<Transition> {
        self.apply_op(Machine::force_open)
    }

    pub fn disable(&self) -> Option<Transition> {
        self.apply_op(Machine::disable)
    }

    pub fn reset(&self) -> Option<Transition> {
        self.apply_op(Machine::reset)
    }

    pub fn half_open(&self) -> Option<Transition> {
        self.apply_op(Machine::half_open)
    }

    /// Poisoning cannot leave the machine half-changed (it does not panic), so a poisoned
    /// lock is still good.
    fn lock(&self) -> MutexGuard<'_, Machine> {
        self.inner.machine.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn history(&self) -> MutexGuard<'_, VecDeque<(u64, Transition)>> {
        self.inner.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` under the lock; on a transition, takes the snapshot and records the
    /// transition in the history under the lock, and notifies after releasing it.
    fn apply<R>(&self, f: impl FnOnce(&mut Machine, i64) -> (R, Option<Transition>)) -> R {
        let now = self.now_ms();
        let (out, change) = {
            let mut machine = self.lock();
            let (out, change) = f(&mut machine, now);
            let change = change.map(|t| {
                let snapshot = machine.snapshot(now);
                let mut history = self.history();
                if history.len() == HISTORY {
                    history.pop_front();
                }
                history.push_back((snapshot.counters.transitions, t.clone()));
                (t, snapshot)
            });
            (out, change)
        };
        if let Some((transition, snapshot)) = change {
            self.notify(&transition, &snapshot);
        }
        out
    }

    /// An operation that returns its transition to the caller too.
    fn apply_op(&self, op: fn(&mut Machine, i64) -> Option<Transition>) -> Option<Transition> {
        self.apply(|m, now| {
            let change = op(m, now);
            (change.clone(), change)
        })
    }

    /// A panicking notifier must not take the caller down with it (the caller is any code
    /// that makes a call through the breaker): the panic is logged and dropped.
    fn notify(&self, transition: &Transition, snapshot: &Snapshot) {
        let notify = &self.inner.notify;
        let name = self.inner.name.as_str();
        let run = AssertUnwindSafe(|| notify(name, transition, snapshot));
        if std::panic::catch_unwind(run).is_err() {
            tracing::error!(breaker = name, "the breaker notifier panicked");
        }
    }
}

/// The permit of a [`Breaker::call`] in progress: released if the call is dropped, counted as
/// a failure if it panics.
struct Pending<'a> {
    breaker: &'a Breaker,
    permit: Option<Permit>,
}

impl Drop for Pending<'_> {
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

/// The breakers by name; clones share the same map. Callers look a breaker up once and keep
/// the [`Breaker`]: the hot path does not go through the registry.
#[derive(Clone, Default)]
pub struct Breakers {
    map: Arc<RwLock<BTreeMap<String, Breaker>>>,
}

impl std::fmt::Debug for Breakers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Breakers {
    pub fn new() -> Breakers {
        Breakers::default()
    }

    pub fn get(&self, name: &str) -> Option<Breaker> {
        self.read().get(name).cloned()
    }

    /// Adds `breaker` under its name; returns the one it replaces.
    pub fn insert(&self, breaker: Breaker) -> Option<Breaker> {
        let name = breaker.name().to_owned();
        self.write().insert(name, breaker)
    }

    pub fn remove(&self, name: &str) -> Option<Breaker> {
        self.write().remove(name)
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Every breaker, sorted by name.
    pub fn all(&self) -> Vec<Breaker> {
        self.read().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Breaker>> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Breaker>> {
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breakers::machine::{Counters, State, Window};
    use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    const T0: i64 = 1_700_000_000_000;

    fn config() -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 3,
            success_threshold: 2,
            open_for: Duration::from_secs(60),
            open_for_max: Duration::from_secs(240),
            half_open_calls: 1,
            half_open_max_wait: Duration::from_secs(10),
            ..BreakerConfig::default()
        }
    }

    /// A clock the test moves.
    fn manual_clock() -> (Arc<AtomicI64>, Clock) {
        let now = Arc::new(AtomicI64::new(T0));
        let read = now.clone();
        (now, Arc::new(move || read.load(Ordering::SeqCst)))
    }

    type Seen = Arc<Mutex<Vec<(String, Transition, Snapshot)>>>;

    fn recording_notifier() -> (Seen, Notifier) {
        let seen: Seen = Arc::default();
        let sink = seen.clone();
        let notify: Notifier = Arc::new(move |name: &str, t: &Transition, s: &Snapshot| {
            sink.lock()
                .unwrap()
                .push((name.to_owned(), t.clone(), s.clone()));
        });
        (seen, notify)
    }

    fn breaker_on(clock: Clock, notify: Notifier) -> Breaker {
        Breaker::with_clock("db", Machine::new(config(), clock()), notify, clock)
    }

    fn fail(b: &Breaker) {
        let permit = b.allow().expect("allowed");
        b.record(permit, false);
    }

    #[test]
    fn wall_clock_is_unix_ms() {
        let now = wall_clock_ms();
        assert!(now > T0, "{now}");
        let b = Breaker::new("x", config(), no_notifier());
        assert!((b.now_ms() - now).abs() < 60_000);
        assert_eq!(b.name(), "x");
        assert_eq!(format!("{b:?}"), r#"Breaker { name: "x", .. }"#);
    }

    #[test]
    fn every_transition_is_notified_with_its_snapshot() {
        let (now, clock) = manual_clock();
        let (seen, notify) = recording_notifier();
        let b = breaker_on(clock, notify);
        for _ in 0..3 {
            fail(&b);
        }
        assert_eq!(b.state(), StateName::Open);
        assert!(b.allow().is_err());
        now.store(T0 + 60_000, Ordering::SeqCst);
        assert_eq!(b.next_deadline(), Some(T0 + 60_000));
        assert_eq!(b.tick().map(|t| t.to), Some(StateName::HalfOpen));
        for _ in 0..2 {
            let p = b.allow().expect("trial");
            b.record(p, true);
        }
        assert_eq!(b.state(), StateName::Closed);

        let seen = seen.lock().unwrap();
        let path: Vec<_> = seen.iter().map(|(_, t, _)| (t.from, t.to)).collect();
        assert_eq!(
            path,
            vec![
                (StateName::Closed, StateName::Open),
                (StateName::Open, StateName::HalfOpen),
                (StateName::HalfOpen, StateName::Closed),
            ]
        );
        let (name, t, s) = &seen[0];
        assert_eq!((name.as_str(), t.at_ms), ("db", T0));
        assert_eq!(
            s.state,
            State::Open {
                until_ms: T0 + 60_000,
                opened: 1
            }
        );
        assert_eq!(s.counters.transitions, 1);
        assert_eq!(seen[2].2.state, State::Closed);
        assert_eq!(seen[2].2.counters.transitions, 3);
    }

    #[test]
    fn the_latest_transitions_are_kept_numbered_as_the_counter_numbers_them() {
        let (_, clock) = manual_clock();
        let b = breaker_on(clock, no_notifier());
        assert!(b.transitions_after(0).is_empty());
        b.force_open().expect("1");
        b.reset().expect("2");
        let kept = b.transitions_after(0);
        let numbered: Vec<_> = kept.iter().map(|(n, t)| (*n, t.from, t.to)).collect();
        assert_eq!(
            numbered,
            vec![
                (1, StateName::Closed, StateName::ForcedOpen),
                (2, StateName::ForcedOpen, StateName::Closed)
            ]
        );
        assert_eq!(b.transitions_after(1).len(), 1);
        assert!(b.transitions_after(2).is_empty());
        for _ in 0..HISTORY {
            b.disable().expect("disable");
            b.reset().expect("reset");
        }
        let kept = b.transitions_after(0);
        assert_eq!(kept.len(), HISTORY, "only the latest");
        let last = b.snapshot().counters.transitions;
        assert_eq!(kept.last().map(|(n, _)| *n), Some(last));
        assert_eq!(kept[0].0, last - HISTORY as u64 + 1);
    }

    #[test]
    fn the_notifier_runs_outside_the_lock() {
        // It calls back into the breaker: with the lock held this would deadlock.
        let slot: Arc<Mutex<Option<Breaker>>> = Arc::default();
        let inside = slot.clone();
        let states = Arc::new(Mutex::new(Vec::new()));
        let out = states.clone();
        let notify: Notifier = Arc::new(move |_: &str, _: &Transition, _: &Snapshot| {
            if let Some(b) = inside.lock().unwrap().as_ref() {
                out.lock()
                    .unwrap()
                    .push((b.state(), b.snapshot().counters.calls));
                let _ = b.allow(); // a re-entrant call goes through too
            }
        });
        let (_, clock) = manual_clock();
        let b = breaker_on(clock, notify);
        *slot.lock().unwrap() = Some(b.clone());
        b.force_open().expect("forced");
        assert_eq!(*states.lock().unwrap(), vec![(StateName::ForcedOpen, 0)]);
        assert_eq!(b.snapshot().counters.rejections, 1);
        *slot.lock().unwrap() = None; // break the cycle
    }

    #[test]
    fn a_panicking_notifier_does_not_reach_the_caller() {
        let (_, clock) = manual_clock();
        let notify: Notifier = Arc::new(|_: &str, _: &Transition, _: &Snapshot| {
            panic!("notifier bug");
        });
        let b = breaker_on(clock, notify);
        assert_eq!(b.disable().map(|t| t.to), Some(StateName::Disabled));
        assert_eq!(b.state(), StateName::Disabled);
        assert!(b.allow().is_ok());
    }

    #[test]
    fn operations_through_the_handle() {
        let (now, clock) = manual_clock();
        let (seen, notify) = recording_notifier();
        let b = breaker_on(clock, notify);
        assert_eq!(b.half_open().map(|t| t.to), Some(StateName::HalfOpen));
        assert_eq!(b.half_open(), None);
        assert_eq!(b.force_open().map(|t| t.to), Some(StateName::ForcedOpen));
        assert_eq!(b.disable().map(|t| t.to), Some(StateName::Disabled));
        now.store(T0 + 5, Ordering::SeqCst);
        let t = b.reset().expect("closed");
        assert_eq!(
            (t.from, t.to, t.at_ms),
            (StateName::Disabled, StateName::Closed, T0 + 5)
        );
        assert_eq!(b.reset(), None);
        assert_eq!(
            seen.lock().unwrap().len(),
            4,
            "no notification without a change"
        );
        b.reconfigure(BreakerConfig {
            failure_threshold: 1,
            ..config()
        });
        assert_eq!(b.config().failure_threshold, 1);
        fail(&b);
        assert_eq!(b.state(), StateName::Open);
    }

    #[tokio::test]
    async fn call_counts_ok_and_err_and_refuses_when_open() {
        let (_, clock) = manual_clock();
        let b = breaker_on(clock, no_notifier());
        let ok: Result<u32, CallError<String>> = b.call(async { Ok(7) }).await;
        assert_eq!(ok, Ok(7));
        for _ in 0..3 {
            let err = b.call(async { Err::<u32, _>("boom".to_owned()) }).await;
            assert_eq!(err, Err(CallError::Failed("boom".to_owned())));
        }
        let ran = AtomicUsize::new(0);
        let refused = b
            .call(async {
                ran.fetch_add(1, Ordering::SeqCst);
                Ok::<u32, String>(1)
            })
            .await;
        match refused {
            Err(CallError::Rejected(r)) => {
                assert_eq!(r.state, StateName::Open);
                assert_eq!(
                    CallError::<String>::Rejected(r).to_string(),
                    "circuit breaker open, retry in 1m"
                );
            }
            other => panic!("expected a rejection: {other:?}"),
        }
        assert_eq!(ran.load(Ordering::SeqCst), 0, "a refused call is not made");
        let c = b.snapshot().counters;
        assert_eq!(
            (c.calls, c.successes, c.failures, c.rejections),
            (4, 1, 3, 1)
        );
    }

    #[tokio::test]
    async fn a_cancelled_call_gives_its_half_open_permit_back() {
        let (_, clock) = manual_clock();
        let b = breaker_on(clock, no_notifier());
        b.half_open();
        let never = b.call(std::future::pending::<Result<(), ()>>());
        let timed_out = tokio::time::timeout(Duration::from_millis(1), never).await;
        assert!(timed_out.is_err());
        let s = b.snapshot();
        assert_eq!(
            s.state,
            State::HalfOpen {
                permits_out: 0,
                successes: 0
            }
        );
        assert_eq!((s.counters.released, s.counters.failures), (1, 0));
        assert!(b.allow().is_ok(), "the slot is free for another trial");
    }

    #[test]
    fn a_panicking_call_counts_as_a_failure() {
        let (_, clock) = manual_clock();
        let b = breaker_on(clock, no_notifier());
        let inner = b.clone();
        let joined = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(inner.call(async {
                if inner_panics() {
                    panic!("the call panicked");
                }
                Ok::<(), ()>(())
            }))
        })
        .join();
        assert!(joined.is_err());
        let c = b.snapshot().counters;
        assert_eq!((c.calls, c.failures, c.released), (1, 1, 0));
    }

    fn inner_panics() -> bool {
        true
    }

    #[test]
    fn handles_and_calls_cross_threads() {
        fn send_sync<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: &T) {}
        let b = Breaker::new("x", config(), no_notifier());
        send_sync(&b);
        send_sync(&Breakers::new());
        let call = b.call(async { Ok::<(), ()>(()) });
        send(&call);
    }

    #[test]
    fn registry_by_name() {
        let reg = Breakers::new();
        assert!(reg.is_empty());
        let db = Breaker::new("db", config(), no_notifier());
        assert!(reg.insert(db.clone()).is_none());
        assert!(reg
            .insert(Breaker::new("api", config(), no_notifier()))
            .is_none());
        assert_eq!(reg.names(), vec!["api".to_owned(), "db".to_owned()]);
        assert_eq!(reg.len(), 2);
        // A clone of the registry sees the same breakers, and the same machine.
        let other = reg.clone();
        let found = other.get("db").expect("db");
        found.force_open();
        assert_eq!(db.state(), StateName::ForcedOpen);
        assert!(other.get("nope").is_none());
        let replaced = reg.insert(Breaker::new("db", config(), no_notifier()));
        assert_eq!(replaced.map(|b| b.state()), Some(StateName::ForcedOpen));
        assert_eq!(other.get("db").map(|b| b.state()), Some(StateName::Closed));
        assert_eq!(
            reg.remove("api").map(|b| b.name().to_owned()),
            Some("api".into())
        );
        assert_eq!(reg.all().len(), 1);
        assert_eq!(format!("{reg:?}"), r#"["db"]"#);
    }

    /// 4 threads × 10,000 allow/record with a clock that moves 1 ms per read, so the breaker
    /// cycles through every state while the threads race.
    #[test]
    fn concurrent_callers_keep_the_counts_consistent() {
        const THREADS: u64 = 4;
        const CALLS: u64 = 10_000;
        let ticks = Arc::new(AtomicI64::new(T0));
        let read = ticks.clone();
        let clock: Clock = Arc::new(move || read.fetch_add(1, Ordering::Relaxed));
        let (seen, notify) = recording_notifier();
        let config = BreakerConfig {
            failure_threshold: 5,
            success_threshold: 3,
            open_for: Duration::from_millis(20),
            open_for_max: Duration::from_millis(200),
            half_open_calls: 2,
            half_open_max_wait: Duration::from_millis(50),
            window: Window::Count(50),
            failure_rate: Some(0.6),
            minimum_calls: 20,
            ..BreakerConfig::default()
        };
        let b = Breaker::with_clock("db", Machine::new(config, T0), notify, clock);
        let reported = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let b = b.clone();
                let reported = reported.clone();
                std::thread::spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(t);
                    for i in 0..CALLS {
                        if let Ok(permit) = b.allow() {
                            // Some trials are never reported (a lost call).
                            if rng.u8(..) == 0 {
                                let _lost = permit;
                                continue;
                            }
                            // Failures in bursts, so it opens, and successes so it closes.
                            let ok = (i / 200) % 3 != 0 || rng.bool();
                            b.record(permit, ok);
                            reported.fetch_add(1, Ordering::Relaxed);
                        }
                        if i % 97 == 0 {
                            b.tick();
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("no panic");
        }

        let s = b.snapshot();
        let c: Counters = s.counters;
        assert_eq!(c.calls + c.rejections, THREADS * CALLS);
        // Every report was counted once: as a success, a failure, or late.
        let reported = reported.load(Ordering::Relaxed) as u64;
        assert_eq!(c.successes + (c.failures - c.expired) + c.late, reported);
        assert!(c.transitions > 10, "it cycled: {c:?}");
        assert!(
            c.rejections > 0 && c.successes > 0 && c.failures > 0,
            "{c:?}"
        );

        // One notification per transition; in counter order they form one unbroken path.
        let mut seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len() as u64, c.transitions);
        seen.sort_by_key(|(_, _, s)| s.counters.transitions);
        for (i, (_, t, snap)) in seen.iter().enumerate() {
            assert_eq!(snap.counters.transitions, i as u64 + 1);
            assert_eq!(snap.state.name(), t.to);
            if let Some((_, before, _)) = i.checked_sub(1).map(|j| &seen[j]) {
                assert_eq!(before.to, t.from, "transition {i}");
            }
        }
        assert_eq!(seen.last().map(|(_, t, _)| t.to), Some(s.state.name()));
    }

    /// Measures allow + record uncontended (run with `--release --ignored --nocapture`).
    #[test]
    #[ignore = "a measurement, not a check"]
    fn hot_path_latency() {
        let b = Breaker::new(
            "bench",
            BreakerConfig {
                failure_rate: Some(0.5),
                ..BreakerConfig::default()
            },
            no_notifier(),
        );
        let mut samples = Vec::with_capacity(100_000);
        for i in 0..100_000u32 {
            let start = Instant::now();
            if let Ok(p) = b.allow() {
                b.record(p, i % 10 != 0);
            }
            samples.push(start.elapsed());
        }
        samples.sort();
        let p50 = samples[samples.len() / 2];
        let p99 = samples[samples.len() * 99 / 100];
        println!("allow+record: p50 {p50:?}, p99 {p99:?}");
        assert_eq!(b.state(), StateName::Closed);
    }
}
