//! supervisor_SUITE: multiple_restarts, the *_intensity cases, and failed restarts counting as
//! restart attempts.

use std::time::Duration;

use metasystem_actors::testkit::Probe;
use metasystem_actors::{ExitReason, NodeState, Strategy, SupervisorSpec};

use crate::util::{strings, worker, Harness};

const S: Duration = Duration::from_secs(1);

/// supervisor_SUITE:multiple_restarts — failures spread wider than the period never reach the
/// intensity, however many there are; a burst inside the period does.
#[tokio::test(start_paused = true)]
async fn multiple_restarts_spread_out_never_trip() {
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(3, 10 * S)
        .child(worker("w", &probe));
    let mut h = Harness::start(spec).await;
    for round in 0..20u64 {
        tokio::time::sleep(4 * S).await;
        h.crash("root/w");
        h.wait_event("root/w", "restarted").await;
        assert_eq!(h.incarnation("root/w").await, round + 2);
    }
    assert_eq!(h.tree.exit_reason(), None);
    // Once the last of those is out of the period, four within it: the fourth is one too many.
    tokio::time::sleep(11 * S).await;
    for _ in 0..3 {
        h.crash("root/w");
        h.wait_event("root/w", "restarted").await;
    }
    h.crash("root/w");
    h.wait_event("root", "gave_up").await;
    assert_eq!(h.tree.exited().await, ExitReason::MaxRestartIntensity);
}

/// Intensity exceeded under each strategy: the supervisor stops all children in reverse start
/// order and fails with the distinct reason.
#[tokio::test(start_paused = true)]
async fn intensity_exceeded_stops_everything_in_reverse_order() {
    for strategy in [
        Strategy::OneForOne,
        Strategy::OneForAll,
        Strategy::RestForOne,
    ] {
        let probe = Probe::new();
        let spec = SupervisorSpec::new(strategy)
            .intensity(2, 60 * S)
            .children(["a", "b", "c", "d"].map(|n| worker(n, &probe)));
        let mut h = Harness::start(spec).await;
        for _ in 0..2 {
            h.crash("root/d");
            h.wait_event("root/d", "restarted").await;
        }
        probe.clear();
        h.crash("root/a");
        h.wait_event("root", "gave_up").await;
        assert_eq!(
            h.tree.exited().await,
            ExitReason::MaxRestartIntensity,
            "{strategy}"
        );
        assert_eq!(
            probe.log(),
            strings(&["stop:d", "stop:c", "stop:b"]),
            "{strategy}"
        );
    }
}

/// At run time a failed restart is itself a restart attempt: a child that can no longer start
/// exhausts the intensity.
#[tokio::test(start_paused = true)]
async fn failed_restarts_count_toward_intensity() {
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(3, 60 * S)
        .child(worker("ok", &probe))
        .child(worker("w", &probe));
    let mut h = Harness::start(spec).await;
    probe.fail_starts("w", u32::MAX);
    h.crash("root/w");
    h.wait_event("root", "gave_up").await;
    assert_eq!(h.tree.exited().await, ExitReason::MaxRestartIntensity);
    // One crash + three failed restarts = 4 attempts recorded, one more than allowed: three
    // starts were tried.
    assert_eq!(probe.names("start_failed:"), strings(&["w", "w", "w"]));
}

/// A restart that fails once and then succeeds leaves the tree healthy, the failure counted.
#[tokio::test(start_paused = true)]
async fn a_restart_that_fails_once_is_retried() {
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForAll)
        .intensity(5, 60 * S)
        .children(["a", "b", "c"].map(|n| worker(n, &probe)));
    let mut h = Harness::start(spec).await;
    probe.clear();
    probe.fail_starts("b", 1);
    h.crash("root/c");
    h.wait_event("root/b", "start_failed").await;
    h.wait_event("root/c", "restarted").await;
    // a started, b failed, so a was stopped again; then the whole group again.
    assert_eq!(
        probe.log(),
        strings(&[
            "stop:b",
            "stop:a",
            "start:a",
            "start_failed:b",
            "stop:a",
            "start:a",
            "start:b",
            "start:c"
        ])
    );
    for path in ["root/a", "root/b", "root/c"] {
        assert_eq!(h.state(path).await, Some(NodeState::Running), "{path}");
    }
    assert_eq!(h.tree.exit_reason(), None);
    h.tree.shutdown().await;
}

/// Regression: after a kill, a restart that failed to start left LAST EXIT saying "killed"
/// (the stale exit) instead of the failed start.
#[tokio::test(start_paused = true)]
async fn a_failed_restart_is_the_last_exit() {
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(100, 60 * S)
        .children(["w"].map(|n| worker(n, &probe)));
    let mut h = Harness::start(spec).await;
    probe.fail_starts("w", 1);
    h.crash("root/w");
    h.wait_event("root/w", "start_failed").await;
    let w = h.node("root/w").await.expect("w listed");
    match &w.last_exit {
        Some(ExitReason::Failed(why)) => assert!(why.starts_with("start failed"), "{why}"),
        other => panic!("{other:?}"),
    }
    h.tree.shutdown().await;
}
