//! One test per fixed engine bug (found in review), asserting the right behaviour.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metasystem_actors::testkit::{Probe, TestMsg, TestWorker, TestWorkerArgs};
use metasystem_actors::{
    ChildSpec, ExitReason, NodeState, Shutdown, Strategy, SupervisorSpec, TreeError,
};
use ractor::ActorStatus;
use tokio::time::Instant;

use crate::util::{strings, worker, Harness};

const MS: Duration = Duration::from_millis(1);

/// A child already in its own post_stop (it called `myself.stop(None)`) is still waited for
/// under its shutdown policy, and killed when the timeout passes: two incarnations never run
/// at once. (ractor refuses a second stop request, so the supervisor has to wait instead.)
#[tokio::test(start_paused = true)]
async fn stopping_a_child_that_is_already_stopping_waits_for_it() {
    let probe = Probe::new();
    probe.hang_on_stop("w");
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(60))
        .child(worker("w", &probe).shutdown(Shutdown::Timeout(250 * MS)));
    let h = Harness::start(spec).await;
    let old = h.worker_ref("root/w");
    h.send("root/w", TestMsg::Exit(None));
    tokio::time::sleep(MS).await; // w is now in its 24 h post_stop
    let t0 = Instant::now();
    h.tree.restart("root/w").await.expect("restart");
    assert!(t0.elapsed() >= 249 * MS, "did not wait: {:?}", t0.elapsed());
    assert_eq!(
        old.get_status(),
        ActorStatus::Stopped,
        "two incarnations at once"
    );
    assert_ne!(old.get_id(), h.worker_ref("root/w").get_id());
    h.tree.shutdown().await;
}

/// The same with `infinity`: the supervisor waits for the self-stopping child to finish.
#[tokio::test(start_paused = true)]
async fn infinity_waits_for_a_child_that_is_already_stopping() {
    let probe = Probe::new();
    probe.hang_on_stop("w");
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("w", &probe).shutdown(Shutdown::Infinity))
        .child(worker("later", &probe));
    let h = Harness::start(spec).await;
    h.send("root/w", TestMsg::Exit(None));
    tokio::time::sleep(MS).await;
    let t0 = Instant::now();
    h.tree.shutdown().await;
    assert!(t0.elapsed() >= Duration::from_secs(24 * 3600) - MS);
    assert_eq!(probe.names("stop:"), strings(&["later", "w"]));
}

/// A panic in user code that starts a child (the worker's `make` closure runs on the
/// supervisor's task) is a failed start, not a crash of the supervisor.
#[tokio::test(start_paused = true)]
async fn a_panic_while_starting_a_child_is_a_failed_start() {
    let probe = Probe::new();
    let calls = Arc::new(AtomicU32::new(0));
    let (p, c) = (probe.clone(), calls.clone());
    let w = ChildSpec::worker("w", "test_worker", move |_ctx| {
        if c.fetch_add(1, Ordering::SeqCst) == 1 {
            panic!("make failed");
        }
        (
            TestWorker,
            TestWorkerArgs {
                name: "w".into(),
                probe: p.clone(),
            },
        )
    });
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(60))
        .child(worker("a", &probe))
        .child(w);
    let mut h = Harness::start(spec).await;
    h.crash("root/w");
    let failed = h.wait_event("root/w", "start_failed").await;
    assert!(
        format!("{:?}", failed.kind).contains("make failed"),
        "{failed:?}"
    );
    // Retried (the next `make` succeeds); the tree and the sibling are untouched.
    h.wait_event("root/w", "restarted").await;
    assert_eq!(h.tree.exit_reason(), None);
    assert_eq!(h.incarnation("root/a").await, 1);
    // An operator start that panics is reported, not fatal either.
    let calls2 = Arc::new(AtomicU32::new(0));
    let c2 = calls2.clone();
    let p2 = probe.clone();
    let boom = ChildSpec::worker("boom", "test_worker", move |_ctx| {
        c2.fetch_add(1, Ordering::SeqCst);
        if true {
            panic!("always");
        }
        (
            TestWorker,
            TestWorkerArgs {
                name: "boom".into(),
                probe: p2.clone(),
            },
        )
    });
    let err = h.tree.add_child("root", boom).await;
    assert!(
        matches!(&err, Err(TreeError::StartFailed { error, .. }) if error.contains("always")),
        "{err:?}"
    );
    assert_eq!(h.tree.exit_reason(), None);
    h.tree.shutdown().await;
}

