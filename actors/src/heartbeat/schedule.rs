//! When the heartbeat ticks and which ticks record a beat.

use std::time::Duration;

/// How often to tick: every `every`, or twice per watchdog interval if that is sooner.
pub fn tick_interval(every: Duration, watchdog: Option<Duration>) -> Duration {
    match watchdog {
        Some(w) if !w.is_zero() => every.min(w / 2),
        _ => every,
    }
    .max(Duration::from_millis(1))
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
}
