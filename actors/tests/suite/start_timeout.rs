//! Per-child start timeouts: a `pre_start` that does not return in time is a failed start, at
//! the supervisor's own start, at a restart and at an operator's start; `None` waits.

use std::time::Duration;

use metasystem_actors::testkit::Probe;
use metasystem_actors::{
    ChildSpec, EventKind, EventSink, ExitReason, NodeState, Strategy, SupervisorMessage,
    SupervisorSpec, Tree, TreeError,
};
use ractor::rpc::CallResult;
use tokio::time::Instant;

use crate::util::{strings, tags_of, worker, Harness, PATIENCE};

const SECOND: Duration = Duration::from_secs(1);

fn start_failed_error(kind: &EventKind) -> String {
    match kind {
        EventKind::StartFailed { error } => error.clone(),
        other => panic!("not a failed start: {other:?}"),
    }
}

/// A child whose `pre_start` hangs fails its supervisor's start once the worker default (60 s)
/// has passed: what started is stopped, later children are never started, and the error and
/// the `start_failed` event say why.
#[tokio::test(start_paused = true)]
async fn a_hanging_child_fails_the_supervisor_start_after_the_timeout() {
    let probe = Probe::new();
    probe.hang_on_start("b");
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .children(["a", "b", "c"].map(|n| worker(n, &probe)));
    let (sink, mut events) = EventSink::channel();
    let t0 = Instant::now();
    let err = match Tree::start(spec, sink).await {
        Ok(_) => panic!("the tree should not start"),
        Err(e) => e.to_string(),
    };
    let took = t0.elapsed();
    assert!(took >= 60 * SECOND && took < 61 * SECOND, "took {took:?}");
    assert!(
        err.contains("root/b") && err.contains("did not start within 1m"),
        "{err}"
    );
    assert_eq!(probe.log(), strings(&["start:a", "hang:b", "stop:a"]));
    let mut failed = Vec::new();
    while let Ok(event) = events.try_recv() {
        if event.path == "root/b" {
            failed.push(start_failed_error(&event.kind));
        }
    }
    assert_eq!(failed, strings(&["did not start within 1m"]));
}

/// A restart that hangs is a failed restart: it counts toward intensity and is retried through
/// the mailbox, so the supervisor answers snapshots and calls between attempts; once more
/// restarts than the intensity allows have happened, it gives up as OTP does.
#[tokio::test(start_paused = true)]
async fn a_hanging_restart_counts_toward_intensity_and_the_supervisor_gives_up() {
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(3, Duration::from_secs(60))
        .child(worker("ok", &probe))
        .child(worker("w", &probe).start_timeout(Some(SECOND)));
    let mut h = Harness::start(spec).await;
    probe.hang_on_start("w");
    let t0 = Instant::now();
    h.crash("root/w");
    let first = h.wait_event("root/w", "start_failed").await;
    assert_eq!(start_failed_error(&first.kind), "did not start within 1s");
    assert_eq!(first.instant - t0, SECOND);
    // Between two attempts the supervisor answers.
    let nodes = h.nodes().await;
    assert!(nodes.iter().all(|n| !n.unresponsive), "{nodes:#?}");
    let w = nodes.iter().find(|n| n.path == "root/w").expect("w listed");
    assert_eq!(w.state, NodeState::Restarting);
    assert_eq!(h.ping("root/ok").await, "ok");
    // The crash and three failed restarts: four restarts in the period, one more than allowed.
    let reason = tokio::time::timeout(PATIENCE, h.tree.exited())
        .await
        .unwrap_or_else(|_| panic!("the root did not give up"));
    assert_eq!(reason, ExitReason::MaxRestartIntensity);
    assert_eq!(t0.elapsed(), 3 * SECOND);
    h.drain().await;
    let all = h.seen.clone();
    let failures: Vec<String> = all
        .iter()
        .filter(|e| e.path == "root/w" && e.kind.tag() == "start_failed")
        .map(|e| start_failed_error(&e.kind))
        .collect();
    assert_eq!(failures, vec!["did not start within 1s".to_string(); 3]);
    assert!(tags_of(&all, "root").contains(&"gave_up"), "{all:#?}");
    assert_eq!(probe.names("hang:").len(), 3);
    // w never started again (a crashed worker runs no post_stop); ok was stopped on giving up.
    assert_eq!(probe.names("start:"), strings(&["ok", "w"]));
    assert_eq!(probe.names("stop:"), strings(&["ok"]));
}

