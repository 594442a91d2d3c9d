//! supervisor_SUITE: order_of_children, sup_start_fail/child start failures, child_shutdown
//! (brutal_kill, timeout, infinity), hanging_restart_loop.

use std::time::Duration;

use metasystem_actors::testkit::Probe;
use metasystem_actors::{
    Backoff, ChildSpec, ExitReason, NodeState, Shutdown, Strategy, SupervisorSpec,
};
use tokio::time::Instant;

use crate::util::{exit_reason, strings, worker, Harness};

const MS: Duration = Duration::from_millis(1);

/// Start order, restart order and reverse termination order, through a nested supervisor.
#[tokio::test(start_paused = true)]
async fn order_of_children() {
    let probe = Probe::new();
    let grp = SupervisorSpec::new(Strategy::OneForAll)
        .intensity(5, Duration::from_secs(10))
        .children(["x", "y", "z"].map(|n| worker(n, &probe)));
    let spec = SupervisorSpec::new(Strategy::RestForOne)
        .intensity(5, Duration::from_secs(10))
        .child(worker("a", &probe))
        .child(ChildSpec::supervisor("grp", grp))
        .child(worker("b", &probe));
    let mut h = Harness::start(spec).await;
    assert_eq!(probe.names("start:"), strings(&["a", "x", "y", "z", "b"]));
    let paths: Vec<String> = h.nodes().await.into_iter().map(|n| n.path).collect();
    assert_eq!(
        paths,
        strings(&[
            "root",
            "root/a",
            "root/grp",
            "root/grp/x",
            "root/grp/y",
            "root/grp/z",
            "root/b"
        ])
    );
    // rest_for_one on grp: b stops, then grp (its children in reverse), then restart in order.
    probe.clear();
    h.tree.inject_failure("root/grp").await.expect("inject");
    h.wait_event("root/b", "restarted").await;
    // The killed supervisor's children die with it (no post_stop), as linked processes do.
    assert_eq!(
        probe.log(),
        strings(&["stop:b", "start:x", "start:y", "start:z", "start:b"])
    );
    probe.clear();
    h.tree.shutdown().await;
    assert_eq!(probe.names("stop:"), strings(&["b", "z", "y", "x", "a"]));
}

/// A child failing to start while its supervisor starts fails that start: what already
/// started is stopped (reverse order), later children are never started, the error names it.
#[tokio::test(start_paused = true)]
async fn start_failure_during_supervisor_start() {
    let probe = Probe::new();
    probe.fail_starts("c", 1);
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .children(["a", "b", "c", "d"].map(|n| worker(n, &probe)));
    let err = match Harness::try_start(spec).await {
        Ok(_) => panic!("the tree should not start"),
        Err(e) => e,
    };
    assert!(err.contains("root/c"), "{err}");
    assert!(err.contains("c refused to start"), "{err}");
    assert_eq!(
        probe.log(),
        strings(&["start:a", "start:b", "start_failed:c", "stop:b", "stop:a"])
    );
}

/// The same one level down: the nested supervisor's failed start fails the root's start.
#[tokio::test(start_paused = true)]
async fn nested_start_failure_fails_the_whole_start() {
    let probe = Probe::new();
    probe.fail_starts("y", 1);
    let grp =
        SupervisorSpec::new(Strategy::OneForOne).children(["x", "y"].map(|n| worker(n, &probe)));
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("a", &probe))
        .child(ChildSpec::supervisor("grp", grp))
        .child(worker("b", &probe));
    let err = match Harness::try_start(spec).await {
        Ok(_) => panic!("the tree should not start"),
        Err(e) => e,
    };
    assert!(
        err.contains("root/grp") && err.contains("root/grp/y"),
        "{err}"
    );
    assert_eq!(
        probe.log(),
        strings(&["start:a", "start:x", "start_failed:y", "stop:x", "stop:a"])
    );
}

/// Duplicate or malformed child names are a start error, not a panic.
#[tokio::test(start_paused = true)]
async fn bad_child_names_fail_the_start() {
    let probe = Probe::new();
    let dup = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("a", &probe))
        .child(worker("a", &probe));
    let err = Harness::try_start(dup).await.err().expect("dup fails");
    assert!(err.contains("duplicate child name \"a\""), "{err}");
    let slash = SupervisorSpec::new(Strategy::OneForOne).child(worker("a/b", &probe));
    let err = Harness::try_start(slash).await.err().expect("slash fails");
    assert!(
        err.contains("\"a/b\" is not a valid name: a child name is 1 to 64 characters"),
        "{err}"
    );
    // Regression: a 70,000-character name was accepted, then made `tree` panic for everyone.
    let huge = SupervisorSpec::new(Strategy::OneForOne).child(worker(&"n".repeat(70_000), &probe));
    let err = Harness::try_start(huge)
        .await
        .err()
        .expect("a huge name fails");
    assert!(
        err.len() < 400 && err.contains("1 to 64 characters"),
        "{}",
        err.len()
    );
    assert!(probe.log().is_empty());
}

