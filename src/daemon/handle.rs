//! Answering control requests: one typed command in, one response out.

use std::sync::Arc;
use std::time::Duration;

use metasystem_actors::store::{self, EventQuery};
use metasystem_actors::{NodeSnapshot, NodeState, TreeError};

use super::sync::SyncOpts;
use super::Daemon;
use crate::control::protocol::{
    code, AlertsResult, AnomaliesResult, BackupsResult, BreakerRow, BreakersResult, ChaosRun,
    ChaosStatusResult, ChaosStopResult, Command, ConflictsResult, Event, EventsCursor,
    EventsResult, Failure, HealResult, HealthResult, LogsResult, MetricsResult, Node, OpInfo,
    OpsResult, ReloadResult, Response, RetriesResult, Status, StreamItem, SyncResult,
    SyncStatusResult, TreeResult,
};
use crate::control::request::{self, Done, Request, ShuttingDown, Silences};
use crate::kinds::{CallCx, Kind};
use metasystem_actors::alerts::actor::TestReport;
use metasystem_actors::sync::backups::{Restored, RestoredSet};
use metasystem_actors::sync::verify::VerifyReport;
use metasystem_actors::sync::Resolution;
use std::future::Future;

/// How long an actor may take to answer a `call`.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many events in one reply; the reply says where the next page starts.
pub const EVENTS_PAGE: usize = 500;
/// A page also ends once its events take this many bytes of JSON.
const EVENTS_PAGE_BYTES: usize = 512 * 1024;
/// `events` asks for at most this many in all (over as many pages as it takes).
pub const MAX_EVENTS: usize = 1_000_000;
/// Before the first page, the store is given this long to write what waits, so an event
/// recorded just before the request is in the answer (when the disk takes writes).
const EVENTS_FLUSH: Duration = Duration::from_millis(500);

/// A command the daemon answers: [`Handler::handle`] is its one handler, whose answer type
/// is the command's [`Request::Response`].
pub(crate) trait Handler: Request {
    fn handle(self, d: &Arc<Daemon>) -> impl Future<Output = Answer<Self::Response>> + Send;
}

/// What a handler answers: its command's result, or why not.
pub(crate) type Answer<T> = Result<T, Failure>;

/// `Daemon::handle`, one arm per command of the list (`control::request`): a command without
/// a [`Handler`] does not compile.
macro_rules! dispatch {
    ($($variant:ident ($ty:ty) = $name:literal => $response:ty, read_only: $ro:expr;)+) => {
        impl Daemon {
            pub async fn handle(self: &Arc<Self>, id: Option<u64>, command: Command) -> Response {
                match command {
                    $(Command::$variant(r) => Response::answer(id, r.handle(self).await)),+
                }
            }
        }
    };
}
crate::control::request::with_requests!(dispatch);

impl Handler for request::Hosts {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<crate::kinds::sync_hosts::HostsResult> {
        d.hosts(self).await
    }
}

impl Handler for request::Status {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<Status> {
        Ok(d.status().await)
    }
}

impl Handler for request::Tree {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<TreeResult> {
        let snapshot = d.tree.snapshot().await;
        Ok(TreeResult {
            healthy: healthy(&snapshot),
            nodes: snapshot.iter().map(node).collect(),
        })
    }
}

impl Handler for request::Start {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<Done> {
        done(&self.path, d.tree.start_child(&self.path).await)
    }
}

impl Handler for request::Stop {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<Done> {
        done(&self.path, d.tree.stop(&self.path).await)
    }
}

impl Handler for request::Restart {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<Done> {
        done(&self.path, d.tree.restart(&self.path).await)
    }
}

impl Handler for request::Kill {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<Done> {
        done(&self.path, d.tree.inject_failure(&self.path).await)
    }
}

impl Handler for request::Reload {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<ReloadResult> {
        if self.dry_run {
            d.plan_reload().await
        } else {
            d.reload().await
        }
    }
}

impl Handler for request::Events {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<EventsResult> {
        let query = events_query(self.since_s, self.path, self.kind)
            .map_err(|message| Failure::new(code::BAD_REQUEST, message))?;
        d.events(&query, self.limit, self.after).await
    }
}

impl Handler for request::Shutdown {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<ShuttingDown> {
        d.shutdown.send_replace(true);
        Ok(ShuttingDown {
            shutting_down: true,
        })
    }
}

