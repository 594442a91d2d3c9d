//! Grouping notifications per channel, and the delay before retrying a failed delivery.
//!
//! Pure logic with explicit time (Unix ms passed in), like [`super::engine`].
//!
//! **Grouping.** A notification stored in the outbox for a channel joins that channel's open
//! group; the first one opens it with a deadline `now + group_wait`. At the deadline the whole
//! group goes out as one message, so a burst (ten actors failing together) is one page, not
//! ten. A push after the group went out opens a new one. With `group_wait` 0 a group is due at
//! once: a caller that drains [`Groups::due`] after each push sends every notification at once
//! (pushes between two drains at the same millisecond still share one group, which is harmless
//! and saves a send).
//!
//! **Retries.** [`full_jitter`] is AWS's "full jitter" backoff (uniform in
//! `[0, min(cap, base × 2^attempt)]`), which spreads retries of many senders best;
//! [`next_attempt_delay`] adds a channel's `Retry-After`.

use std::collections::HashSet;
use std::time::Duration;

/// One channel's open group.
#[derive(Debug, Clone)]
struct Group {
    channel: String,
    deadline_ms: i64,
    /// Opening order, to order groups with the same deadline.
    seq: u64,
    ids: Vec<i64>,
    seen: HashSet<i64>,
}

/// The open groups, at most one per channel.
///
/// Channels are a handful, so the groups are a plain vector searched linearly.
#[derive(Debug, Clone)]
pub struct Groups {
    wait: Duration,
    open: Vec<Group>,
    next_seq: u64,
}

impl Groups {
    pub fn new(group_wait: Duration) -> Groups {
        Groups {
            wait: group_wait,
            open: Vec::new(),
            next_seq: 0,
        }
    }

    /// Adds outbox row `id` to `channel`'s open group. `Some(deadline)` when this opened a new
    /// group (deadline = now + group_wait: the caller arms a timer), `None` when it joined one.
    /// An id already in the group is not added twice.
    pub fn push(&mut self, channel: &str, id: i64, now_ms: i64) -> Option<i64> {
        if let Some(group) = self.open.iter_mut().find(|g| g.channel == channel) {
            if group.seen.insert(id) {
                group.ids.push(id);
            }
            return None;
        }
        let deadline_ms = now_ms.saturating_add(millis(self.wait));
        self.open.push(Group {
            channel: channel.to_string(),
            deadline_ms,
            seq: self.next_seq,
            ids: vec![id],
            seen: HashSet::from([id]),
        });
        self.next_seq = self.next_seq.wrapping_add(1);
        Some(deadline_ms)
    }

    /// The groups whose deadline has come (`deadline <= now`), removed, in deadline order
    /// (then opening order), each with its ids in push order.
    pub fn due(&mut self, now_ms: i64) -> Vec<(String, Vec<i64>)> {
        let (mut due, open): (Vec<Group>, Vec<Group>) = std::mem::take(&mut self.open)
            .into_iter()
            .partition(|g| g.deadline_ms <= now_ms);
        self.open = open;
        due.sort_by_key(|g| (g.deadline_ms, g.seq));
        due.into_iter().map(|g| (g.channel, g.ids)).collect()
    }

    /// The earliest deadline of the open groups (when to wake up next).
    pub fn next_deadline(&self) -> Option<i64> {
        self.open.iter().map(|g| g.deadline_ms).min()
    }

    /// `channel`'s open group, removed whatever its deadline: its ids in push order (empty
    /// when none is open).
    pub fn take(&mut self, channel: &str) -> Vec<i64> {
        match self.open.iter().position(|g| g.channel == channel) {
            Some(i) => self.open.remove(i).ids,
            None => Vec::new(),
        }
    }

    /// Every open group, whatever its deadline, in deadline order (at shutdown, or a flush).
    pub fn take_all(&mut self) -> Vec<(String, Vec<i64>)> {
        self.due(i64::MAX)
    }

