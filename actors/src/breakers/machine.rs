//! The circuit breaker's state machine: pure, with no clock, no lock and no I/O.
//!
//! Every method takes the time as `now_ms` (Unix milliseconds), so each transition is
//! reproducible in a unit test and the same machine runs behind a lock ([`super::handle`]) or
//! inside an actor. The semantics are resilience4j's, without the two ways its HALF_OPEN gets
//! stuck or lies:
//!
//! - **A trial call that is never reported cannot hold HALF_OPEN forever.** Each half-open permit
//!   has a deadline (`half_open_max_wait`); past it the permit counts as a failure and the
//!   breaker reopens. A permit is judged at its deadline: a report that comes after it is late
//!   even if no [`Machine::tick`] ran in between, so the outcome does not depend on timer lag.
//! - **A report is counted only against the state that issued its permit.** Every state change
//!   starts a new generation; a [`Permit`] carries the generation (and, in HALF_OPEN, its own
//!   sequence number). A report from an older generation — a CLOSED call finishing after the
//!   breaker opened, a half-open permit that already expired, a call in flight across a
//!   `reset` or a daemon restart — changes nothing: it is counted in [`Counters::late`] only.
//!   resilience4j counts such calls against whatever state it is in now, so a slow CLOSED
//!   failure can reopen a breaker that just recovered.
//!
//! What "allow" means per state: CLOSED and DISABLED allow everything; OPEN rejects until its
//! wait is over and then turns HALF_OPEN (at the next [`Machine::allow`] or [`Machine::tick`],
//! whichever comes first); HALF_OPEN hands out at most `half_open_calls` permits at a time;
//! FORCED_OPEN rejects everything until an operator changes it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The largest count window; a larger `Window::Count` is clamped to it (1 Mi calls: 128 KiB).
pub const MAX_COUNT_WINDOW: u32 = 1 << 20;

/// How many buckets a time window is cut into: the window is exact to within 1/32 of its span.
const TIME_BUCKETS: usize = 32;

/// Every duration is clamped to 100 years, so `now_ms + wait` can never overflow.
const MAX_MS: i64 = 100 * 365 * 24 * 3_600 * 1_000;

/// Machine identities, so that a permit from another machine (or from before a restore) is late.
static NEXT_MACHINE: AtomicU64 = AtomicU64::new(1);

/// Which recent CLOSED calls a failure rate is judged over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last `n` calls (at least 1, at most [`MAX_COUNT_WINDOW`]).
    Count(u32),
    /// The calls of the last span (at least 1 ms), to within 1/32 of it.
    Time(Duration),
}

/// What makes a breaker open and how long it stays open.
///
/// Out-of-range values never panic; they are read as the nearest sensible value (documented
/// per field). Validating them for the operator is the config reader's job.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// Consecutive CLOSED failures that open the breaker; 0 turns this rule off.
    pub failure_threshold: u32,
    /// Successful trial calls in HALF_OPEN that close it (0 is read as 1).
    pub success_threshold: u32,
    /// The first OPEN wait.
    pub open_for: Duration,
    /// The cap on the OPEN wait (read as at least `open_for`).
    pub open_for_max: Duration,
    /// Factor applied to the wait each time a HALF_OPEN trial fails and the breaker reopens
    /// (below 1 or not finite: read as 1, the wait never shrinks).
    pub open_backoff: f64,
    /// Trial calls in flight at a time in HALF_OPEN (0 is read as 1).
    pub half_open_calls: u32,
    /// The calls a failure rate is judged over (only tracked when `failure_rate` is set).
    pub window: Window,
    /// Open when the failure rate over the window reaches this (0..=1); `None`: no rate rule.
    /// A rate above 1 (or NaN) never trips; 0 or below trips at the first judged failure.
    pub failure_rate: Option<f64>,
    /// The rate is not judged over fewer calls than this (at least 1; for a count window, at
    /// most the window's size, as in resilience4j).
    pub minimum_calls: u32,
    /// A half-open permit not reported within this counts as a failure; zero turns the deadline
    /// off (the stuck HALF_OPEN of resilience4j: not recommended).
    pub half_open_max_wait: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            success_threshold: 2,
            open_for: Duration::from_secs(5 * 60),
            open_for_max: Duration::from_secs(30 * 60),
            open_backoff: 2.0,
            half_open_calls: 1,
            window: Window::Count(20),
            failure_rate: None,
            minimum_calls: 10,
            half_open_max_wait: Duration::from_secs(60),
        }
    }
}

/// The name of a state, as events, samples and the CLI spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateName {
    Closed,
    Open,
    HalfOpen,
    ForcedOpen,
    Disabled,
}

impl StateName {
    pub fn as_str(self) -> &'static str {
        match self {
            StateName::Closed => "closed",
            StateName::Open => "open",
            StateName::HalfOpen => "half_open",
            StateName::ForcedOpen => "forced_open",
            StateName::Disabled => "disabled",
        }
    }
}

impl std::fmt::Display for StateName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state with what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum State {
    Closed,
    /// Rejecting until `until_ms`; `opened` is how many times in a row it opened without closing.
    Open {
        until_ms: i64,
        opened: u32,
    },
    /// Trial calls: `permits_out` in flight, `successes` so far.
    HalfOpen {
        permits_out: u32,
        successes: u32,
    },
    /// The operator's: rejects everything until an operator changes it.
    ForcedOpen,
    /// The operator's: allows everything and nothing recorded changes the state.
    Disabled,
}

impl State {
    pub fn name(&self) -> StateName {
        match self {
            State::Closed => StateName::Closed,
            State::Open { .. } => StateName::Open,
            State::HalfOpen { .. } => StateName::HalfOpen,
            State::ForcedOpen => StateName::ForcedOpen,
            State::Disabled => StateName::Disabled,
        }
    }
}

/// The right to make one call, to be reported with [`Machine::record`] (or given back with
/// [`Machine::release`]). Not `Clone`: a permit is reported once.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a permit must be reported with record() or given back with release()"]
pub struct Permit {
    machine: u64,
    generation: u64,
    /// The half-open trial's number; 0 for permits of other states.
    seq: u64,
    state: StateName,
}

impl Permit {
    /// The state that issued it (closed, half_open or disabled).
    pub fn state(&self) -> StateName {
        self.state
    }
}

/// A call the breaker did not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// Open, half_open (every trial permit is out) or forced_open.
    pub state: StateName,
    /// OPEN: the rest of the wait. `None` when the breaker cannot tell (HALF_OPEN waits for
    /// its trials, FORCED_OPEN for an operator).
    pub retry_after: Option<Duration>,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "circuit breaker {}", self.state)?;
        match self.retry_after {
            Some(wait) => write!(f, ", retry in {}", humantime::format_duration(wait)),
            None => Ok(()),
        }
    }
}

impl std::error::Error for Rejected {}

/// One change of state, for events, samples and alerts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub from: StateName,
    pub to: StateName,
    pub at_ms: i64,
    /// Why, in words (for example "5 consecutive failures; open for 5m").
    pub reason: String,
}

/// Running totals since the breaker was created (restored with it).
///
/// Every permit ends as exactly one of: a success, a failure, a late report, or a release;
/// an expired half-open permit is counted in `failures` and `expired` at its deadline, and its
/// own report, if it ever comes, in `late`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Permits handed out.
    pub calls: u64,
    /// Successes counted (in the state that issued the permit).
    pub successes: u64,
    /// Failures counted, expired half-open permits included.
    pub failures: u64,
    /// Calls refused.
    pub rejections: u64,
    /// Reports ignored because their permit belonged to an earlier generation.
    pub late: u64,
    /// Half-open permits that passed their deadline unreported.
    pub expired: u64,
    /// Permits given back without an outcome (a cancelled call).
    pub released: u64,
    /// State changes; also orders notifications that arrive out of order.
    pub transitions: u64,
}

/// What a breaker persists and reports; [`Machine::restore`] reads it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub state: State,
    /// How many times in a row it opened without closing (kept through HALF_OPEN, so the next
    /// wait keeps growing after a restart).
    pub opened: u32,
    /// The current run of CLOSED failures.
    pub consecutive_failures: u32,
    /// Calls and failures in the rate window now (informative: the window is not restored).
    pub window_calls: u32,
    pub window_failures: u32,
    /// The current (or last) OPEN wait, in ms.
    pub wait_ms: i64,
    /// When the current state began.
    pub since_ms: i64,
    /// When the last transition happened; `None` before the first.
    pub last_transition_ms: Option<i64>,
    pub counters: Counters,
}

