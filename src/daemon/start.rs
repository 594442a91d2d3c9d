//! Startup in order (signals, state dir and its lock, socket, store, tree), the main loop, and
//! the ordered shutdown.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metasystem_actors::store::{format_ms, unix_ms, DurableOp, DurableReply, Store};
use metasystem_actors::{ExitReason, SupervisorSpec, Tree};
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

use super::{exit, notify, reload, Daemon};
use crate::config::diff::plan;
use crate::config::{Config, Origin, SupervisorConfig};
use crate::control::protocol::RunInfo;
use crate::control::server;
use crate::control::slots::Slots;
use crate::wiring::{self, Services};

/// Events are kept this long.
const EVENT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why the daemon could not start.
pub(super) enum Failure {
    /// The environment is not ready (state dir, socket, disk, another daemon): worth
    /// retrying later.
    NotReady(String),
    /// The tree could not start (a child failed): worth retrying.
    Tree(String),
}

struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

fn signals() -> Result<Signals, Failure> {
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(int), Ok(term), Ok(hup)) => Ok(Signals { int, term, hup }),
        _ => Err(Failure::NotReady("cannot install signal handlers".into())),
    }
}

/// The state dir (private, locked for the daemon's life: one daemon per state dir), then the
/// socket: if another daemon answers there we stop before touching anything else.
fn claim(config: &Config) -> Result<(std::fs::File, UnixListener), Failure> {
    server::private_dir(&config.daemon.state_dir, true).map_err(Failure::NotReady)?;
    let lock = server::lock_state_dir(&config.daemon.state_dir).map_err(Failure::NotReady)?;
    let listener = server::bind(&config.daemon.socket).map_err(Failure::NotReady)?;
    Ok((lock, listener))
}

async fn open_store(state_dir: &Path, socket: &Path) -> Result<(Store, JoinHandle<()>), Failure> {
    let db = state_dir.join("metastore.db");
    Store::open(&db, EVENT_RETENTION).await.map_err(|e| {
        let _ = std::fs::remove_file(socket);
        Failure::NotReady(format!("cannot open the store {}: {e}", db.display()))
    })
}

/// Records this run on the durable lane (so the next run can tell whether this one ended
/// cleanly); its id. A disk that refuses writes does not hold up the start: the write is kept
/// and retried, and this run then has no id to close.
async fn record_run(store: &Store, origin: &Origin) -> Option<i64> {
    let op = DurableOp::RunStarted {
        started_ms: unix_ms(std::time::SystemTime::now()),
        pid: std::process::id(),
        version: crate::VERSION.to_string(),
        config: origin.display(),
    };
    match store.durable(op, Some(RUN_RECORD_TIMEOUT)).await {
        Ok(DurableReply::Id(id)) => Some(id),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot record this run in the store");
            None
        }
    }
}

/// The run before this one, for `status`.
async fn previous_run(store: &Store, run_id: Option<i64>) -> Option<RunInfo> {
    match metasystem_actors::store::runs::previous(store.reader(), run_id).await {
        Ok(run) => run.map(|r| RunInfo {
            started: format_ms(r.started_ms),
            pid: r.pid,
            version: r.version,
            stopped: r.stopped_ms.map(format_ms),
            exit_code: r.exit_code,
            // Stopped in order and with exit 0: a run that gave up (3) or could not write its
            // last events (75) was not clean.
            clean: r.stopped_ms.is_some() && r.exit_code == Some(0),
        }),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the previous run");
            None
        }
    }
}

/// How long the start and the stop wait for the store to record the run.
const RUN_RECORD_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the root with no children, then the configured children as the diff from it.
async fn start_tree(config: &Config, services: &Services) -> Result<Tree, String> {
    let tree = Tree::start(
        SupervisorSpec::default().with_settings(config.root.settings),
        metasystem_actors::observe::sink(services.metrics.clone(), services.alerts.clone()),
    )
    .await
    .map_err(|e| e.to_string())?;
    let empty_root = SupervisorConfig {
        settings: config.root.settings,
        children: Vec::new(),
    };
    let steps = plan("root", &empty_root, &config.root);
    let build = |c: &crate::config::ChildConfig| wiring::child_spec(c, services);
    let applied = reload::apply(&tree, &steps, &config.root, &build, true, None).await;
    if let Some(failed) = applied.iter().find(|a| a.error.is_some()) {
        tree.shutdown().await;
        return Err(format!(
            "startup failed: {} {}: {}",
            failed.action,
            failed.path,
            failed.error.as_deref().unwrap_or("")
        ));
    }
    Ok(tree)
}

/// Undoes what started, for a failed start.
async fn abandon(store: &Store, socket: &Path) {
    store.close().await;
    let _ = std::fs::remove_file(socket);
}

