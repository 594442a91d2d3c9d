//! The breakers actor end to end: a real store on a temp file, the actor spawned directly with a
//! shared registry, its slot, and the metrics and alerts handles (no metrics actor: samples go
//! straight to the store; no alerts actor unless a test starts one: an alert is an unrouted
//! `alert` event).
//!
//! Real clock with short waits (an OPEN of 100-200 ms, a half-open deadline of 300 ms): the
//! actor's timer is what is tested, and SQLite does real I/O on its own threads. Every wait polls
//! with a deadline.

use std::future::Future;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use metasystem_actors::alerts::actor::{AlertsActor, AlertsArgs};
use metasystem_actors::alerts::channel::{ChannelKind, ChannelSpec};
use metasystem_actors::alerts::{Alerts, PerSeverity, Policy, Status};
use metasystem_actors::breakers::actor::{
    alert_key, BreakerStatus, BreakersActor, BreakersArgs, BreakersMessage,
};
use metasystem_actors::breakers::{
    BreakerConfig, Breakers, Rejected, Snapshot, State, StateName, Transition,
};
use metasystem_actors::metrics::Metrics;
use metasystem_actors::slot::Slot;
use metasystem_actors::store::health::{self, BreakerRow, TransitionRow};
use metasystem_actors::store::outbox;
use metasystem_actors::store::{events, samples, EventQuery, EventRow, Store};
use ractor::{Actor, ActorRef};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// No wait in these tests lasts longer than this.
const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(10);
const PATH: &str = "root/breakers";

async fn bounded<T>(f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(30), f).await {
        Ok(v) => v,
        Err(_) => panic!("step took longer than 30s"),
    }
}

async fn open_store(dir: &tempfile::TempDir) -> Store {
    match Store::open(&dir.path().join("b.db"), Duration::from_secs(24 * 3600)).await {
        Ok((store, _)) => store,
        Err(e) => panic!("store did not open: {e}"),
    }
}

/// Fails with 3 in a row, closes after 2 trial successes, OPEN for `open_for` (doubling).
fn config(open_for: Duration) -> BreakerConfig {
    BreakerConfig {
        failure_threshold: 3,
        success_threshold: 2,
        open_for,
        open_for_max: open_for * 2,
        half_open_calls: 1,
        half_open_max_wait: Duration::from_secs(5),
        ..BreakerConfig::default()
    }
}

/// What one incarnation of the actor is started with; what a daemon restart renews.
#[derive(Clone)]
struct Handles {
    store: Store,
    registry: Breakers,
    slot: Slot<BreakersMessage>,
    metrics: Metrics,
    alerts: Alerts,
}

impl Handles {
    fn new(store: &Store) -> Handles {
        Handles {
            store: store.clone(),
            registry: Breakers::new(),
            slot: Slot::default(),
            metrics: Metrics::new(store.clone()),
            alerts: Alerts::new(store.clone()),
        }
    }

    fn args(&self, breakers: &[(&str, BreakerConfig)]) -> BreakersArgs {
        BreakersArgs {
            path: PATH.into(),
            store: self.store.clone(),
            registry: self.registry.clone(),
            slot: self.slot.clone(),
            metrics: self.metrics.clone(),
            alerts: self.alerts.clone(),
            breakers: breakers
                .iter()
                .map(|(n, c)| (n.to_string(), c.clone()))
                .collect(),
        }
    }
}

struct Running {
    actor: ActorRef<BreakersMessage>,
    join: JoinHandle<()>,
}

impl Running {
    async fn start(h: &Handles, breakers: &[(&str, BreakerConfig)]) -> Running {
        match Actor::spawn(None, BreakersActor, h.args(breakers)).await {
            Ok((actor, join)) => Running { actor, join },
            Err(e) => panic!("breakers actor did not start: {e}"),
        }
    }

    async fn status(&self) -> Vec<BreakerStatus> {
        match ractor::call!(self.actor, BreakersMessage::Status) {
            Ok(s) => s,
            Err(e) => panic!("status: {e}"),
        }
    }

    async fn stop(self) {
        self.actor.stop(None);
        if let Err(e) = bounded(self.join).await {
            panic!("the actor's task failed: {e}");
        }
    }
}

