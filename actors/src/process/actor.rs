//! The `process` actor: one incarnation is one run of the program.
//!
//! `pre_start` starts the program (a start that cannot exec — no such program, a bad working
//! directory, refused credentials — is a failed start) and its output pump. A watcher task
//! owns the child and learns of its exit at once (pidfd or SIGCHLD, never polling); the
//! actor then ends with the exit's verdict: a normal exit code after `healthy_after` is a
//! `normal` exit, anything else (a signal, another code, a run shorter than `healthy_after`)
//! a failure. The supervisor restarts it per its restart type, backoff and intensity, as any
//! child. Stopping the actor stops the program: `stop_signal` to its process group, then
//! SIGKILL of the group after `stop_timeout`. Dropping the actor's state by any path (killed
//! by its supervisor, a panic) kills the group: no run outlives its actor.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use super::pump::{self, PumpStats};
use super::{judge, signal_name, spawn, Entry, ExitInfo, ProcessSpec, Processes};
use crate::metrics::{Metric, Metrics, Sample};
use crate::store::{unix_ms, StoredEvent};

pub struct ProcessActor;

pub struct ProcessArgs {
    /// Its tree path: events, samples, the registry key.
    pub path: String,
    pub spec: Arc<ProcessSpec>,
    /// Where it publishes its status and output (shared with the daemon and the probes).
    pub registry: Processes,
    /// Where events and samples go (`None` in tests that only watch the actor).
    pub metrics: Option<Metrics>,
}

pub enum ProcessMessage {
    /// Internal: the program ended (from the watcher task).
    Exited(ExitInfo),
    /// Internal: it has run for `healthy_after`.
    Healthy,
    /// `call PATH status`.
    Status(RpcReplyPort<ProcessStatus>),
    /// `call PATH signal`: send a signal to its process group.
    Signal(i32, RpcReplyPort<Result<(), String>>),
}

/// What `status` answers, and what the registry holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProcessStatus {
    /// starting (before `healthy_after`) | running | exited | stopped
    pub state: String,
    /// The running program's pid (also its process group).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub command: String,
    /// When the current (or last) run started (Unix milliseconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
    /// How long the current run has lasted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_ms: Option<u64>,
    /// Runs started since the daemon started (the first included).
    pub runs: u64,
    /// How the last run ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<ExitInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exit_message: Option<String>,
    /// The log files (stdout, or both; stderr when separate).
    pub log: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr_log: Option<String>,
    /// Output bytes written to the logs and lost (the disk refused them), this run.
    pub log_written: u64,
    pub log_dropped: u64,
    /// Whether writing the log fails now.
    pub log_failing: bool,
}

/// How long the pump may still read after the program ended (what a grandchild that left
/// its group writes after that is not logged).
const PUMP_GRACE: Duration = Duration::from_secs(2);
/// How long a stop waits for the group after SIGKILL (a process in uninterruptible sleep
/// may take that long; the supervisor's shutdown bounds the whole stop anyway).
const KILL_WAIT: Duration = Duration::from_secs(5);

pub struct ProcessState {
    /// What it runs and where it reports, as its supervisor gave them.
    args: ProcessArgs,
    /// Its registry entry: status and followers.
    entry: Arc<Entry>,
    /// The program's pid, which is also its process group's id.
    pid: u32,
    /// When the program was started: its uptime for `status`.
    started: Instant,
    /// Whether it has run for `healthy_after`.
    healthy: bool,
    /// Signals for the watcher task, which sends them while the child is not reaped (so a
    /// recycled pid is never signalled). Dropping it makes the task SIGKILL the group.
    control: mpsc::UnboundedSender<i32>,
    /// The exit, once the watcher saw it (for a stop to wait on).
    exit: watch::Receiver<Option<ExitInfo>>,
    /// The pump's counters, for `status`.
    pump: Arc<PumpStats>,
}

impl ProcessState {
    fn status(&self) -> ProcessStatus {
        let exited = self.exit.borrow().clone();
        let mut s = self
            .entry
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        s.state = match (&exited, self.healthy) {
            (Some(_), _) => "exited",
            (None, true) => "running",
            (None, false) => "starting",
        }
        .into();
        s.pid = exited.is_none().then_some(self.pid);
        s.uptime_ms = exited
            .is_none()
            .then(|| self.started.elapsed().as_millis() as u64);
        s.log_written = self.pump.written.load(Ordering::Relaxed);
        s.log_dropped = self.pump.dropped.load(Ordering::Relaxed);
        s.log_failing = self.pump.failing.load(Ordering::Relaxed);
        s
    }

