//! What one message to a channel carries, from the notifications queued for it: each episode
//! of an alert once, at its latest state; the end of an episode its receiver never heard of
//! left out; for email, each recipient spared the end of an episode it never took the firing
//! of. Used by the actor and by the daemon's last words ([`super::flush`]).

use std::collections::{BTreeSet, HashMap, HashSet};

use sqlx::SqlitePool;

use super::alert::{Notification, Status};
use crate::store::outbox::{self, Settled};

/// A message's notifications after [`compact`].
#[derive(Debug, Default)]
pub struct Compacted {
    /// What goes out, in queue order: ids and notifications.
    pub ids: Vec<i64>,
    pub batch: Vec<Notification>,
    /// Older notifications of an episode also in the message (settled as skipped).
    pub superseded: Vec<i64>,
    /// Ends of episodes the receiver never heard of (settled as skipped).
    pub unheard: Vec<i64>,
}

/// Each episode of an alert (fingerprint and start) once, at its latest (the last in the
/// queue's order, which is the order they were decided in), then the ends of episodes the
/// receiver never heard of left out, as Alertmanager does not send them: looked up in the
/// outbox's attempts (an attempt that may have reached it, accepted, partial or failed for a
/// while, counts as heard: a timeout may hide a delivery). An earlier episode's end stays
/// beside a later episode's notification: a receiver told the earlier one fired must hear it
/// ended, whatever became of the later one. `resent`: the channel re-sends what fires (an
/// Alertmanager), so a receiver may have heard a firing its outbox row never delivered (a
/// member that refused it, or was down, then took a resend): the end of every episode whose
/// firing was attempted at all is sent (an Alertmanager does not notify the end of an alert
/// it never notified firing); only one superseded before any attempt was never heard.
pub async fn compact(
    pool: &SqlitePool,
    channel: &str,
    ids: Vec<i64>,
    batch: Vec<Notification>,
    resent: bool,
) -> Compacted {
    let (mut ids, mut batch, superseded) = latest_per_episode(ids, batch);
    let mut unheard = Vec::new();
    for i in (0..batch.len()).rev() {
        let n = &batch[i];
        if n.status != Status::Resolved {
            continue;
        }
        let heard = outbox::episode_heard(pool, channel, &n.fingerprint, n.starts_at_ms, resent)
            .await
            .unwrap_or(outbox::Heard::Unknown);
        if heard == outbox::Heard::No {
            unheard.push(ids.remove(i));
            batch.remove(i);
        }
    }
    Compacted {
        ids,
        batch,
        superseded,
        unheard,
    }
}

/// The notifications of a message, each episode of an alert (fingerprint and start) once at
/// its latest: (ids, notifications) kept, in order, and the ids superseded.
pub fn latest_per_episode(
    ids: Vec<i64>,
    batch: Vec<Notification>,
) -> (Vec<i64>, Vec<Notification>, Vec<i64>) {
    let mut last: HashMap<(&str, i64), usize> = HashMap::new();
    for (i, n) in batch.iter().enumerate() {
        last.insert((n.fingerprint.as_str(), n.starts_at_ms), i);
    }
    if last.len() == batch.len() {
        return (ids, batch, Vec::new());
    }
    let keep: HashSet<usize> = last.into_values().collect();
    let (mut kept_ids, mut kept, mut superseded) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (id, n)) in ids.into_iter().zip(batch).enumerate() {
        if keep.contains(&i) {
            kept_ids.push(id);
            kept.push(n);
        } else {
            superseded.push(id);
        }
    }
    (kept_ids, kept, superseded)
}

/// What each recipient of `channel` settled for `batch` in earlier attempts: for email, see
/// [`settled_for_email`]; for an Alertmanager channel, what each Alertmanager took or refused
/// (each is sent the end of every episode: one may have heard its firing from a resend);
/// nothing for channels with one receiver.
pub async fn settled_for(
    pool: &SqlitePool,
    name: &str,
    channel: &super::channel::Channel,
    batch: &[Notification],
) -> Result<Settled, String> {
    if channel.is_email() {
        let recipients = channel.recipients();
        settled_for_email(pool, name, &recipients, batch).await
    } else if channel.is_alertmanager() {
        let ids: Vec<i64> = batch.iter().map(|n| n.id).collect();
        outbox::settled(pool, &ids).await
    } else {
        Ok(Settled::new())
    }
}

/// What each recipient of an email channel settled for `batch` (see [`Settled`]): what it took
/// or refused in earlier attempts, and the end of each episode whose firing it never took
/// (refused, still deferred, or superseded before it took it), marked settled as if taken:
/// nothing to send it. An episode whose firing has no per-recipient record (from before they
/// were kept) goes to every recipient.
pub async fn settled_for_email(
    pool: &SqlitePool,
    channel: &str,
    recipients: &[String],
    batch: &[Notification],
) -> Result<Settled, String> {
    let ids: Vec<i64> = batch.iter().map(|n| n.id).collect();
    let mut settled = outbox::settled(pool, &ids).await?;
    for n in batch.iter().filter(|n| n.status == Status::Resolved) {
        let Some(took) =
            outbox::episode_takers(pool, channel, &n.fingerprint, n.starts_at_ms).await?
        else {
            continue;
        };
        let took: BTreeSet<String> = took;
        for to in recipients.iter().filter(|to| !took.contains(*to)) {
            settled
                .entry(to.clone())
                .or_default()
                .entry(n.id)
                .or_insert(true);
        }
    }
    Ok(settled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::channel::tests_support::note;
    use crate::alerts::Severity;

    #[test]
    fn a_message_carries_each_episode_once_at_its_latest() {
        let a1 = note(Severity::Warning, Status::Firing, "a");
        let b = note(Severity::Warning, Status::Firing, "b");
        let a2 = note(Severity::Warning, Status::Resolved, "a");
        let a3 = note(Severity::Warning, Status::Firing, "a");
        let (ids, kept, gone) = latest_per_episode(
            vec![1, 2, 3, 4],
            vec![a1.clone(), b.clone(), a2.clone(), a3.clone()],
        );
        assert_eq!(ids, vec![2, 4]);
        assert_eq!(kept, vec![b.clone(), a3]);
        assert_eq!(gone, vec![1, 3]);
        let (ids, kept, gone) = latest_per_episode(vec![1, 3], vec![a1.clone(), a2.clone()]);
        assert_eq!((ids, gone), (vec![3], vec![1]));
        assert_eq!(super::super::channel::batch_status(&kept), Status::Resolved);
        let (ids, _, gone) = latest_per_episode(vec![2, 3], vec![b, a2.clone()]);
        assert_eq!((ids, gone), (vec![2, 3], vec![]));
        // Regression (the attack): episode 1's end, then episode 2 fired and ended, all in one
        // message. Episode 1's resolution stays (its receiver was told it fired); episode 2
        // is its resolution alone (dropped by `compact` if its firing was never heard).
        let mut e2_firing = a1.clone();
        e2_firing.starts_at_ms += 5_000;
        let mut e2_resolved = a2.clone();
        e2_resolved.starts_at_ms = e2_firing.starts_at_ms;
        let (ids, kept, gone) = latest_per_episode(
            vec![5, 6, 7],
            vec![a2.clone(), e2_firing, e2_resolved.clone()],
        );
        assert_eq!((ids, gone), (vec![5, 7], vec![6]));
        assert_eq!(kept, vec![a2, e2_resolved]);
    }
}