impl Handler for request::Subscribe {
    /// The server turns the connection into a stream (`Daemon::stream`) before this.
    async fn handle(self, _: &Arc<Daemon>) -> Answer<StreamItem> {
        Err(Failure::new(
            code::BAD_REQUEST,
            "subscribe is answered as a stream on its own connection",
        ))
    }
}

impl Handler for request::Call {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<serde_json::Value> {
        d.call(&self.path, self.op, self.args).await
    }
}

impl Handler for request::Metrics {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<MetricsResult> {
        d.metrics(self.name, self.since_s).await
    }
}

impl Handler for request::Anomalies {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<AnomaliesResult> {
        d.anomalies(self.since_s).await
    }
}

impl Handler for request::Alerts {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<AlertsResult> {
        d.alerts(self.limit).await
    }
}

impl Handler for request::AlertTest {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<TestReport> {
        d.alert_test(self.channel).await
    }
}

impl Handler for request::AlertSilence {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<Silences> {
        d.alert_silence(self.pattern, self.for_s).await
    }
}

impl Handler for request::Breakers {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<BreakersResult> {
        d.breakers().await
    }
}

impl Handler for request::BreakerOp {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<BreakerRow> {
        d.breaker_op(&self.name, self.op)
    }
}

impl Handler for request::Chaos {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<ChaosRun> {
        let every = (self.every_min_ms, self.every_max_ms);
        d.chaos_start(self.path, self.for_ms, every, self.seed)
            .await
    }
}

impl Handler for request::ChaosStop {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<ChaosStopResult> {
        d.chaos_stop().await
    }
}

impl Handler for request::ChaosStatus {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<ChaosStatusResult> {
        d.chaos_status(self.from)
    }
}

impl Handler for request::Health {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<HealthResult> {
        d.health_now().await
    }
}

impl Handler for request::Probes {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<HealthResult> {
        d.probes_latest()
    }
}

impl Handler for request::Sync {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<SyncResult> {
        let opts = SyncOpts {
            direction: self.direction,
            strategy: self.strategy,
            dry_run: self.dry_run,
            lock_wait: self.lock_wait_ms.map(Duration::from_millis),
            allow_deletes: self.allow_deletes,
        };
        d.sync_now(self.target, opts).await
    }
}

impl Handler for request::SyncStatus {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<SyncStatusResult> {
        d.sync_status().await
    }
}

impl Handler for request::Conflicts {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<ConflictsResult> {
        d.conflicts(self.target, self.all).await
    }
}

impl Handler for request::Backups {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<BackupsResult> {
        d.backups(self.target).await
    }
}

impl Handler for request::BackupRestore {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<Restored> {
        d.backup_restore(self.name, self.target).await
    }
}

impl Handler for request::BackupRestoreRun {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<RestoredSet> {
        d.backup_restore_run(self.run, self.since_unix_ms, self.target)
            .await
    }
}

impl Handler for request::Verify {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<VerifyReport> {
        let specs = d.services.sync.specs();
        Ok(metasystem_actors::sync::verify::verify(&specs).await)
    }
}

impl Handler for request::ConflictResolve {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<Resolution> {
        d.conflict_resolve(self.path, self.target, self.keep).await
    }
}

impl Handler for request::Heal {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<HealResult> {
        d.heal_history(self.since_s).await
    }
}

impl Handler for request::Retries {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<RetriesResult> {
        d.retries(self.since_s, self.op).await
    }
}

impl Handler for request::Logs {
    async fn handle(self, d: &Arc<Daemon>) -> Answer<LogsResult> {
        if self.follow {
            return Err(Failure::new(
                code::BAD_REQUEST,
                "logs --follow is answered as a stream on its own connection",
            ));
        }
        d.logs(self).await
    }
}