/// child_shutdown: a timeout shutdown waits that long for a child that will not stop, then
/// kills it.
#[tokio::test(start_paused = true)]
async fn shutdown_timeout_then_kill() {
    let probe = Probe::new();
    probe.hang_on_stop("slow");
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("slow", &probe).shutdown(Shutdown::Timeout(250 * MS)))
        .child(worker("quick", &probe).shutdown(Shutdown::Timeout(250 * MS)));
    let mut h = Harness::start(spec).await;
    let t0 = Instant::now();
    h.tree.stop("root/slow").await.expect("stop");
    assert_eq!(t0.elapsed(), 250 * MS);
    let exit = h.wait_event("root/slow", "exited").await;
    assert_eq!(exit_reason(&exit), ExitReason::Killed);
    assert_eq!(h.state("root/slow").await, Some(NodeState::Stopped));
    // A child that stops in time is not killed.
    let t0 = Instant::now();
    h.tree.stop("root/quick").await.expect("stop");
    assert!(t0.elapsed() < 250 * MS);
    let exit = h.wait_event("root/quick", "exited").await;
    assert_eq!(exit_reason(&exit), ExitReason::Shutdown);
    assert_eq!(probe.names("stop:"), strings(&["quick"]));
    h.tree.shutdown().await;
}

/// child_shutdown: brutal_kill skips post_stop; infinity waits as long as it takes.
#[tokio::test(start_paused = true)]
async fn brutal_kill_and_infinity() {
    let probe = Probe::new();
    probe.hang_on_stop("patient");
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("patient", &probe).shutdown(Shutdown::Infinity))
        .child(worker("brutal", &probe).shutdown(Shutdown::BrutalKill));
    let mut h = Harness::start(spec).await;
    let t0 = Instant::now();
    h.tree.shutdown().await;
    // brutal (last started) went first, killed at once; patient was waited for until its
    // 24 h post_stop finished.
    assert!(t0.elapsed() >= Duration::from_secs(24 * 3600));
    assert_eq!(probe.names("stop:"), strings(&["patient"]));
    let brutal = h.wait_event("root/brutal", "exited").await;
    assert_eq!(exit_reason(&brutal), ExitReason::Killed);
    let patient = h.wait_event("root/patient", "exited").await;
    assert_eq!(exit_reason(&patient), ExitReason::Shutdown);
}

/// Shutdown order with timeouts: a hanging child delays the ones started before it, never
/// the order.
#[tokio::test(start_paused = true)]
async fn shutdown_is_in_reverse_order_even_with_a_hanging_child() {
    let probe = Probe::new();
    probe.hang_on_stop("b");
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .children(["a", "b", "c"].map(|n| worker(n, &probe).shutdown(Shutdown::Timeout(100 * MS))));
    let h = Harness::start(spec).await;
    h.tree.shutdown().await;
    assert_eq!(probe.names("stop:"), strings(&["c", "a"]));
}

/// supervisor_SUITE:hanging_restart_loop — a child that keeps failing to start (restart loop
/// with no backoff and a huge intensity): the supervisor still answers, stopping the child
/// ends the loop, and the tree shuts down.
#[tokio::test(start_paused = true)]
async fn hanging_restart_loop() {
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(u32::MAX, Duration::from_secs(3600))
        .child(worker("ok", &probe))
        .child(worker("w", &probe));
    let mut h = Harness::start(spec).await;
    probe.fail_starts("w", u32::MAX);
    h.crash("root/w");
    // Let it spin a while.
    for _ in 0..20 {
        h.wait_event("root/w", "start_failed").await;
    }
    // The supervisor answers snapshots and operations in the middle of the loop.
    assert_eq!(h.state("root/w").await, Some(NodeState::Restarting));
    assert_eq!(h.ping("root/ok").await, "ok");
    h.tree.stop("root/w").await.expect("stop the looping child");
    // No start is attempted once the stop has been answered.
    let failures = probe.names("start_failed:").len();
    assert_eq!(h.state("root/w").await, Some(NodeState::Stopped));
    tokio::time::sleep(Duration::from_secs(10)).await;
    h.drain().await;
    assert_eq!(probe.names("start_failed:").len(), failures);
    assert_eq!(h.tree.shutdown().await, ExitReason::Shutdown);
}

/// The same loop with backoff: the child sits in `restarting` with a countdown, and shutting
/// down while it waits works and cancels the pending restart.
#[tokio::test(start_paused = true)]
async fn hanging_restart_loop_with_backoff_shuts_down() {
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(u32::MAX, Duration::from_secs(3600))
        .backoff(Backoff::exponential(
            Duration::from_secs(1),
            Duration::from_secs(30),
            2.0,
        ))
        .child(worker("w", &probe));
    let mut h = Harness::start(spec).await;
    probe.fail_starts("w", u32::MAX);
    h.crash("root/w");
    for _ in 0..4 {
        h.wait_event("root/w", "start_failed").await;
    }
    let node = h.node("root/w").await.expect("listed");
    assert_eq!(node.state, NodeState::Restarting);
    assert!(node
        .restart_in
        .is_some_and(|d| d > Duration::ZERO && d <= Duration::from_secs(16)));
    let failures = probe.names("start_failed:").len();
    assert_eq!(h.tree.shutdown().await, ExitReason::Shutdown);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(probe.names("start_failed:").len(), failures);
}
