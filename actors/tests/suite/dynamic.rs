//! The dynamic supervisor: children added and removed at run time, at scale
//! (supervisor_SUITE's simple_one_for_one_scale_many_temporary_children, made stricter).

use std::time::Duration;

use metasystem_actors::testkit::Probe;
use metasystem_actors::{ChildSpec, ExitReason, NodeState, Restart, Strategy, SupervisorSpec};

use crate::util::{worker, Harness};

const N: usize = 10_000;

#[tokio::test(start_paused = true)]
async fn ten_thousand_children() {
    let probe = Probe::new();
    let pool = SupervisorSpec::new(Strategy::Dynamic).intensity(100, Duration::from_secs(10));
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(ChildSpec::supervisor("pool", pool));
    let mut h = Harness::start(spec).await;
    for i in 0..N {
        let restart = if i % 2 == 0 {
            Restart::Permanent
        } else {
            Restart::Temporary
        };
        h.tree
            .add_child(
                "root/pool",
                worker(&format!("w{i}"), &probe).restart(restart),
            )
            .await
            .expect("add");
    }
    assert_eq!(probe.names("start:").len(), N);
    let nodes = h.nodes().await;
    assert_eq!(nodes.len(), N + 2);
    assert!(nodes.iter().all(|n| n.state == NodeState::Running));
    assert_eq!(h.tree.directory().len(), N + 2);

    // Crashes: permanent ones come back, temporary ones are forgotten; nobody else moves.
    for i in [0usize, 1, 4242, 4243, 9998, 9999] {
        h.crash(&format!("root/pool/w{i}"));
        h.wait_event(&format!("root/pool/w{i}"), "exited").await;
    }
    h.drain().await;
    let nodes = h.nodes().await;
    assert_eq!(nodes.len(), N + 2 - 3);
    for i in [0usize, 4242, 9998] {
        let path = format!("root/pool/w{i}");
        let node = nodes
            .iter()
            .find(|n| n.path == path)
            .expect("permanent kept");
        assert_eq!(
            (node.state, node.incarnation),
            (NodeState::Running, 2),
            "{path}"
        );
        assert_eq!(h.ping(&path).await, format!("w{i}"));
    }
    assert_eq!(nodes.iter().filter(|n| n.incarnation == 2).count(), 3);

    // Removing some at run time.
    for i in (100..200).step_by(2) {
        h.tree
            .remove(&format!("root/pool/w{i}"))
            .await
            .expect("remove");
    }
    assert_eq!(h.nodes().await.len(), N + 2 - 3 - 50);

    // Shutdown stops every one of them.
    probe.clear();
    assert_eq!(h.tree.shutdown().await, ExitReason::Shutdown);
    assert_eq!(probe.names("stop:").len(), N - 3 - 50);
}

/// Many children failing at once within the intensity are all restarted; one more gives up.
#[tokio::test(start_paused = true)]
async fn dynamic_children_share_the_intensity() {
    let probe = Probe::new();
    let children = (0..10).map(|i| worker(&format!("w{i}"), &probe));
    let spec = SupervisorSpec::new(Strategy::Dynamic)
        .intensity(10, Duration::from_secs(10))
        .children(children);
    let mut h = Harness::start(spec).await;
    for i in 0..10 {
        h.crash(&format!("root/w{i}"));
    }
    for i in 0..10 {
        h.wait_event(&format!("root/w{i}"), "restarted").await;
    }
    assert_eq!(h.tree.exit_reason(), None);
    h.crash("root/w3");
    h.wait_event("root", "gave_up").await;
    assert_eq!(h.tree.exited().await, ExitReason::MaxRestartIntensity);
}