/// The config read once into the numbers the hot path uses.
#[derive(Debug, Clone, Copy)]
struct Limits {
    failure_threshold: u32,
    success_threshold: u32,
    base_ms: i64,
    cap_ms: i64,
    factor: f64,
    half_open_calls: u32,
    rate: Option<f64>,
    minimum_calls: u32,
    /// 0: half-open permits never expire.
    max_wait_ms: i64,
}

impl Limits {
    fn new(c: &BreakerConfig) -> Limits {
        let base_ms = ms(c.open_for);
        let factor = if c.open_backoff.is_finite() && c.open_backoff > 1.0 {
            c.open_backoff
        } else {
            1.0
        };
        let minimum_calls = match c.window {
            Window::Count(n) => c.minimum_calls.min(n.clamp(1, MAX_COUNT_WINDOW)),
            Window::Time(_) => c.minimum_calls,
        };
        Limits {
            failure_threshold: c.failure_threshold,
            success_threshold: c.success_threshold.max(1),
            base_ms,
            cap_ms: ms(c.open_for_max).max(base_ms),
            factor,
            half_open_calls: c.half_open_calls.max(1),
            rate: c.failure_rate,
            minimum_calls: minimum_calls.max(1),
            max_wait_ms: ms(c.half_open_max_wait),
        }
    }

    /// The wait after `wait` when a trial fails: times the factor, up to the cap.
    fn grow(&self, wait: i64) -> i64 {
        let next = wait as f64 * self.factor;
        if next >= self.cap_ms as f64 {
            self.cap_ms
        } else {
            (next as i64).clamp(self.base_ms, self.cap_ms)
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(MAX_MS).min(MAX_MS)
}

fn human_ms(ms: i64) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// The phase the machine is in; the counts HALF_OPEN and OPEN carry live beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    Open { until_ms: i64 },
    HalfOpen { successes: u32 },
    ForcedOpen,
    Disabled,
}

impl Phase {
    fn name(self) -> StateName {
        match self {
            Phase::Closed => StateName::Closed,
            Phase::Open { .. } => StateName::Open,
            Phase::HalfOpen { .. } => StateName::HalfOpen,
            Phase::ForcedOpen => StateName::ForcedOpen,
            Phase::Disabled => StateName::Disabled,
        }
    }
}

/// A half-open permit in flight.
#[derive(Debug, Clone, Copy)]
struct Outstanding {
    seq: u64,
    /// `i64::MAX` when permits do not expire.
    deadline_ms: i64,
}

/// One circuit breaker. See the module documentation for the semantics.
#[derive(Debug, Clone)]
pub struct Machine {
    config: BreakerConfig,
    limits: Limits,
    id: u64,
    phase: Phase,
    /// Bumped at every state change (and at a reset): permits of older generations are late.
    generation: u64,
    next_seq: u64,
    opened: u32,
    wait_ms: i64,
    consecutive_failures: u32,
    outcomes: Outcomes,
    /// Half-open permits in flight (empty in every other state).
    outstanding: Vec<Outstanding>,
    since_ms: i64,
    last_transition_ms: Option<i64>,
    counters: Counters,
}

impl Machine {
    /// A CLOSED breaker.
    pub fn new(config: BreakerConfig, now_ms: i64) -> Machine {
        let limits = Limits::new(&config);
        // Reserved once so taking a half-open permit does not allocate (bounded: the config
        // may ask for millions).
        let reserve = limits.half_open_calls.min(64) as usize;
        Machine {
            outcomes: Outcomes::new(&config),
            config,
            limits,
            id: NEXT_MACHINE.fetch_add(1, Ordering::Relaxed),
            phase: Phase::Closed,
            generation: 0,
            next_seq: 0,
            opened: 0,
            wait_ms: limits.base_ms,
            consecutive_failures: 0,
            outstanding: Vec::with_capacity(reserve),
            since_ms: now_ms,
            last_transition_ms: None,
            counters: Counters::default(),
        }
    }

    /// The breaker a [`Snapshot`] describes, after a daemon restart.
    ///
    /// Permits out when it was taken are gone: HALF_OPEN comes back with none out (its
    /// successes kept), and any report for them is late. An OPEN whose wait passed meanwhile
    /// turns HALF_OPEN at the next `allow` or `tick`. An OPEN ending further away than its wait
    /// (a clock that went back, a hand-edited file) is brought back to `now + wait`. The
    /// operator's FORCED_OPEN and DISABLED survive. The rate window starts empty.
    pub fn restore(config: BreakerConfig, snapshot: &Snapshot, now_ms: i64) -> Machine {
        let mut m = Machine::new(config, now_ms);
        m.counters = snapshot.counters;
        m.since_ms = snapshot.since_ms;
        m.last_transition_ms = snapshot.last_transition_ms;
        m.wait_ms = snapshot.wait_ms.clamp(m.limits.base_ms, m.limits.cap_ms);
        m.opened = snapshot.opened;
        m.phase = match snapshot.state {
            State::Closed => {
                m.opened = 0;
                m.wait_ms = m.limits.base_ms;
                m.consecutive_failures = snapshot.consecutive_failures;
                Phase::Closed
            }
            State::Open { until_ms, opened } => {
                m.opened = opened.max(1);
                Phase::Open {
                    until_ms: until_ms.min(now_ms.saturating_add(m.wait_ms)),
                }
            }
            State::HalfOpen { successes, .. } => Phase::HalfOpen {
                successes: successes.min(m.limits.success_threshold - 1),
            },
            State::ForcedOpen => Phase::ForcedOpen,
            State::Disabled => Phase::Disabled,
        };
        m.first_wait_unless_opened();
        m
    }

    /// Takes a new config and keeps the state: the rate window restarts empty if its shape
    /// changed; the OPEN wait is brought within the new bounds.
    pub fn reconfigure(&mut self, config: BreakerConfig, now_ms: i64) {
        let reshaped = config.window != self.config.window
            || config.failure_rate.is_some() != self.config.failure_rate.is_some();
        self.limits = Limits::new(&config);
        if reshaped {
            self.outcomes = Outcomes::new(&config);
        }
        self.config = config;
        self.wait_ms = self.wait_ms.clamp(self.limits.base_ms, self.limits.cap_ms);
        self.first_wait_unless_opened();
        if let Phase::Open { until_ms } = self.phase {
            self.phase = Phase::Open {
                until_ms: until_ms.min(now_ms.saturating_add(self.wait_ms)),
            };
        }
    }

    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// A breaker that has not opened since it last closed (closed, or put in a state by an
    /// operator) opens next for the first wait, `open_for`: that is its wait, whatever an
    /// earlier config or snapshot said.
    fn first_wait_unless_opened(&mut self) {
        if self.opened == 0 {
            self.wait_ms = self.limits.base_ms;
        }
    }

    pub fn state(&self) -> State {
        match self.phase {
            Phase::Closed => State::Closed,
            Phase::Open { until_ms } => State::Open {
                until_ms,
                opened: self.opened,
            },
            Phase::HalfOpen { successes } => State::HalfOpen {
                permits_out: u32::try_from(self.outstanding.len()).unwrap_or(u32::MAX),
                successes,
            },
            Phase::ForcedOpen => State::ForcedOpen,
            Phase::Disabled => State::Disabled,
        }
    }

    pub fn state_name(&self) -> StateName {
        self.phase.name()
    }

    /// Whether a call may go ahead. The transition this may cause (OPEN → HALF_OPEN when the
    /// wait is over, HALF_OPEN → OPEN when a trial permit expired) still happens but is not
    /// returned: use [`Machine::admit`] to report it.
    pub fn allow(&mut self, now_ms: i64) -> Result<Permit, Rejected> {
        self.admit(now_ms).0
    }