    /// For a configuration reload: applies to groups opened from now on; open groups keep
    /// their deadline (the caller's timer is armed for it).
    pub fn set_wait(&mut self, group_wait: Duration) {
        self.wait = group_wait;
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

/// AWS "full jitter": a delay uniformly in `[0, min(cap, base × 2^attempt)]`, given `unit` in
/// `[0, 1)` from the caller's RNG (so this stays deterministic and testable). Attempt 0 is the
/// first retry. Saturating, never panics: a huge attempt or base gives `cap`'s range; a `unit`
/// outside `[0, 1]` is clamped and NaN counts as 0.
pub fn full_jitter(attempt: u32, base: Duration, cap: Duration, unit: f64) -> Duration {
    let ceiling = 1u128
        .checked_shl(attempt)
        .and_then(|factor| base.as_nanos().checked_mul(factor))
        .unwrap_or(u128::MAX)
        .min(cap.as_nanos());
    let unit = if unit.is_nan() {
        0.0
    } else {
        unit.clamp(0.0, 1.0)
    };
    // `as` saturates; the `min` guards against rounding up past the ceiling.
    let nanos = ((ceiling as f64) * unit) as u128;
    from_nanos(nanos.min(ceiling))
}

/// The delay before the next attempt: [`full_jitter`], but never less than the channel's
/// `retry_after` (a 429 or 503 asking us to wait at least that long), even when that exceeds
/// `cap`: `cap` bounds our own backoff, not the receiver's explicit request (the caller bounds
/// what it accepts as a `Retry-After` when it parses it).
pub fn next_attempt_delay(
    attempt: u32,
    base: Duration,
    cap: Duration,
    unit: f64,
    retry_after: Option<Duration>,
) -> Duration {
    let jitter = full_jitter(attempt, base, cap, unit);
    match retry_after {
        Some(wait) => jitter.max(wait),
        None => jitter,
    }
}

/// Nanoseconds to a duration, saturating at [`Duration::MAX`].
fn from_nanos(nanos: u128) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    match u64::try_from(nanos / NANOS_PER_SEC) {
        // The remainder is below 10^9, so it fits in u32.
        Ok(secs) => Duration::new(secs, (nanos % NANOS_PER_SEC) as u32),
        Err(_) => Duration::MAX,
    }
}

/// A duration in milliseconds, saturating.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;
    const S: Duration = Duration::from_secs(1);

    #[test]
    fn push_opens_then_joins() {
        let mut g = Groups::new(Duration::from_secs(30));
        assert!(g.is_empty());
        assert_eq!(g.next_deadline(), None);
        assert_eq!(g.push("slack", 1, T0), Some(T0 + 30_000));
        assert_eq!(g.push("slack", 2, T0 + 10_000), None);
        assert_eq!(g.push("email", 3, T0 + 5_000), Some(T0 + 35_000));
        assert_eq!(g.len(), 2);
        assert_eq!(g.next_deadline(), Some(T0 + 30_000));
        assert!(g.due(T0 + 29_999).is_empty());
        assert_eq!(g.due(T0 + 30_000), vec![("slack".to_string(), vec![1, 2])]);
        assert_eq!(g.next_deadline(), Some(T0 + 35_000));
        // A push after the group went out opens a new one.
        assert_eq!(g.push("slack", 4, T0 + 31_000), Some(T0 + 61_000));
    }

    #[test]
    fn due_in_deadline_order_with_ids_in_push_order() {
        let mut g = Groups::new(Duration::from_secs(10));
        g.push("c", 30, T0 + 2_000);
        g.push("a", 10, T0);
        g.push("b", 20, T0 + 1_000);
        g.push("d", 40, T0 + 1_000); // same deadline as b, opened later
        g.push("a", 12, T0 + 3_000);
        g.push("a", 11, T0 + 4_000);
        g.push("late", 50, T0 + 60_000);
        assert_eq!(
            g.due(T0 + 20_000),
            vec![
                ("a".to_string(), vec![10, 12, 11]),
                ("b".to_string(), vec![20]),
                ("d".to_string(), vec![40]),
                ("c".to_string(), vec![30]),
            ]
        );
        assert!(g.due(T0 + 20_000).is_empty(), "removed");
        assert_eq!(g.next_deadline(), Some(T0 + 70_000));
    }

    #[test]
    fn group_wait_zero_is_due_at_once() {
        let mut g = Groups::new(Duration::ZERO);
        assert_eq!(g.push("slack", 1, T0), Some(T0));
        assert_eq!(g.due(T0), vec![("slack".to_string(), vec![1])]);
        assert_eq!(g.push("slack", 2, T0), Some(T0));
        assert_eq!(g.due(T0), vec![("slack".to_string(), vec![2])]);
        assert!(g.is_empty());
    }

    #[test]
    fn ids_are_deduplicated() {
        let mut g = Groups::new(S);
        g.push("slack", 7, T0);
        g.push("slack", 8, T0);
        g.push("slack", 7, T0);
        g.push("email", 7, T0);
        assert_eq!(
            g.take_all(),
            vec![
                ("slack".to_string(), vec![7, 8]),
                ("email".to_string(), vec![7]),
            ]
        );
    }