    fn publish(&self) {
        let s = self.status();
        *self.entry.status.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }

    fn record(&self, message: String, data: serde_json::Value) {
        if let Some(m) = &self.args.metrics {
            let mut event = StoredEvent::new(
                &self.args.path,
                crate::store::events::Kind::Process,
                message,
            );
            event.data = data;
            m.store().record(event);
        }
    }
}

/// Owns the child: sends the actor's signals while it is not reaped, reports its exit, then
/// kills what is left of its group and, after a grace, stops the pump.
async fn watch_child(
    mut child: tokio::process::Child,
    pid: u32,
    started: Instant,
    mut control: mpsc::UnboundedReceiver<i32>,
    actor: ActorRef<ProcessMessage>,
    exit_tx: watch::Sender<Option<ExitInfo>>,
    pump_stop: Arc<AtomicBool>,
) {
    let group = rustix::process::Pid::from_raw(pid as i32);
    let signal_group = |sig: i32| {
        if let (Some(group), Some(sig)) = (group, rustix::process::Signal::from_named_raw(sig)) {
            let _ = rustix::process::kill_process_group(group, sig);
        }
    };
    let mut orphaned = false;
    let status = loop {
        if orphaned {
            break child.wait().await;
        }
        tokio::select! {
            biased;
            status = child.wait() => break status,
            sig = control.recv() => match sig {
                Some(sig) => signal_group(sig),
                None => {
                    // The actor is gone without stopping it: no run outlives its actor.
                    signal_group(libc::SIGKILL);
                    orphaned = true;
                }
            }
        }
    };
    let uptime = started.elapsed();
    // Whatever it left in its group dies with it (its pid stays reserved while the group has
    // members, so this reaches only them).
    signal_group(libc::SIGKILL);
    spawn::forget(pid);
    let (code, signal) = match &status {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            (s.code(), s.signal())
        }
        Err(_) => (None, None),
    };
    let info = ExitInfo {
        pid,
        code,
        signal,
        uptime_ms: uptime.as_millis() as u64,
        at_ms: unix_ms(SystemTime::now()),
    };
    let _ = exit_tx.send(Some(info.clone()));
    let _ = actor.send_message(ProcessMessage::Exited(info));
    tokio::time::sleep(PUMP_GRACE).await;
    pump_stop.store(true, Ordering::Release);
}