fn fail(registry: &Breakers, name: &str) {
    let b = registry.get(name).expect("configured");
    let permit = b.allow().expect("allowed");
    b.record(permit, false);
}

fn succeed(registry: &Breakers, name: &str) {
    let b = registry.get(name).expect("configured");
    let permit = b.allow().expect("allowed");
    b.record(permit, true);
}

async fn stored(store: &Store) -> Vec<BreakerRow> {
    health::breakers(store.reader()).await.expect("breakers")
}

async fn stored_one(store: &Store, name: &str) -> Option<(BreakerRow, Snapshot)> {
    let row = stored(store).await.into_iter().find(|r| r.name == name)?;
    let snapshot: Snapshot = serde_json::from_value(row.snapshot.clone()).expect("a snapshot");
    Some((row, snapshot))
}

/// Oldest first.
async fn transitions(store: &Store, name: &str) -> Vec<TransitionRow> {
    let mut rows = health::transitions(store.reader(), Some(name), 1000)
        .await
        .expect("transitions");
    rows.reverse();
    rows
}

fn path_of(rows: &[TransitionRow]) -> Vec<(String, String)> {
    rows.iter()
        .map(|t| (t.from.clone(), t.to.clone()))
        .collect()
}

fn pair(from: &str, to: &str) -> (String, String) {
    (from.to_string(), to.to_string())
}

