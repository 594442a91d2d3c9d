//! How often one heal action may run: a cooldown between two runs, and a cap on the runs in any
//! hour (a sliding window). Pure: the time is an argument (Unix milliseconds), so the caller
//! decides the clock and the tests move it.
//!
//! At the cap the action stops (monit's "then unmonitor") until the window frees a slot, an hour
//! after the oldest run it holds. [`Limiter::ran`] says when a run has just reached the cap so
//! the caller alerts once: not again while the action keeps running at its cap (a problem the
//! action does not fix), only after the cap has been left alone for a whole hour.
//!
//! A clock that steps back is tolerated: recorded runs later than `now` are read as `now`, so a
//! step back delays the action by at most one window, never forever.

use std::collections::VecDeque;
use std::time::Duration;

/// The sliding window of the hourly cap.
pub const WINDOW: Duration = Duration::from_secs(3600);
const WINDOW_MS: i64 = 3_600_000;

/// The most runs per hour a limiter counts (a larger `max_per_hour` is read as this). Bounds
/// what a limiter keeps.
pub const MAX_PER_HOUR_LIMIT: u32 = 1000;

/// A heal action's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealLimits {
    /// The least time between the starts of two runs.
    pub cooldown: Duration,
    /// The most runs started in any hour (read as 1..=[`MAX_PER_HOUR_LIMIT`]; see
    /// [`HealLimits::validate`]).
    pub max_per_hour: u32,
}

impl HealLimits {
    pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(5 * 60);
    pub const DEFAULT_MAX_PER_HOUR: u32 = 3;

    /// For the config layer: `max_per_hour` must be within 1..=[`MAX_PER_HOUR_LIMIT`] (an
    /// action that may never run is not configured at all).
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_PER_HOUR_LIMIT).contains(&self.max_per_hour) {
            return Err(format!(
                "max_per_hour must be between 1 and {MAX_PER_HOUR_LIMIT}, not {}",
                self.max_per_hour
            ));
        }
        Ok(())
    }

    /// The cap as a limiter applies it.
    fn cap(&self) -> usize {
        self.max_per_hour.clamp(1, MAX_PER_HOUR_LIMIT) as usize
    }

    fn cooldown_ms(&self) -> i64 {
        i64::try_from(self.cooldown.as_millis()).unwrap_or(i64::MAX)
    }
}

impl Default for HealLimits {
    /// 5 minutes of cooldown, 3 runs per hour.
    fn default() -> Self {
        HealLimits {
            cooldown: Self::DEFAULT_COOLDOWN,
            max_per_hour: Self::DEFAULT_MAX_PER_HOUR,
        }
    }
}

/// Whether an action may run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Run,
    /// It ran less than its cooldown ago; it may run again in `left`.
    Cooldown {
        left: Duration,
    },
    /// It has run `max_per_hour` times within the last hour; it may run again at `until_ms`
    /// (Unix ms: when the window frees a slot, or the cooldown ends if that is later).
    Capped {
        until_ms: i64,
    },
}

/// The runs of one action, for its limits. One per configured action, kept by the caller.
#[derive(Debug, Clone)]
pub struct Limiter {
    limits: HealLimits,
    /// Start times (Unix ms) within the window, oldest first; at most `limits.cap()`.
    starts: VecDeque<i64>,
    /// When the last cap reached was lifted (the window freed a slot).
    cap_lifted_ms: Option<i64>,
}

impl Limiter {
    pub fn new(limits: HealLimits) -> Self {
        Limiter {
            limits,
            starts: VecDeque::new(),
            cap_lifted_ms: None,
        }
    }

    pub fn limits(&self) -> HealLimits {
        self.limits
    }

    /// New limits (a config reload), keeping the runs already made.
    pub fn set_limits(&mut self, limits: HealLimits) {
        self.limits = limits;
        self.trim_to_cap();
    }

    /// Whether the action may run at `now_ms`. Does not record anything: call [`Limiter::ran`]
    /// when it does run.
    pub fn check(&mut self, now_ms: i64) -> Verdict {
        self.forget(now_ms);
        let cooldown_ends = self
            .starts
            .back()
            .map(|last| last.saturating_add(self.limits.cooldown_ms()));
        if self.starts.len() >= self.limits.cap() {
            let slot_frees = self.slot_frees_ms().unwrap_or(now_ms);
            return Verdict::Capped {
                until_ms: slot_frees.max(cooldown_ends.unwrap_or(now_ms)),
            };
        }
        match cooldown_ends {
            Some(ends) if ends > now_ms => Verdict::Cooldown {
                left: Duration::from_millis(u64::try_from(ends - now_ms).unwrap_or(0)),
            },
            _ => Verdict::Run,
        }
    }