impl Actor for ProcessActor {
    type Msg = ProcessMessage;
    type State = ProcessState;
    type Arguments = ProcessArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ProcessArgs,
    ) -> Result<ProcessState, ActorProcessingErr> {
        let spec = args.spec.clone();
        let line = spawn::command_line(&spec);
        let started = spawn::start(&spec)
            .await
            .map_err(|e| format!("cannot start `{line}`: {e}"))?;
        let (start_instant, started_at) = (Instant::now(), SystemTime::now());
        let entry = args.registry.entry(&args.path);
        let pump_stats = Arc::new(PumpStats::default());
        let pump_stop = Arc::new(AtomicBool::new(false));
        let pid = started.pid;
        let logs = entry.logs(&spec.output);
        let stderr = match (started.stderr, logs.stderr) {
            (Some(fd), Some(log)) => Some((fd, log)),
            _ => None,
        };
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let (exit_tx, exit_rx) = watch::channel(None);
        tokio::spawn(watch_child(
            started.child,
            pid,
            start_instant,
            control_rx,
            myself.clone(),
            exit_tx,
            pump_stop.clone(),
        ));
        // From here on, dropping `control_tx` (a failed start below included) kills the run.
        if let Err(e) = pump::start(
            args.path.clone(),
            (started.stdout, logs.stdout),
            stderr,
            entry.output.clone(),
            pump_stats.clone(),
            pump_stop,
        ) {
            return Err(format!("cannot start the output pump of `{line}`: {e}").into());
        }
        {
            let mut s = entry.status.lock().unwrap_or_else(|e| e.into_inner());
            s.command = line.clone();
            s.started_ms = Some(unix_ms(started_at));
            s.runs += 1;
            if s.runs > 1 {
                let mut restarts = entry.restarts.lock().unwrap_or_else(|e| e.into_inner());
                if restarts.len() >= super::RESTARTS_KEPT {
                    restarts.pop_front();
                }
                restarts.push_back(unix_ms(started_at));
            }
            s.log = spec.output.stdout.path.display().to_string();
            s.stderr_log = spec
                .output
                .stderr
                .as_ref()
                .map(|l| l.path.display().to_string());
        }
        let healthy = spec.healthy_after.is_zero();
        if !healthy {
            myself.send_after(spec.healthy_after, || ProcessMessage::Healthy);
        }
        let state = ProcessState {
            args,
            entry,
            pid,
            started: start_instant,
            healthy,
            control: control_tx,
            exit: exit_rx,
            pump: pump_stats,
        };
        state.publish();
        state.record(
            format!("started pid {pid}: {line}"),
            serde_json::json!({ "pid": pid, "command": line }),
        );
        tracing::info!(process = %state.args.path, pid, "started `{line}`");
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: ProcessMessage,
        state: &mut ProcessState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ProcessMessage::Healthy => {
                if state.exit.borrow().is_none() {
                    state.healthy = true;
                    state.publish();
                }
            }
            ProcessMessage::Status(reply) => {
                let _ = reply.send(state.status());
            }
            ProcessMessage::Signal(sig, reply) => {
                let answer = if state.exit.borrow().is_some() {
                    Err(format!("pid {} has already exited", state.pid))
                } else {
                    state
                        .control
                        .send(sig)
                        .map_err(|_| "the process is being stopped".to_string())
                };
                let _ = reply.send(answer);
            }
            ProcessMessage::Exited(info) => {
                let spec = &state.args.spec;
                let verdict = judge(&info, spec.healthy_after, &spec.normal_exit_codes);
                {
                    let mut s = state.entry.status.lock().unwrap_or_else(|e| e.into_inner());
                    s.last_exit = Some(info.clone());
                    s.last_exit_message = Some(verdict.message.clone());
                }
                state.publish();
                state.record(
                    format!("pid {}: {}", info.pid, verdict.message),
                    serde_json::json!({
                        "pid": info.pid,
                        "code": info.code,
                        "signal": info.signal.map(signal_name),
                        "uptime_ms": info.uptime_ms,
                        "normal": verdict.normal,
                        "failed_start": verdict.failed_start,
                    }),
                );
                if let Some(m) = &state.args.metrics {
                    m.report(Sample {
                        at_ms: info.at_ms,
                        metric: Metric::ProcessRuns,
                        subject: state.args.path.clone(),
                        value: info.uptime_ms as f64 / 1000.0,
                        ok: Some(verdict.normal),
                    });
                }
                if verdict.normal {
                    tracing::info!(process = %state.args.path, "{}", verdict.message);
                    myself.stop(Some("normal".into()));
                } else {
                    tracing::warn!(process = %state.args.path, "{}", verdict.message);
                    return Err(verdict.message.into());
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut ProcessState,
    ) -> Result<(), ActorProcessingErr> {
        if state.exit.borrow().is_some() {
            return Ok(());
        }
        let spec = state.args.spec.clone();
        let _ = state.control.send(spec.stop_signal);
        // A stopped (SIGSTOP) program holds the signal until it continues: it is continued,
        // as systemd does, so it can act on it rather than wait for the SIGKILL.
        if spec.stop_signal != libc::SIGKILL {
            let _ = state.control.send(libc::SIGCONT);
        }
        let mut exit = state.exit.clone();
        let ended = tokio::time::timeout(spec.stop_timeout, exit.wait_for(Option::is_some))
            .await
            .is_ok();
        if !ended {
            tracing::warn!(
                process = %state.args.path,
                pid = state.pid,
                "did not stop within {} of {}: killing its process group",
                humantime::format_duration(spec.stop_timeout),
                signal_name(spec.stop_signal)
            );
            let _ = state.control.send(libc::SIGKILL);
            let _ = tokio::time::timeout(KILL_WAIT, exit.wait_for(Option::is_some)).await;
        }
        let info = exit.borrow().clone();
        if let Some(info) = info {
            let how = match (info.code, info.signal) {
                (Some(c), _) => format!("status {c}"),
                (None, Some(s)) => signal_name(s),
                _ => "an unknown status".into(),
            };
            let message = format!("stopped pid {} ({how})", info.pid);
            {
                let mut s = state.entry.status.lock().unwrap_or_else(|e| e.into_inner());
                s.last_exit = Some(info.clone());
                s.last_exit_message = Some(message.clone());
            }
            state.publish();
            {
                let mut s = state.entry.status.lock().unwrap_or_else(|e| e.into_inner());
                s.state = "stopped".into();
            }
            state.record(
                message,
                serde_json::json!({
                    "pid": info.pid,
                    "code": info.code,
                    "signal": info.signal.map(signal_name),
                    "uptime_ms": info.uptime_ms,
                    "stopped": true,
                    "killed": !ended,
                }),
            );
        }
        Ok(())
    }
}
