//! The daemon: reads the config, opens the event store, starts the tree (the diff from an empty
//! root), serves the control socket, reloads on request or SIGHUP, and shuts down in order on
//! SIGINT/SIGTERM or `shutdown`: socket, tree (each supervisor stops its children in reverse
//! start order), then the store, so the tree's last events are written.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use metasystem_actors::store::{
    EventQuery, EventStore, EventStoreActor, EventStoreArgs, StoredEvent,
};
use metasystem_actors::{ExitReason, NodeSnapshot, NodeState, SupervisorSpec, Tree, TreeError};
use ractor::Actor;
use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, Mutex};

use crate::config::diff::plan;
use crate::config::{self, Config, DaemonConfig, Origin, SupervisorConfig};
use crate::control::protocol::{
    code, Change, Command, Event, EventsResult, Node, ReloadResult, Response, Status, TreeResult,
};
use crate::control::server;
use crate::wiring::{self, Services};

/// Exit code when the daemon cannot start because of its setup (invalid config, unusable state
/// dir or socket, another daemon already running): starting again would not help.
pub const EXIT_START_FAILED: u8 = 2;
/// Exit code when the tree failed: a child failed to start, the root supervisor gave up
/// (restart intensity reached), or the event store died. The service manager (systemd
/// `Restart=on-failure`, launchd `KeepAlive`) should start us again.
pub const EXIT_ROOT_GAVE_UP: u8 = 3;

/// Events are kept this long.
const EVENT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The running daemon, shared with the control connections.
pub struct Daemon {
    tree: Tree,
    store: EventStore,
    /// What actors are given (the store, the watchdog interval); kept for reloads.
    services: Services,
    /// `--config`, if given: every reload locates the file again from it, so a file created at
    /// the default place after the daemon started is picked up.
    config_arg: Option<PathBuf>,
    /// `[daemon]` as started: fixed for the daemon's life (reload only warns about changes).
    daemon: DaemonConfig,
    /// Where the running config came from, for `status` (updated by reloads).
    origin_shown: std::sync::Mutex<String>,
    /// The config the tree runs now and where it came from. A reload holds it throughout, from
    /// reading the file to the last step, so reloads apply one at a time and in order.
    current: Mutex<(Origin, Config)>,
    started: Instant,
    /// Set by the `shutdown` command; the main loop waits on it.
    shutdown: watch::Sender<bool>,
}

impl Daemon {
    pub async fn handle(&self, id: Option<u64>, command: Command) -> Response {
        match command {
            Command::Status => Response::ok(id, json!(self.status().await)),
            Command::Tree => Response::ok(
                id,
                json!(TreeResult {
                    nodes: self.tree.snapshot().await.iter().map(node).collect()
                }),
            ),
            Command::Start { path } => op(id, &path, self.tree.start_child(&path).await),
            Command::Stop { path } => op(id, &path, self.tree.stop(&path).await),
            Command::Restart { path } => op(id, &path, self.tree.restart(&path).await),
            Command::Kill { path } => op(id, &path, self.tree.inject_failure(&path).await),
            Command::Reload => match self.reload().await {
                Ok(result) => Response::ok(id, json!(result)),
                Err(response) => Response { id, ..response },
            },
            Command::Events {
                since_s,
                path,
                kind,
                limit,
            } => {
                let query = EventQuery {
                    since: since_s.map(|s| {
                        SystemTime::now()
                            .checked_sub(Duration::from_secs(s))
                            .unwrap_or(SystemTime::UNIX_EPOCH)
                    }),
                    path,
                    kind,
                    limit: limit.unwrap_or(1000).min(100_000),
                };
                match self.store.query(query).await {
                    Ok(events) => Response::ok(
                        id,
                        json!(EventsResult {
                            events: events.iter().map(event).collect()
                        }),
                    ),
                    Err(e) => Response::error(id, code::UNAVAILABLE, e),
                }
            }
            Command::Shutdown => {
                self.shutdown.send_replace(true);
                Response::ok(id, json!({ "shutting_down": true }))
            }
        }
    }

