//! The telemetry intake: a bounded queue between the actors that record (many, never
//! blocking) and the writer (one). When it is full the oldest rows are dropped and counted:
//! telemetry may be lost under overload, durable state never (it takes the other lane).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

pub struct Intake<T> {
    queue: Mutex<VecDeque<T>>,
    capacity: usize,
    dropped: AtomicU64,
}

impl<T> Intake<T> {
    pub fn new(capacity: usize) -> Self {
        Intake {
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<T>> {
        // Every update is one push or one drain: a panic cannot leave it half-changed.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `row`, dropping the oldest if full; the queue's length after.
    pub fn push(&self, row: T) -> usize {
        let mut queue = self.lock();
        if queue.len() >= self.capacity {
            queue.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queue.push_back(row);
        queue.len()
    }

    /// Appends `rows`, dropping the oldest if full; the queue's length after.
    pub fn push_many(&self, rows: impl IntoIterator<Item = T>) -> usize {
        let mut queue = self.lock();
        let mut dropped = 0;
        for row in rows {
            if queue.len() >= self.capacity {
                queue.pop_front();
                dropped += 1;
            }
            queue.push_back(row);
        }
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        queue.len()
    }

    /// Takes up to `n` rows, oldest first.
    pub fn take(&self, n: usize) -> Vec<T> {
        let mut queue = self.lock();
        let n = n.min(queue.len());
        queue.drain(..n).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Rows dropped because the intake was full, since it was made.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_intake_drops_the_oldest_and_counts() {
        let intake = Intake::new(3);
        for i in 0..5 {
            intake.push(i);
        }
        assert_eq!(intake.len(), 3);
        assert_eq!(intake.dropped(), 2);
        assert_eq!(intake.take(2), [2, 3]);
        assert_eq!(intake.take(10), [4]);
        assert!(intake.is_empty());
        assert_eq!(intake.push_many(0..5), 3);
        assert_eq!(intake.dropped(), 4);
        assert_eq!(intake.take(10), [2, 3, 4]);
    }
}