    /// Records a run started at `now_ms` (whether or not [`Limiter::check`] allowed it). Answers
    /// `Some(until_ms)` when this run has just reached the cap (the action now waits until
    /// `until_ms`): the caller alerts then, once. `None` otherwise, including when the action
    /// reaches its cap again less than an hour after the previous cap was lifted (it keeps
    /// running at its cap: still the same problem, already alerted).
    pub fn ran(&mut self, now_ms: i64) -> Option<i64> {
        self.forget(now_ms);
        self.starts.push_back(now_ms);
        self.trim_to_cap();
        if self.starts.len() < self.limits.cap() {
            return None;
        }
        let until_ms = self.slot_frees_ms().unwrap_or(now_ms);
        let same_episode = self
            .cap_lifted_ms
            .is_some_and(|lifted| now_ms < lifted.saturating_add(WINDOW_MS));
        self.cap_lifted_ms = Some(until_ms);
        (!same_episode).then_some(until_ms)
    }

    /// The runs started within the hour before `now_ms`.
    pub fn runs_in_window(&mut self, now_ms: i64) -> u32 {
        self.forget(now_ms);
        self.starts.len() as u32
    }

    /// The start of the latest run still within the window.
    pub fn last_run_ms(&self) -> Option<i64> {
        self.starts.back().copied()
    }

    /// When the oldest run in the window leaves it.
    fn slot_frees_ms(&self) -> Option<i64> {
        self.starts.front().map(|t| t.saturating_add(WINDOW_MS))
    }

    /// Drops the runs that left the window (started an hour or more before `now_ms`), and
    /// reads runs later than `now_ms` (the clock stepped back) as `now_ms`.
    fn forget(&mut self, now_ms: i64) {
        for t in self.starts.iter_mut() {
            if *t > now_ms {
                *t = now_ms;
            }
        }
        let oldest_kept = now_ms.saturating_sub(WINDOW_MS);
        while self.starts.front().is_some_and(|t| *t <= oldest_kept) {
            self.starts.pop_front();
        }
        if let Some(lifted) = self.cap_lifted_ms {
            if lifted > now_ms.saturating_add(WINDOW_MS) {
                self.cap_lifted_ms = Some(now_ms.saturating_add(WINDOW_MS));
            }
        }
    }

