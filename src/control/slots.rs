//! Who may hold a control connection: at most `max` at once, and the operator is never locked
//! out. When all slots are taken, a new connection takes the slot of the connection that has
//! waited longest on its client: idle between requests (like an HTTP keep-alive), or with an
//! answer its client does not read. Only a connection the daemon is working for (a request
//! being handled, bounded by its deadline; a stream that keeps up) keeps its slot; if every
//! slot is such, the new one is refused. Streams are capped at half the slots, so requests
//! always have room.
//!
//! Also here: [`Throttle`], which keeps a flood of refusals from flooding the log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// What a connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Waiting for (or reading) its next request since then: may be evicted (after a short
    /// grace for a connection that has not sent its first request yet).
    Idle(Instant),
    /// The daemon is handling its request (bounded by the request's deadline).
    Busy,
    /// An answer or a stream line has waited since then for the client to read it: may be
    /// evicted.
    Writing(Instant),
    /// A stream waiting for the next event.
    Streaming,
}

/// A connection that has not sent anything yet is not evicted for this long after it
/// connected, so a burst of new clients does not evict itself.
const GRACE: Duration = Duration::from_millis(500);

struct Entry {
    activity: Activity,
    /// It serves a stream (counted against the stream cap).
    stream: bool,
    /// When it was admitted (for the grace period).
    admitted: Instant,
    /// Told when the slot is taken away.
    evict: Arc<Notify>,
}

impl Entry {
    /// Since when it has waited on its client, if it may be evicted at `now`.
    fn evictable(&self, now: Instant) -> Option<Instant> {
        match self.activity {
            Activity::Writing(since) => Some(since),
            Activity::Idle(since) if now.saturating_duration_since(self.admitted) >= GRACE => {
                Some(since)
            }
            _ => None,
        }
    }
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

    /// Streams allowed at once: half the slots, so the other half always takes requests.
    pub fn max_streams(&self) -> usize {
        self.max / 2
    }

    /// Admits a new connection (idle until it sends a request), evicting the one that has
    /// waited longest on its client if every slot is taken.
    pub fn admit(&self, now: Instant) -> Result<Slot, Refusal> {
        let mut table = self.lock();
        if table.entries.len() >= self.max && !Self::evict_in(&mut table, now) {
            return Err(Refusal::Full);
        }
        table.next += 1;
        let id = table.next;
        let evicted = Arc::new(Notify::new());
        table.entries.insert(
            id,
            Entry {
                activity: Activity::Idle(now),
                stream: false,
                admitted: now,
                evict: evicted.clone(),
            },
        );
        Ok(Slot {
            slots: self.clone(),
            id,
            evicted,
        })
    }

    /// Frees one slot (and its file descriptor) by evicting the connection that has waited
    /// longest on its client; false if none may be evicted.
    pub fn evict_one(&self, now: Instant) -> bool {
        Self::evict_in(&mut self.lock(), now)
    }

    fn evict_in(table: &mut Table, now: Instant) -> bool {
        let oldest = table
            .entries
            .iter()
            .filter_map(|(id, e)| e.evictable(now).map(|since| (since, *id)))
            .min();
        let Some((_, victim)) = oldest else {
            return false;
        };
        if let Some(entry) = table.entries.remove(&victim) {
            entry.evict.notify_one();
        }
        true
    }

    /// Streams open now.
    pub fn streams(&self) -> usize {
        self.lock().entries.values().filter(|e| e.stream).count()
    }

    /// Connections held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
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
        let streams = table.entries.values().filter(|e| e.stream).count();
        if streams >= self.slots.max_streams() {
            return false;
        }
        if let Some(entry) = table.entries.get_mut(&self.id) {
            entry.activity = Activity::Streaming;
            entry.stream = true;
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
    fn a_full_table_evicts_the_one_waiting_longest_on_its_client() {
        let slots = Slots::new(3);
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(10);
        let a = slots.admit(t0).unwrap_or_else(|_| panic!("a"));
        let b = slots.admit(t0).unwrap_or_else(|_| panic!("b"));
        let c = slots.admit(t0).unwrap_or_else(|_| panic!("c"));
        a.set(Activity::Idle(t0 + Duration::from_secs(5)));
        b.set(Activity::Writing(t0 + Duration::from_secs(1)));
        c.set(Activity::Busy);
        // b's client has not read its answer for longest: b goes.
        let d = slots.admit(later).unwrap_or_else(|_| panic!("d"));
        assert_eq!(slots.len(), 3);
        b.set(Activity::Busy); // given away: nothing happens
        d.set(Activity::Busy);
        let e = slots.admit(later).unwrap_or_else(|_| panic!("e evicts a"));
        e.set(Activity::Busy);
        assert_eq!(
            slots.admit(later).err(),
            Some(Refusal::Full),
            "nobody waits on a client"
        );
        drop(c);
        assert!(slots.admit(later).is_ok(), "a freed slot is taken");
        drop((a, b, d, e));
    }

    /// Regression: a burst of new clients evicted itself (or was refused): a connection that
    /// has not sent its first request keeps its slot for a short grace.
    #[test]
    fn new_connections_have_a_grace() {
        let slots = Slots::new(2);
        let t0 = Instant::now();
        let _a = slots.admit(t0).unwrap_or_else(|_| panic!("a"));
        let _b = slots.admit(t0).unwrap_or_else(|_| panic!("b"));
        assert_eq!(slots.admit(t0 + GRACE / 2).err(), Some(Refusal::Full));
        assert!(
            slots.admit(t0 + GRACE).is_ok(),
            "an idle one past its grace goes"
        );
    }

    #[test]
    fn streams_are_capped_at_half() {
        let slots = Slots::new(4);
        let t0 = Instant::now();
        let held: Vec<Slot> = (0..4).filter_map(|_| slots.admit(t0).ok()).collect();
        assert!(held[0].start_stream());
        assert!(held[1].start_stream());
        assert!(!held[2].start_stream(), "two of four slots stream already");
        assert_eq!(slots.streams(), 2);
        // A stream whose client stopped reading may be evicted.
        held[0].set(Activity::Writing(t0));
        assert!(slots.evict_one(t0 + GRACE));
        assert_eq!(slots.streams(), 1);
        // Regression: with max_connections = 2, one stream, and the other slot still takes
        // requests.
        let two = Slots::new(2);
        let first = two.admit(t0).unwrap_or_else(|_| panic!("one"));
        assert!(first.start_stream());
        let second = two.admit(t0).unwrap_or_else(|_| panic!("two"));
        assert!(!second.start_stream(), "no second stream");
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
