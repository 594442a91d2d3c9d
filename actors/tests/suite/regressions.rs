//! One test per fixed engine bug (found in review), asserting the right behaviour.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metasystem_actors::testkit::{Probe, TestMsg, TestWorker, TestWorkerArgs};
use metasystem_actors::{
    ChildSpec, EventKind, ExitReason, LifecycleEvent, NodeState, Shutdown, Strategy,
    SupervisorMessage, SupervisorSpec, TreeError,
};
use ractor::ActorStatus;
use tokio::time::Instant;

use crate::util::{strings, tags_of, worker, Harness};

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

/// The `Exited` events of `path`'s incarnation `incarnation`, as reasons.
fn exits_of(events: &[LifecycleEvent], path: &str, incarnation: u64) -> Vec<ExitReason> {
    events
        .iter()
        .filter(|e| e.path == path)
        .filter_map(|e| match &e.kind {
            EventKind::Exited {
                reason,
                incarnation: i,
            } if *i == incarnation => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// One line per event, for assertion messages.
fn lines(events: &[LifecycleEvent]) -> String {
    events
        .iter()
        .map(|e| format!("{}: {}\n", e.path, e.kind))
        .collect()
}

fn crashed(path: &str) -> ExitReason {
    ExitReason::Failed(format!("{path} crashed on request"))
}

/// one_for_all: `b` crashes in the same tick as `a`. The supervisor handles a's failure and
/// stops bystander `b`, which has already failed on its own (ractor refuses the stop): b's exit
/// is recorded with its own reason, never as `shutdown`, before the group restarts once.
#[tokio::test(start_paused = true)]
async fn a_crash_racing_a_one_for_all_restart_keeps_its_reason() {
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForAll)
        .intensity(10, Duration::from_secs(60))
        .children(["a", "b", "c"].map(|n| worker(n, &probe)));
    let mut h = Harness::start(spec).await;
    h.crash("root/a");
    h.crash("root/b");
    h.wait_event("root/c", "restarted").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.drain().await;
    let seen = h.seen.clone();
    assert_eq!(exits_of(&seen, "root/a", 1), [crashed("root/a")]);
    assert_eq!(
        exits_of(&seen, "root/b", 1),
        [crashed("root/b")],
        "{}",
        lines(&seen)
    );
    assert_eq!(exits_of(&seen, "root/c", 1), [ExitReason::Shutdown]);
    assert_eq!(tags_of(&seen, "root/b"), ["started", "exited", "restarted"]);
    // One group restart, decided on a's failure; b's own failure restarts nothing more.
    let scheduled = seen
        .iter()
        .filter(|e| e.kind.tag() == "restart_scheduled")
        .count();
    assert_eq!(scheduled, 1, "{}", lines(&seen));
    for path in ["root/a", "root/b", "root/c"] {
        assert_eq!(h.incarnation(path).await, 2, "{path}");
        assert_eq!(h.ping(path).await, &path[5..]);
    }
    let b = h.node("root/b").await.expect("b listed");
    assert_eq!(b.last_exit, Some(crashed("root/b")));
    assert_eq!(h.tree.shutdown().await, ExitReason::Shutdown);
}

/// The same whatever the bystander's shutdown policy.
#[tokio::test(start_paused = true)]
async fn a_crash_racing_a_group_restart_keeps_its_reason_under_every_shutdown_policy() {
    let policies = [
        Shutdown::BrutalKill,
        Shutdown::Timeout(Duration::from_secs(5)),
        Shutdown::Infinity,
    ];
    for policy in policies {
        let probe = Probe::new();
        let spec = SupervisorSpec::new(Strategy::OneForAll)
            .intensity(10, Duration::from_secs(60))
            .child(worker("a", &probe))
            .child(worker("b", &probe).shutdown(policy))
            .child(worker("c", &probe).shutdown(policy));
        let mut h = Harness::start(spec).await;
        h.crash("root/a");
        h.crash("root/b");
        h.wait_event("root/c", "restarted").await;
        h.drain().await;
        let seen = h.seen.clone();
        assert_eq!(
            exits_of(&seen, "root/b", 1),
            [crashed("root/b")],
            "{policy}: {}",
            lines(&seen)
        );
        let c = if policy == Shutdown::BrutalKill {
            ExitReason::Killed
        } else {
            ExitReason::Shutdown
        };
        assert_eq!(exits_of(&seen, "root/c", 1), [c], "{policy}");
        assert_eq!(h.incarnation("root/b").await, 2, "{policy}");
        assert_eq!(h.tree.shutdown().await, ExitReason::Shutdown);
    }
}

/// The same under rest_for_one: `c` crashes in the same tick as `b`.
#[tokio::test(start_paused = true)]
async fn a_crash_racing_a_rest_for_one_restart_keeps_its_reason() {
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::RestForOne)
        .intensity(10, Duration::from_secs(60))
        .children(["a", "b", "c", "d"].map(|n| worker(n, &probe)));
    let mut h = Harness::start(spec).await;
    h.crash("root/b");
    h.crash("root/c");
    h.wait_event("root/d", "restarted").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.drain().await;
    let seen = h.seen.clone();
    assert_eq!(exits_of(&seen, "root/b", 1), [crashed("root/b")]);
    assert_eq!(
        exits_of(&seen, "root/c", 1),
        [crashed("root/c")],
        "{}",
        lines(&seen)
    );
    assert_eq!(exits_of(&seen, "root/d", 1), [ExitReason::Shutdown]);
    assert_eq!(tags_of(&seen, "root/a"), ["started"]);
    assert_eq!(tags_of(&seen, "root/c"), ["started", "exited", "restarted"]);
    assert_eq!(h.incarnation("root/a").await, 1);
    for path in ["root/b", "root/c", "root/d"] {
        assert_eq!(h.incarnation(path).await, 2, "{path}");
    }
    let c = h.node("root/c").await.expect("c listed");
    assert_eq!(c.last_exit, Some(crashed("root/c")));
    assert_eq!(h.tree.shutdown().await, ExitReason::Shutdown);
}

/// A crash racing its supervisor's own stop: the supervisor stops before it can read the
/// child's exit event, so the reason is unknown, and it is not recorded as `shutdown`. (The
/// supervisor is kept busy by a hanging start so that the crash and the stop request are both
/// waiting when it looks at its mailbox; a stop request is read first.)
#[tokio::test(start_paused = true)]
async fn a_crash_racing_its_supervisors_stop_is_not_recorded_as_shutdown() {
    crash_racing_the_stop_of(Strategy::OneForOne).await;
}

/// The same in a dynamic supervisor, which stops its children concurrently.
#[tokio::test(start_paused = true)]
async fn a_crash_racing_a_dynamic_supervisors_stop_is_not_recorded_as_shutdown() {
    crash_racing_the_stop_of(Strategy::Dynamic).await;
}

async fn crash_racing_the_stop_of(strategy: Strategy) {
    let probe = Probe::new();
    let grp = SupervisorSpec::new(strategy)
        .intensity(10, Duration::from_secs(60))
        .children(["x", "y", "z"].map(|n| worker(n, &probe)))
        .child(worker("slow", &probe).start_timeout(Some(Duration::from_secs(10))));
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(ChildSpec::supervisor("grp", grp));
    let mut h = Harness::start(spec).await;
    h.tree.stop("root/grp/slow").await.expect("stop slow");
    probe.hang_on_start("slow");
    let grp_ref = h.tree.supervisor("root/grp").await.expect("grp");
    let starting = tokio::spawn(async move {
        let start = |reply| SupervisorMessage::StartChild("slow".into(), reply);
        grp_ref.call(start, None).await.is_ok()
    });
    tokio::time::sleep(Duration::from_secs(1)).await; // grp is busy starting slow
    h.crash("root/grp/y");
    h.tree.stop("root/grp").await.expect("stop grp");
    assert!(
        starting.await.unwrap_or(false),
        "the start was not answered"
    );
    h.drain().await;
    let seen = h.seen.clone();
    assert_eq!(exits_of(&seen, "root/grp/x", 1), [ExitReason::Shutdown]);
    assert_eq!(exits_of(&seen, "root/grp/z", 1), [ExitReason::Shutdown]);
    assert_eq!(
        exits_of(&seen, "root/grp/y", 1),
        [ExitReason::Unknown],
        "{}",
        lines(&seen)
    );
    assert!(tags_of(&seen, "root/grp/y")
        .iter()
        .all(|t| *t != "restarted"));
    let mut stopped = probe.names("stop:");
    if strategy == Strategy::Dynamic {
        stopped[1..].sort();
        stopped[1..].reverse();
    }
    assert_eq!(stopped, strings(&["slow", "z", "x"]));
    assert_eq!(h.tree.shutdown().await, ExitReason::Shutdown);
}

/// The same when the supervisor gives up: a child that failed in the same tick as the one that
/// exhausted the intensity is not recorded as `shutdown` either.
#[tokio::test(start_paused = true)]
async fn a_crash_racing_a_give_up_is_not_recorded_as_shutdown() {
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(0, Duration::from_secs(60))
        .children(["a", "b", "c"].map(|n| worker(n, &probe)));
    let mut h = Harness::start(spec).await;
    h.crash("root/a");
    h.crash("root/b");
    assert_eq!(h.tree.exited().await, ExitReason::MaxRestartIntensity);
    h.drain().await;
    let seen = h.seen.clone();
    assert_eq!(exits_of(&seen, "root/a", 1), [crashed("root/a")]);
    assert_eq!(exits_of(&seen, "root/c", 1), [ExitReason::Shutdown]);
    assert_eq!(
        exits_of(&seen, "root/b", 1),
        [ExitReason::Unknown],
        "{}",
        lines(&seen)
    );
}