/// Polls until the stored row of `name` is in `state`; its row and snapshot.
async fn stored_until(store: &Store, name: &str, state: &str) -> (BreakerRow, Snapshot) {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = stored_one(store, name).await;
        if let Some((row, snapshot)) = &found {
            if row.state == state {
                return (row.clone(), snapshot.clone());
            }
        }
        if Instant::now() >= deadline {
            panic!("breaker {name} never stored as {state}: {found:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls until `name` has at least `n` stored transitions; all of them, oldest first.
async fn transitions_until(store: &Store, name: &str, n: usize) -> Vec<TransitionRow> {
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = transitions(store, name).await;
        if rows.len() >= n {
            return rows;
        }
        if Instant::now() >= deadline {
            panic!("breaker {name}: fewer than {n} transitions stored: {rows:#?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls until the live breaker is in `state` (no call made meanwhile).
async fn live_until(registry: &Breakers, name: &str, state: StateName) {
    let b = registry.get(name).expect("configured");
    let deadline = Instant::now() + WAIT;
    while b.state() != state {
        if Instant::now() >= deadline {
            panic!("breaker {name} never became {state}: {:?}", b.snapshot());
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn events_of(store: &Store, kind: &str) -> Vec<EventRow> {
    store
        .flush(Some(Duration::from_secs(10)))
        .await
        .expect("flush");
    let query = EventQuery {
        kind: Some(kind.into()),
        ..Default::default()
    };
    events::page(store.reader(), &query, None, 1000)
        .await
        .expect("events")
}

/// `(value, ok)` of every `breaker_transitions` sample of `name`, oldest first.
async fn transition_samples(store: &Store, name: &str) -> Vec<Option<bool>> {
    store
        .flush(Some(Duration::from_secs(10)))
        .await
        .expect("flush");
    samples::raw(store.reader(), "breaker_transitions", Some(name), 0, 1000)
        .await
        .expect("samples")
        .into_iter()
        .map(|(_, _, _, ok)| ok)
        .collect()
}

#[tokio::test]
async fn failures_open_it_the_timer_half_opens_it_and_trials_close_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    let h = Handles::new(&store);
    // Long enough for the checks while it is open to see it open, even on a loaded machine.
    let open_for = Duration::from_millis(500);
    let running = Running::start(&h, &[("db", config(open_for))]).await;
    let db = h.registry.get("db").expect("the actor fills the registry");
    assert_eq!(db.state(), StateName::Closed);
    assert_eq!(
        h.slot.get().map(|a| a.get_id()),
        Some(running.actor.get_id())
    );

    // Two failures, a success (the run starts again), then three: open.
    fail(&h.registry, "db");
    fail(&h.registry, "db");
    succeed(&h.registry, "db");
    fail(&h.registry, "db");
    fail(&h.registry, "db");
    assert_eq!(db.state(), StateName::Closed);
    fail(&h.registry, "db");
    assert_eq!(db.state(), StateName::Open);
    let rejected = db.allow().expect_err("open rejects");
    assert_eq!(rejected.state, StateName::Open);
    assert!(rejected.retry_after.is_some_and(|d| d <= open_for));

    // Persisted on the durable lane: the state and the transition.
    let (row, snap) = stored_until(&store, "db", "open").await;
    assert!(
        matches!(snap.state, State::Open { opened: 1, .. }),
        "{snap:?}"
    );
    assert_eq!(snap.wait_ms, 500);
    let opened = transitions_until(&store, "db", 1).await;
    assert_eq!(path_of(&opened[..1]), vec![pair("closed", "open")]);
    assert!(
        opened[0].reason.starts_with("3 consecutive failures"),
        "{}",
        opened[0].reason
    );
    assert_eq!(row.updated_ms, opened[0].at_ms);

    // A sample (ok: false, not to closed), an event, and the warning: no alerts actor runs,
    // so it is an unrouted `alert` event under its own key.
    assert_eq!(
        transition_samples(&store, "db").await.first(),
        Some(&Some(false))
    );
    let breaker_events = events_of(&store, "breaker").await;
    assert!(!breaker_events.is_empty());
    assert_eq!(breaker_events[0].path, PATH);
    assert_eq!(breaker_events[0].data["to"], "open");
    let alerts = events_of(&store, "alert").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].message, "circuit breaker open: db");
    assert_eq!(alerts[0].data["key"], alert_key("db"));
    assert_eq!(alerts[0].data["severity"], "warning");
    assert_eq!(alerts[0].data["routed"], false);

    // With no call at all, the timer turns it HALF_OPEN once the wait is over.
    live_until(&h.registry, "db", StateName::HalfOpen).await;
    let rows = transitions_until(&store, "db", 2).await;
    assert_eq!(
        path_of(&rows),
        vec![pair("closed", "open"), pair("open", "half_open")]
    );
    let waited = rows[1].at_ms - rows[0].at_ms;
    assert!(
        (500..5_000).contains(&waited),
        "half-open {waited} ms after opening"
    );
    assert_eq!(rows[1].reason, "open for 500ms");
    stored_until(&store, "db", "half_open").await;

    // success_threshold (2) trial successes close it; the warning is cleared.
    succeed(&h.registry, "db");
    assert_eq!(db.state(), StateName::HalfOpen);
    succeed(&h.registry, "db");
    assert_eq!(db.state(), StateName::Closed);
    let (_, snap) = stored_until(&store, "db", "closed").await;
    assert_eq!((snap.opened, snap.consecutive_failures), (0, 0));
    let rows = transitions_until(&store, "db", 3).await;
    assert_eq!(rows[2].reason, "2 successful trial calls");
    assert_eq!(
        transition_samples(&store, "db").await,
        vec![Some(false), Some(false), Some(true)]
    );
    let c = snap.counters;
    assert_eq!(
        (
            c.calls,
            c.successes,
            c.failures,
            c.rejections,
            c.transitions
        ),
        (8, 3, 5, 1, 3)
    );

    let status = running.status().await;
    assert_eq!(status.len(), 1);
    assert_eq!(
        (status[0].name.as_str(), status[0].state),
        ("db", StateName::Closed)
    );
    running.stop().await;
    assert!(h.slot.get().is_none(), "the slot is emptied at stop");
    store.close().await;
}

/// The warning goes to a running alerts actor, which notifies it and, when the breaker
/// closes, resolves it.
#[tokio::test]
async fn the_open_warning_is_notified_and_resolved_when_it_closes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    let h = Handles::new(&store);
    let routes = PerSeverity {
        info: vec!["log".to_string()],
        warning: vec!["log".to_string()],
        critical: vec!["log".to_string()],
    };
    let (alerts_actor, alerts_join) = match Actor::spawn(
        None,
        AlertsActor,
        AlertsArgs {
            path: "root/alerts".into(),
            store: store.clone(),
            alerts: h.alerts.clone(),
            metrics: h.metrics.clone(),
            policy: Policy {
                dedup_window: Duration::from_secs(3600),
                after: PerSeverity {
                    info: 1,
                    warning: 1,
                    critical: 1,
                },
                cooldown: PerSeverity {
                    info: Duration::ZERO,
                    warning: Duration::ZERO,
                    critical: Duration::ZERO,
                },
                repeat_interval: Duration::from_secs(3600),
            },
            group_wait: Duration::from_millis(50),
            channels: vec![ChannelSpec {
                name: "log".into(),
                kind: ChannelKind::Log,
            }],
            routes,
            retry_initial: Duration::from_millis(50),
            retry_max: Duration::from_millis(200),
            retry_adaptive: false,
            timeout: Duration::from_secs(3),
            hostname: "testhost".into(),
        },
    )
    .await
    {
        Ok(pair) => pair,
        Err(e) => panic!("alerts actor did not start: {e}"),
    };
    let running = Running::start(&h, &[("db", config(Duration::from_millis(100)))]).await;
    for _ in 0..3 {
        fail(&h.registry, "db");
    }
    live_until(&h.registry, "db", StateName::HalfOpen).await;
    succeed(&h.registry, "db");
    succeed(&h.registry, "db");
    assert_eq!(
        h.registry.get("db").map(|b| b.state()),
        Some(StateName::Closed)
    );

    let key = alert_key("db");
    let deadline = Instant::now() + WAIT;
    let statuses = loop {
        let rows = outbox::recent(store.reader(), 100).await.expect("outbox");
        let mine: Vec<(Status, String)> = rows
            .iter()
            .rev()
            .filter(|r| r.notification.key == key)
            .map(|r| (r.notification.status, r.state.clone()))
            .collect();
        if mine.len() >= 2 && mine.iter().all(|(_, state)| state == "sent") {
            break mine;
        }
        if Instant::now() >= deadline {
            panic!("the breaker's alert was not notified then resolved: {mine:?}");
        }
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(
        statuses.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![Status::Firing, Status::Resolved]
    );
    running.stop().await;
    alerts_actor.stop(None);
    let _ = bounded(alerts_join).await;
    store.close().await;
}

/// resilience4j's stuck HALF_OPEN: trial permits handed out and never reported. Only
/// `half_open_calls` of many concurrent callers get one; past `half_open_max_wait` the
/// unreported trial counts as a failure and the breaker reopens, with no other call to notice.
#[tokio::test]
async fn half_open_admits_only_its_trials_and_an_unreported_trial_reopens_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    let h = Handles::new(&store);
    let max_wait = Duration::from_millis(300);
    let cfg = BreakerConfig {
        failure_threshold: 1,
        half_open_calls: 2,
        half_open_max_wait: max_wait,
        ..config(Duration::from_millis(150))
    };
    let running = Running::start(&h, &[("api", cfg)]).await;
    fail(&h.registry, "api");
    live_until(&h.registry, "api", StateName::HalfOpen).await;

    const CALLERS: usize = 8;
    let before_trials = Instant::now();
    let gate = Arc::new(Barrier::new(CALLERS));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let b = h.registry.get("api").expect("configured");
            let gate = gate.clone();
            std::thread::spawn(move || {
                gate.wait();
                b.allow()
            })
        })
        .collect();
    let mut permits = Vec::new();
    let mut rejected: Vec<Rejected> = Vec::new();
    for c in callers {
        match c.join().expect("no panic") {
            Ok(p) => permits.push(p),
            Err(r) => rejected.push(r),
        }
    }
    assert_eq!(permits.len(), 2, "half_open_calls = 2");
    assert_eq!(rejected.len(), CALLERS - 2);
    assert!(rejected
        .iter()
        .all(|r| r.state == StateName::HalfOpen && r.retry_after.is_none()));
    let api = h.registry.get("api").expect("configured");
    assert_eq!(
        api.snapshot().state,
        State::HalfOpen {
            permits_out: 2,
            successes: 0
        }
    );

    // One trial succeeds (success_threshold is 2: not closed yet); the other is never
    // reported. Nobody calls: the actor's timer must judge it at its deadline.
    let first = permits.remove(0);
    api.record(first, true);
    assert!(matches!(api.state(), StateName::HalfOpen));
    live_until(&h.registry, "api", StateName::Open).await;
    // Not before its deadline (the machine reads the wall clock: a little slack).
    assert!(
        before_trials.elapsed() >= max_wait - Duration::from_millis(20),
        "reopened after {:?}",
        before_trials.elapsed()
    );
    let rows = transitions_until(&store, "api", 3).await;
    assert_eq!(
        path_of(&rows),
        vec![
            pair("closed", "open"),
            pair("open", "half_open"),
            pair("half_open", "open")
        ]
    );
    assert!(
        rows[2]
            .reason
            .starts_with("a trial call was not reported within 300ms"),
        "{}",
        rows[2].reason
    );
    let (_, snap) = stored_until(&store, "api", "open").await;
    assert!(
        matches!(snap.state, State::Open { opened: 2, .. }),
        "{snap:?}"
    );
    assert_eq!(snap.wait_ms, 300, "the wait doubled after the failed trial");

    // The lost trial reports at last: late, it changes nothing.
    let lost = permits.remove(0);
    api.record(lost, true);
    let c = api.snapshot().counters;
    assert_eq!(api.state(), StateName::Open);
    assert_eq!((c.expired, c.late, c.failures, c.successes), (1, 1, 2, 1));
    assert_eq!(c.rejections, (CALLERS - 2) as u64);

    // And the cycle goes on: the timer half-opens it again.
    live_until(&h.registry, "api", StateName::HalfOpen).await;
    running.stop().await;
    store.close().await;
}

/// Two threads may notify in the opposite order to that of their transitions: a stale
/// notification reaching the actor after a newer one must not roll the stored state back.
#[tokio::test]
async fn a_stale_notification_does_not_roll_the_stored_state_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    let h = Handles::new(&store);
    let running = Running::start(&h, &[("db", config(Duration::from_secs(3600)))]).await;
    let db = h.registry.get("db").expect("db");
    for _ in 0..3 {
        fail(&h.registry, "db");
    }
    let opened = db.snapshot();
    db.reset().expect("open -> closed");
    stored_until(&store, "db", "closed").await;
    // The CLOSED -> OPEN notification, delivered late (as from a slower thread).
    let stale = Transition {
        from: StateName::Closed,
        to: StateName::Open,
        at_ms: opened.since_ms,
        reason: "3 consecutive failures; open for 1h".into(),
    };
    running
        .actor
        .cast(BreakersMessage::Transition {
            name: "db".into(),
            transition: stale,
            snapshot: Box::new(opened),
        })
        .expect("cast");
    // The actor handles messages in order: once status answers, the stale one was handled.
    running.status().await;
    let (row, snap) = stored_one(&store, "db").await.expect("stored");
    assert_eq!(row.state, "closed", "{snap:?}");
    assert_eq!(snap.state, State::Closed);
    assert_eq!(
        path_of(&transitions(&store, "db").await),
        vec![pair("closed", "open"), pair("open", "closed")],
        "each transition stored once, in order"
    );
    running.stop().await;

    // And a restart restores what the breaker really is.
    let fresh = Handles::new(&store);
    let again = Running::start(&fresh, &[("db", config(Duration::from_secs(3600)))]).await;
    assert_eq!(
        fresh.registry.get("db").map(|b| b.state()),
        Some(StateName::Closed)
    );
    again.stop().await;
    store.close().await;
}

/// A daemon restart: the actor stops right after transitions (the last ones may still be in
/// its mailbox), the store is closed, and a new actor starts on the reopened store with new
/// handles (a fresh registry): every state, its wait and the counts come back.
#[tokio::test]
async fn state_and_counts_survive_a_restart_with_a_fresh_registry() {
    let dir = tempfile::tempdir().unwrap();
    let hour = Duration::from_secs(3600);
    let breakers = [
        ("db", config(hour)),
        ("ops", config(hour)),
        ("quiet", config(hour)),
    ];
    let (db_before, ops_before) = {
        let store = open_store(&dir).await;
        let h = Handles::new(&store);
        let running = Running::start(&h, &breakers).await;
        for _ in 0..3 {
            fail(&h.registry, "db");
        }
        let db = h.registry.get("db").expect("db");
        db.allow().expect_err("open");
        // An operator's action with no call after it: only the transition says it changed.
        let ops = h.registry.get("ops").expect("ops");
        ops.force_open().expect("closed -> forced_open");
        let before = (db.snapshot(), ops.snapshot());
        running.stop().await;
        store.close().await;
        before
    };

    let store = open_store(&dir).await;
    let h = Handles::new(&store);
    let running = Running::start(&h, &breakers).await;
    let db = h.registry.get("db").expect("db").snapshot();
    let ops = h.registry.get("ops").expect("ops").snapshot();
    assert_eq!(db.state, db_before.state, "open, until the same time");
    assert!(matches!(db.state, State::Open { opened: 1, .. }));
    assert_eq!(db.counters, db_before.counters);
    assert_eq!(
        (db.wait_ms, db.since_ms, db.last_transition_ms),
        (
            db_before.wait_ms,
            db_before.since_ms,
            db_before.last_transition_ms
        )
    );
    assert_eq!(ops.state, State::ForcedOpen);
    assert_eq!(ops.counters, ops_before.counters);
    assert_eq!(
        h.registry.get("quiet").map(|b| b.state()),
        Some(StateName::Closed)
    );
    // Every transition was recorded, the last ones included.
    assert_eq!(
        path_of(&transitions(&store, "ops").await),
        vec![pair("closed", "forced_open")]
    );
    assert_eq!(
        path_of(&transitions(&store, "db").await),
        vec![pair("closed", "open")]
    );
    let status = running.status().await;
    let states: Vec<(String, StateName)> =
        status.iter().map(|s| (s.name.clone(), s.state)).collect();
    assert_eq!(
        states,
        vec![
            ("db".to_string(), StateName::Open),
            ("ops".to_string(), StateName::ForcedOpen),
            ("quiet".to_string(), StateName::Closed),
        ]
    );
    // The restored breakers notify the new incarnation: a reset is persisted.
    h.registry.get("ops").expect("ops").reset().expect("closed");
    stored_until(&store, "ops", "closed").await;
    running.stop().await;
    store.close().await;
}

/// An actor restarted with a new config while the registry keeps its breakers (a restart by
/// its supervisor, a reload): the live state is kept, the new config applies, and the new
/// incarnation's timer drives it; a breaker no longer configured leaves the registry.
#[tokio::test]
async fn a_reconfigured_breaker_keeps_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    let h = Handles::new(&store);
    let hour = Duration::from_secs(3600);
    let first = Running::start(&h, &[("db", config(hour)), ("old", config(hour))]).await;
    let db = h.registry.get("db").expect("db");
    for _ in 0..3 {
        fail(&h.registry, "db");
    }
    let before = db.snapshot();
    first.stop().await;

    // Now the wait is 100 ms (at most 200 ms) and 10 failures open it.
    let short = BreakerConfig {
        failure_threshold: 10,
        ..config(Duration::from_millis(100))
    };
    let second = Running::start(&h, &[("db", short)]).await;
    assert_eq!(h.registry.names(), vec!["db".to_string()]);
    let same = h.registry.get("db").expect("db");
    assert_eq!(same.state(), StateName::Open, "still open");
    assert_eq!(same.snapshot().counters, before.counters);
    assert_eq!(same.config().failure_threshold, 10);
    // Callers that kept the handle share the same breaker.
    assert_eq!(db.state(), StateName::Open);
    // The wait was brought within the new bounds and the new incarnation's timer ends it.
    live_until(&h.registry, "db", StateName::HalfOpen).await;
    // The opening, notified to the first incarnation just before it stopped, is stored too.
    let rows = transitions_until(&store, "db", 2).await;
    assert_eq!(
        path_of(&rows),
        vec![pair("closed", "open"), pair("open", "half_open")]
    );
    succeed(&h.registry, "db");
    succeed(&h.registry, "db");
    for _ in 0..9 {
        fail(&h.registry, "db");
    }
    assert_eq!(db.state(), StateName::Closed, "9 failures are not 10");
    fail(&h.registry, "db");
    assert_eq!(db.state(), StateName::Open);
    stored_until(&store, "db", "open").await;
    second.stop().await;
    store.close().await;
}