    /// [`Machine::allow`], with the transition it caused, if any. Allocates nothing when
    /// there is no transition.
    pub fn admit(&mut self, now_ms: i64) -> (Result<Permit, Rejected>, Option<Transition>) {
        match self.phase {
            Phase::Closed | Phase::Disabled => (Ok(self.issue()), None),
            Phase::ForcedOpen => (Err(self.reject(now_ms)), None),
            Phase::Open { until_ms } if now_ms < until_ms => (Err(self.reject(now_ms)), None),
            Phase::Open { .. } => {
                let change = self.enter_half_open(now_ms, self.wait_over_reason());
                (self.admit_half_open(now_ms).0, Some(change))
            }
            Phase::HalfOpen { .. } => self.admit_half_open(now_ms),
        }
    }

    /// The outcome of a permitted call. Counted only if the permit belongs to the current
    /// generation (and, in HALF_OPEN, is still in flight and not past its deadline); otherwise
    /// it is late and changes nothing.
    pub fn record(&mut self, permit: Permit, success: bool, now_ms: i64) -> Option<Transition> {
        // A trial past its deadline failed at that deadline, before this report.
        if let Some(change) = self.expire(now_ms) {
            self.counters.late += 1;
            return Some(change);
        }
        if !self.is_current(&permit) {
            self.counters.late += 1;
            return None;
        }
        match self.phase {
            Phase::Closed => self.record_closed(success, now_ms),
            Phase::HalfOpen { successes } => {
                if !self.take_outstanding(permit.seq) {
                    self.counters.late += 1;
                    return None;
                }
                self.record_half_open(successes, success, now_ms)
            }
            Phase::Disabled => {
                self.count(success);
                None
            }
            // OPEN and FORCED_OPEN issue no permits, so a permit of theirs cannot be current.
            Phase::Open { .. } | Phase::ForcedOpen => {
                self.counters.late += 1;
                None
            }
        }
    }

    /// Gives a permit back without an outcome (the call was cancelled): a half-open slot is
    /// freed for another trial; nothing is counted but `released`.
    pub fn release(&mut self, permit: Permit) {
        if self.is_current(&permit) && matches!(self.phase, Phase::HalfOpen { .. }) {
            self.take_outstanding(permit.seq);
        }
        self.counters.released += 1;
    }

    /// The timer path: an OPEN whose wait is over turns HALF_OPEN without waiting for a call;
    /// a half-open permit past its deadline counts as a failure and reopens.
    pub fn tick(&mut self, now_ms: i64) -> Option<Transition> {
        match self.phase {
            Phase::Open { until_ms } if now_ms >= until_ms => {
                Some(self.enter_half_open(now_ms, self.wait_over_reason()))
            }
            Phase::HalfOpen { .. } => self.expire(now_ms),
            _ => None,
        }
    }

    /// When [`Machine::tick`] next has something to do: the end of the OPEN wait, or the
    /// earliest half-open deadline. `None`: nothing happens without a call or an operator.
    pub fn next_deadline(&self) -> Option<i64> {
        match self.phase {
            Phase::Open { until_ms } => Some(until_ms),
            Phase::HalfOpen { .. } => self
                .outstanding
                .iter()
                .map(|p| p.deadline_ms)
                .filter(|&d| d != i64::MAX)
                .min(),
            _ => None,
        }
    }

    /// The operator's: reject everything until `reset`, `half_open` or `disable`.
    pub fn force_open(&mut self, now_ms: i64) -> Option<Transition> {
        (self.phase != Phase::ForcedOpen).then(|| {
            self.change(
                Phase::ForcedOpen,
                now_ms,
                "forced open by the operator".into(),
            )
        })
    }

    /// The operator's: allow everything; outcomes change nothing until `reset`.
    pub fn disable(&mut self, now_ms: i64) -> Option<Transition> {
        (self.phase != Phase::Disabled)
            .then(|| self.change(Phase::Disabled, now_ms, "disabled by the operator".into()))
    }

    /// The operator's: CLOSED with every count cleared and the wait back to `open_for`. Calls
    /// in flight become late. `None` if it was already CLOSED (the counts are cleared anyway).
    pub fn reset(&mut self, now_ms: i64) -> Option<Transition> {
        if self.phase == Phase::Closed {
            self.clear_run();
            self.generation += 1;
            return None;
        }
        Some(self.enter_closed(now_ms, "reset by the operator".into()))
    }

    /// The operator's: HALF_OPEN now, whatever the state (trials decide what comes next).
    pub fn half_open(&mut self, now_ms: i64) -> Option<Transition> {
        (!matches!(self.phase, Phase::HalfOpen { .. }))
            .then(|| self.enter_half_open(now_ms, "half-open by the operator".into()))
    }

    pub fn snapshot(&self, now_ms: i64) -> Snapshot {
        let (window_calls, window_failures) = self.outcomes.totals(now_ms);
        Snapshot {
            state: self.state(),
            opened: self.opened,
            consecutive_failures: self.consecutive_failures,
            window_calls,
            window_failures,
            wait_ms: self.wait_ms,
            since_ms: self.since_ms,
            last_transition_ms: self.last_transition_ms,
            counters: self.counters,
        }
    }

    fn issue(&mut self) -> Permit {
        self.counters.calls += 1;
        Permit {
            machine: self.id,
            generation: self.generation,
            seq: 0,
            state: self.phase.name(),
        }
    }

    fn reject(&mut self, now_ms: i64) -> Rejected {
        self.counters.rejections += 1;
        let retry_after = match self.phase {
            Phase::Open { until_ms } => {
                let left = until_ms.saturating_sub(now_ms).max(0);
                Some(Duration::from_millis(u64::try_from(left).unwrap_or(0)))
            }
            _ => None,
        };
        Rejected {
            state: self.phase.name(),
            retry_after,
        }
    }

    fn admit_half_open(&mut self, now_ms: i64) -> (Result<Permit, Rejected>, Option<Transition>) {
        if let Some(change) = self.expire(now_ms) {
            return (Err(self.reject(now_ms)), Some(change));
        }
        if self.outstanding.len() >= self.limits.half_open_calls as usize {
            return (Err(self.reject(now_ms)), None);
        }
        self.next_seq += 1;
        let deadline_ms = match self.limits.max_wait_ms {
            0 => i64::MAX,
            wait => now_ms.saturating_add(wait),
        };
        self.outstanding.push(Outstanding {
            seq: self.next_seq,
            deadline_ms,
        });
        let mut permit = self.issue();
        permit.seq = self.next_seq;
        (Ok(permit), None)
    }

    fn is_current(&self, permit: &Permit) -> bool {
        permit.machine == self.id && permit.generation == self.generation
    }