pub(super) async fn start_and_serve(
    config_arg: Option<PathBuf>,
    origin: Origin,
    config: Config,
) -> Result<ExitCode, Failure> {
    let mut signals = signals()?;
    let (_lock, listener) = claim(&config)?;
    let socket = config.daemon.socket.clone();
    let (http, telemetry) = crate::export::bind(&config, &socket)
        .await
        .map_err(Failure::NotReady)?;
    let (store, store_join) = open_store(&config.daemon.state_dir, &socket).await?;
    let run_id = record_run(&store, &origin).await;
    // Command probes and heal actions carry a token of this start; what an earlier start
    // left running (SIGKILLed with probes hanging, a child that called setsid) goes now,
    // before anything of this start runs.
    let instance = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id());
    metasystem_actors::process::leftovers::init(&config.daemon.state_dir, instance);
    let left = tokio::task::spawn_blocking(metasystem_actors::process::leftovers::kill_earlier)
        .await
        .unwrap_or(0);
    if left > 0 {
        tracing::warn!(
            processes = left,
            "killed what command probes or heal actions of an earlier start left running"
        );
    }
    let services = Services {
        store: store.clone(),
        metrics: metasystem_actors::metrics::Metrics::new(store.clone()),
        alerts: metasystem_actors::alerts::Alerts::new(store.clone()),
        watchdog: notify::watchdog_interval(),
        breakers: Default::default(),
        breakers_slot: Default::default(),
        probes: Default::default(),
        sync: Default::default(),
        processes: Default::default(),
        check_slots: metasystem_actors::probes::Slots::new(config.daemon.blocking_checks),
        tree: Default::default(),
    };
    // What each snapshot of the store pushed to a sync target says of this host (`hosts`).
    store.describe_with(super::hosts::describe(
        services.clone(),
        std::time::SystemTime::now(),
    ));
    for warning in crate::kinds::Kind::absent(&config.root, &services) {
        tracing::warn!("{warning}");
    }
    let tree = match start_tree(&config, &services).await {
        Ok(tree) => {
            let _ = services.tree.set(tree.clone());
            // Every actor has started: what the receivers were told of a source that knows
            // its state from the start (supervision, breakers, anomalies), or that is gone, is
            // held to what is true now.
            services.alerts.started();
            tree
        }
        Err(message) => {
            abandon(&store, &socket).await;
            return Err(Failure::Tree(message));
        }
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (stop_server, server_stop) = watch::channel(false);
    let limits = server::Limits {
        max_connections: fit_connections(config.daemon.max_connections),
        idle_timeout: config.daemon.idle_timeout,
    };
    let daemon = Arc::new(Daemon {
        tree,
        store: store.clone(),
        services,
        config_arg,
        daemon: config.daemon.clone(),
        origin_shown: std::sync::Mutex::new(origin.display()),
        current: Mutex::new((origin.clone(), config)),
        started: Instant::now(),
        previous_run: previous_run(&store, run_id).await,
        shutdown: shutdown_tx,
        chaos: Default::default(),
    });
    let mut exports = crate::export::start(http, &daemon, &telemetry).await;
    let slots = Slots::new(limits.max_connections);
    let (end_streams, streams_end) = watch::channel(false);
    let server = tokio::spawn(server::serve(
        listener,
        socket.clone(),
        daemon.clone(),
        server::Control {
            limits,
            slots: slots.clone(),
            stop_accepting: server_stop,
            end_streams: streams_end,
        },
    ));
    tracing::info!(
        pid = std::process::id(),
        config = %origin.display(),
        socket = %socket.display(),
        "metasystem running"
    );
    notify::ready("running");

    let ended = main_loop(&daemon, &mut signals, shutdown_rx, store_join).await;
    notify::stopping();
    // A chaos run ends now, before the tree stops (its report is recorded, not waited for).
    daemon.chaos_shutdown();
    // No new connections; those open may finish their requests.
    stop_server.send_replace(true);
    let _ = server.await;
    exports.stop_http().await;
    let reason = daemon.tree.shutdown().await;
    exports.finish().await;
    // What this start's command runs left that no run's end killed (one cut off by the
    // shutdown, or by a kill of its actor).
    let left = tokio::task::spawn_blocking(metasystem_actors::process::leftovers::kill_this_start)
        .await
        .unwrap_or(0);
    if left > 0 {
        tracing::info!(
            processes = left,
            "killed what command probes or heal actions left running"
        );
    }
    let ended = match ended {
        Ended::RootExited(why) => {
            let root = daemon.current.lock().await.1.root.clone();
            let failed_for = daemon.started.elapsed().min(Duration::from_secs(60));
            super::last_words::root_gave_up(&store, &root, &why, failed_for).await;
            Ended::Asked(exit::TREE_FAILED)
        }
        other => other,
    };
    let Ended::Asked(code) = ended else {
        // The store is gone: nothing left to flush.
        end_streams.send_replace(true);
        return Ok(ExitCode::from(exit::TREE_FAILED));
    };
    let mut code = exit_code(code, reason);
    // The shutdown's own events are written, and reach the streams before they end.
    let flushed = store.flush(Some(RUN_RECORD_TIMEOUT)).await;
    end_streams.send_replace(true);
    wait_for_streams(&slots).await;
    if let Err(e) = &flushed {
        // Stopped in order, but not everything was written: say so, and do not call the run
        // clean.
        let waiting = store.stats();
        tracing::error!(
            error = %e,
            lost = waiting.queued + waiting.inflight,
            "stopped with events the disk refused; they are lost"
        );
        code = exit::NOT_READY;
    }
    close_store(&store, run_id, code).await;
    Ok(ExitCode::from(code))
}

