//! The restart delay schedule (beyond OTP, like systemd's RestartSec/RestartSteps/
//! RestartMaxDelaySec): exponential with optional full jitter, capped, and reset once a child
//! has stayed up long enough. Pure functions; the supervisor keeps the step counter per child.

use std::time::Duration;

/// Randomization of each delay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Jitter {
    /// The delay is exactly the schedule's value.
    #[default]
    None,
    /// The delay is uniform in `[0, schedule value]` ("full jitter"): restarts of many children
    /// that failed together spread out instead of retrying in lockstep.
    Full,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The delay before the first restart of a run of consecutive failures. Zero means
    /// "restart at once", as OTP does; then no delay ever applies.
    pub initial: Duration,
    /// The cap.
    pub max: Duration,
    /// Each further consecutive restart waits `factor` times longer (>= 1.0).
    pub factor: f64,
    pub jitter: Jitter,
    /// A child that stayed up at least this long starts over at `initial` when it next fails.
    pub reset_after: Duration,
}

impl Backoff {
    /// No delay at all: OTP's behaviour.
    pub const fn none() -> Self {
        Backoff {
            initial: Duration::ZERO,
            max: Duration::ZERO,
            factor: 1.0,
            jitter: Jitter::None,
            reset_after: Duration::ZERO,
        }
    }

    pub fn exponential(initial: Duration, max: Duration, factor: f64) -> Self {
        Backoff {
            initial,
            max,
            factor,
            jitter: Jitter::None,
            reset_after: Duration::from_secs(60),
        }
    }

    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    pub fn reset_after(mut self, reset_after: Duration) -> Self {
        self.reset_after = reset_after;
        self
    }

    pub fn is_none(&self) -> bool {
        self.initial.is_zero()
    }

    /// The schedule's value for the `step`-th consecutive restart (1-based), before jitter:
    /// `min(max, initial * factor^(step-1))`.
    pub fn nominal(&self, step: u32) -> Duration {
        if self.initial.is_zero() {
            return Duration::ZERO;
        }
        let cap = self.max.max(self.initial);
        let factor = if self.factor.is_finite() && self.factor >= 1.0 {
            self.factor
        } else {
            1.0
        };
        let exponent = i32::try_from(step.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial.as_secs_f64() * factor.powi(exponent);
        if !secs.is_finite() || secs >= cap.as_secs_f64() {
            cap
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// The delay for the `step`-th consecutive restart; `unit` is a uniform sample in [0, 1)
    /// used only for jitter (the caller supplies it, so this stays a pure function).
    pub fn delay(&self, step: u32, unit: f64) -> Duration {
        let nominal = self.nominal(step);
        match self.jitter {
            Jitter::None => nominal,
            Jitter::Full => nominal.mul_f64(unit.clamp(0.0, 1.0)),
        }
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn none_never_delays() {
        let b = Backoff::none();
        assert!(b.is_none());
        for step in [0, 1, 2, 100, u32::MAX] {
            assert_eq!(b.delay(step, 0.7), Duration::ZERO);
        }
    }

    #[test]
    fn grows_exponentially_then_caps() {
        let b = Backoff::exponential(100 * MS, 1000 * MS, 2.0);
        let got: Vec<_> = (1..=7).map(|s| b.delay(s, 0.5)).collect();
        assert_eq!(
            got,
            [100, 200, 400, 800, 1000, 1000, 1000]
                .map(|m| m * MS)
                .to_vec()
        );
    }

    #[test]
    fn huge_steps_saturate_at_the_cap() {
        let b = Backoff::exponential(100 * MS, 30_000 * MS, 10.0);
        assert_eq!(b.delay(u32::MAX, 0.0), 30_000 * MS);
        assert_eq!(b.delay(5000, 0.0), 30_000 * MS);
    }

    #[test]
    fn bad_factor_is_treated_as_constant() {
        for factor in [0.5, f64::NAN, -2.0] {
            let b = Backoff::exponential(100 * MS, 1000 * MS, factor);
            assert_eq!(b.delay(5, 0.0), 100 * MS, "factor {factor}");
        }
    }

    #[test]
    fn max_below_initial_means_initial() {
        let b = Backoff::exponential(500 * MS, 100 * MS, 2.0);
        assert_eq!(b.delay(3, 0.0), 500 * MS);
    }

    #[test]
    fn full_jitter_stays_within_zero_and_nominal() {
        let b = Backoff::exponential(100 * MS, 1000 * MS, 2.0).jitter(Jitter::Full);
        assert_eq!(b.delay(3, 0.0), Duration::ZERO);
        assert_eq!(b.delay(3, 0.5), 200 * MS);
        assert_eq!(b.delay(3, 1.0), 400 * MS);
        let mut rng = fastrand::Rng::with_seed(7);
        for step in 1..20 {
            let d = b.delay(step, rng.f64());
            assert!(d <= b.nominal(step), "step {step}: {d:?}");
        }
    }
}