/// The same at the tree's own start: what started is stopped in order, the start fails.
#[tokio::test(start_paused = true)]
async fn a_panic_during_the_tree_start_fails_it_in_order() {
    let probe = Probe::new();
    let boom = ChildSpec::from_fn(
        "boom",
        "test_worker",
        Arc::new(
            |_ctx| -> metasystem_actors::supervision::spec::StartFuture { panic!("no can do") },
        ),
    );
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("a", &probe))
        .child(boom);
    let err = Harness::try_start(spec).await.err().expect("start fails");
    assert!(
        err.contains("root/boom") && err.contains("no can do"),
        "{err}"
    );
    assert_eq!(probe.log(), strings(&["start:a", "stop:a"]));
}

/// The root giving up while the tree is being shut down is reported as a give-up, not as a
/// clean shutdown.
#[tokio::test(start_paused = true)]
async fn a_give_up_during_shutdown_is_reported() {
    let probe = Probe::new();
    probe.hang_on_stop("a");
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(0, Duration::from_secs(60))
        .child(worker("a", &probe).shutdown(Shutdown::Timeout(100 * MS)))
        .child(worker("w", &probe));
    let h = Harness::start(spec).await;
    h.crash("root/w");
    let reason = h.tree.shutdown().await;
    assert_eq!(reason, ExitReason::MaxRestartIntensity);
}

/// While a nested supervisor stops its children in order, the ones still running can find
/// each other by path.
#[tokio::test(start_paused = true)]
async fn a_stopping_subtree_stays_in_the_directory_until_each_child_stops() {
    let probe = Probe::new();
    probe.hang_on_stop("y");
    let grp = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("x", &probe))
        .child(worker("y", &probe).shutdown(Shutdown::Timeout(Duration::from_secs(5))));
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(ChildSpec::supervisor("grp", grp));
    let h = Harness::start(spec).await;
    let directory = h.tree.directory().clone();
    let stopping = tokio::spawn(async move { h.tree.stop("root/grp").await });
    tokio::time::sleep(Duration::from_secs(1)).await; // y is hanging in its post_stop
    assert!(
        directory.lookup("root/grp/x").is_some(),
        "x vanished before it was stopped"
    );
    let _ = stopping.await;
    assert!(directory.lookup("root/grp/x").is_none());
    assert!(directory.lookup("root/grp").is_none());
}

/// A nested supervisor killed outright (brutal_kill) inside a dynamic pool leaves no
/// directory entries behind.
#[tokio::test(start_paused = true)]
async fn a_killed_pool_member_leaves_no_directory_entries() {
    let probe = Probe::new();
    let inner = SupervisorSpec::new(Strategy::OneForOne).child(worker("x", &probe));
    let pool = SupervisorSpec::new(Strategy::Dynamic)
        .child(ChildSpec::supervisor("sub", inner).shutdown(Shutdown::BrutalKill))
        .child(worker("w", &probe));
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(ChildSpec::supervisor("pool", pool));
    let h = Harness::start(spec).await;
    assert_eq!(h.tree.directory().len(), 5);
    h.tree.stop("root/pool").await.expect("stop");
    assert_eq!(h.tree.directory().len(), 1, "only root is left");
    h.tree.shutdown().await;
}

/// A running child cannot be turned from a worker into a supervisor (or back) by a spec
/// update; a replace is needed.
#[tokio::test(start_paused = true)]
async fn a_spec_update_cannot_change_what_a_running_child_is() {
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(worker("w", &probe));
    let h = Harness::start(spec).await;
    let as_sup = ChildSpec::supervisor("w", SupervisorSpec::new(Strategy::OneForOne));
    let err = h.tree.update_spec("root", as_sup.clone()).await;
    assert!(matches!(err, Err(TreeError::Invalid(_))), "{err:?}");
    h.tree.replace_child("root", as_sup).await.expect("replace");
    assert_eq!(
        h.node("root/w").await.map(|n| n.kind),
        Some("supervisor".into())
    );
    assert_eq!(h.state("root/w").await, Some(NodeState::Running));
    h.tree.shutdown().await;
}

/// An absurd backoff cannot make the supervisor overflow time arithmetic.
#[tokio::test(start_paused = true)]
async fn a_huge_backoff_does_not_panic() {
    use metasystem_actors::Backoff;
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(60))
        .backoff(Backoff::exponential(Duration::MAX, Duration::MAX, 2.0))
        .child(worker("w", &probe));
    let mut h = Harness::start(spec).await;
    h.crash("root/w");
    h.wait_event("root/w", "restart_scheduled").await;
    assert_eq!(h.state("root/w").await, Some(NodeState::Restarting));
    h.tree.start_child("root/w").await.expect("start now");
    h.tree.shutdown().await;
}