    async fn status(&self) -> Status {
        let nodes = self.tree.snapshot().await;
        let count = |s: NodeState| nodes.iter().filter(|n| n.state == s).count();
        let config = self
            .origin_shown
            .lock()
            .map(|o| o.clone())
            .unwrap_or_else(|e| e.into_inner().clone());
        let (running, restarting, stopped, failed) = (
            count(NodeState::Running),
            count(NodeState::Restarting),
            count(NodeState::Stopped),
            count(NodeState::Failed),
        );
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            uptime_s: self.started.elapsed().as_secs(),
            config,
            state_dir: self.daemon.state_dir.display().to_string(),
            socket: self.daemon.socket.display().to_string(),
            running,
            restarting,
            stopped,
            failed,
            healthy: restarting == 0 && failed == 0 && !nodes.is_empty(),
        }
    }

    /// Reads the config again; if it is valid, applies the difference to the running tree.
    /// If not, nothing changes and the error lists every problem.
    pub async fn reload(&self) -> Result<ReloadResult, Response> {
        let mut current = self.current.lock().await;
        let origin = config::locate(self.config_arg.as_deref());
        // The file is read on the blocking pool, not on the scheduler thread.
        let reading = origin.clone();
        let loaded = tokio::task::spawn_blocking(move || config::load(&reading))
            .await
            .map_err(|e| {
                Response::error(None, code::INTERNAL, format!("cannot read the config: {e}"))
            })?;
        let new = loaded.map_err(|errors| {
            let details: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
            Response::error_with(
                None,
                code::INVALID_CONFIG,
                format!(
                    "{} has {} error(s); nothing was changed",
                    origin.display(),
                    details.len()
                ),
                details,
            )
        })?;
        notify(&[sd_notify::NotifyState::Reloading]);
        let mut warnings = Vec::new();
        if origin != current.0 {
            warnings.push(format!(
                "the config now comes from {} (was {})",
                origin.display(),
                current.0.display()
            ));
        }
        let (old_d, new_d) = (&self.daemon, &new.daemon);
        for (changed, key) in [
            (old_d.state_dir != new_d.state_dir, "state_dir"),
            (old_d.socket != new_d.socket, "socket"),
            (
                old_d.max_connections != new_d.max_connections,
                "max_connections",
            ),
        ] {
            if changed {
                warnings.push(format!(
                    "[daemon] {key} changed: it takes effect when the daemon restarts"
                ));
            }
        }
        if self.services.watchdog.is_some() && !wiring::has_heartbeat(&new.root) {
            warnings.push(
                "the systemd watchdog is on and the new tree has no heartbeat: systemd will restart the daemon".into(),
            );
        }
        let steps = plan("root", &current.1.root, &new.root);
        let applied = wiring::apply(&self.tree, &steps, &new.root, &self.services, false).await;
        if let Ok(mut shown) = self.origin_shown.lock() {
            *shown = origin.display();
        }
        *current = (origin.clone(), new);
        drop(current);
        notify(&[sd_notify::NotifyState::Ready]);
        let changes: Vec<Change> = applied
            .into_iter()
            .map(|a| Change {
                action: a.action.to_string(),
                path: a.path,
                error: a.error,
                note: a.note,
            })
            .collect();
        for c in &changes {
            match &c.error {
                None => {
                    tracing::info!(action = %c.action, path = %c.path, note = ?c.note, "reload")
                }
                Some(e) => tracing::warn!(action = %c.action, path = %c.path, error = %e, "reload"),
            }
        }
        let mut record =
            StoredEvent::new("root", "reloaded", format!("{} change(s)", changes.len()));
        record.data = json!({ "changes": changes.len(), "config": origin.display() });
        self.store.record(record);
        Ok(ReloadResult {
            config: origin.display(),
            changes,
            warnings,
        })
    }
}

fn op(id: Option<u64>, path: &str, result: Result<(), TreeError>) -> Response {
    match result {
        Ok(()) => Response::ok(id, json!({ "path": path })),
        Err(e) => {
            let code = match &e {
                TreeError::NotFound(_) => code::NOT_FOUND,
                TreeError::InvalidPath(_) => code::INVALID_PATH,
                TreeError::Root => code::ROOT,
                TreeError::NotASupervisor(_) => code::NOT_A_SUPERVISOR,
                TreeError::AlreadyExists(_) => code::ALREADY_EXISTS,
                TreeError::AlreadyRunning(_) => code::ALREADY_RUNNING,
                TreeError::NotRunning(_) => code::NOT_RUNNING,
                TreeError::Invalid(_) => code::BAD_REQUEST,
                TreeError::StartFailed { .. } => code::START_FAILED,
                TreeError::Unavailable => code::UNAVAILABLE,
            };
            Response::error(id, code, e.to_string())
        }
    }
}