impl Daemon {
    /// One page of events: the most recent `limit` (oldest first), or the next `limit` after
    /// the cursor `after`.
    async fn events(
        &self,
        query: &EventQuery,
        limit: Option<usize>,
        after: Option<i64>,
    ) -> Answer<EventsResult> {
        let limit = match limit {
            None => 1000,
            Some(n) if (1..=MAX_EVENTS).contains(&n) => n,
            Some(n) => {
                return Err(Failure::new(
                    code::BAD_REQUEST,
                    format!("`limit` is {n}: it must be between 1 and {MAX_EVENTS}"),
                ))
            }
        };
        let reader = self.store.reader();
        let mut high_water = None;
        let after = match after {
            Some(after) => Some(after),
            None => {
                // Best effort: a disk that refuses writes must not hold up reading.
                let _ = self.store.flush(Some(EVENTS_FLUSH)).await;
                high_water = match store::events::last_id(reader).await {
                    Ok(last) => Some(last.unwrap_or(0)),
                    Err(e) => return Err(e.into()),
                };
                match store::events::last_n_cursor(reader, query, limit).await {
                    Ok(cursor) => cursor,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let want = limit.min(EVENTS_PAGE);
        let rows = match store::events::page(reader, query, after, want).await {
            Ok(rows) => rows,
            Err(e) => return Err(e.into()),
        };
        let mut events = Vec::with_capacity(rows.len());
        let mut bytes = 0;
        for row in &rows {
            let e = Event::from(row);
            bytes += serde_json::to_string(&e).map(|t| t.len()).unwrap_or(0);
            events.push(e);
            if bytes >= EVENTS_PAGE_BYTES {
                break;
            }
        }
        let remaining = limit - events.len();
        let full_page = events.len() < rows.len() || rows.len() == want;
        let next = match events.last() {
            Some(last) if remaining > 0 && full_page => Some(EventsCursor {
                after: last.id,
                remaining,
            }),
            _ => None,
        };
        Ok(EventsResult {
            events,
            high_water,
            next,
        })
    }

    /// `call PATH [OP] [ARGS]`: routed to the handler of the actor's kind.
    async fn call(
        &self,
        path: &str,
        op: Option<String>,
        args: serde_json::Value,
    ) -> Answer<serde_json::Value> {
        let kind = match self.tree.kind_of(path).await {
            Ok(kind) => kind,
            Err(e) => return Err(e.into()),
        };
        let ops = Kind::ops(&kind).unwrap_or(&[]);
        let Some(op) = op else {
            return crate::kinds::reply(&OpsResult {
                path: path.to_string(),
                kind,
                ops: ops
                    .iter()
                    .map(|o| OpInfo {
                        name: o.name.to_string(),
                        args: o.args.to_string(),
                        summary: o.summary.to_string(),
                    })
                    .collect(),
            });
        };
        let cx = CallCx {
            tree: &self.tree,
            path,
            services: &self.services,
            timeout: CALL_TIMEOUT,
        };
        Kind::call(&kind, cx, &op, args).await
    }

    /// What the kinds are given to say their parts of `status` and `/health`.
    pub(crate) fn view<'a>(&'a self, nodes: &'a [NodeSnapshot]) -> crate::kinds::ViewCx<'a> {
        crate::kinds::ViewCx {
            tree: &self.tree,
            services: &self.services,
            nodes,
        }
    }

    pub(super) async fn status(&self) -> Status {
        let nodes = self.tree.snapshot().await;
        self.status_of(&nodes).await
    }

    /// `status` of the tree `nodes`, and `/health`'s checks of the kinds, of one snapshot.
    pub(crate) async fn health(&self) -> (Status, crate::kinds::HealthPart) {
        let nodes = self.tree.snapshot().await;
        let status = self.status_of(&nodes).await;
        (status, Kind::health(&self.view(&nodes)).await)
    }

    async fn status_of(&self, nodes: &[NodeSnapshot]) -> Status {
        let count = |s: NodeState| nodes.iter().filter(|n| n.state == s).count();
        let unresponsive = nodes.iter().filter(|n| n.unresponsive).count();
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
        // Writes failing now is unhealthy: events are piling up or being dropped.
        let store = self.store.stats();
        Status {
            version: crate::VERSION.to_string(),
            pid: std::process::id(),
            uptime_s: self.started.elapsed().as_secs(),
            config,
            state_dir: self.daemon.state_dir.display().to_string(),
            socket: self.daemon.socket.display().to_string(),
            running,
            restarting,
            stopped,
            failed,
            unresponsive,
            healthy: healthy(nodes) && store.failing_since_ms.is_none(),
            store,
            log_lines_dropped: crate::telemetry::lines_dropped(),
            log_file: crate::telemetry::file_status(),
            previous_run: self.previous_run.clone(),
            alerts_undelivered: store::outbox::undelivered(self.store.reader())
                .await
                .unwrap_or(0),
            kinds: Kind::status(&self.view(nodes)).await,
        }
    }
}

/// The tree is healthy when it runs and no node is failed, restarting, or a supervisor that
/// did not answer (its children are then missing from the snapshot: nothing can be said of
/// them).
pub(super) fn healthy(nodes: &[NodeSnapshot]) -> bool {
    !nodes.is_empty()
        && nodes.iter().all(|n| {
            !n.unresponsive && !matches!(n.state, NodeState::Failed | NodeState::Restarting)
        })
}

/// The answer to start/stop/restart/kill. Starting what runs and stopping what is stopped
/// answer alike (like systemctl): done, nothing changed.
fn done(path: &str, result: Result<(), TreeError>) -> Answer<Done> {
    let unchanged = |state: &str| {
        Ok(Done {
            path: path.to_string(),
            changed: false,
            state: Some(state.to_string()),
        })
    };
    match result {
        Ok(()) => Ok(Done {
            path: path.to_string(),
            changed: true,
            state: None,
        }),
        Err(TreeError::AlreadyRunning(_)) => unchanged("running"),
        Err(TreeError::AlreadyStopped(_)) => unchanged("stopped"),
        Err(e) => Err(e.into()),
    }
}

fn node(n: &NodeSnapshot) -> Node {
    Node {
        path: n.path.clone(),
        name: n.name.clone(),
        depth: n.depth,
        kind: n.kind.clone(),
        state: n.state,
        restart: n.restart,
        restarts: n.restarts,
        incarnation: n.incarnation,
        strategy: n.strategy,
        last_exit: n.last_exit.as_ref().map(|r| r.to_string()),
        uptime_s: n.uptime.map(|d| d.as_secs_f64()),
        restart_in_s: n.restart_in.map(|d| d.as_secs_f64()),
        error: n.error.clone(),
        unresponsive: n.unresponsive,
    }
}

/// The filters of `events`, checked: an unknown kind is a typo, not an empty answer.
pub(super) fn events_query(
    since_s: Option<u64>,
    path: Option<String>,
    kind: Option<String>,
) -> Result<EventQuery, String> {
    if let Some(path) = &path {
        metasystem_actors::supervision::tree::check_path(path).map_err(|e| e.to_string())?;
    }
    if let Some(kind) = &kind {
        if !store::events::KINDS.contains(&kind.as_str()) {
            let hint = match crate::config::reader::suggest(kind, store::events::KINDS) {
                Some(close) => format!("; did you mean `{close}`?"),
                None => String::new(),
            };
            return Err(format!(
                "unknown event kind `{kind}`: it must be {}{hint}",
                crate::config::reader::one_of(store::events::KINDS)
            ));
        }
    }
    Ok(EventQuery {
        since: since_s.map(|s| super::queries::window_start(Some(s), Duration::ZERO)),
        path,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use metasystem_actors::{NodeSnapshot, NodeState, Restart};

    fn node(path: &str, state: NodeState, unresponsive: bool) -> NodeSnapshot {
        NodeSnapshot {
            path: path.into(),
            name: path.rsplit('/').next().unwrap_or(path).into(),
            depth: path.matches('/').count(),
            kind: "supervisor".into(),
            restart: Restart::Permanent,
            state,
            restarts: 0,
            incarnation: 1,
            last_exit: None,
            uptime: None,
            restart_in: None,
            error: None,
            strategy: None,
            unresponsive,
        }
    }

    /// Regression: `status` said healthy while a supervisor did not answer and its children
    /// were missing (5 of ~22k replies under chaos).
    #[test]
    fn an_unresponsive_supervisor_is_unhealthy() {
        let running = |p| node(p, NodeState::Running, false);
        assert!(super::healthy(&[running("root"), running("root/a")]));
        assert!(!super::healthy(&[
            running("root"),
            node("root/grp", NodeState::Running, true)
        ]));
        assert!(!super::healthy(&[
            running("root"),
            node("root/a", NodeState::Restarting, false)
        ]));
        assert!(!super::healthy(&[
            running("root"),
            node("root/a", NodeState::Failed, false)
        ]));
        assert!(super::healthy(&[
            running("root"),
            node("root/a", NodeState::Stopped, false)
        ]));
        assert!(!super::healthy(&[]));
    }
}
