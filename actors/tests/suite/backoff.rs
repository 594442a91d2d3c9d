//! Restart backoff: the schedule grows and is capped, resets after the child stayed up for
//! `reset_after`, and the supervisor answers while a child waits.

use std::time::Duration;

use metasystem_actors::testkit::Probe;
use metasystem_actors::{Backoff, EventKind, Jitter, NodeState, Strategy, SupervisorSpec};

use crate::util::{worker, Harness};

const MS: Duration = Duration::from_millis(1);

fn spec(probe: &Probe, backoff: Backoff) -> SupervisorSpec {
    SupervisorSpec::new(Strategy::OneForOne)
        .intensity(1000, Duration::from_secs(3600))
        .backoff(backoff)
        .child(worker("w", probe))
}

/// Crashes `root/w` and returns (scheduled delay, measured crash->restart time).
async fn crash_and_measure(h: &mut Harness) -> (Duration, Duration) {
    h.crash("root/w");
    let exit = h.wait_event("root/w", "exited").await;
    let scheduled = h.wait_event("root/w", "restart_scheduled").await;
    let restarted = h.wait_event("root/w", "restarted").await;
    let EventKind::RestartScheduled { delay, .. } = scheduled.kind else {
        unreachable!()
    };
    (delay, restarted.instant - exit.instant)
}

#[tokio::test(start_paused = true)]
async fn delays_grow_are_capped_and_reset() {
    let probe = Probe::new();
    let backoff = Backoff::exponential(100 * MS, 1000 * MS, 2.0).reset_after(5000 * MS);
    let mut h = Harness::start(spec(&probe, backoff)).await;
    let mut delays = Vec::new();
    for _ in 0..7 {
        let (delay, measured) = crash_and_measure(&mut h).await;
        assert_eq!(measured, delay, "the restart happened when scheduled");
        delays.push(delay.as_millis());
    }
    assert_eq!(delays, [100, 200, 400, 800, 1000, 1000, 1000]);
    // Up for less than reset_after: the schedule continues.
    tokio::time::sleep(4000 * MS).await;
    assert_eq!(crash_and_measure(&mut h).await.0, 1000 * MS);
    // Up for reset_after: it starts over.
    tokio::time::sleep(5000 * MS).await;
    assert_eq!(crash_and_measure(&mut h).await.0, 100 * MS);
    assert_eq!(crash_and_measure(&mut h).await.0, 200 * MS);
    h.tree.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn full_jitter_stays_under_the_schedule() {
    let probe = Probe::new();
    let backoff = Backoff::exponential(100 * MS, 1000 * MS, 2.0).jitter(Jitter::Full);
    let mut h = Harness::start(spec(&probe, backoff)).await;
    let nominal = [100, 200, 400, 800, 1000, 1000, 1000, 1000];
    let mut total = Duration::ZERO;
    for cap in nominal {
        let (delay, measured) = crash_and_measure(&mut h).await;
        // tokio's timer rounds a sleep up to the next millisecond.
        assert!(
            measured >= delay && measured - delay <= MS,
            "{measured:?} vs {delay:?}"
        );
        assert!(delay <= cap * MS, "{delay:?} > {cap}ms");
        total += delay;
    }
    // Eight uniform draws summing to zero would mean the jitter is not random at all.
    assert!(total > Duration::ZERO);
    h.tree.shutdown().await;
}

/// While a child waits out its backoff the supervisor answers everything; stopping the child
/// cancels the restart, starting it skips the wait.
#[tokio::test(start_paused = true)]
async fn a_waiting_child_can_be_stopped_or_started() {
    let probe = Probe::new();
    let backoff = Backoff::exponential(Duration::from_secs(10), Duration::from_secs(60), 2.0);
    let mut h = Harness::start(spec(&probe, backoff)).await;
    h.crash("root/w");
    h.wait_event("root/w", "restart_scheduled").await;
    let node = h.node("root/w").await.expect("listed");
    assert_eq!(node.state, NodeState::Restarting);
    assert_eq!(node.restart_in, Some(Duration::from_secs(10)));

    h.tree.stop("root/w").await.expect("stop while waiting");
    assert_eq!(h.state("root/w").await, Some(NodeState::Stopped));
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        !h.drain().await.iter().any(|e| e.kind.tag() == "restarted"),
        "a cancelled restart ran"
    );
    assert_eq!(h.state("root/w").await, Some(NodeState::Stopped));

    h.tree.start_child("root/w").await.expect("start");
    assert_eq!(h.ping("root/w").await, "w");
    h.crash("root/w");
    h.wait_event("root/w", "restart_scheduled").await;
    let t0 = tokio::time::Instant::now();
    h.tree
        .start_child("root/w")
        .await
        .expect("start skips the wait");
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert_eq!(h.state("root/w").await, Some(NodeState::Running));
    // The timer that was pending is now stale and does nothing.
    let incarnation = h.incarnation("root/w").await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(h.incarnation("root/w").await, incarnation);
    h.tree.shutdown().await;
}

/// one_for_all with backoff: the whole group waits, then starts in order.
#[tokio::test(start_paused = true)]
async fn group_restarts_wait_for_the_backoff() {
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForAll)
        .intensity(10, Duration::from_secs(3600))
        .backoff(Backoff::exponential(500 * MS, 5000 * MS, 2.0))
        .children(["a", "b"].map(|n| worker(n, &probe)));
    let mut h = Harness::start(spec).await;
    h.crash("root/b");
    let exit = h.wait_event("root/b", "exited").await;
    h.wait_event("root/a", "exited").await;
    for path in ["root/a", "root/b"] {
        assert_eq!(h.state(path).await, Some(NodeState::Restarting), "{path}");
    }
    let a = h.wait_event("root/a", "restarted").await;
    let b = h.wait_event("root/b", "restarted").await;
    assert_eq!(a.instant - exit.instant, 500 * MS);
    assert_eq!(b.instant - exit.instant, 500 * MS);
    h.tree.shutdown().await;
}