fn node(n: &NodeSnapshot) -> Node {
    Node {
        path: n.path.clone(),
        name: n.name.clone(),
        depth: n.depth,
        kind: n.kind.clone(),
        state: n.state.as_str().to_string(),
        restart: n.restart.as_str().to_string(),
        restarts: n.restarts,
        incarnation: n.incarnation,
        strategy: n.strategy.map(|s| s.as_str().to_string()),
        last_exit: n.last_exit.as_ref().map(|r| r.to_string()),
        uptime_s: n.uptime.map(|d| d.as_secs_f64()),
        restart_in_s: n.restart_in.map(|d| d.as_secs_f64()),
        error: n.error.clone(),
        unresponsive: n.unresponsive,
    }
}

fn event(e: &StoredEvent) -> Event {
    Event {
        at: humantime::format_rfc3339_millis(e.at).to_string(),
        at_ms: e.at_ms(),
        path: e.path.clone(),
        kind: e.kind.clone(),
        message: e.message.clone(),
        data: e.data.clone(),
    }
}

/// Tells systemd (when it started us with NOTIFY_SOCKET); a no-op otherwise.
fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// The systemd watchdog interval, with libsystemd's `sd_watchdog_enabled` rules: WATCHDOG_USEC
/// set and positive, and WATCHDOG_PID, when set, naming this process. (The sd-notify crate also
/// insists on WATCHDOG_PID being present, which libsystemd does not.)
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Runs the daemon in the foreground until SIGINT/SIGTERM or `shutdown` (exit 0), until the
/// tree fails ([`EXIT_ROOT_GAVE_UP`]), or fails to start ([`EXIT_START_FAILED`]).
pub async fn run(config_arg: Option<PathBuf>) -> ExitCode {
    let origin = config::locate(config_arg.as_deref());
    let reading = origin.clone();
    let loaded = tokio::task::spawn_blocking(move || config::load(&reading)).await;
    let config = match loaded {
        Ok(Ok(c)) => c,
        Ok(Err(errors)) => {
            for e in &errors.0 {
                tracing::error!("{e}");
            }
            eprintln!("{errors}");
            return ExitCode::from(EXIT_START_FAILED);
        }
        Err(e) => {
            tracing::error!("cannot read the config: {e}");
            return ExitCode::from(EXIT_START_FAILED);
        }
    };
    match start_and_serve(config_arg, origin, config).await {
        Ok(code) => code,
        Err(Failure::Setup(message)) => {
            tracing::error!("{message}");
            ExitCode::from(EXIT_START_FAILED)
        }
        Err(Failure::Tree(message)) => {
            tracing::error!("{message}");
            ExitCode::from(EXIT_ROOT_GAVE_UP)
        }
    }
}

/// Why the daemon could not start.
enum Failure {
    /// The setup is wrong (state dir, socket, another daemon): exit 2.
    Setup(String),
    /// The tree could not start (a child failed): exit 3, worth retrying.
    Tree(String),
}

