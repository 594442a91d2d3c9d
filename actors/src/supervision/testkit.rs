//! Test fixtures (feature `testkit`): a scriptable worker actor whose starts can be made to
//! fail or to hang, whose stops can be made to hang, and which records its starts and stops in a shared
//! log, as the dummy gen_servers of Erlang's `supervisor_SUITE` do.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::supervision::spec::ChildSpec;

/// Shared control and record of a set of test workers, by name.
#[derive(Clone, Default)]
pub struct Probe {
    inner: Arc<Mutex<ProbeState>>,
}

#[derive(Default)]
struct ProbeState {
    log: Vec<String>,
    fail_starts: HashMap<String, u32>,
    hang_on_start: HashSet<String>,
    hang_on_stop: HashSet<String>,
}

impl Probe {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, ProbeState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next `n` starts of `name` fail (`u32::MAX`: every start).
    pub fn fail_starts(&self, name: &str, n: u32) {
        self.lock().fail_starts.insert(name.to_string(), n);
    }

    /// `name`'s `pre_start` never returns (it sleeps a day, then starts), for every start until
    /// [`Probe::unhang_on_start`]. It logs `hang:NAME` when it begins to hang.
    pub fn hang_on_start(&self, name: &str) {
        self.lock().hang_on_start.insert(name.to_string());
    }

    /// `name`'s next starts no longer hang (one already hanging keeps hanging).
    pub fn unhang_on_start(&self, name: &str) {
        self.lock().hang_on_start.remove(name);
    }

    /// `name`'s `post_stop` never finishes (so only a kill ends it).
    pub fn hang_on_stop(&self, name: &str) {
        self.lock().hang_on_stop.insert(name.to_string());
    }

    /// Everything recorded so far: `start:NAME`, `start_failed:NAME`, `hang:NAME`, `stop:NAME`.
    pub fn log(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    /// The recorded entries with this prefix (`start:` or `stop:`), names only.
    pub fn names(&self, prefix: &str) -> Vec<String> {
        self.lock()
            .log
            .iter()
            .filter_map(|e| e.strip_prefix(prefix).map(str::to_string))
            .collect()
    }

    pub fn clear(&self) {
        self.lock().log.clear();
    }

    fn record(&self, entry: String) {
        self.lock().log.push(entry);
    }
}

pub struct TestWorker;

pub enum TestMsg {
    /// Answers with the worker's name.
    Ping(RpcReplyPort<String>),
    /// Fails the handler with this error (a crash).
    Crash(String),
    /// Panics in the handler.
    Panic,
    /// Stops itself with this reason (None: normal).
    Exit(Option<String>),
    /// Does nothing (message throughput).
    Noop,
}

pub struct TestWorkerArgs {
    pub name: String,
    pub probe: Probe,
}

pub struct TestWorkerState {
    name: String,
    probe: Probe,
}

impl Actor for TestWorker {
    type Msg = TestMsg;
    type State = TestWorkerState;
    type Arguments = TestWorkerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<TestMsg>,
        args: TestWorkerArgs,
    ) -> Result<TestWorkerState, ActorProcessingErr> {
        let hang = args.probe.lock().hang_on_start.contains(&args.name);
        if hang {
            args.probe.record(format!("hang:{}", args.name));
            tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
        }
        let fail = {
            let mut state = args.probe.lock();
            match state.fail_starts.get_mut(&args.name) {
                Some(n) if *n > 0 => {
                    if *n != u32::MAX {
                        *n -= 1;
                    }
                    true
                }
                _ => false,
            }
        };
        if fail {
            args.probe.record(format!("start_failed:{}", args.name));
            return Err(format!("{} refused to start", args.name).into());
        }
        args.probe.record(format!("start:{}", args.name));
        Ok(TestWorkerState {
            name: args.name,
            probe: args.probe,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<TestMsg>,
        message: TestMsg,
        state: &mut TestWorkerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            TestMsg::Ping(reply) => {
                let _ = reply.send(state.name.clone());
            }
            TestMsg::Crash(error) => return Err(error.into()),
            TestMsg::Panic => panic!("{} panicked on request", state.name),
            TestMsg::Exit(reason) => myself.stop(reason),
            TestMsg::Noop => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<TestMsg>,
        state: &mut TestWorkerState,
    ) -> Result<(), ActorProcessingErr> {
        let hang = state.probe.lock().hang_on_stop.contains(&state.name);
        if hang {
            tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
        }
        state.probe.record(format!("stop:{}", state.name));
        Ok(())
    }
}

/// A permanent test worker child named `name`, reporting to `probe`.
pub fn worker(name: &str, probe: &Probe) -> ChildSpec {
    let probe = probe.clone();
    let owned = name.to_string();
    ChildSpec::worker(name, "test_worker", move |_ctx| {
        (
            TestWorker,
            TestWorkerArgs {
                name: owned.clone(),
                probe: probe.clone(),
            },
        )
    })
}
