//! Restart intensity (OTP's MaxR/MaxT): every restart attempt is recorded; more than `intensity`
//! attempts within `period` means give up.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct RestartWindow {
    intensity: u32,
    period: Duration,
    /// Times of the attempts still inside the period, oldest first. At most `intensity + 1`
    /// entries are ever kept.
    attempts: VecDeque<Instant>,
}

impl RestartWindow {
    pub fn new(intensity: u32, period: Duration) -> Self {
        RestartWindow {
            intensity,
            period,
            attempts: VecDeque::new(),
        }
    }

    /// Records an attempt at `now`. Returns false when this attempt takes the count within the
    /// period above `intensity`: the supervisor must give up. As in OTP, an attempt exactly
    /// `period` old still counts.
    pub fn record(&mut self, now: Instant) -> bool {
        while let Some(&oldest) = self.attempts.front() {
            if now.saturating_duration_since(oldest) > self.period {
                self.attempts.pop_front();
            } else {
                break;
            }
        }
        self.attempts.push_back(now);
        let within = self.attempts.len() <= self.intensity as usize;
        if self.attempts.len() > self.intensity as usize + 1 {
            self.attempts.pop_front();
        }
        within
    }

    /// New limits; the history is kept (reloading a config cannot reset a restart storm).
    pub fn reconfigure(&mut self, intensity: u32, period: Duration) {
        self.intensity = intensity;
        self.period = period;
    }

    /// Attempts inside the period as of `now`.
    pub fn count_at(&self, now: Instant) -> usize {
        self.attempts
            .iter()
            .filter(|t| now.saturating_duration_since(**t) <= self.period)
            .count()
    }

    /// Attempts currently kept (some may be older than the period until the next record).
    pub fn len(&self) -> usize {
        self.attempts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.attempts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn more_than_intensity_in_period_trips() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(3, 10 * S);
        assert!(w.record(t0));
        assert!(w.record(t0 + S));
        assert!(w.record(t0 + 2 * S));
        assert!(!w.record(t0 + 3 * S));
    }

    #[test]
    fn intensity_zero_trips_on_first_restart() {
        let mut w = RestartWindow::new(0, 10 * S);
        assert!(!w.record(Instant::now()));
    }

    /// supervisor_SUITE:multiple_restarts — restarts spread wider than the period never trip.
    #[test]
    fn spread_out_restarts_never_trip() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(2, 10 * S);
        for i in 0..100u32 {
            assert!(w.record(t0 + i * 6 * S), "attempt {i}");
        }
        assert!(w.len() <= 3);
    }

    #[test]
    fn an_attempt_exactly_period_old_still_counts() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(1, 10 * S);
        assert!(w.record(t0));
        assert!(!w.record(t0 + 10 * S));
        let mut w = RestartWindow::new(1, 10 * S);
        assert!(w.record(t0));
        assert!(w.record(t0 + 10 * S + Duration::from_millis(1)));
    }
}
