//! Helpers: a tree with a probe and an event stream, bounded waits on a paused clock.

use std::time::Duration;

use metasystem_actors::testkit::{self, Probe, TestMsg};
use metasystem_actors::{
    ChildSpec, EventKind, EventSink, LifecycleEvent, NodeSnapshot, NodeState, SupervisorSpec, Tree,
};
use ractor::rpc::CallResult;
use ractor::ActorRef;
use tokio::sync::mpsc::UnboundedReceiver;

/// Every wait in these tests gives up after this much (virtual) time.
pub const PATIENCE: Duration = Duration::from_secs(3600);

pub struct Harness {
    pub tree: Tree,
    pub events: UnboundedReceiver<LifecycleEvent>,
    /// Events already taken off the channel, in order.
    pub seen: Vec<LifecycleEvent>,
}

pub fn worker(name: &str, probe: &Probe) -> ChildSpec {
    testkit::worker(name, probe)
}

impl Harness {
    pub async fn start(spec: SupervisorSpec) -> Harness {
        match Harness::try_start(spec).await {
            Ok(h) => h,
            Err(e) => panic!("tree did not start: {e}"),
        }
    }

    pub async fn try_start(spec: SupervisorSpec) -> Result<Harness, String> {
        let (sink, events) = EventSink::channel();
        let tree = Tree::start(spec, sink).await.map_err(|e| e.to_string())?;
        Ok(Harness {
            tree,
            events,
            seen: Vec::new(),
        })
    }

    /// The current incarnation of the worker at `path`.
    pub fn worker_ref(&self, path: &str) -> ActorRef<TestMsg> {
        match self.tree.directory().get::<TestMsg>(path) {
            Some(r) => r,
            None => panic!("no running worker at {path}"),
        }
    }

    pub fn send(&self, path: &str, msg: TestMsg) {
        if self.worker_ref(path).cast(msg).is_err() {
            panic!("could not send to {path}");
        }
    }

    pub fn crash(&self, path: &str) {
        self.send(path, TestMsg::Crash(format!("{path} crashed on request")));
    }

    /// Asks the worker at `path` for its name: proves the current incarnation answers calls.
    pub async fn ping(&self, path: &str) -> String {
        match self
            .worker_ref(path)
            .call(TestMsg::Ping, Some(Duration::from_secs(5)))
            .await
        {
            Ok(CallResult::Success(name)) => name,
            _ => panic!("{path} did not answer"),
        }
    }

    /// Waits (bounded) for the next event matching `pred`; earlier events are kept in `seen`.
    pub async fn wait_for(
        &mut self,
        what: &str,
        pred: impl Fn(&LifecycleEvent) -> bool,
    ) -> LifecycleEvent {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => {
                    self.seen.push(event.clone());
                    if pred(&event) {
                        return event;
                    }
                }
                Ok(None) => panic!(
                    "event stream closed while waiting for {what}; seen {:#?}",
                    self.seen
                ),
                Err(_) => panic!("timed out waiting for {what}; seen {:#?}", self.seen),
            }
        }
    }

    pub async fn wait_event(&mut self, path: &str, tag: &str) -> LifecycleEvent {
        let what = format!("{tag} of {path}");
        self.wait_for(&what, |e| e.path == path && e.kind.tag() == tag)
            .await
    }

    /// Takes every event emitted so far (the tree is quiescent after a snapshot round trip).
    pub async fn drain(&mut self) -> Vec<LifecycleEvent> {
        let _ = self.tree.snapshot().await;
        let mut out = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            self.seen.push(event.clone());
            out.push(event);
        }
        out
    }

    pub async fn nodes(&self) -> Vec<NodeSnapshot> {
        self.tree.snapshot().await
    }

    pub async fn node(&self, path: &str) -> Option<NodeSnapshot> {
        self.nodes().await.into_iter().find(|n| n.path == path)
    }

    pub async fn state(&self, path: &str) -> Option<NodeState> {
        self.node(path).await.map(|n| n.state)
    }

    pub async fn incarnation(&self, path: &str) -> u64 {
        match self.node(path).await {
            Some(n) => n.incarnation,
            None => panic!("no node {path}"),
        }
    }
}

/// `kind` tags of the events about `path`, in order.
pub fn tags_of(events: &[LifecycleEvent], path: &str) -> Vec<&'static str> {
    events
        .iter()
        .filter(|e| e.path == path)
        .map(|e| e.kind.tag())
        .collect()
}

pub fn exit_reason(event: &LifecycleEvent) -> metasystem_actors::ExitReason {
    match &event.kind {
        EventKind::Exited { reason, .. } => reason.clone(),
        other => panic!("not an exit: {other:?}"),
    }
}

pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A test that cannot do its work here (it needs root: a mount, another uid, immutable files)
/// says so and returns. Under CI (`CI=true`), which runs as root, one that is not root fails
/// instead of skipping silently.
pub fn skipped(why: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    if ci && !rustix::process::geteuid().is_root() {
        panic!("{why}: this test needs root, which CI runs as");
    }
    eprintln!("skipped: {why}");
}
