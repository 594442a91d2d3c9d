//! Operations by path: snapshot, stop/start/restart/remove/add/replace, chaos kills, the
//! directory across restarts, stale events, and every error.

use std::time::Duration;

use metasystem_actors::testkit::{Probe, TestMsg};
use metasystem_actors::{
    ChildSpec, ExitReason, NodeState, Restart, Strategy, SupervisorSpec, TreeError,
};

use crate::util::{exit_reason, strings, tags_of, worker, Harness};

fn tree(probe: &Probe) -> SupervisorSpec {
    let grp = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(3, Duration::from_secs(10))
        .child(worker("x", probe));
    SupervisorSpec::new(Strategy::OneForOne)
        .intensity(3, Duration::from_secs(10))
        .child(worker("a", probe))
        .child(ChildSpec::supervisor("grp", grp))
}

#[tokio::test(start_paused = true)]
async fn snapshot_lists_every_node_depth_first() {
    let probe = Probe::new();
    let h = Harness::start(tree(&probe)).await;
    let nodes = h.nodes().await;
    let rows: Vec<(String, usize, String, NodeState, u64)> = nodes
        .iter()
        .map(|n| {
            (
                n.path.clone(),
                n.depth,
                n.kind.clone(),
                n.state,
                n.incarnation,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("root".into(), 0, "supervisor".into(), NodeState::Running, 1),
            (
                "root/a".into(),
                1,
                "test_worker".into(),
                NodeState::Running,
                1
            ),
            (
                "root/grp".into(),
                1,
                "supervisor".into(),
                NodeState::Running,
                1
            ),
            (
                "root/grp/x".into(),
                2,
                "test_worker".into(),
                NodeState::Running,
                1
            ),
        ]
    );
    assert_eq!(nodes[2].strategy, Some(Strategy::OneForOne));
    assert!(nodes.iter().all(|n| n.uptime.is_some() && n.restarts == 0));
    h.tree.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn stop_start_restart_remove() {
    let probe = Probe::new();
    let mut h = Harness::start(tree(&probe)).await;

    h.tree.stop("root/grp/x").await.expect("stop");
    assert_eq!(h.state("root/grp/x").await, Some(NodeState::Stopped));
    assert!(h.tree.directory().lookup("root/grp/x").is_none());
    // Stopping what is stopped, like starting what runs, says so (the daemon answers both
    // as done, nothing changed).
    assert_eq!(
        h.tree.stop("root/grp/x").await,
        Err(TreeError::AlreadyStopped("root/grp/x".into()))
    );
    assert_eq!(
        h.tree.start_child("root/a").await,
        Err(TreeError::AlreadyRunning("root/a".into()))
    );
    h.tree.start_child("root/grp/x").await.expect("start");
    assert_eq!(h.incarnation("root/grp/x").await, 2);
    assert_eq!(h.ping("root/grp/x").await, "x");

    probe.clear();
    h.tree
        .restart("root/grp")
        .await
        .expect("restart a supervisor");
    assert_eq!(probe.log(), strings(&["stop:x", "start:x"]));
    assert_eq!(h.incarnation("root/grp").await, 2);
    // Operator restarts are not supervisor restarts.
    assert_eq!(h.node("root/grp").await.map(|n| n.restarts), Some(0));

    h.drain().await;
    h.tree.remove("root/a").await.expect("remove");
    assert!(h.node("root/a").await.is_none());
    assert_eq!(
        h.tree.remove("root/a").await,
        Err(TreeError::NotFound("root/a".into()))
    );
    let events = h.drain().await;
    assert_eq!(tags_of(&events, "root/a"), ["exited"]);
    h.tree.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn add_and_replace_children() {
    let probe = Probe::new();
    let h = Harness::start(tree(&probe)).await;
    h.tree
        .add_child("root/grp", worker("y", &probe))
        .await
        .expect("add");
    assert_eq!(h.ping("root/grp/y").await, "y");
    let paths: Vec<String> = h.nodes().await.into_iter().map(|n| n.path).collect();
    assert_eq!(paths.last().map(String::as_str), Some("root/grp/y"));
    assert_eq!(
        h.tree.add_child("root/grp", worker("y", &probe)).await,
        Err(TreeError::AlreadyExists("root/grp/y".into()))
    );
    assert!(matches!(
        h.tree
            .add_child("root/grp", worker("bad/name", &probe))
            .await,
        Err(TreeError::Invalid(_))
    ));
    // A child that cannot start is not kept.
    probe.fail_starts("z", 1);
    assert!(matches!(
        h.tree.add_child("root", worker("z", &probe)).await,
        Err(TreeError::StartFailed { path, error }) if path == "root/z" && error.contains("refused")
    ));
    assert!(h.node("root/z").await.is_none());

    // An operator-stopped child gets the new spec but stays stopped.
    h.tree.stop("root/grp/y").await.expect("stop y");
    h.tree
        .replace_child("root/grp", worker("y", &probe).restart(Restart::Transient))
        .await
        .expect("replace stopped");
    let y = h.node("root/grp/y").await.expect("y");
    assert_eq!(
        (y.state, y.restart),
        (NodeState::Stopped, Restart::Transient)
    );
    h.tree.start_child("root/grp/y").await.expect("start y");

    // Replace keeps the position and starts the new spec.
    probe.clear();
    let replacement = worker("x", &probe).restart(Restart::Transient);
    h.tree
        .replace_child("root/grp", replacement)
        .await
        .expect("replace");
    assert_eq!(probe.log(), strings(&["stop:x", "start:x"]));
    let nodes = h.nodes().await;
    let x = nodes.iter().position(|n| n.path == "root/grp/x");
    let y = nodes.iter().position(|n| n.path == "root/grp/y");
    assert!(x < y, "{nodes:#?}");
    assert_eq!(nodes[x.unwrap_or(0)].restart, Restart::Transient);
    // A replacement that cannot start leaves the child failed, with the error.
    probe.fail_starts("x", 1);
    let err = h.tree.replace_child("root/grp", worker("x", &probe)).await;
    assert!(matches!(err, Err(TreeError::StartFailed { .. })), "{err:?}");
    let x = h.node("root/grp/x").await.expect("kept");
    assert_eq!(x.state, NodeState::Failed);
    assert!(x.error.is_some_and(|e| e.contains("refused")));
    h.tree.start_child("root/grp/x").await.expect("start again");
    assert_eq!(h.state("root/grp/x").await, Some(NodeState::Running));
    h.tree.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn injected_failures_are_crashes() {
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(3, Duration::from_secs(10))
        .child(worker("t", &probe).restart(Restart::Transient));
    let mut h = Harness::start(spec).await;
    h.tree.inject_failure("root/t").await.expect("inject");
    let exit = h.wait_event("root/t", "exited").await;
    assert_eq!(
        exit_reason(&exit),
        ExitReason::Failed("injected failure".into())
    );
    // A transient child is restarted after a crash.
    h.wait_event("root/t", "restarted").await;
    assert_eq!(h.ping("root/t").await, "t");
    h.tree.stop("root/t").await.expect("stop");
    assert_eq!(
        h.tree.inject_failure("root/t").await,
        Err(TreeError::NotRunning("root/t".into()))
    );
    h.tree.shutdown().await;
}

/// Restarted children are found by path; the old reference is dead; events from the earlier
/// incarnation (a stop the supervisor made itself) never cause a restart.
#[tokio::test(start_paused = true)]
async fn directory_follows_incarnations_and_stale_events_are_ignored() {
    let probe = Probe::new();
    let mut h = Harness::start(tree(&probe)).await;
    let old = h.worker_ref("root/a");
    h.crash("root/a");
    h.wait_event("root/a", "restarted").await;
    let new = h.worker_ref("root/a");
    assert_ne!(old.get_id(), new.get_id());
    assert!(
        old.cast(TestMsg::Exit(None)).is_err(),
        "old incarnation is gone"
    );
    assert_eq!(h.ping("root/a").await, "a");

    // The supervisor's own stop of incarnation 2 produces a termination event that must be
    // recognised as stale: exactly one start follows the operator restart.
    h.tree.restart("root/a").await.expect("restart");
    let events = h.drain().await;
    assert_eq!(tags_of(&events, "root/a"), ["exited", "started"]);
    assert_eq!(h.incarnation("root/a").await, 3);
    assert_eq!(h.node("root/a").await.map(|n| n.restarts), Some(1));
    h.tree.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn errors_name_what_and_where() {
    let probe = Probe::new();
    let h = Harness::start(tree(&probe)).await;
    assert_eq!(
        h.tree.stop("root/nope").await,
        Err(TreeError::NotFound("root/nope".into()))
    );
    assert_eq!(
        h.tree.stop("root/nope/deeper").await,
        Err(TreeError::NotFound("root/nope".into()))
    );
    assert_eq!(
        h.tree.stop("root/a/deeper").await,
        Err(TreeError::NotASupervisor("root/a".into()))
    );
    for bad in ["", "a/b", "root/", "root//a"] {
        assert_eq!(
            h.tree.stop(bad).await,
            Err(TreeError::InvalidPath(bad.into())),
            "{bad}"
        );
    }
    assert_eq!(h.tree.stop("root").await, Err(TreeError::Root));
    h.tree.stop("root/grp").await.expect("stop grp");
    assert_eq!(
        h.tree.stop("root/grp/x").await,
        Err(TreeError::NotRunning("root/grp".into()))
    );
    assert_eq!(
        h.tree.add_child("root/grp", worker("y", &probe)).await,
        Err(TreeError::NotRunning("root/grp".into()))
    );
    assert_eq!(
        TreeError::NotRunning("root/grp".into()).to_string(),
        "root/grp: not running"
    );
    h.tree.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn operations_after_shutdown_fail_cleanly() {
    let probe = Probe::new();
    let h = Harness::start(tree(&probe)).await;
    let directory = h.tree.directory().clone();
    assert_eq!(h.tree.shutdown().await, ExitReason::Shutdown);
    assert!(directory.lookup("root").is_none());
    assert!(directory.lookup("root/a").is_none());
    assert!(directory.lookup("root/grp/x").is_none());
}

/// What a reload needs: insert at a position (kept, failed, when it cannot start), reorder,
/// and change a supervisor's settings in place without touching its children.
#[tokio::test(start_paused = true)]
async fn insert_reorder_and_reconfigure_in_place() {
    use metasystem_actors::{Backoff, SupervisorSettings};
    let probe = Probe::new();
    let mut h = Harness::start(tree(&probe)).await;
    h.tree
        .insert_child("root", worker("first", &probe), 0)
        .await
        .expect("insert");
    let paths = |nodes: Vec<metasystem_actors::NodeSnapshot>| -> Vec<String> {
        nodes
            .into_iter()
            .filter(|n| n.depth == 1)
            .map(|n| n.name)
            .collect()
    };
    assert_eq!(paths(h.nodes().await), strings(&["first", "a", "grp"]));
    probe.fail_starts("broken", 1);
    let err = h
        .tree
        .insert_child("root", worker("broken", &probe), 1)
        .await;
    assert!(matches!(err, Err(TreeError::StartFailed { .. })), "{err:?}");
    let broken = h.node("root/broken").await.expect("kept");
    assert_eq!(broken.state, NodeState::Failed);

    h.tree
        .set_order("root", strings(&["grp", "broken", "a", "first"]))
        .await
        .expect("reorder");
    assert_eq!(
        paths(h.nodes().await),
        strings(&["grp", "broken", "a", "first"])
    );
    // Unknown names are skipped; unnamed children keep their order after the named ones.
    h.tree
        .set_order("root", strings(&["a", "gone", "first"]))
        .await
        .expect("partial order");
    assert_eq!(
        paths(h.nodes().await),
        strings(&["a", "first", "grp", "broken"])
    );

    h.drain().await;
    let settings = SupervisorSettings {
        strategy: Strategy::OneForAll,
        intensity: 7,
        period: Duration::from_secs(60),
        backoff: Backoff::none(),
    };
    h.tree
        .reconfigure("root/grp", settings)
        .await
        .expect("reconfigure");
    // As a reload does: the parent records the nested supervisor's new spec.
    let new_grp = SupervisorSpec::new(Strategy::OneForAll)
        .with_settings(settings)
        .child(worker("x", &probe));
    h.tree
        .update_spec("root", ChildSpec::supervisor("grp", new_grp))
        .await
        .expect("update spec");
    let grp = h.node("root/grp").await.expect("grp");
    assert_eq!(grp.strategy, Some(Strategy::OneForAll));
    assert_eq!(grp.incarnation, 1);
    assert_eq!(h.incarnation("root/grp/x").await, 1);
    assert!(
        h.drain().await.is_empty(),
        "reconfiguring restarted something"
    );
    // A later restart of grp keeps the new settings.
    h.tree.restart("root/grp").await.expect("restart grp");
    let grp = h.node("root/grp").await.expect("grp");
    assert_eq!(
        (grp.incarnation, grp.strategy),
        (2, Some(Strategy::OneForAll))
    );
    h.tree.shutdown().await;
}

/// A strategy change while a group restart waits for its backoff must not strand anyone:
/// every member of the pending batch is restarted.
#[tokio::test(start_paused = true)]
async fn reconfiguring_during_a_pending_group_restart() {
    use metasystem_actors::{Backoff, SupervisorSettings};
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForAll)
        .intensity(10, Duration::from_secs(60))
        .backoff(Backoff::exponential(
            Duration::from_secs(1),
            Duration::from_secs(10),
            2.0,
        ))
        .children(["a", "b", "c"].map(|n| worker(n, &probe)));
    let mut h = Harness::start(spec).await;
    h.crash("root/b");
    h.wait_event("root/b", "restart_scheduled").await;
    let settings = SupervisorSettings {
        strategy: Strategy::OneForOne,
        intensity: 10,
        period: Duration::from_secs(60),
        backoff: Backoff::none(),
    };
    h.tree
        .reconfigure("root", settings)
        .await
        .expect("reconfigure");
    for path in ["root/a", "root/b", "root/c"] {
        h.wait_event(path, "restarted").await;
        assert_eq!(h.state(path).await, Some(NodeState::Running), "{path}");
    }
    h.tree.shutdown().await;
}

/// Stopping a temporary child forgets it (OTP terminate_child on a temporary child).
#[tokio::test(start_paused = true)]
async fn stopping_a_temporary_child_forgets_it() {
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("t", &probe).restart(Restart::Temporary));
    let h = Harness::start(spec).await;
    h.tree.stop("root/t").await.expect("stop");
    assert!(h.node("root/t").await.is_none());
    h.tree.shutdown().await;
}

/// Remove, replace or re-add a child while its restart waits for the backoff: the old timer
/// does nothing to the new state.
#[tokio::test(start_paused = true)]
async fn operations_on_a_child_with_a_pending_restart() {
    use metasystem_actors::Backoff;
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(60))
        .backoff(Backoff::exponential(
            Duration::from_secs(5),
            Duration::from_secs(5),
            1.0,
        ))
        .children(["a", "b"].map(|n| worker(n, &probe)));
    let mut h = Harness::start(spec).await;
    // remove, then add back under the same name before the old timer fires
    h.crash("root/a");
    h.wait_event("root/a", "restart_scheduled").await;
    h.tree.remove("root/a").await.expect("remove");
    h.tree
        .add_child("root", worker("a", &probe))
        .await
        .expect("re-add");
    // replace while pending
    h.crash("root/b");
    h.wait_event("root/b", "restart_scheduled").await;
    h.tree
        .replace_child("root", worker("b", &probe).restart(Restart::Transient))
        .await
        .expect("replace");
    tokio::time::sleep(Duration::from_secs(30)).await;
    let events = h.drain().await;
    assert!(
        !events.iter().any(|e| e.kind.tag() == "restarted"),
        "a stale timer acted: {events:#?}"
    );
    assert_eq!(h.incarnation("root/a").await, 1, "the re-added child");
    assert_eq!(h.incarnation("root/b").await, 2, "the replaced child");
    h.tree.shutdown().await;
}

/// The restart history survives a reconfiguration: lowering the intensity in the middle of a
/// storm makes the supervisor give up at the next failure.
#[tokio::test(start_paused = true)]
async fn reconfigure_keeps_the_restart_history() {
    use metasystem_actors::{Backoff, SupervisorSettings};
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(60))
        .child(worker("w", &probe));
    let mut h = Harness::start(spec).await;
    for _ in 0..3 {
        h.crash("root/w");
        h.wait_event("root/w", "restarted").await;
    }
    let settings = SupervisorSettings {
        strategy: Strategy::OneForOne,
        intensity: 3,
        period: Duration::from_secs(60),
        backoff: Backoff::none(),
    };
    h.tree
        .reconfigure("root", settings)
        .await
        .expect("reconfigure");
    h.crash("root/w");
    h.wait_event("root", "gave_up").await;
    assert_eq!(h.tree.exited().await, ExitReason::MaxRestartIntensity);
}