/// An operator's start of a hanging child answers `StartFailed` after the timeout and leaves
/// the child failed with that error; an added child that hangs is not kept.
#[tokio::test(start_paused = true)]
async fn an_operator_start_of_a_hanging_child_fails_after_the_timeout() {
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("w", &probe).start_timeout(Some(5 * SECOND)))
        .child(worker("ok", &probe));
    let mut h = Harness::start(spec).await;
    h.tree.stop("root/w").await.expect("stop");
    probe.hang_on_start("w");
    let t0 = Instant::now();
    let result = h.tree.start_child("root/w").await;
    assert_eq!(t0.elapsed(), 5 * SECOND);
    assert_eq!(
        result,
        Err(TreeError::StartFailed {
            path: "root/w".into(),
            error: "did not start within 5s".into()
        })
    );
    let node = h.node("root/w").await.expect("w listed");
    assert_eq!(node.state, NodeState::Failed);
    assert_eq!(node.error.as_deref(), Some("did not start within 5s"));
    let failed = h.wait_event("root/w", "start_failed").await;
    assert_eq!(start_failed_error(&failed.kind), "did not start within 5s");
    // Nothing restarts it by itself; an operator can start it once it starts properly.
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(h.state("root/w").await, Some(NodeState::Failed));
    probe.unhang_on_start("w");
    h.tree.start_child("root/w").await.expect("start");
    assert_eq!(h.ping("root/w").await, "w");
    // `add_child` drops a child that does not start in time.
    probe.hang_on_start("x");
    let added = h
        .tree
        .add_child("root", worker("x", &probe).start_timeout(Some(2 * SECOND)))
        .await;
    assert!(
        matches!(&added, Err(TreeError::StartFailed { error, .. }) if error == "did not start within 2s"),
        "{added:?}"
    );
    assert_eq!(h.node("root/x").await, None);
    assert_eq!(h.tree.shutdown().await, ExitReason::Shutdown);
}

/// `None` waits as long as it takes: an hour later the start is still going on (the
/// supervisor is busy with it), and the tree still shuts down in order once it is done.
#[tokio::test(start_paused = true)]
async fn no_timeout_waits_as_long_as_it_takes() {
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(worker("ok", &probe));
    let mut h = Harness::start(spec).await;
    probe.hang_on_start("w");
    let root = h.tree.supervisor("root").await.expect("root");
    let w = worker("w", &probe).start_timeout(None);
    let adding = tokio::spawn(async move {
        let add = |reply| SupervisorMessage::AddChild {
            spec: w,
            position: None,
            keep_failed: false,
            reply,
        };
        match root.call(add, None).await {
            Ok(CallResult::Success(result)) => result,
            _ => Err(TreeError::Unavailable),
        }
    });
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(!adding.is_finished(), "the start ended early");
    assert_eq!(probe.log(), strings(&["start:ok", "hang:w"]));
    let nodes = h.nodes().await;
    assert!(nodes[0].unresponsive, "the root is busy starting w");
    assert!(tags_of(&h.drain().await, "root/w").is_empty());
    // Shut down: the supervisor finishes the start (the hang lasts a day), then stops both.
    let t0 = Instant::now();
    assert_eq!(h.tree.shutdown().await, ExitReason::Shutdown);
    assert!(
        t0.elapsed() >= Duration::from_secs(22 * 3600),
        "{:?}",
        t0.elapsed()
    );
    let added = adding
        .await
        .unwrap_or_else(|e| panic!("the add task failed: {e}"));
    assert_eq!(added, Ok(()));
    assert_eq!(probe.names("stop:"), strings(&["w", "ok"]));
    h.drain().await;
    assert_eq!(tags_of(&h.seen, "root/w"), ["started", "exited"]);
}

/// A supervisor child has no start timeout by default: its start lasts as long as its
/// children's starts, each bounded by its own timeout (here 2 minutes, longer than a worker's
/// default).
#[tokio::test(start_paused = true)]
async fn a_supervisor_child_has_no_timeout_by_default() {
    let probe = Probe::new();
    probe.hang_on_start("x");
    let grp = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("x", &probe).start_timeout(Some(120 * SECOND)));
    let grp = ChildSpec::supervisor("grp", grp);
    assert_eq!(grp.start_timeout, None);
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(grp);
    let t0 = Instant::now();
    let err = Harness::try_start(spec)
        .await
        .err()
        .unwrap_or_else(|| panic!("the tree should not start"));
    assert_eq!(t0.elapsed(), 120 * SECOND);
    assert!(
        err.contains("root/grp/x") && err.contains("did not start within 2m"),
        "{err}"
    );
    assert_eq!(probe.log(), strings(&["hang:x"]));
}

/// A start timeout set on a supervisor child bounds its whole start; on expiry what it had
/// started is killed and nothing of it stays in the directory.
#[tokio::test(start_paused = true)]
async fn an_explicit_timeout_on_a_supervisor_child_cancels_its_whole_start() {
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(worker("ok", &probe));
    let h = Harness::start(spec).await;
    probe.hang_on_start("x");
    let grp = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("y", &probe))
        .child(worker("x", &probe).start_timeout(None));
    let grp = ChildSpec::supervisor("grp", grp).start_timeout(Some(10 * SECOND));
    let t0 = Instant::now();
    let added = h.tree.add_child("root", grp).await;
    assert_eq!(t0.elapsed(), 10 * SECOND);
    assert_eq!(
        added,
        Err(TreeError::StartFailed {
            path: "root/grp".into(),
            error: "did not start within 10s".into()
        })
    );
    assert_eq!(h.node("root/grp").await, None);
    assert_eq!(h.tree.directory().len(), 2, "only root and ok are left");
    assert!(h.tree.directory().lookup("root/grp/y").is_none());
    assert_eq!(h.tree.shutdown().await, ExitReason::Shutdown);
    assert_eq!(
        probe.log(),
        strings(&["start:ok", "start:y", "hang:x", "stop:ok"])
    );
}
