//! When the heartbeat ticks and which ticks record a beat.
//!
//! Beats are due on a fixed schedule (every `every` from the first), not `every` after the last
//! recorded one: ticks jitter, and a tick that came a little early used to be skipped, so with
//! ticks at the beat's own period about half the beats were recorded. A tick counts when the
//! beat is due within half a tick, and a daemon that fell behind (suspended, overloaded) does
//! not make up the missed beats in a burst.

use std::time::Duration;

use tokio::time::Instant;

/// How often to tick: every `every`, or twice per watchdog interval if that is sooner.
pub fn tick_interval(every: Duration, watchdog: Option<Duration>) -> Duration {
    match watchdog {
        Some(w) if !w.is_zero() => every.min(w / 2),
        _ => every,
    }
    .max(Duration::from_millis(1))
}

/// Which ticks record a beat.
#[derive(Debug, Clone)]
pub struct BeatSchedule {
    every: Duration,
    /// Half the tick interval: how early a tick may come and still count.
    slack: Duration,
    next_due: Option<Instant>,
}

impl BeatSchedule {
    pub fn new(every: Duration, tick: Duration) -> Self {
        BeatSchedule {
            every: every.max(Duration::from_millis(1)),
            slack: tick / 2,
            next_due: None,
        }
    }

    /// Whether the tick at `now` records a beat (the first tick always does).
    pub fn due(&mut self, now: Instant) -> bool {
        let Some(next) = self.next_due else {
            self.next_due = Some(now + self.every);
            return true;
        };
        if now + self.slack < next {
            return false;
        }
        let mut following = next + self.every;
        if following <= now {
            // Behind by more than a beat: start again from now rather than catch up.
            following = now + self.every;
        }
        self.next_due = Some(following);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_follow_the_watchdog_when_it_is_sooner() {
        let s = Duration::from_secs(1);
        assert_eq!(tick_interval(10 * s, None), 10 * s);
        assert_eq!(tick_interval(10 * s, Some(4 * s)), 2 * s);
        assert_eq!(tick_interval(s, Some(60 * s)), s);
        assert_eq!(
            tick_interval(Duration::ZERO, None),
            Duration::from_millis(1)
        );
    }

    /// Beats counted over `ticks` ticks of `tick`, each early or late by up to a quarter tick.
    fn beats(every: Duration, tick: Duration, ticks: u32) -> u32 {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut schedule = BeatSchedule::new(every, tick);
        let start = Instant::now();
        let quarter = tick.as_secs_f64() / 4.0;
        (0..ticks)
            .filter(|i| {
                let jitter = (rng.f64() * 2.0 - 1.0) * quarter;
                let at = tick.as_secs_f64() * f64::from(*i) + quarter + jitter;
                schedule.due(start + Duration::from_secs_f64(at))
            })
            .count() as u32
    }

    /// Regression: ticks at the beat's own period recorded about half the beats.
    #[test]
    fn every_tick_at_the_beat_period_records_a_beat() {
        let every = Duration::from_millis(100);
        assert_eq!(beats(every, every, 1000), 1000);
    }

    #[test]
    fn faster_ticks_record_one_beat_per_period() {
        // Every 10 s, ticking every 2 s for the watchdog: 1 beat in 5 ticks.
        let n = beats(Duration::from_secs(10), Duration::from_secs(2), 1000);
        assert!((199..=201).contains(&n), "{n}");
    }

    #[test]
    fn a_long_pause_does_not_burst() {
        let every = Duration::from_secs(1);
        let mut schedule = BeatSchedule::new(every, every);
        let t0 = Instant::now();
        assert!(schedule.due(t0));
        assert!(schedule.due(t0 + every));
        // Suspended for an hour: one beat, then the schedule continues from there.
        let later = t0 + Duration::from_secs(3600);
        assert!(schedule.due(later));
        assert!(!schedule.due(later + Duration::from_millis(100)));
        assert!(schedule.due(later + every));
    }
}
