//! The hysteresis a probe applies: its reported status (pass, warn, fail) from the raw results
//! of consecutive runs, so one bad run does not page anybody and one good run does not clear
//! an incident. Pure.
//!
//! The rules, applied to each raw result in turn (counts are of *consecutive* raw results,
//! ending with the one just observed):
//!
//! - **Failures**: a raw Warn or Fail is a failure; a raw Fail is also a *hard* failure. A raw
//!   Pass ends both runs; a raw Warn ends the run of hard failures.
//! - **Escalation**: the status becomes Fail once `failures_before_critical` hard failures
//!   follow one another, and (from Pass) Warn once `failures_before_warning` failures do.
//!   So a raw Warn counts towards warning only; a raw Fail counts towards both; alternating
//!   Warn and Fail results warn but never reach Fail (their hard-failure run is never longer
//!   than 1, unless `failures_before_critical` is 1).
//! - **De-escalation**: a reported Warn or Fail is lowered once `successes_before_passing`
//!   raw results in a row were all better than it, to the worst of those results: Fail falls
//!   to Pass after that many Passes, to Warn when a Warn was among them; Warn falls to Pass
//!   after that many Passes.
//! - Escalation is checked first, so a result never both raises and lowers the status. The
//!   counts restart whenever the status changes.
//! - Thresholds of 0 count as 1. A new [`ProbeState`] reports Pass.

use serde::Serialize;

use super::check::Health;

/// How many consecutive raw results change a probe's reported status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive raw Warn-or-Fail results before a passing probe warns (default 1).
    pub failures_before_warning: u32,
    /// Consecutive raw Fail results before the probe fails (default 3).
    pub failures_before_critical: u32,
    /// Consecutive results better than the reported status before it is lowered (default 1).
    pub successes_before_passing: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            failures_before_warning: 1,
            failures_before_critical: 3,
            successes_before_passing: 1,
        }
    }
}

/// A change of a probe's reported status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StatusChange {
    pub from: Health,
    pub to: Health,
}

/// A probe's reported status and the runs of raw results that lead to changing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeState {
    status: Health,
    /// Consecutive raw Warn-or-Fail results.
    failures: u32,
    /// Consecutive raw Fail results.
    hard_failures: u32,
    /// Consecutive raw results better than `status` since it last changed.
    better: u32,
    /// The worst of those.
    better_worst: Health,
}

impl Default for ProbeState {
    fn default() -> Self {
        ProbeState::new()
    }
}

impl ProbeState {
    /// Reporting Pass, with no history.
    pub fn new() -> Self {
        ProbeState {
            status: Health::Pass,
            failures: 0,
            hard_failures: 0,
            better: 0,
            better_worst: Health::Pass,
        }
    }

    /// A probe that reported `status` before a restart, resumed there as if it had just
    /// reached it: while it keeps failing it stays (a restart does not walk it up from Pass
    /// again, notifying every step), and it passes again as it would have.
    pub fn resumed(status: Health, config: Thresholds) -> Self {
        let warn_after = config.failures_before_warning.max(1);
        let fail_after = config.failures_before_critical.max(1);
        let mut p = ProbeState::new();
        p.status = status;
        match status {
            Health::Pass => {}
            Health::Warn => p.failures = warn_after,
            Health::Fail => {
                p.failures = warn_after.max(fail_after);
                p.hard_failures = fail_after;
            }
        }
        p
    }

    /// The reported status.
    pub fn status(&self) -> Health {
        self.status
    }

    /// Consecutive raw Warn-or-Fail results, ending with the latest.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }

    /// Consecutive raw Fail results, ending with the latest.
    pub fn consecutive_hard_failures(&self) -> u32 {
        self.hard_failures
    }