async fn start_and_serve(
    config_arg: Option<PathBuf>,
    origin: Origin,
    config: Config,
) -> Result<ExitCode, Failure> {
    let (mut sigint, mut sigterm, mut sighup) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(i), Ok(t), Ok(h)) => (i, t, h),
        _ => return Err(Failure::Setup("cannot install signal handlers".into())),
    };
    server::private_dir(&config.daemon.state_dir, true).map_err(Failure::Setup)?;
    // One daemon per state dir, held until we exit.
    let _lock = server::lock_state_dir(&config.daemon.state_dir).map_err(Failure::Setup)?;
    // Then the socket: if another daemon answers there we stop before touching anything else.
    let listener = server::bind(&config.daemon.socket).map_err(Failure::Setup)?;
    let socket = config.daemon.socket.clone();
    let db = config.daemon.state_dir.join("metastore.db");
    let spawned = Actor::spawn(
        None,
        EventStoreActor,
        EventStoreArgs {
            path: db.clone(),
            retention: EVENT_RETENTION,
        },
    )
    .await;
    let (store_ref, mut store_join) = match spawned {
        Ok(started) => started,
        Err(e) => {
            let _ = std::fs::remove_file(&socket);
            return Err(Failure::Setup(format!(
                "cannot open the event store {}: {e}",
                db.display()
            )));
        }
    };
    let store = EventStore::new(store_ref);
    let services = Services {
        store: store.clone(),
        watchdog: watchdog_interval(),
    };
    if services.watchdog.is_some() && !wiring::has_heartbeat(&config.root) {
        tracing::warn!(
            "the systemd watchdog is on but the tree has no heartbeat: systemd will kill the daemon; add a `kind = \"heartbeat\"` child"
        );
    }
    // Undo what started, for a failed start.
    let abandon = |store: EventStore, message: String| {
        let socket = socket.clone();
        async move {
            let _ = store.flush().await;
            store.actor().stop(None);
            let _ = std::fs::remove_file(&socket);
            Failure::Tree(message)
        }
    };

    // Startup is the diff from a root with no children.
    let empty_root = SupervisorConfig {
        settings: config.root.settings,
        children: Vec::new(),
    };
    let tree = match Tree::start(
        SupervisorSpec::default().with_settings(config.root.settings),
        store.sink(),
    )
    .await
    {
        Ok(tree) => tree,
        Err(e) => return Err(abandon(store, e.to_string()).await),
    };
    let steps = plan("root", &empty_root, &config.root);
    let applied = wiring::apply(&tree, &steps, &config.root, &services, true).await;
    if let Some(failed) = applied.iter().find(|a| a.error.is_some()) {
        let message = format!(
            "startup failed: {} {}: {}",
            failed.action,
            failed.path,
            failed.error.as_deref().unwrap_or("")
        );
        tree.shutdown().await;
        return Err(abandon(store, message).await);
    }

    let (shutdown_tx, mut shutdown_rx) = watch::channel(false);
    let (stop_server, server_stop) = watch::channel(false);
    let max_connections = config.daemon.max_connections;
    let daemon = Arc::new(Daemon {
        tree,
        store: store.clone(),
        services,
        config_arg,
        daemon: config.daemon.clone(),
        origin_shown: std::sync::Mutex::new(origin.display()),
        current: Mutex::new((origin.clone(), config)),
        started: Instant::now(),
        shutdown: shutdown_tx,
    });
    let server = tokio::spawn(server::serve(
        listener,
        socket.clone(),
        daemon.clone(),
        max_connections,
        server_stop,
    ));
    tracing::info!(
        pid = std::process::id(),
        config = %origin.display(),
        socket = %socket.display(),
        "metasystem running"
    );
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("running"),
    ]);

    let root_exit = daemon.tree.exited();
    tokio::pin!(root_exit);
    let code = loop {
        tokio::select! {
            _ = sigint.recv() => {
                tracing::info!("SIGINT: shutting down");
                break ExitCode::SUCCESS;
            }
            _ = sigterm.recv() => {
                tracing::info!("SIGTERM: shutting down");
                break ExitCode::SUCCESS;
            }
            () = async { let _ = shutdown_rx.wait_for(|s| *s).await; } => {
                tracing::info!("shutdown requested over the control socket");
                break ExitCode::SUCCESS;
            }
            _ = sighup.recv() => {
                // In its own task: a slow reload never holds up a signal or a shutdown.
                let daemon = daemon.clone();
                tokio::spawn(async move {
                    tracing::info!("SIGHUP: reloading");
                    match daemon.reload().await {
                        Ok(result) => tracing::info!(changes = result.changes.len(), "reloaded"),
                        Err(response) => {
                            if let Some(error) = response.error {
                                tracing::error!("reload refused: {}", error.message);
                                for line in error.details {
                                    tracing::error!("{line}");
                                }
                            }
                        }
                    }
                });
            }
            reason = &mut root_exit => {
                tracing::error!(%reason, "the root supervisor exited; exiting so the service manager restarts the daemon");
                break ExitCode::from(EXIT_ROOT_GAVE_UP);
            }
            _ = &mut store_join => {
                tracing::error!("the event store stopped; exiting so the service manager restarts the daemon");
                stop_server.send_replace(true);
                let _ = server.await;
                daemon.tree.shutdown().await;
                return Ok(ExitCode::from(EXIT_ROOT_GAVE_UP));
            }
        }
    };
    notify(&[sd_notify::NotifyState::Stopping]);
    stop_server.send_replace(true);
    let _ = server.await;
    let reason = daemon.tree.shutdown().await;
    if let Err(e) = store.flush().await {
        tracing::error!(error = %e, "could not write the last events");
    }
    store.actor().stop(None);
    let _ = store_join.await;
    match (code == ExitCode::SUCCESS, reason) {
        (true, ExitReason::Shutdown | ExitReason::Normal) => {
            tracing::info!("stopped");
            Ok(ExitCode::SUCCESS)
        }
        (true, reason) => {
            tracing::error!(%reason, "the tree ended badly during shutdown");
            Ok(ExitCode::from(EXIT_ROOT_GAVE_UP))
        }
        (false, _) => Ok(code),
    }
}