    /// Removes a half-open permit from those in flight; false if it is not there (expired).
    fn take_outstanding(&mut self, seq: u64) -> bool {
        match self.outstanding.iter().position(|p| p.seq == seq) {
            Some(i) => {
                self.outstanding.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// In HALF_OPEN, a permit past its deadline is a failure: reopen.
    fn expire(&mut self, now_ms: i64) -> Option<Transition> {
        if !matches!(self.phase, Phase::HalfOpen { .. })
            || !self
                .outstanding
                .iter()
                .any(|p| p.deadline_ms != i64::MAX && p.deadline_ms <= now_ms)
        {
            return None;
        }
        self.counters.expired += 1;
        self.counters.failures += 1;
        let reason = format!(
            "a trial call was not reported within {}",
            human_ms(self.limits.max_wait_ms)
        );
        Some(self.enter_open(now_ms, reason))
    }

    fn count(&mut self, success: bool) {
        if success {
            self.counters.successes += 1;
        } else {
            self.counters.failures += 1;
        }
    }

    fn record_closed(&mut self, success: bool, now_ms: i64) -> Option<Transition> {
        self.count(success);
        self.outcomes.push(now_ms, !success);
        if success {
            self.consecutive_failures = 0;
            return None;
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let reason = self.trip_reason(now_ms)?;
        Some(self.enter_open(now_ms, reason))
    }

    /// Why CLOSED must open now, if it must. Judged after failures only: a success never
    /// opens the breaker.
    fn trip_reason(&self, now_ms: i64) -> Option<String> {
        let threshold = self.limits.failure_threshold;
        if threshold > 0 && self.consecutive_failures >= threshold {
            return Some(format!(
                "{} consecutive failures",
                self.consecutive_failures
            ));
        }
        let rate = self.limits.rate?;
        let (calls, failures) = self.outcomes.totals(now_ms);
        if calls < self.limits.minimum_calls {
            return None;
        }
        let observed = f64::from(failures) / f64::from(calls);
        (observed >= rate).then(|| {
            format!(
                "failure rate {:.0}% over the last {calls} calls reached {:.0}%",
                observed * 100.0,
                rate * 100.0
            )
        })
    }

    fn record_half_open(
        &mut self,
        successes: u32,
        success: bool,
        now_ms: i64,
    ) -> Option<Transition> {
        self.count(success);
        if !success {
            return Some(self.enter_open(now_ms, "a trial call failed".into()));
        }
        let successes = successes.saturating_add(1);
        if successes >= self.limits.success_threshold {
            let reason = format!("{successes} successful trial calls");
            return Some(self.enter_closed(now_ms, reason));
        }
        self.phase = Phase::HalfOpen { successes };
        None
    }

    fn wait_over_reason(&self) -> String {
        format!("open for {}", human_ms(self.wait_ms))
    }

    /// OPEN: the first time for `open_for`, then each time for the previous wait times the
    /// factor, up to the cap.
    fn enter_open(&mut self, now_ms: i64, reason: String) -> Transition {
        if self.opened == 0 {
            self.wait_ms = self.limits.base_ms;
        } else {
            self.wait_ms = self.limits.grow(self.wait_ms);
        }
        self.opened = self.opened.saturating_add(1);
        let until_ms = now_ms.saturating_add(self.wait_ms);
        let reason = format!("{reason}; open for {}", human_ms(self.wait_ms));
        self.change(Phase::Open { until_ms }, now_ms, reason)
    }

    fn enter_half_open(&mut self, now_ms: i64, reason: String) -> Transition {
        self.change(Phase::HalfOpen { successes: 0 }, now_ms, reason)
    }

    /// CLOSED after recovery or a reset: the run of openings ends, the wait is back to its
    /// first value, and CLOSED starts with clean counts.
    fn enter_closed(&mut self, now_ms: i64, reason: String) -> Transition {
        self.clear_run();
        self.change(Phase::Closed, now_ms, reason)
    }

    fn clear_run(&mut self) {
        self.opened = 0;
        self.wait_ms = self.limits.base_ms;
        self.consecutive_failures = 0;
        self.outcomes.clear();
    }

    fn change(&mut self, to: Phase, now_ms: i64, reason: String) -> Transition {
        let from = self.phase.name();
        if from == StateName::Closed {
            // The CLOSED counts judged that stint; the next one starts clean.
            self.consecutive_failures = 0;
            self.outcomes.clear();
        }
        self.phase = to;
        self.generation += 1;
        self.outstanding.clear();
        self.since_ms = now_ms;
        self.last_transition_ms = Some(now_ms);
        self.counters.transitions += 1;
        Transition {
            from,
            to: to.name(),
            at_ms: now_ms,
            reason,
        }
    }
}

/// Outcomes of recent CLOSED calls, for the failure rate; not tracked without a rate rule.
#[derive(Debug, Clone)]
enum Outcomes {
    Off,
    Count(CountRing),
    Time(TimeBuckets),
}

impl Outcomes {
    fn new(config: &BreakerConfig) -> Outcomes {
        if config.failure_rate.is_none() {
            return Outcomes::Off;
        }
        match config.window {
            Window::Count(n) => Outcomes::Count(CountRing::new(n)),
            Window::Time(span) => Outcomes::Time(TimeBuckets::new(span)),
        }
    }

    fn push(&mut self, now_ms: i64, failed: bool) {
        match self {
            Outcomes::Off => {}
            Outcomes::Count(ring) => ring.push(failed),
            Outcomes::Time(buckets) => buckets.push(now_ms, failed),
        }
    }

    /// (calls, failures) in the window at `now_ms`.
    fn totals(&self, now_ms: i64) -> (u32, u32) {
        match self {
            Outcomes::Off => (0, 0),
            Outcomes::Count(ring) => (ring.filled, ring.failures),
            Outcomes::Time(buckets) => buckets.totals(now_ms),
        }
    }

    fn clear(&mut self) {
        match self {
            Outcomes::Off => {}
            Outcomes::Count(ring) => ring.clear(),
            Outcomes::Time(buckets) => buckets.clear(),
        }
    }
}

/// The last `size` outcomes, one bit each (1: failure), in a ring.
#[derive(Debug, Clone)]
struct CountRing {
    bits: Vec<u64>,
    size: u32,
    next: u32,
    filled: u32,
    failures: u32,
}

impl CountRing {
    fn new(n: u32) -> CountRing {
        let size = n.clamp(1, MAX_COUNT_WINDOW);
        CountRing {
            bits: vec![0; size.div_ceil(64) as usize],
            size,
            next: 0,
            filled: 0,
            failures: 0,
        }
    }

    fn push(&mut self, failed: bool) {
        let mask = 1u64 << (self.next % 64);
        let Some(word) = self.bits.get_mut((self.next / 64) as usize) else {
            return;
        };
        if self.filled == self.size {
            if *word & mask != 0 {
                self.failures = self.failures.saturating_sub(1);
            }
        } else {
            self.filled += 1;
        }
        if failed {
            *word |= mask;
            self.failures += 1;
        } else {
            *word &= !mask;
        }
        self.next = (self.next + 1) % self.size;
    }

    fn clear(&mut self) {
        self.bits.fill(0);
        self.next = 0;
        self.filled = 0;
        self.failures = 0;
    }
}

/// Calls per slice of time: 32 slices of 1/32 of the span; the window is the slice `now`
/// falls in and the 31 before it.
#[derive(Debug, Clone)]
struct TimeBuckets {
    width_ms: i64,
    /// Boxed: 512 bytes would make every machine that large, rate rule or not.
    buckets: Box<[Bucket; TIME_BUCKETS]>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Which slice of time (`now_ms / width_ms`) the counts are for.
    epoch: i64,
    calls: u32,
    failures: u32,
}

const EMPTY_BUCKET: Bucket = Bucket {
    epoch: i64::MIN,
    calls: 0,
    failures: 0,
};

impl TimeBuckets {
    fn new(span: Duration) -> TimeBuckets {
        let span = ms(span).max(1);
        TimeBuckets {
            width_ms: ((span + TIME_BUCKETS as i64 - 1) / TIME_BUCKETS as i64).max(1),
            buckets: Box::new([EMPTY_BUCKET; TIME_BUCKETS]),
        }
    }

    fn epoch(&self, now_ms: i64) -> i64 {
        now_ms.div_euclid(self.width_ms)
    }

    fn push(&mut self, now_ms: i64, failed: bool) {
        let epoch = self.epoch(now_ms);
        let bucket = &mut self.buckets[epoch.rem_euclid(TIME_BUCKETS as i64) as usize];
        if bucket.epoch != epoch {
            *bucket = Bucket {
                epoch,
                ..EMPTY_BUCKET
            };
        }
        bucket.calls = bucket.calls.saturating_add(1);
        if failed {
            bucket.failures = bucket.failures.saturating_add(1);
        }
    }

    fn totals(&self, now_ms: i64) -> (u32, u32) {
        let newest = self.epoch(now_ms);
        let oldest = newest.saturating_sub(TIME_BUCKETS as i64 - 1);
        self.buckets
            .iter()
            .filter(|b| b.epoch >= oldest && b.epoch <= newest)
            .fold((0u32, 0u32), |(c, f), b| {
                (c.saturating_add(b.calls), f.saturating_add(b.failures))
            })
    }

    fn clear(&mut self) {
        *self.buckets = [EMPTY_BUCKET; TIME_BUCKETS];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;
    const MIN: i64 = 60_000;

    /// Consecutive failures only: 3 open it, 2 trial successes close it, 1 min then x2 to 4 min.
    fn config() -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 3,
            success_threshold: 2,
            open_for: Duration::from_secs(60),
            open_for_max: Duration::from_secs(240),
            open_backoff: 2.0,
            half_open_calls: 1,
            window: Window::Count(10),
            failure_rate: None,
            minimum_calls: 5,
            half_open_max_wait: Duration::from_secs(10),
        }
    }

    fn rate_config(window: Window, rate: f64, minimum_calls: u32) -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 0,
            window,
            failure_rate: Some(rate),
            minimum_calls,
            ..config()
        }
    }

    /// One call through the machine; panics (test only) if it is rejected.
    fn call(m: &mut Machine, ok: bool, now: i64) -> Option<Transition> {
        let permit = m.allow(now).expect("allowed");
        m.record(permit, ok, now)
    }

    /// Fails calls until the breaker opens.
    fn trip(m: &mut Machine, now: i64) {
        while call(m, false, now).is_none() {}
    }

    fn open_it(m: &mut Machine, now: i64) -> Transition {
        call(m, false, now);
        call(m, false, now);
        call(m, false, now).expect("third failure opens")
    }

    fn until(m: &Machine) -> i64 {
        match m.state() {
            State::Open { until_ms, .. } => until_ms,
            other => panic!("not open: {other:?}"),
        }
    }

    #[test]
    fn state_names_are_the_documented_strings() {
        let names = [
            (StateName::Closed, "closed"),
            (StateName::Open, "open"),
            (StateName::HalfOpen, "half_open"),
            (StateName::ForcedOpen, "forced_open"),
            (StateName::Disabled, "disabled"),
        ];
        for (name, text) in names {
            assert_eq!(name.as_str(), text);
            assert_eq!(name.to_string(), text);
            assert_eq!(serde_json::to_string(&name).unwrap(), format!("\"{text}\""));
        }
    }

    #[test]
    fn default_config_is_the_documented_one() {
        let c = BreakerConfig::default();
        assert_eq!(c.failure_threshold, 5);
        assert_eq!(c.success_threshold, 2);
        assert_eq!(c.open_for, Duration::from_secs(300));
        assert_eq!(c.open_for_max, Duration::from_secs(1800));
        assert_eq!(c.open_backoff, 2.0);
        assert_eq!(c.half_open_calls, 1);
        assert_eq!(c.window, Window::Count(20));
        assert_eq!(c.failure_rate, None);
        assert_eq!(c.minimum_calls, 10);
        assert_eq!(c.half_open_max_wait, Duration::from_secs(60));
    }

    #[test]
    fn closed_allows_and_successes_keep_it_closed() {
        let mut m = Machine::new(config(), T0);
        for i in 0..100 {
            assert_eq!(call(&mut m, true, T0 + i), None);
        }
        assert_eq!(m.state(), State::Closed);
        assert_eq!(m.next_deadline(), None);
        let c = m.snapshot(T0).counters;
        assert_eq!(
            (c.calls, c.successes, c.failures, c.transitions),
            (100, 100, 0, 0)
        );
    }

    #[test]
    fn consecutive_failures_open_and_a_success_restarts_the_run() {
        let mut m = Machine::new(config(), T0);
        call(&mut m, false, T0);
        call(&mut m, false, T0);
        call(&mut m, true, T0);
        call(&mut m, false, T0);
        assert_eq!(
            call(&mut m, false, T0),
            None,
            "the run restarted at the success"
        );
        assert_eq!(m.snapshot(T0).consecutive_failures, 2);
        let t = call(&mut m, false, T0 + 5).expect("opens");
        assert_eq!(
            (t.from, t.to, t.at_ms),
            (StateName::Closed, StateName::Open, T0 + 5)
        );
        assert!(
            t.reason.starts_with("3 consecutive failures"),
            "{}",
            t.reason
        );
        assert!(t.reason.ends_with("open for 1m"), "{}", t.reason);
        assert_eq!(
            m.state(),
            State::Open {
                until_ms: T0 + 5 + MIN,
                opened: 1
            }
        );
    }

    #[test]
    fn failure_threshold_zero_never_opens_on_consecutive_failures() {
        let mut m = Machine::new(
            BreakerConfig {
                failure_threshold: 0,
                ..config()
            },
            T0,
        );
        for _ in 0..1_000 {
            assert_eq!(call(&mut m, false, T0), None);
        }
        assert_eq!(m.state_name(), StateName::Closed);
    }

    #[test]
    fn open_rejects_at_once_with_the_remaining_wait() {
        let mut m = Machine::new(config(), T0);
        open_it(&mut m, T0);
        let r = m.allow(T0 + 15_000).unwrap_err();
        assert_eq!(r.state, StateName::Open);
        assert_eq!(r.retry_after, Some(Duration::from_secs(45)));
        assert_eq!(r.to_string(), "circuit breaker open, retry in 45s");
        let r = m.allow(T0 + MIN - 1).unwrap_err();
        assert_eq!(r.retry_after, Some(Duration::from_millis(1)));
        assert_eq!(m.snapshot(T0).counters.rejections, 2);
        assert_eq!(m.next_deadline(), Some(T0 + MIN));
    }

    #[test]
    fn count_window_opens_at_the_rate_once_minimum_calls_are_in() {
        let mut m = Machine::new(rate_config(Window::Count(10), 0.5, 4), T0);
        // 2 failures out of 3 is over 50% but below the minimum of 4 calls.
        call(&mut m, false, T0);
        call(&mut m, true, T0);
        assert_eq!(call(&mut m, false, T0), None);
        // 2 of 4: 50% reached, but a success never opens the breaker...
        assert_eq!(call(&mut m, true, T0), None);
        assert_eq!(m.state_name(), StateName::Closed);
        // ...the next failure does: 3 of 5.
        let t = call(&mut m, false, T0).expect("rate reached");
        assert_eq!(t.to, StateName::Open);
        assert!(
            t.reason
                .starts_with("failure rate 60% over the last 5 calls reached 50%"),
            "{}",
            t.reason
        );
    }

    #[test]
    fn count_window_forgets_calls_older_than_its_size() {
        let mut m = Machine::new(rate_config(Window::Count(4), 0.75, 4), T0);
        for ok in [false, false, true, true, true] {
            assert_eq!(call(&mut m, ok, T0), None);
        }
        // F F T T T through a window of 4: the first F slid out.
        let s = m.snapshot(T0);
        assert_eq!((s.window_calls, s.window_failures), (4, 1));
        call(&mut m, false, T0); // T T T F: 25%
        call(&mut m, false, T0); // T T F F: 50%
        assert_eq!(m.state_name(), StateName::Closed);
        assert!(call(&mut m, false, T0).is_some(), "T F F F: 75%");
    }

    #[test]
    fn count_window_minimum_is_capped_at_its_size() {
        // resilience4j's rule: a minimum above the window's size would never be met.
        let mut m = Machine::new(rate_config(Window::Count(3), 1.0, 100), T0);
        call(&mut m, false, T0);
        call(&mut m, false, T0);
        assert!(call(&mut m, false, T0).is_some());
    }

    #[test]
    fn time_window_opens_at_the_rate_and_ages_calls_out() {
        let span = 32_000; // 32 buckets of 1 s
        let mut m = Machine::new(
            rate_config(Window::Time(Duration::from_millis(span as u64)), 0.5, 4),
            T0,
        );
        // Three old failures, then time passes beyond the window.
        for _ in 0..3 {
            call(&mut m, false, T0);
        }
        assert_eq!(m.snapshot(T0).window_calls, 3, "below the minimum");
        let later = T0 + span + 1_000;
        assert_eq!(m.snapshot(later).window_calls, 0, "aged out");
        // Now 3 successes and 1 failure: 25%, no trip; the old failures do not count.
        for ok in [true, true, true, false] {
            assert_eq!(call(&mut m, ok, later), None);
        }
        // 2 of 5 is 40%; 3 of 6 is 50%.
        assert_eq!(call(&mut m, false, later + 100), None);
        let t = call(&mut m, false, later + 200).expect("50% over 6 calls");
        assert_eq!(t.to, StateName::Open);
    }

    #[test]
    fn time_window_respects_minimum_calls() {
        let mut m = Machine::new(
            rate_config(Window::Time(Duration::from_secs(10)), 0.1, 5),
            T0,
        );
        for i in 0..4 {
            assert_eq!(call(&mut m, false, T0 + i), None, "only {} calls", i + 1);
        }
        assert!(call(&mut m, false, T0 + 4).is_some(), "5 calls, 100%");
    }

    #[test]
    fn time_window_spread_over_its_span_counts_every_call() {
        let mut m = Machine::new(
            rate_config(Window::Time(Duration::from_secs(32)), 2.0, 1),
            T0,
        );
        for s in 0..31 {
            call(&mut m, s % 2 == 0, T0 + s * 1_000);
        }
        let snap = m.snapshot(T0 + 30_500);
        assert_eq!((snap.window_calls, snap.window_failures), (31, 15));
        // Rate above 1 never trips.
        assert_eq!(m.state_name(), StateName::Closed);
    }

    #[test]
    fn both_rules_together_the_first_reached_opens() {
        let mut m = Machine::new(
            BreakerConfig {
                failure_rate: Some(0.9),
                ..config()
            },
            T0,
        );
        let t = open_it(&mut m, T0);
        assert!(
            t.reason.starts_with("3 consecutive failures"),
            "{}",
            t.reason
        );
    }

    #[test]
    fn allow_after_the_wait_turns_half_open_and_hands_out_the_permit() {
        let mut m = Machine::new(config(), T0);
        open_it(&mut m, T0);
        let (permit, change) = m.admit(T0 + MIN);
        let change = change.expect("open -> half_open");
        assert_eq!(
            (change.from, change.to),
            (StateName::Open, StateName::HalfOpen)
        );
        assert_eq!(change.reason, "open for 1m");
        let permit = permit.expect("the first trial");
        assert_eq!(permit.state(), StateName::HalfOpen);
        assert_eq!(
            m.state(),
            State::HalfOpen {
                permits_out: 1,
                successes: 0
            }
        );
    }

    #[test]
    fn tick_turns_half_open_without_any_call() {
        let mut m = Machine::new(config(), T0);
        open_it(&mut m, T0);
        assert_eq!(m.tick(T0 + MIN - 1), None);
        let deadline = m.next_deadline().expect("a timer for the wait");
        assert_eq!(deadline, T0 + MIN);
        let t = m.tick(deadline).expect("half-open");
        assert_eq!(
            (t.from, t.to, t.at_ms),
            (StateName::Open, StateName::HalfOpen, deadline)
        );
        assert_eq!(
            m.next_deadline(),
            None,
            "no permit out yet, nothing to time"
        );
        assert_eq!(m.tick(deadline + 1), None);
    }

    #[test]
    fn half_open_hands_out_at_most_its_permits() {
        let mut m = Machine::new(
            BreakerConfig {
                half_open_calls: 3,
                success_threshold: 5,
                ..config()
            },
            T0,
        );
        open_it(&mut m, T0);
        m.tick(T0 + MIN);
        let now = T0 + MIN;
        let permits: Vec<Permit> = (0..3).map(|_| m.allow(now).expect("permit")).collect();
        for _ in 0..100 {
            let r = m.allow(now).unwrap_err();
            assert_eq!(
                r,
                Rejected {
                    state: StateName::HalfOpen,
                    retry_after: None
                }
            );
        }
        assert_eq!(
            m.state(),
            State::HalfOpen {
                permits_out: 3,
                successes: 0
            }
        );
        let mut permits = permits.into_iter();
        let first = permits.next().expect("three");
        assert_eq!(m.record(first, true, now + 1), None);
        // One slot freed: exactly one more permit.
        let again = m.allow(now + 1).expect("a freed slot");
        assert!(m.allow(now + 1).is_err());
        assert_eq!(
            m.state(),
            State::HalfOpen {
                permits_out: 3,
                successes: 1
            }
        );
        // A released permit frees its slot without counting.
        m.release(again);
        assert_eq!(
            m.state(),
            State::HalfOpen {
                permits_out: 2,
                successes: 1
            }
        );
        let s = m.snapshot(now).counters;
        assert_eq!((s.rejections, s.released), (101, 1));
    }

    #[test]
    fn half_open_successes_close_and_the_wait_starts_over() {
        let mut m = Machine::new(config(), T0);
        open_it(&mut m, T0);
        let mut now = T0 + MIN;
        // Fail one trial so the wait grows to 2 min.
        assert_eq!(
            call(&mut m, false, now).map(|t| t.to),
            Some(StateName::Open)
        );
        assert_eq!(m.snapshot(now).wait_ms, 2 * MIN);
        now += 2 * MIN;
        assert_eq!(call(&mut m, true, now), None);
        let t = call(&mut m, true, now).expect("two successes close it");
        assert_eq!((t.from, t.to), (StateName::HalfOpen, StateName::Closed));
        assert_eq!(t.reason, "2 successful trial calls");
        let s = m.snapshot(now);
        assert_eq!((s.opened, s.wait_ms, s.consecutive_failures), (0, MIN, 0));
        // Opening again starts from open_for.
        open_it(&mut m, now);
        assert_eq!(until(&m), now + MIN);
    }

    #[test]
    fn reopen_wait_grows_by_the_factor_up_to_the_cap() {
        let mut m = Machine::new(config(), T0);
        open_it(&mut m, T0);
        let mut waits = Vec::new();
        for _ in 0..5 {
            let now = until(&m);
            let t = call(&mut m, false, now).expect("the trial fails: reopen");
            assert_eq!((t.from, t.to), (StateName::HalfOpen, StateName::Open));
            waits.push(until(&m) - now);
        }
        assert_eq!(waits, vec![2 * MIN, 4 * MIN, 4 * MIN, 4 * MIN, 4 * MIN]);
        assert!(matches!(m.state(), State::Open { opened: 6, .. }));
    }

    #[test]
    fn odd_backoff_factors_never_shrink_or_overflow_the_wait() {
        for factor in [0.5, -3.0, f64::NAN, f64::INFINITY, 1e300] {
            let mut m = Machine::new(
                BreakerConfig {
                    open_backoff: factor,
                    ..config()
                },
                T0,
            );
            open_it(&mut m, T0);
            let now = until(&m);
            call(&mut m, false, now);
            let wait = until(&m) - now;
            assert!((MIN..=4 * MIN).contains(&wait), "{factor}: {wait}");
        }
    }

    #[test]
    fn an_unreported_trial_expires_and_reopens_on_tick() {
        // resilience4j's stuck HALF_OPEN: the only trial never comes back.
        let mut m = Machine::new(config(), T0);
        open_it(&mut m, T0);
        let start = T0 + MIN;
        let lost = m.allow(start).expect("the trial");
        assert!(m.allow(start + 5_000).is_err(), "its slot is taken");
        assert_eq!(m.next_deadline(), Some(start + 10_000));
        assert_eq!(m.tick(start + 9_999), None);
        let t = m.tick(start + 10_000).expect("expired");
        assert_eq!((t.from, t.to), (StateName::HalfOpen, StateName::Open));
        assert!(
            t.reason
                .starts_with("a trial call was not reported within 10s"),
            "{}",
            t.reason
        );
        assert_eq!(
            until(&m),
            start + 10_000 + 2 * MIN,
            "counted as a failed trial"
        );
        let c = m.snapshot(start).counters;
        assert_eq!((c.expired, c.failures), (1, 4));
        // Its report, when it finally comes, changes nothing.
        assert_eq!(m.record(lost, true, start + 20_000), None);
        assert_eq!(m.snapshot(start).counters.late, 1);
        assert!(matches!(m.state(), State::Open { opened: 2, .. }));
    }

    #[test]
    fn an_unreported_trial_expires_on_the_next_allow_without_a_timer() {
        let mut m = Machine::new(config(), T0);
        open_it(&mut m, T0);
        let start = T0 + MIN;
        let _lost = m.allow(start).expect("the trial");
        let (result, change) = m.admit(start + 10_000);
        assert_eq!(change.map(|t| t.to), Some(StateName::Open));
        let r = result.unwrap_err();
        assert_eq!(r.state, StateName::Open);
        assert_eq!(r.retry_after, Some(Duration::from_secs(120)));
    }

    #[test]
    fn a_trial_reported_after_its_deadline_is_late_even_before_a_tick() {
        let mut m = Machine::new(config(), T0);
        open_it(&mut m, T0);
        let start = T0 + MIN;
        let slow = m.allow(start).expect("the trial");
        let t = m
            .record(slow, true, start + 10_001)
            .expect("judged at its deadline");
        assert_eq!(t.to, StateName::Open);
        assert_eq!(t.at_ms, start + 10_001);
        let c = m.snapshot(start).counters;
        assert_eq!((c.successes, c.expired, c.late), (0, 1, 1));
    }

    #[test]
    fn a_zero_max_wait_turns_the_deadline_off() {
        let mut m = Machine::new(
            BreakerConfig {
                half_open_max_wait: Duration::ZERO,
                ..config()
            },
            T0,
        );
        open_it(&mut m, T0);
        let permit = m.allow(T0 + MIN).expect("the trial");
        assert_eq!(m.next_deadline(), None);
        assert_eq!(m.tick(i64::MAX), None);
        assert_eq!(m.record(permit, true, i64::MAX), None);
        assert!(matches!(m.state(), State::HalfOpen { successes: 1, .. }));
    }

    #[test]
    fn a_closed_call_finishing_after_the_breaker_opened_is_late() {
        let mut m = Machine::new(config(), T0);
        let slow_failure = m.allow(T0).expect("closed");
        let slow_success = m.allow(T0).expect("closed");
        open_it(&mut m, T0);
        assert_eq!(m.record(slow_failure, false, T0 + 1), None);
        let trial = m.allow(T0 + MIN).expect("half-open");
        // A CLOSED success must not count as a trial success either.
        assert_eq!(m.record(slow_success, true, T0 + MIN), None);
        assert_eq!(
            m.state(),
            State::HalfOpen {
                permits_out: 1,
                successes: 0
            }
        );
        assert_eq!(m.record(trial, true, T0 + MIN), None);
        assert_eq!(m.snapshot(T0).counters.late, 2);
    }

    #[test]
    fn a_closed_failure_from_before_a_recovery_cannot_reopen_it() {
        // resilience4j counts this failure against the new CLOSED state.
        let mut m = Machine::new(
            BreakerConfig {
                failure_threshold: 1,
                success_threshold: 1,
                ..config()
            },
            T0,
        );
        let slow = m.allow(T0).expect("closed");
        call(&mut m, false, T0).expect("opens");
        call(&mut m, true, T0 + MIN).expect("closes");
        assert_eq!(m.record(slow, false, T0 + MIN + 1), None);
        assert_eq!(m.state(), State::Closed);
    }

    #[test]
    fn a_trial_from_an_earlier_half_open_is_late() {
        let mut m = Machine::new(
            BreakerConfig {
                half_open_calls: 2,
                ..config()
            },
            T0,
        );
        open_it(&mut m, T0);
        let now = T0 + MIN;
        let failing = m.allow(now).expect("trial 1");
        let stale = m.allow(now).expect("trial 2");
        m.record(failing, false, now).expect("reopens");
        let later = until(&m);
        m.tick(later).expect("half-open again");
        let fresh = m.allow(later).expect("trial in the new half-open");
        assert_eq!(m.record(stale, true, later), None);
        assert!(matches!(m.state(), State::HalfOpen { successes: 0, .. }));
        assert_eq!(m.record(fresh, true, later), None);
        assert!(matches!(m.state(), State::HalfOpen { successes: 1, .. }));
    }

    #[test]
    fn a_permit_of_another_machine_is_late() {
        let mut a = Machine::new(config(), T0);
        let mut b = Machine::new(config(), T0);
        let foreign = a.allow(T0).expect("closed");
        for _ in 0..2 {
            call(&mut b, false, T0);
        }
        assert_eq!(b.record(foreign, false, T0), None);
        let s = b.snapshot(T0);
        assert_eq!((s.consecutive_failures, s.counters.late), (2, 1));
    }

    #[test]
    fn forced_open_rejects_everything_until_an_operator_acts() {
        let mut m = Machine::new(config(), T0);
        let inflight = m.allow(T0).expect("closed");
        let t = m.force_open(T0).expect("closed -> forced_open");
        assert_eq!((t.from, t.to), (StateName::Closed, StateName::ForcedOpen));
        assert_eq!(m.force_open(T0 + 1), None, "already");
        for later in [T0, T0 + MIN, T0 + 1_000 * MIN] {
            let r = m.allow(later).unwrap_err();
            assert_eq!(
                r,
                Rejected {
                    state: StateName::ForcedOpen,
                    retry_after: None
                }
            );
            assert_eq!(m.tick(later), None);
        }
        assert_eq!(m.next_deadline(), None);
        assert_eq!(m.record(inflight, false, T0), None);
        assert_eq!(m.reset(T0 + 2).map(|t| t.to), Some(StateName::Closed));
        assert!(m.allow(T0 + 2).is_ok());
    }

    #[test]
    fn disabled_allows_everything_and_nothing_changes_its_state() {
        let mut m = Machine::new(config(), T0);
        open_it(&mut m, T0);
        let t = m.disable(T0 + 1).expect("open -> disabled");
        assert_eq!((t.from, t.to), (StateName::Open, StateName::Disabled));
        assert_eq!(m.disable(T0 + 2), None);
        for i in 0..50 {
            let permit = m.allow(T0 + i).expect("disabled allows");
            assert_eq!(permit.state(), StateName::Disabled);
            assert_eq!(m.record(permit, false, T0 + i), None);
        }
        assert_eq!(m.tick(T0 + 10 * MIN), None);
        let s = m.snapshot(T0);
        assert_eq!(s.state, State::Disabled);
        assert_eq!((s.consecutive_failures, s.counters.failures), (0, 53));
    }

    #[test]
    fn reset_closes_from_every_state_with_counts_cleared() {
        type Setup = fn(&mut Machine);
        let setups: [(StateName, Setup); 4] = [
            (StateName::Open, |m| {
                trip(m, T0);
                m.tick(T0 + MIN);
                call(m, false, T0 + MIN); // reopened: the wait grew
            }),
            (StateName::HalfOpen, |m| {
                trip(m, T0);
                m.tick(T0 + MIN);
            }),
            (StateName::ForcedOpen, |m| {
                m.force_open(T0);
            }),
            (StateName::Disabled, |m| {
                m.disable(T0);
            }),
        ];
        for (from, setup) in setups {
            let mut m = Machine::new(config(), T0);
            call(&mut m, false, T0);
            setup(&mut m);
            let t = m.reset(T0 + 2 * MIN).expect("back to closed");
            assert_eq!((t.from, t.to), (from, StateName::Closed));
            assert_eq!(t.reason, "reset by the operator");
            let s = m.snapshot(T0 + 2 * MIN);
            assert_eq!(s.state, State::Closed);
            assert_eq!((s.opened, s.wait_ms, s.consecutive_failures), (0, MIN, 0));
            assert_eq!(s.since_ms, T0 + 2 * MIN);
        }
    }

    #[test]
    fn reset_while_closed_clears_the_run_and_makes_calls_in_flight_late() {
        let mut m = Machine::new(config(), T0);
        call(&mut m, false, T0);
        call(&mut m, false, T0);
        let inflight = m.allow(T0).expect("closed");
        assert_eq!(m.reset(T0), None, "no state change");
        assert_eq!(m.record(inflight, false, T0), None);
        assert_eq!(m.snapshot(T0).consecutive_failures, 0);
        call(&mut m, false, T0);
        assert_eq!(call(&mut m, false, T0), None, "only 2 since the reset");
    }

    #[test]
    fn operator_half_open_from_closed_uses_the_first_wait_on_failure() {
        let mut m = Machine::new(config(), T0);
        let t = m.half_open(T0).expect("closed -> half_open");
        assert_eq!((t.from, t.to), (StateName::Closed, StateName::HalfOpen));
        assert_eq!(t.reason, "half-open by the operator");
        assert_eq!(m.half_open(T0), None, "already");
        call(&mut m, false, T0).expect("the trial fails");
        assert_eq!(until(&m), T0 + MIN);
    }

    #[test]
    fn operator_half_open_from_forced_open_can_close() {
        let mut m = Machine::new(config(), T0);
        m.force_open(T0);
        m.half_open(T0 + 1).expect("forced_open -> half_open");
        call(&mut m, true, T0 + 2);
        let t = call(&mut m, true, T0 + 3).expect("closes");
        assert_eq!(t.to, StateName::Closed);
    }

    #[test]
    fn snapshot_round_trips_through_json() {
        let mut m = Machine::new(
            BreakerConfig {
                failure_rate: Some(0.5),
                ..config()
            },
            T0,
        );
        open_it(&mut m, T0);
        m.allow(T0 + 1).unwrap_err();
        let snap = m.snapshot(T0 + 1);
        let json = serde_json::to_string(&snap).unwrap();
        assert!(
            json.contains(r#""state":{"name":"open","until_ms":"#),
            "{json}"
        );
        let back: Snapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, snap);
        let restored = Machine::restore(config(), &back, T0 + 2);
        assert_eq!(restored.state(), m.state());
        let again = restored.snapshot(T0 + 1);
        assert_eq!(again.counters, snap.counters);
        assert_eq!(
            (again.wait_ms, again.since_ms),
            (snap.wait_ms, snap.since_ms)
        );
        assert_eq!(again.last_transition_ms, Some(T0));
    }

    #[test]
    fn every_state_survives_a_restore() {
        let states = [
            State::Closed,
            State::Open {
                until_ms: T0 + 30_000,
                opened: 3,
            },
            State::HalfOpen {
                permits_out: 0,
                successes: 1,
            },
            State::ForcedOpen,
            State::Disabled,
        ];
        for state in states {
            let snap = Snapshot {
                state,
                opened: 3,
                consecutive_failures: 0,
                window_calls: 0,
                window_failures: 0,
                wait_ms: 2 * MIN,
                since_ms: T0,
                last_transition_ms: Some(T0),
                counters: Counters::default(),
            };
            let m = Machine::restore(config(), &snap, T0 + 1);
            assert_eq!(m.state(), state);
        }
    }

    #[test]
    fn an_open_whose_wait_passed_while_down_is_half_open_at_the_next_tick_or_allow() {
        let mut m = Machine::new(config(), T0);
        open_it(&mut m, T0);
        let snap = m.snapshot(T0);
        let back = T0 + 10 * MIN;

        let mut by_tick = Machine::restore(config(), &snap, back);
        assert_eq!(
            by_tick.next_deadline(),
            Some(T0 + MIN),
            "already due: fire now"
        );
        let t = by_tick.tick(back).expect("half-open");
        assert_eq!(
            (t.from, t.to, t.at_ms),
            (StateName::Open, StateName::HalfOpen, back)
        );

        let mut by_allow = Machine::restore(config(), &snap, back);
        let (permit, change) = by_allow.admit(back);
        assert!(permit.is_ok());
        assert_eq!(change.map(|t| t.to), Some(StateName::HalfOpen));
    }

    #[test]
    fn a_restored_half_open_has_no_permits_out_and_old_permits_are_late() {
        let mut m = Machine::new(
            BreakerConfig {
                success_threshold: 3,
                ..config()
            },
            T0,
        );
        open_it(&mut m, T0);
        let now = T0 + MIN;
        call(&mut m, true, now);
        let before_restart = m.allow(now).expect("trial 2");
        let snap = m.snapshot(now);
        assert_eq!(
            snap.state,
            State::HalfOpen {
                permits_out: 1,
                successes: 1
            }
        );
        let mut r = Machine::restore(m.config().clone(), &snap, now + 1);
        assert_eq!(
            r.state(),
            State::HalfOpen {
                permits_out: 0,
                successes: 1
            }
        );
        assert_eq!(r.next_deadline(), None);
        assert_eq!(r.record(before_restart, true, now + 2), None);
        assert!(matches!(r.state(), State::HalfOpen { successes: 1, .. }));
        // The failed trial still grows the wait from the restored one.
        call(&mut r, false, now + 3).expect("reopens");
        assert_eq!(until(&r), now + 3 + 2 * MIN);
    }

    #[test]
    fn restore_brings_an_open_that_ends_too_far_away_back_within_its_wait() {
        let snap = Snapshot {
            state: State::Open {
                until_ms: i64::MAX,
                opened: 1,
            },
            opened: 1,
            consecutive_failures: 0,
            window_calls: 0,
            window_failures: 0,
            wait_ms: i64::MAX,
            since_ms: T0,
            last_transition_ms: Some(T0),
            counters: Counters::default(),
        };
        let m = Machine::restore(config(), &snap, T0);
        assert_eq!(until(&m), T0 + 4 * MIN, "the wait is capped by the config");
    }

    #[test]
    fn reconfigure_keeps_the_state_and_applies_the_new_bounds() {
        let mut m = Machine::new(config(), T0);
        open_it(&mut m, T0);
        m.reconfigure(
            BreakerConfig {
                open_for: Duration::from_secs(10),
                open_for_max: Duration::from_secs(20),
                failure_rate: Some(0.5),
                ..config()
            },
            T0 + 1,
        );
        assert_eq!(until(&m), T0 + 1 + 20_000);
        assert_eq!(m.config().failure_rate, Some(0.5));
    }

    #[test]
    fn a_new_config_gives_a_breaker_that_has_not_opened_its_new_first_wait() {
        let shorter = BreakerConfig {
            open_for: Duration::from_secs(10),
            open_for_max: Duration::from_secs(40),
            ..config()
        };
        type Setup = fn(&mut Machine);
        let setups: [(StateName, Setup); 4] = [
            (StateName::Closed, |_| {}),
            (StateName::ForcedOpen, |m| {
                m.force_open(T0);
            }),
            (StateName::Disabled, |m| {
                m.disable(T0);
            }),
            (StateName::HalfOpen, |m| {
                m.half_open(T0);
            }),
        ];
        for (state, setup) in setups {
            let mut m = Machine::new(config(), T0);
            setup(&mut m);
            assert_eq!(m.state_name(), state);
            let snap = m.snapshot(T0);
            assert_eq!(snap.wait_ms, MIN);
            // A reload with a shorter wait: 10 s (not the old 1 min brought under the cap).
            m.reconfigure(shorter.clone(), T0 + 1);
            assert_eq!(m.snapshot(T0 + 1).wait_ms, 10_000, "{state} reconfigured");
            // A restart with it.
            let r = Machine::restore(shorter.clone(), &snap, T0 + 1);
            assert_eq!(r.state_name(), state);
            assert_eq!(r.snapshot(T0 + 1).wait_ms, 10_000, "{state} restored");
        }
        // One that opened keeps its grown wait, within the new bounds.
        let mut m = Machine::new(config(), T0);
        open_it(&mut m, T0);
        m.tick(T0 + MIN);
        call(&mut m, false, T0 + MIN).expect("reopens for 2 min");
        m.force_open(T0 + MIN + 1);
        m.reconfigure(shorter, T0 + MIN + 2);
        assert_eq!(m.snapshot(T0).wait_ms, 40_000);
    }

    #[test]
    fn time_going_back_and_extreme_values_do_not_panic() {
        let extreme = BreakerConfig {
            failure_threshold: u32::MAX,
            success_threshold: 0,
            open_for: Duration::MAX,
            open_for_max: Duration::ZERO,
            open_backoff: f64::MAX,
            half_open_calls: 0,
            window: Window::Count(u32::MAX),
            failure_rate: Some(f64::NAN),
            minimum_calls: 0,
            half_open_max_wait: Duration::MAX,
        };
        for config in [
            extreme.clone(),
            BreakerConfig {
                window: Window::Time(Duration::ZERO),
                failure_rate: Some(0.0),
                ..extreme.clone()
            },
            BreakerConfig {
                window: Window::Time(Duration::MAX),
                ..config()
            },
        ] {
            let mut m = Machine::new(config, T0);
            for now in [T0, T0 - 10_000, i64::MIN, i64::MAX, 0, -1, T0] {
                if let Ok(p) = m.allow(now) {
                    m.record(p, false, now);
                }
                m.tick(now);
                m.snapshot(now);
                m.next_deadline();
            }
            m.half_open(T0);
            for now in [i64::MIN, i64::MAX, T0] {
                if let Ok(p) = m.allow(now) {
                    m.record(p, true, now);
                }
            }
        }
    }

    #[test]
    fn success_threshold_zero_is_one_and_half_open_calls_zero_is_one() {
        let mut m = Machine::new(
            BreakerConfig {
                success_threshold: 0,
                half_open_calls: 0,
                ..config()
            },
            T0,
        );
        m.half_open(T0);
        let p = m.allow(T0).expect("one permit");
        assert!(m.allow(T0).is_err());
        assert_eq!(m.record(p, true, T0).map(|t| t.to), Some(StateName::Closed));
    }
}
