//! Who may hold a control connection: at most `max` at once, and the operator is never locked
//! out. When all slots are taken, a new connection takes the slot of the connection that has
//! been idle longest (waiting between requests, like an HTTP keep-alive); only if none is
//! idle (all are in a request or streaming) is it refused. Streams are capped at half the
//! slots, so requests always have room.
//!
//! Also here: [`Throttle`], which keeps a flood of refusals from flooding the log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// What a connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Waiting for its next request since then: may be evicted.
    Idle(Instant),
    /// Handling a request.
    Busy,
    /// Serving a stream (`subscribe`).
    Streaming,
}

struct Entry {
    activity: Activity,
    /// Told when the slot is taken away.
    evict: Arc<Notify>,
}

#[derive(Default)]
struct Table {
    next: u64,
    entries: HashMap<u64, Entry>,
}

/// The connection slots.
#[derive(Clone)]
pub struct Slots {
    inner: Arc<Mutex<Table>>,
    max: usize,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot is busy or streaming.
    Full,
}

/// A held slot; released when dropped.
pub struct Slot {
    slots: Slots,
    id: u64,
    /// Notified when this slot is given to a newer connection.
    pub evicted: Arc<Notify>,
}

impl Slots {
    pub fn new(max: usize) -> Self {
        Slots {
            inner: Arc::new(Mutex::new(Table::default())),
            max: max.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // Each update is one insert, remove or field write: a panic cannot leave it torn.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Streams allowed at once: half the slots (at least one).
    pub fn max_streams(&self) -> usize {
        (self.max / 2).max(1)
    }

    /// Admits a new connection (busy until it says otherwise), evicting the longest-idle one
    /// if every slot is taken.
    pub fn admit(&self) -> Result<Slot, Refusal> {
        let mut table = self.lock();
        if table.entries.len() >= self.max {
            let oldest = table
                .entries
                .iter()
                .filter_map(|(id, e)| match e.activity {
                    Activity::Idle(since) => Some((since, *id)),
                    _ => None,
                })
                .min();
            let Some((_, victim)) = oldest else {
                return Err(Refusal::Full);
            };
            if let Some(entry) = table.entries.remove(&victim) {
                entry.evict.notify_one();
            }
        }
        table.next += 1;
        let id = table.next;
        let evicted = Arc::new(Notify::new());
        table.entries.insert(
            id,
            Entry {
                activity: Activity::Busy,
                evict: evicted.clone(),
            },
        );
        Ok(Slot {
            slots: self.clone(),
            id,
            evicted,
        })
    }

    /// Connections held now.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Slot {
    /// Records what the connection does now. A slot already given away stays given away.
    pub fn set(&self, activity: Activity) {
        if let Some(entry) = self.slots.lock().entries.get_mut(&self.id) {
            entry.activity = activity;
        }
    }

    /// Turns this connection into a stream, if fewer than the cap stream now.
    pub fn start_stream(&self) -> bool {
        let mut table = self.slots.lock();
        let streams = table
            .entries
            .values()
            .filter(|e| e.activity == Activity::Streaming)
            .count();
        if streams >= self.slots.max_streams() {
            return false;
        }
        if let Some(entry) = table.entries.get_mut(&self.id) {
            entry.activity = Activity::Streaming;
        }
        true
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.lock().entries.remove(&self.id);
    }
}

/// At most one log line per `every` for a recurring event; the lines in between are counted
/// and reported with the next one.
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    pub fn new(every: Duration) -> Self {
        Throttle {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)`: log now, mentioning the `n` occurrences not logged since the last line.
    /// `None`: stay quiet (counted).
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_evicts_the_longest_idle() {
        let slots = Slots::new(3);
        let t0 = Instant::now();
        let a = slots.admit().unwrap_or_else(|_| panic!("a"));
        let b = slots.admit().unwrap_or_else(|_| panic!("b"));
        let c = slots.admit().unwrap_or_else(|_| panic!("c"));
        a.set(Activity::Idle(t0 + Duration::from_secs(5)));
        b.set(Activity::Idle(t0 + Duration::from_secs(1)));
        c.set(Activity::Busy);
        let d = slots.admit().unwrap_or_else(|_| panic!("d"));
        assert_eq!(slots.len(), 3);
        // b was idle longest: it was told, and its slot is gone (setting it does nothing).
        b.set(Activity::Busy);
        let e = slots.admit().unwrap_or_else(|_| panic!("e evicts a"));
        d.set(Activity::Streaming);
        e.set(Activity::Busy);
        assert_eq!(slots.admit().err(), Some(Refusal::Full), "nobody idle");
        drop(c);
        assert!(slots.admit().is_ok(), "a freed slot is taken");
        drop((a, b));
    }

    #[test]
    fn streams_are_capped_at_half() {
        let slots = Slots::new(4);
        let held: Vec<Slot> = (0..4).filter_map(|_| slots.admit().ok()).collect();
        assert!(held[0].start_stream());
        assert!(held[1].start_stream());
        assert!(!held[2].start_stream(), "two of four slots stream already");
        let one = Slots::new(1);
        let only = one.admit().unwrap_or_else(|_| panic!("one"));
        assert!(only.start_stream(), "at least one stream");
    }

    #[test]
    fn a_flood_logs_one_line_per_period_with_the_count() {
        let mut t = Throttle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(t.hit(t0), Some(0));
        for i in 1..=4968 {
            assert_eq!(t.hit(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(t.hit(t0 + Duration::from_secs(10)), Some(4968));
        assert_eq!(t.hit(t0 + Duration::from_secs(11)), None);
    }
}
