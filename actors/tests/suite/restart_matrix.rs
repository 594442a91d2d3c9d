//! supervisor_SUITE: {permanent,transient,temporary}_{normal,shutdown,abnormal}.

use metasystem_actors::testkit::{Probe, TestMsg};
use metasystem_actors::{ExitReason, NodeState, Restart, Strategy, SupervisorSpec};

use crate::util::{exit_reason, worker, Harness};

#[derive(Clone, Copy, Debug)]
enum How {
    Normal,
    Shutdown,
    Abnormal,
}

async fn case(restart: Restart, how: How, expect_restart: bool) {
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("w", &probe).restart(restart))
        .child(worker("other", &probe));
    let mut h = Harness::start(spec).await;
    let msg = match how {
        How::Normal => TestMsg::Exit(None),
        How::Shutdown => TestMsg::Exit(Some("shutdown".into())),
        How::Abnormal => TestMsg::Crash("boom".into()),
    };
    h.send("root/w", msg);
    let exit = h.wait_event("root/w", "exited").await;
    let expected_reason = match how {
        How::Normal => ExitReason::Normal,
        How::Shutdown => ExitReason::Shutdown,
        How::Abnormal => ExitReason::Failed("boom".into()),
    };
    assert_eq!(exit_reason(&exit), expected_reason);
    let later = h.drain().await;
    let restarted = later
        .iter()
        .any(|e| e.path == "root/w" && e.kind.tag() == "restarted");
    assert_eq!(restarted, expect_restart, "{restart:?} {how:?}: {later:#?}");
    let node = h.node("root/w").await;
    match (restart, expect_restart) {
        (_, true) => {
            let node = node.expect("restarted child is listed");
            assert_eq!(node.state, NodeState::Running);
            assert_eq!(node.incarnation, 2);
            assert_eq!(node.restarts, 1);
            assert_eq!(h.ping("root/w").await, "w");
        }
        // OTP forgets a temporary child once it exits.
        (Restart::Temporary, false) => assert!(node.is_none(), "{node:?}"),
        (_, false) => {
            let node = node.expect("stopped child is still listed");
            assert_eq!(node.state, NodeState::Stopped);
            assert_eq!(node.last_exit, Some(expected_reason));
            assert!(h.tree.directory().lookup("root/w").is_none());
        }
    }
    // The sibling was never touched.
    assert_eq!(h.incarnation("root/other").await, 1);
    h.tree.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn permanent_normal() {
    case(Restart::Permanent, How::Normal, true).await;
}

#[tokio::test(start_paused = true)]
async fn permanent_shutdown() {
    case(Restart::Permanent, How::Shutdown, true).await;
}

#[tokio::test(start_paused = true)]
async fn permanent_abnormal() {
    case(Restart::Permanent, How::Abnormal, true).await;
}

#[tokio::test(start_paused = true)]
async fn transient_normal() {
    case(Restart::Transient, How::Normal, false).await;
}

#[tokio::test(start_paused = true)]
async fn transient_shutdown() {
    case(Restart::Transient, How::Shutdown, false).await;
}

#[tokio::test(start_paused = true)]
async fn transient_abnormal() {
    case(Restart::Transient, How::Abnormal, true).await;
}

#[tokio::test(start_paused = true)]
async fn temporary_normal() {
    case(Restart::Temporary, How::Normal, false).await;
}

#[tokio::test(start_paused = true)]
async fn temporary_shutdown() {
    case(Restart::Temporary, How::Shutdown, false).await;
}

#[tokio::test(start_paused = true)]
async fn temporary_abnormal() {
    case(Restart::Temporary, How::Abnormal, false).await;
}

/// A panic is an abnormal exit like any error.
#[tokio::test(start_paused = true)]
async fn transient_panic_is_abnormal() {
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("w", &probe).restart(Restart::Transient));
    let mut h = Harness::start(spec).await;
    h.send("root/w", TestMsg::Panic);
    let exit = h.wait_event("root/w", "exited").await;
    assert!(matches!(exit_reason(&exit), ExitReason::Failed(m) if m.contains("panicked")));
    h.wait_event("root/w", "restarted").await;
    assert_eq!(h.ping("root/w").await, "w");
    h.tree.shutdown().await;
}

/// An exit with a reason other than normal/shutdown is abnormal, as in OTP.
#[tokio::test(start_paused = true)]
async fn transient_other_stop_reason_is_abnormal() {
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("w", &probe).restart(Restart::Transient));
    let mut h = Harness::start(spec).await;
    h.send("root/w", TestMsg::Exit(Some("lost my disk".into())));
    let exit = h.wait_event("root/w", "exited").await;
    assert_eq!(
        exit_reason(&exit),
        ExitReason::Failed("lost my disk".into())
    );
    h.wait_event("root/w", "restarted").await;
    h.tree.shutdown().await;
}