    /// Keeps the latest `cap` runs: the older ones cannot change a verdict.
    fn trim_to_cap(&mut self) {
        let cap = self.limits.cap();
        while self.starts.len() > cap {
            self.starts.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;
    const MIN: i64 = 60_000;

    fn limiter(cooldown_min: u64, max_per_hour: u32) -> Limiter {
        Limiter::new(HealLimits {
            cooldown: Duration::from_secs(cooldown_min * 60),
            max_per_hour,
        })
    }

    #[test]
    fn defaults_are_five_minutes_and_three_an_hour() {
        let d = HealLimits::default();
        assert_eq!(d.cooldown, Duration::from_secs(300));
        assert_eq!(d.max_per_hour, 3);
        assert_eq!(d.validate(), Ok(()));
        assert!(HealLimits {
            max_per_hour: 0,
            ..d
        }
        .validate()
        .is_err());
        assert!(HealLimits {
            max_per_hour: MAX_PER_HOUR_LIMIT + 1,
            ..d
        }
        .validate()
        .unwrap_err()
        .contains("between 1 and 1000"));
    }

    #[test]
    fn a_fresh_limiter_runs() {
        let mut l = Limiter::new(HealLimits::default());
        assert_eq!(l.check(T0), Verdict::Run);
        assert_eq!(l.runs_in_window(T0), 0);
        assert_eq!(l.last_run_ms(), None);
    }

    #[test]
    fn the_cooldown_counts_from_the_last_start() {
        let mut l = limiter(5, 3);
        assert_eq!(l.ran(T0), None);
        assert_eq!(
            l.check(T0),
            Verdict::Cooldown {
                left: Duration::from_secs(300)
            }
        );
        assert_eq!(
            l.check(T0 + 2 * MIN),
            Verdict::Cooldown {
                left: Duration::from_secs(180)
            }
        );
        assert_eq!(
            l.check(T0 + 5 * MIN - 1),
            Verdict::Cooldown {
                left: Duration::from_millis(1)
            }
        );
        assert_eq!(l.check(T0 + 5 * MIN), Verdict::Run);
        assert_eq!(l.last_run_ms(), Some(T0));
    }

    #[test]
    fn no_cooldown_means_only_the_cap() {
        let mut l = limiter(0, 2);
        assert_eq!(l.ran(T0), None);
        assert_eq!(l.check(T0), Verdict::Run);
        assert_eq!(l.ran(T0), Some(T0 + 60 * MIN));
        assert_eq!(
            l.check(T0 + 1),
            Verdict::Capped {
                until_ms: T0 + 60 * MIN
            }
        );
    }

    #[test]
    fn the_cap_stops_the_action_until_the_window_frees_a_slot() {
        let mut l = limiter(5, 3);
        assert_eq!(l.ran(T0), None);
        assert_eq!(l.ran(T0 + 5 * MIN), None);
        // The third run reaches the cap: alert once, until the first run leaves the window.
        assert_eq!(l.ran(T0 + 10 * MIN), Some(T0 + 60 * MIN));
        assert_eq!(l.runs_in_window(T0 + 10 * MIN), 3);
        for now in [T0 + 15 * MIN, T0 + 40 * MIN, T0 + 60 * MIN - 1] {
            assert_eq!(
                l.check(now),
                Verdict::Capped {
                    until_ms: T0 + 60 * MIN
                },
                "at +{} ms",
                now - T0
            );
        }
        // The window slides: at +60 min the first run is out, one slot is free.
        assert_eq!(l.check(T0 + 60 * MIN), Verdict::Run);
        assert_eq!(l.runs_in_window(T0 + 60 * MIN), 2);
    }

    #[test]
    fn the_window_slides_one_run_at_a_time() {
        let mut l = limiter(0, 3);
        l.ran(T0);
        l.ran(T0 + 20 * MIN);
        l.ran(T0 + 30 * MIN);
        assert_eq!(
            l.check(T0 + 59 * MIN),
            Verdict::Capped {
                until_ms: T0 + 60 * MIN
            }
        );
        assert_eq!(l.check(T0 + 60 * MIN), Verdict::Run);
        l.ran(T0 + 61 * MIN);
        // The next slot frees when the run at +20 min leaves.
        assert_eq!(
            l.check(T0 + 62 * MIN),
            Verdict::Capped {
                until_ms: T0 + 80 * MIN
            }
        );
        assert_eq!(l.runs_in_window(T0 + 85 * MIN), 2);
        assert_eq!(l.runs_in_window(T0 + 91 * MIN), 1);
        assert_eq!(l.runs_in_window(T0 + 121 * MIN), 0);
    }

    #[test]
    fn capped_waits_for_the_cooldown_when_it_ends_later() {
        // 2 an hour with a 55 min cooldown: forced runs at 0 and 10 min fill the window; the
        // slot frees at 60 min, the cooldown ends at 65.
        let mut l = limiter(55, 2);
        l.ran(T0);
        l.ran(T0 + 10 * MIN);
        assert_eq!(
            l.check(T0 + 11 * MIN),
            Verdict::Capped {
                until_ms: T0 + 65 * MIN
            }
        );
        assert_eq!(
            l.check(T0 + 62 * MIN),
            Verdict::Cooldown {
                left: Duration::from_secs(180)
            }
        );
        assert_eq!(l.check(T0 + 65 * MIN), Verdict::Run);
    }

    #[test]
    fn running_at_the_cap_alerts_once_and_again_after_a_quiet_hour() {
        let mut l = limiter(5, 3);
        assert_eq!(l.ran(T0), None);
        assert_eq!(l.ran(T0 + 5 * MIN), None);
        assert_eq!(l.ran(T0 + 10 * MIN), Some(T0 + 60 * MIN));
        // The problem persists: it runs each time a slot frees, at its cap, without a new alert.
        let mut now = T0 + 60 * MIN;
        let mut runs = 0;
        for _ in 0..20 {
            match l.check(now) {
                Verdict::Run => {
                    assert_eq!(l.ran(now), None, "at +{} min", (now - T0) / MIN);
                    runs += 1;
                }
                Verdict::Cooldown { left } => now += left.as_millis() as i64,
                Verdict::Capped { until_ms } => now = until_ms,
            }
            assert!(l.runs_in_window(now) <= 3);
        }
        assert!(
            now > T0 + 120 * MIN,
            "it went on: +{} min",
            (now - T0) / MIN
        );
        assert_eq!(runs, 10, "3 an hour, no more");
        // Fixed: no runs for a while (the cap is lifted, then an hour passes).
        let quiet = l.last_run_ms().unwrap() + 200 * MIN;
        assert_eq!(l.check(quiet), Verdict::Run);
        assert_eq!(l.ran(quiet), None);
        assert_eq!(l.ran(quiet + 5 * MIN), None);
        // The problem is back and reaches the cap: a new episode, a new alert.
        assert_eq!(l.ran(quiet + 10 * MIN), Some(quiet + 60 * MIN));
    }

    #[test]
    fn a_cap_of_one_alerts_once_while_it_runs_hourly() {
        let mut l = limiter(5, 1);
        assert_eq!(l.ran(T0), Some(T0 + 60 * MIN));
        assert_eq!(
            l.check(T0 + 30 * MIN),
            Verdict::Capped {
                until_ms: T0 + 60 * MIN
            }
        );
        assert_eq!(l.check(T0 + 60 * MIN), Verdict::Run);
        assert_eq!(l.ran(T0 + 61 * MIN), None, "the same episode");
        assert_eq!(l.ran(T0 + 122 * MIN), None, "still the same");
        assert_eq!(
            l.ran(T0 + 400 * MIN),
            Some(T0 + 460 * MIN),
            "after a quiet hour"
        );
    }

    #[test]
    fn a_forced_run_is_counted_even_when_not_allowed() {
        let mut l = limiter(5, 2);
        l.ran(T0);
        assert!(matches!(l.check(T0 + MIN), Verdict::Cooldown { .. }));
        assert_eq!(l.ran(T0 + MIN), Some(T0 + 60 * MIN));
        assert_eq!(l.runs_in_window(T0 + MIN), 2);
    }

    #[test]
    fn what_is_kept_is_bounded_by_the_cap() {
        let mut l = limiter(0, 5);
        for i in 0..10_000 {
            l.ran(T0 + i);
        }
        assert_eq!(l.starts.len(), 5);
        assert_eq!(l.runs_in_window(T0 + 10_000), 5);
        assert_eq!(
            l.check(T0 + 10_000),
            Verdict::Capped {
                until_ms: T0 + 9_995 + 60 * MIN
            }
        );
        // A huge cap is read as the limit.
        let mut big = limiter(0, u32::MAX);
        for i in 0..5_000 {
            big.ran(T0 + i);
        }
        assert_eq!(big.starts.len(), MAX_PER_HOUR_LIMIT as usize);
        // Zero is read as one.
        let mut zero = limiter(0, 0);
        assert_eq!(zero.check(T0), Verdict::Run);
        assert_eq!(zero.ran(T0), Some(T0 + 60 * MIN));
    }

    #[test]
    fn new_limits_keep_the_runs() {
        let mut l = limiter(5, 3);
        l.ran(T0);
        l.ran(T0 + 5 * MIN);
        assert_eq!(l.check(T0 + 10 * MIN), Verdict::Run);
        l.set_limits(HealLimits {
            cooldown: Duration::from_secs(600),
            max_per_hour: 2,
        });
        assert_eq!(l.limits().max_per_hour, 2);
        assert_eq!(
            l.check(T0 + 10 * MIN),
            Verdict::Capped {
                until_ms: T0 + 60 * MIN
            }
        );
        l.set_limits(HealLimits {
            cooldown: Duration::from_secs(600),
            max_per_hour: 10,
        });
        assert_eq!(
            l.check(T0 + 10 * MIN),
            Verdict::Cooldown {
                left: Duration::from_secs(300)
            }
        );
    }

    #[test]
    fn a_clock_stepping_back_delays_by_at_most_a_window() {
        let mut l = limiter(5, 2);
        l.ran(T0);
        l.ran(T0 + 5 * MIN);
        // The clock steps back a day: the runs are read as now, not a day ahead.
        let back = T0 - 24 * 60 * MIN;
        assert_eq!(
            l.check(back),
            Verdict::Capped {
                until_ms: back + 60 * MIN
            }
        );
        assert_eq!(l.check(back + 60 * MIN), Verdict::Run);
        assert_eq!(l.last_run_ms(), None);
        // The cap's episode was moved back too: a new cap a quiet hour later alerts.
        assert_eq!(l.ran(back + 200 * MIN), None);
        assert_eq!(l.ran(back + 206 * MIN), Some(back + 260 * MIN));
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let mut l = Limiter::new(HealLimits {
            cooldown: Duration::MAX,
            max_per_hour: 1,
        });
        assert_eq!(l.check(i64::MAX), Verdict::Run);
        assert_eq!(l.ran(i64::MAX), Some(i64::MAX));
        assert_eq!(l.check(i64::MAX), Verdict::Capped { until_ms: i64::MAX });
        let _ = l.check(i64::MIN);
        let _ = l.ran(i64::MIN);
        let mut m = limiter(5, 3);
        let _ = m.ran(i64::MIN);
        let _ = m.check(i64::MIN + 1);
        let _ = m.check(i64::MAX);
    }
}