/// File descriptors kept for everything but control connections (the store, logs, the
/// listener, what actors open).
const RESERVED_FDS: u64 = 64;

/// Raises the soft limit on open files to the hard one, and fits the connection cap under it:
/// a daemon out of file descriptors cannot accept, so it could not even evict an idle client
/// to make room for the operator.
fn fit_connections(wanted: usize) -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!(error = %e, "cannot raise the open-files limit");
            limit = getrlimit(Resource::Nofile);
        }
    }
    let Some(soft) = limit.current else {
        return wanted;
    };
    let room = usize::try_from(soft.saturating_sub(RESERVED_FDS))
        .unwrap_or(usize::MAX)
        .max(2);
    if wanted > room {
        tracing::warn!(
            max_connections = wanted,
            open_files_limit = soft,
            "max_connections does not fit under the open-files limit; using {room}"
        );
        return room;
    }
    wanted
}

/// Gives streams a moment to send what they hold and their end line.
async fn wait_for_streams(slots: &Slots) {
    for _ in 0..40 {
        if slots.streams() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How the main loop ended.
enum Ended {
    /// A signal, `shutdown`, or the root's exit: this exit code, unless the shutdown itself
    /// goes badly.
    Asked(u8),
    /// The root supervisor exited (it gave up): the daemon sends its last alerts and exits
    /// with [`exit::TREE_FAILED`].
    RootExited(ExitReason),
    /// The store stopped (a bug in it): exit so the service manager restarts us.
    StoreDied,
}

/// Waits for a reason to stop; reloads on SIGHUP meanwhile.
async fn main_loop(
    daemon: &Arc<Daemon>,
    signals: &mut Signals,
    mut shutdown_rx: watch::Receiver<bool>,
    mut store_join: JoinHandle<()>,
) -> Ended {
    let root_exit = daemon.tree.exited();
    tokio::pin!(root_exit);
    loop {
        tokio::select! {
            _ = signals.int.recv() => {
                tracing::info!("SIGINT: shutting down");
                return Ended::Asked(exit::STOPPED);
            }
            _ = signals.term.recv() => {
                tracing::info!("SIGTERM: shutting down");
                return Ended::Asked(exit::STOPPED);
            }
            () = async { let _ = shutdown_rx.wait_for(|s| *s).await; } => {
                tracing::info!("shutdown requested over the control socket");
                return Ended::Asked(exit::STOPPED);
            }
            _ = signals.hup.recv() => reload_in_background(daemon.clone()),
            reason = &mut root_exit => {
                tracing::error!(%reason, "the root supervisor exited; exiting so the service manager restarts the daemon");
                return Ended::RootExited(reason);
            }
            _ = &mut store_join => {
                tracing::error!("the event store stopped; exiting so the service manager restarts the daemon");
                return Ended::StoreDied;
            }
        }
    }
}

/// SIGHUP: a reload in its own task, so a slow reload never holds up a signal or a shutdown.
fn reload_in_background(daemon: Arc<Daemon>) {
    tokio::spawn(async move {
        tracing::info!("SIGHUP: reloading");
        match daemon.reload().await {
            Ok(result) => tracing::info!(changes = result.changes.len(), "reloaded"),
            Err(error) => {
                tracing::error!("reload refused: {}", error.message);
                for line in error.details {
                    tracing::error!("{line}");
                }
            }
        }
    });
}

/// Marks the run as ended (with its exit code: only 0 is a clean stop), writes what is left,
/// and stops the store.
async fn close_store(store: &Store, run_id: Option<i64>, code: u8) {
    if let Some(id) = run_id {
        let op = DurableOp::RunEnded {
            id,
            stopped_ms: unix_ms(std::time::SystemTime::now()),
            exit_code: i32::from(code),
        };
        if let Err(e) = store.durable(op, Some(RUN_RECORD_TIMEOUT)).await {
            tracing::warn!(error = %e, "cannot record the end of this run");
        }
    }
    let _ = store.flush(Some(RUN_RECORD_TIMEOUT)).await;
    store.close().await;
}

/// The exit code of an orderly stop: what the main loop chose, unless the tree ended badly.
fn exit_code(chosen: u8, reason: ExitReason) -> u8 {
    match (chosen == exit::STOPPED, reason) {
        (true, ExitReason::Shutdown | ExitReason::Normal) => {
            tracing::info!("stopped");
            exit::STOPPED
        }
        (true, reason) => {
            tracing::error!(%reason, "the tree ended badly during shutdown");
            exit::TREE_FAILED
        }
        (false, _) => chosen,
    }
}