    #[test]
    fn take_all_empties_in_deadline_order() {
        let mut g = Groups::new(Duration::from_secs(3600));
        g.push("b", 2, T0 + 1);
        g.push("a", 1, T0);
        assert_eq!(
            g.take_all(),
            vec![("a".to_string(), vec![1]), ("b".to_string(), vec![2])]
        );
        assert!(g.is_empty());
        assert!(g.take_all().is_empty());
    }

    #[test]
    fn set_wait_applies_to_new_groups() {
        let mut g = Groups::new(Duration::from_secs(60));
        g.push("a", 1, T0);
        g.set_wait(Duration::from_secs(5));
        assert_eq!(g.push("b", 2, T0), Some(T0 + 5_000));
        assert_eq!(g.push("a", 3, T0), None);
        assert_eq!(g.next_deadline(), Some(T0 + 5_000));
        assert_eq!(g.due(T0 + 5_000), vec![("b".to_string(), vec![2])]);
        assert_eq!(g.next_deadline(), Some(T0 + 60_000));
        // Saturating deadlines.
        g.set_wait(Duration::MAX);
        assert_eq!(g.push("c", 4, T0), Some(i64::MAX));
    }

    #[test]
    fn full_jitter_bounds_and_growth() {
        let base = Duration::from_millis(500);
        let cap = Duration::from_secs(60);
        for attempt in 0..10 {
            let ceiling = (base * 2u32.pow(attempt)).min(cap);
            assert_eq!(full_jitter(attempt, base, cap, 0.0), Duration::ZERO);
            for unit in [0.1, 0.5, 0.999_999] {
                let d = full_jitter(attempt, base, cap, unit);
                assert!(d <= ceiling, "{attempt} {unit}: {d:?} > {ceiling:?}");
            }
            assert_eq!(full_jitter(attempt, base, cap, 1.0), ceiling);
        }
        // Growth: the ceiling doubles per attempt until the cap.
        assert_eq!(full_jitter(0, base, cap, 0.5), Duration::from_millis(250));
        assert_eq!(full_jitter(1, base, cap, 0.5), Duration::from_millis(500));
        assert_eq!(full_jitter(2, base, cap, 0.5), Duration::from_millis(1000));
        assert_eq!(full_jitter(3, base, cap, 0.5), Duration::from_millis(2000));
        // Cap: 500 ms × 2^7 = 64 s > 60 s.
        assert_eq!(full_jitter(7, base, cap, 0.5), Duration::from_secs(30));
        assert_eq!(full_jitter(20, base, cap, 0.5), Duration::from_secs(30));
    }

    #[test]
    fn full_jitter_saturates_and_never_panics() {
        let cap = Duration::from_secs(300);
        for attempt in [63, 64, 127, 128, 1000, u32::MAX] {
            assert_eq!(full_jitter(attempt, S, cap, 0.5), Duration::from_secs(150));
        }
        assert_eq!(
            full_jitter(u32::MAX, Duration::MAX, Duration::MAX, 1.0),
            Duration::MAX
        );
        let _ = full_jitter(u32::MAX, Duration::MAX, Duration::MAX, 0.5);
        assert_eq!(full_jitter(3, S, cap, f64::NAN), Duration::ZERO);
        assert_eq!(full_jitter(3, S, cap, -1.0), Duration::ZERO);
        assert_eq!(full_jitter(3, S, cap, 7.0), Duration::from_secs(8));
        assert_eq!(
            full_jitter(3, S, cap, f64::INFINITY),
            Duration::from_secs(8)
        );
        assert_eq!(full_jitter(3, Duration::ZERO, cap, 0.5), Duration::ZERO);
        assert_eq!(full_jitter(3, S, Duration::ZERO, 0.5), Duration::ZERO);
    }

    #[test]
    fn next_attempt_delay_honours_retry_after() {
        let (base, cap) = (S, Duration::from_secs(60));
        // No retry_after: plain full jitter.
        assert_eq!(
            next_attempt_delay(2, base, cap, 0.5, None),
            Duration::from_secs(2)
        );
        // Longer than the jitter: at least retry_after.
        assert_eq!(
            next_attempt_delay(2, base, cap, 0.5, Some(Duration::from_secs(10))),
            Duration::from_secs(10)
        );
        // Shorter: the jitter.
        assert_eq!(
            next_attempt_delay(2, base, cap, 0.5, Some(Duration::from_secs(1))),
            Duration::from_secs(2)
        );
        // Beyond the cap: the receiver's request wins.
        assert_eq!(
            next_attempt_delay(2, base, cap, 0.5, Some(Duration::from_secs(120))),
            Duration::from_secs(120)
        );
        assert_eq!(
            next_attempt_delay(u32::MAX, base, cap, 0.0, Some(Duration::MAX)),
            Duration::MAX
        );
    }
}