    /// Takes in one raw result; answers the change of the reported status, if any.
    pub fn observe(&mut self, raw: Health, config: Thresholds) -> Option<StatusChange> {
        let warn_after = config.failures_before_warning.max(1);
        let fail_after = config.failures_before_critical.max(1);
        let pass_after = config.successes_before_passing.max(1);

        match raw {
            Health::Pass => {
                self.failures = 0;
                self.hard_failures = 0;
            }
            Health::Warn => {
                self.failures = self.failures.saturating_add(1);
                self.hard_failures = 0;
            }
            Health::Fail => {
                self.failures = self.failures.saturating_add(1);
                self.hard_failures = self.hard_failures.saturating_add(1);
            }
        }

        let escalate_to = if self.hard_failures >= fail_after {
            Health::Fail
        } else if self.failures >= warn_after {
            Health::Warn
        } else {
            Health::Pass
        };
        if escalate_to > self.status {
            return Some(self.change(escalate_to));
        }

        if raw < self.status {
            self.better = self.better.saturating_add(1);
            self.better_worst = self.better_worst.worst(raw);
            if self.better >= pass_after {
                return Some(self.change(self.better_worst));
            }
        } else {
            self.better = 0;
            self.better_worst = Health::Pass;
        }
        None
    }

    fn change(&mut self, to: Health) -> StatusChange {
        let from = self.status;
        self.status = to;
        self.better = 0;
        self.better_worst = Health::Pass;
        StatusChange { from, to }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Health::{Fail, Pass, Warn};

    fn t(warn: u32, crit: u32, pass: u32) -> Thresholds {
        Thresholds {
            failures_before_warning: warn,
            failures_before_critical: crit,
            successes_before_passing: pass,
        }
    }

    #[test]
    fn a_resumed_status_holds_while_failing_and_passes_as_it_would() {
        let config = t(1, 3, 2);
        let mut p = ProbeState::resumed(Fail, config);
        assert_eq!(p.observe(Fail, config), None);
        assert_eq!(p.status(), Fail);
        assert_eq!(p.observe(Pass, config), None);
        assert_eq!(
            p.observe(Pass, config),
            Some(StatusChange {
                from: Fail,
                to: Pass
            })
        );
        let mut w = ProbeState::resumed(Warn, config);
        assert_eq!(w.observe(Warn, config), None);
        assert_eq!(w.status(), Warn);
        assert_eq!(ProbeState::resumed(Pass, config).status(), Pass);
    }

    /// The reported status after each raw result.
    fn statuses(raws: &[Health], config: Thresholds) -> Vec<Health> {
        let mut p = ProbeState::new();
        raws.iter()
            .map(|&r| {
                let before = p.status();
                let change = p.observe(r, config);
                // A change is reported exactly when the status changes, from what it was.
                match change {
                    Some(c) => {
                        assert_eq!(c.from, before);
                        assert_eq!(c.to, p.status());
                        assert_ne!(c.from, c.to);
                    }
                    None => assert_eq!(p.status(), before),
                }
                p.status()
            })
            .collect()
    }

    #[test]
    fn defaults_are_one_three_one() {
        assert_eq!(Thresholds::default(), t(1, 3, 1));
        assert_eq!(ProbeState::new().status(), Pass);
    }

    #[test]
    fn passes_stay_passing() {
        assert_eq!(statuses(&[Pass, Pass], t(1, 3, 1)), [Pass, Pass]);
    }

    #[test]
    fn with_the_defaults_a_fail_warns_and_three_fail() {
        let mut p = ProbeState::new();
        let d = Thresholds::default();
        assert_eq!(
            p.observe(Fail, d),
            Some(StatusChange {
                from: Pass,
                to: Warn
            })
        );
        assert_eq!(p.observe(Fail, d), None);
        assert_eq!(
            p.observe(Fail, d),
            Some(StatusChange {
                from: Warn,
                to: Fail
            })
        );
        assert_eq!(p.consecutive_hard_failures(), 3);
        assert_eq!(
            p.observe(Pass, d),
            Some(StatusChange {
                from: Fail,
                to: Pass
            })
        );
        assert_eq!(p.consecutive_failures(), 0);
    }

    #[test]
    fn warnings_count_towards_warning_only() {
        assert_eq!(
            statuses(&[Warn, Warn, Warn, Warn, Warn], t(1, 3, 1)),
            [Warn; 5]
        );
        assert_eq!(
            statuses(&[Warn, Warn, Warn], t(3, 1, 1)),
            [Pass, Pass, Warn]
        );
    }

    #[test]
    fn fails_count_towards_both() {
        // Two failures of any kind warn; the two Fails then count towards critical.
        assert_eq!(
            statuses(&[Warn, Fail, Fail, Fail], t(2, 3, 1)),
            [Pass, Warn, Warn, Fail]
        );
        // With critical at 1, one Fail fails at once, straight from Pass.
        assert_eq!(statuses(&[Fail], t(5, 1, 1)), [Fail]);
    }

    #[test]
    fn a_warn_breaks_the_run_towards_critical() {
        assert_eq!(
            statuses(&[Fail, Fail, Warn, Fail, Fail, Fail], t(1, 3, 1)),
            [Warn, Warn, Warn, Warn, Warn, Fail]
        );
        // Alternating Warn and Fail never fails.
        let flapping = [Warn, Fail].repeat(10);
        assert!(statuses(&flapping, t(1, 2, 1)).iter().all(|&s| s == Warn));
    }

    #[test]
    fn a_pass_breaks_the_run_towards_warning() {
        assert_eq!(
            statuses(&[Fail, Pass, Fail, Pass, Fail, Fail], t(2, 3, 1)),
            [Pass, Pass, Pass, Pass, Pass, Warn]
        );
    }

    #[test]
    fn recovery_takes_consecutive_passes() {
        assert_eq!(
            statuses(&[Warn, Pass, Pass, Warn, Pass, Pass, Pass], t(1, 3, 3)),
            [Warn, Warn, Warn, Warn, Warn, Warn, Pass]
        );
    }

    #[test]
    fn a_fail_falls_to_warn_when_warnings_follow() {
        // succ = 1: one Warn after a Fail status lowers it to Warn.
        assert_eq!(
            statuses(&[Fail, Fail, Fail, Warn, Pass], t(1, 3, 1)),
            [Warn, Warn, Fail, Warn, Pass]
        );
        // succ = 2: the two results after the Fails were Warn and Pass: Warn, the worst.
        assert_eq!(
            statuses(&[Fail, Warn, Pass, Pass], t(1, 1, 2)),
            [Fail, Fail, Warn, Warn]
        );
        // ... and two Passes then clear it.
        assert_eq!(
            statuses(&[Fail, Warn, Pass, Pass, Pass], t(1, 1, 2)),
            [Fail, Fail, Warn, Warn, Pass]
        );
        // Two Passes straight after a Fail status clear it at once.
        assert_eq!(
            statuses(&[Fail, Pass, Pass], t(1, 1, 2)),
            [Fail, Fail, Pass]
        );
    }

    #[test]
    fn a_result_as_bad_as_the_status_restarts_the_recovery() {
        assert_eq!(
            statuses(&[Fail, Pass, Fail, Pass, Pass], t(1, 1, 2)),
            [Fail, Fail, Fail, Fail, Pass]
        );
        assert_eq!(
            statuses(&[Warn, Pass, Warn, Pass, Pass], t(1, 3, 2)),
            [Warn, Warn, Warn, Warn, Pass]
        );
    }

    #[test]
    fn escalation_wins_over_recovery() {
        // Fail status, recovering with Warns, but the warn threshold is met by those Warns:
        // lowering to Warn is still what happens (Warn is not an escalation from Fail).
        assert_eq!(statuses(&[Fail, Warn], t(1, 1, 1)), [Fail, Warn]);
        // Warn status: a Fail run reaching critical escalates even mid-recovery.
        assert_eq!(
            statuses(&[Warn, Pass, Fail, Fail], t(1, 2, 3)),
            [Warn, Warn, Warn, Fail]
        );
    }

    #[test]
    fn zero_thresholds_count_as_one() {
        assert_eq!(
            statuses(&[Pass, Warn, Pass], t(0, 0, 0)),
            [Pass, Warn, Pass]
        );
        assert_eq!(statuses(&[Fail, Pass], t(0, 0, 0)), [Fail, Pass]);
    }

    #[test]
    fn long_runs_do_not_overflow() {
        let mut p = ProbeState {
            failures: u32::MAX,
            hard_failures: u32::MAX,
            ..ProbeState::new()
        };
        assert_eq!(
            p.observe(Fail, Thresholds::default()),
            Some(StatusChange {
                from: Pass,
                to: Fail
            })
        );
        assert_eq!(p.consecutive_failures(), u32::MAX);
    }
}
