//! The store on real SQLite files: batching, paged reads, persistence, the durable lane,
//! migrations from today's schema, subscribers, and disks that refuse writes (a trigger, a real
//! full filesystem, an immutable file): nothing is lost and nothing is acknowledged early.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use metasystem_actors::store::{
    self, events, DurableOp, DurableReply, EventQuery, EventRow, Store, StoredEvent,
};

const RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

async fn open(path: &Path) -> (Store, tokio::task::JoinHandle<()>) {
    match Store::open(path, RETENTION).await {
        Ok(opened) => opened,
        Err(e) => panic!("store did not open: {e}"),
    }
}

/// An event of kind `kind` (a name of `events::KINDS`).
fn event(path: &str, kind: &str, i: usize) -> StoredEvent {
    let tag = metasystem_actors::store::events::Kind::parse(kind)
        .unwrap_or_else(|| panic!("{kind} is no event kind"));
    let mut e = StoredEvent::new(path, tag, format!("{kind} #{i}"));
    e.data = serde_json::json!({ "i": i });
    e
}

/// Every matching event, paging through the read pool.
async fn all(store: &Store, query: &EventQuery) -> Vec<EventRow> {
    let mut rows = Vec::new();
    let mut after = None;
    for _ in 0..10_000 {
        let page = match events::page(store.reader(), query, after, 500).await {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        rows.extend(page);
    }
    rows
}

/// The `i` of every event in a database file, read with a fresh connection.
async fn indexes_in_file(db: &Path) -> Vec<i64> {
    let pool = match store::open_reader(db).await {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let rows: Vec<(String,)> = match sqlx::query_as("SELECT data FROM events ORDER BY id")
        .fetch_all(&pool)
        .await
    {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    pool.close().await;
    rows.iter()
        .filter_map(|(data,)| {
            serde_json::from_str::<serde_json::Value>(data)
                .ok()
                .and_then(|v| v["i"].as_i64())
        })
        .collect()
}

fn tempdir() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    }
}

#[tokio::test]
async fn records_batches_and_reads_in_pages() {
    let dir = tempdir();
    let db = dir.path().join("metastore.db");
    let (store, _join) = open(&db).await;
    for i in 0..2000 {
        let path = if i % 2 == 0 { "root/a" } else { "root/grp/x" };
        store.record(event(path, "heartbeat", i));
    }
    store.record(event("root/grp", "exited", 2000));
    store.record(event("root/grpx", "exited", 2001));
    store.record(event("root/grüppe/x", "exited", 2002));
    store.record(event("root/GRP/x", "exited", 2003));
    store.record(event("root/g*p/x", "exited", 2004));
    assert_eq!(store.flush(None).await, Ok(()));
    assert_eq!(store.stats().written, 2005);

    let rows = all(&store, &EventQuery::default()).await;
    assert_eq!(rows.len(), 2005);
    assert_eq!(rows[0].message, "heartbeat #0");
    assert_eq!(rows[0].data["i"], 0);
    assert!(rows.windows(2).all(|w| w[0].id < w[1].id), "ids grow");

    // A path selects itself and its subtree, not a sibling that shares a prefix.
    let grp = all(
        &store,
        &EventQuery {
            path: Some("root/grp".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(grp.len(), 1001);
    assert!(grp
        .iter()
        .all(|e| e.path == "root/grp" || e.path.starts_with("root/grp/")));

    // The most recent n, oldest first: read from the cursor.
    let heartbeats = EventQuery {
        kind: Some("heartbeat".into()),
        ..Default::default()
    };
    let cursor = events::last_n_cursor(store.reader(), &heartbeats, 3).await;
    let last = events::page(store.reader(), &heartbeats, cursor.unwrap_or(None), 10).await;
    let messages: Vec<String> = last
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(
        messages,
        ["heartbeat #1997", "heartbeat #1998", "heartbeat #1999"]
    );
    assert_eq!(
        events::last_n_cursor(store.reader(), &heartbeats, 5000).await,
        Ok(None),
        "fewer than asked: from the start"
    );

    let future = EventQuery {
        since: Some(SystemTime::now() + Duration::from_secs(60)),
        ..Default::default()
    };
    assert!(all(&store, &future).await.is_empty());
    store.close().await;

    // Everything is on disk: a new store sees it.
    let (store, _join) = open(&db).await;
    store.record(event("root/a", "started", 0));
    assert_eq!(store.flush(None).await, Ok(()));
    assert_eq!(all(&store, &EventQuery::default()).await.len(), 2006);
    store.close().await;
}

/// While the database refuses inserts the events wait; once it accepts them again they are
/// all written, in order; reads work throughout.
#[tokio::test]
async fn a_refusing_database_loses_nothing() {
    let dir = tempdir();
    let db = dir.path().join("metastore.db");
    let (store, _join) = open(&db).await;
    store.record(event("root/a", "heartbeat", 0));
    assert_eq!(store.flush(None).await, Ok(()));

    let other = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.display()))
        .await
        .unwrap_or_else(|e| panic!("second connection: {e}"));
    sqlx::query(
        "CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'disk says no'); END",
    )
    .execute(&other)
    .await
    .unwrap_or_else(|e| panic!("trigger: {e}"));

    for i in 1..=100 {
        store.record(event("root/a", "heartbeat", i));
    }
    let err = store.flush(None).await.err().unwrap_or_default();
    assert!(err.contains("disk says no"), "{err}");
    // Not the disk: the batch is refused for good, and counted.
    let stats = store.stats();
    assert_eq!(stats.dropped, 0, "{stats:?}");
    // Reads go on.
    assert_eq!(all(&store, &EventQuery::default()).await.len(), 1);

    sqlx::query("DROP TRIGGER refuse")
        .execute(&other)
        .await
        .unwrap_or_else(|e| panic!("drop trigger: {e}"));
    other.close().await;
    assert_eq!(store.flush(None).await, Ok(()));
    let indexes: Vec<i64> = all(&store, &EventQuery::default())
        .await
        .iter()
        .map(|e| e.data["i"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(indexes, (0..=100).collect::<Vec<i64>>());
    store.close().await;
}

/// A tmpfs of `size` mounted on a new directory; unmounted when dropped. `None` where this
/// process may not mount (not root, no CAP_SYS_ADMIN).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempdir();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the filesystem with a file of zeros until it is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).unwrap_or_else(|e| panic!("filler: {e}"));
        let block = vec![0u8; 4096];
        for _ in 0..100_000 {
            if file.write_all(&block).is_err() {
                break;
            }
        }
        let _ = file.sync_all();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).output();
    }
}

/// Regression: on a full disk one failed COMMIT left the transaction open, later batches
/// nested in it, "writes again" was logged while the disk was still full, and the events were
/// gone after a clean close. Now a failed write is rolled back and kept, and once space is
/// freed every event is in the file.
#[tokio::test]
async fn a_full_disk_loses_nothing_once_space_is_freed() {
    let Some(fs) = Tmpfs::mount("1m") else {
        crate::util::skipped("cannot mount a tmpfs here (needs root)");
        return;
    };
    let db = fs.path().join("metastore.db");
    let (store, _join) = open(&db).await;
    store.record(event("root/a", "heartbeat", 0));
    assert_eq!(store.flush(None).await, Ok(()));
    let filler = fs.fill();

    // Large events fill what the database had left; then writes fail.
    let padding = "x".repeat(2000);
    let mut i = 1;
    let mut refused = false;
    while i < 2000 && !refused {
        for _ in 0..20 {
            let mut e = event("root/a", "heartbeat", i);
            e.data["pad"] = serde_json::json!(padding);
            store.record(e);
            i += 1;
        }
        refused = store.flush(None).await.is_err();
    }
    assert!(refused, "the full tmpfs never refused a write");
    let stats = store.stats();
    assert!(stats.failing_since_ms.is_some(), "{stats:?}");
    assert!(stats.inflight + stats.queued > 0, "{stats:?}");
    // Still full: more events wait, and flushing keeps failing (no false "writes again").
    for _ in 0..10 {
        store.record(event("root/a", "heartbeat", i));
        i += 1;
    }
    assert!(store.flush(None).await.is_err(), "the disk is still full");
    // Reads work while writes fail.
    assert!(!all(&store, &EventQuery::default()).await.is_empty());

    std::fs::remove_file(&filler).unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..10 {
        store.record(event("root/a", "heartbeat", i));
        i += 1;
    }
    assert_eq!(store.flush(None).await, Ok(()));
    assert_eq!(store.stats().failing_since_ms, None);
    store.close().await;

    let expected: Vec<i64> = (0..i as i64).collect();
    assert_eq!(indexes_in_file(&db).await, expected);
}

fn set_immutable(path: &Path, on: bool) -> bool {
    Command::new("chattr")
        .arg(if on { "+i" } else { "-i" })
        .arg(path)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A database file (and its WAL) made unwritable, then writable again: the events recorded
/// meanwhile wait and are all in the file after a clean close.
#[tokio::test]
async fn an_unwritable_file_then_writable_loses_nothing() {
    let dir = tempdir();
    let db = dir.path().join("metastore.db");
    let wal = dir.path().join("metastore.db-wal");
    let (store, _join) = open(&db).await;
    store.record(event("root/a", "heartbeat", 0));
    assert_eq!(store.flush(None).await, Ok(()));
    if !(set_immutable(&db, true) && set_immutable(&wal, true)) {
        set_immutable(&db, false);
        store.close().await;
        crate::util::skipped("cannot make files immutable here (needs root and chattr)");
        return;
    }
    for i in 1..=50 {
        store.record(event("root/a", "heartbeat", i));
    }
    let refused = store.flush(None).await;
    let durable = store.durable(
        DurableOp::RunStarted {
            started_ms: 1,
            pid: 1,
            version: "t".into(),
            config: "t".into(),
        },
        Some(Duration::from_millis(300)),
    );
    let durable = durable.await;
    set_immutable(&db, false);
    set_immutable(&wal, false);
    assert!(refused.is_err(), "writes to an immutable file failed");
    assert!(
        durable.is_err(),
        "a durable write is not acknowledged before it is committed: {durable:?}"
    );
    for i in 51..=60 {
        store.record(event("root/a", "heartbeat", i));
    }
    // The retry timer (backing off) or this flush gets them all in.
    let mut flushed = Err(String::new());
    for _ in 0..100 {
        flushed = store.flush(None).await;
        if flushed.is_ok() && store.stats().durable_waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(flushed, Ok(()));
    assert_eq!(store.stats().durable_waiting, 0, "the durable write landed");
    store.close().await;
    assert_eq!(indexes_in_file(&db).await, (0..=60).collect::<Vec<i64>>());
    let pool = store::open_reader(&db)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let runs = store::runs::previous(&pool, None).await;
    assert!(
        matches!(runs, Ok(Some(ref r)) if r.version == "t"),
        "{runs:?}"
    );
    pool.close().await;
}

/// The durable lane answers after COMMIT, in order, with the row's id; a run is "clean" once
/// ended in order.
#[tokio::test]
async fn durable_writes_are_committed_before_they_are_acknowledged() {
    let dir = tempdir();
    let db = dir.path().join("metastore.db");
    let (store, _join) = open(&db).await;
    let started = |pid| DurableOp::RunStarted {
        started_ms: 1000,
        pid,
        version: "0.1.0".into(),
        config: "t.toml".into(),
    };
    let first = store.durable(started(1), None).await;
    let second = store.durable(started(2), None).await;
    let (Ok(DurableReply::Id(a)), Ok(DurableReply::Id(b))) = (first, second) else {
        panic!("no ids");
    };
    assert!(b > a);
    // Acknowledged means visible to a fresh reader.
    let previous = store::runs::previous(store.reader(), Some(b)).await;
    assert!(
        matches!(previous, Ok(Some(ref r)) if r.id == a && r.pid == 1 && r.stopped_ms.is_none()),
        "{previous:?}"
    );
    let ended = store
        .durable(
            DurableOp::RunEnded {
                id: b,
                stopped_ms: 2000,
                exit_code: 0,
            },
            None,
        )
        .await;
    assert_eq!(ended, Ok(DurableReply::Done));
    let latest = store::runs::previous(store.reader(), None).await;
    assert!(
        matches!(latest, Ok(Some(ref r)) if r.id == b && r.stopped_ms == Some(2000) && r.exit_code == Some(0)),
        "{latest:?}"
    );
    store.close().await;
}

/// A database made by the schema of 2026-11-22 (the daemon as released then) upgrades in
/// place: its events are kept and the new tables work.
#[tokio::test]
async fn a_database_made_by_the_first_schema_upgrades() {
    let dir = tempdir();
    let db = dir.path().join("metastore.db");
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metastore-20261122.db");
    std::fs::copy(&fixture, &db).unwrap_or_else(|e| panic!("{}: {e}", fixture.display()));
    let (store, _join) = open(&db).await;
    let old = all(&store, &EventQuery::default()).await;
    assert_eq!(old.len(), 11, "the old events are kept");
    assert_eq!(
        old[4].message,
        "exited: failed: injected failure (incarnation 1)"
    );
    let id = store
        .durable(
            DurableOp::RunStarted {
                started_ms: 1,
                pid: 1,
                version: "new".into(),
                config: "t".into(),
            },
            None,
        )
        .await;
    assert!(matches!(id, Ok(DurableReply::Id(_))), "{id:?}");
    store.record(event("root/a", "heartbeat", 1));
    assert_eq!(store.flush(None).await, Ok(()));
    assert_eq!(all(&store, &EventQuery::default()).await.len(), 12);
    let versions: Vec<(i64,)> =
        sqlx::query_as("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(store.reader())
            .await
            .unwrap_or_default();
    assert_eq!(
        versions,
        [
            (20261122000001,),
            (20261123000001,),
            (20261124000001,),
            (20261124000002,),
            (20261125000001,),
            (20261126000001,),
            (20261126000002,),
            (20261126000003,),
            (20261127000001,),
            (20261128000001,),
            (20261206000001,),
            (20261206000002,),
            (20261206000003,),
            (20261207000001,),
            (20261208000001,),
            (20261208000002,),
            (20261209000011,),
            (20261210000001,),
        ]
    );
    // The tables added since work on the upgraded file.
    let now = store::unix_ms(SystemTime::now());
    store.record_samples(vec![metasystem_actors::metrics::Sample {
        at_ms: now,
        metric: metasystem_actors::metrics::Metric::ActorStarts,
        subject: "root/a".into(),
        value: 1.0,
        ok: Some(true),
    }]);
    assert_eq!(store.flush(None).await, Ok(()));
    let summaries = store::samples::summaries(store.reader(), now - 1000, None)
        .await
        .unwrap_or_default();
    assert_eq!(summaries.len(), 1);
    assert_eq!(store::outbox::undelivered(store.reader()).await, Ok(0));
    // The host_info row a snapshot of the store carries.
    let guard = store
        .before_snapshot("host-a", std::time::Duration::from_secs(60))
        .await;
    assert!(guard.is_ok(), "{:?}", guard.err());
    drop(guard);
    store.close().await;
}

/// One migrations folder; every file is `<14-digit version>_<domain>_<what>.sql` or
/// `<version>_<domain>.sql`, domains from a known list, versions unique.
#[test]
fn migrations_are_named_by_domain() {
    const DOMAINS: [&str; 8] = [
        "events", "daemon", "metrics", "alerts", "breakers", "retry", "heal", "sync",
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut versions = std::collections::HashSet::new();
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{e}")) {
        let name = entry
            .unwrap_or_else(|e| panic!("{e}"))
            .file_name()
            .to_string_lossy()
            .into_owned();
        let Some(stem) = name.strip_suffix(".sql") else {
            panic!("{name}: not a .sql file")
        };
        let (version, rest) = stem.split_once('_').unwrap_or(("", ""));
        assert!(
            version.len() == 14 && version.bytes().all(|b| b.is_ascii_digit()),
            "{name}: the version must be 14 digits (YYYYMMDDNNNNNN)"
        );
        assert!(
            versions.insert(version.to_string()),
            "{name}: version reused"
        );
        let domain = rest.split('_').next().unwrap_or("");
        assert!(
            DOMAINS.contains(&domain),
            "{name}: domain must be one of {DOMAINS:?}"
        );
        count += 1;
    }
    assert!(count >= 2);
}

/// Subscribers get committed events with their ids; one that falls behind loses the oldest
/// and is told how many.
#[tokio::test]
async fn subscribers_see_committed_events() {
    use tokio::sync::broadcast::error::RecvError;
    let dir = tempdir();
    let (store, _join) = open(&dir.path().join("metastore.db")).await;
    let mut live = store.subscribe();
    let mut slow = store.subscribe();
    for i in 0..3 {
        store.record(event("root/a", "heartbeat", i));
    }
    assert_eq!(store.flush(None).await, Ok(()));
    let mut ids = Vec::new();
    for _ in 0..3 {
        match tokio::time::timeout(Duration::from_secs(5), live.recv()).await {
            Ok(Ok(row)) => ids.push((row.id, row.data["i"].as_i64())),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        ids.iter().map(|(_, i)| *i).collect::<Vec<_>>(),
        [Some(0), Some(1), Some(2)]
    );
    assert!(ids[0].0 > 0 && ids[1].0 == ids[0].0 + 1 && ids[2].0 == ids[1].0 + 1);
    for i in 3..3000 {
        store.record(event("root/a", "heartbeat", i));
    }
    assert_eq!(store.flush(None).await, Ok(()));
    match slow.recv().await {
        Err(RecvError::Lagged(n)) => assert!(n > 0),
        other => panic!("expected a lag, got {other:?}"),
    }
    store.close().await;
}

/// Lifecycle events of a real tree land in the store with their typed fields.
#[tokio::test]
async fn tree_lifecycle_events_are_stored() {
    use metasystem_actors::testkit::{worker, Probe, TestMsg};
    use metasystem_actors::{Strategy, SupervisorSpec, Tree};
    let dir = tempdir();
    let (store, _join) = open(&dir.path().join("metastore.db")).await;
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(5, Duration::from_secs(10))
        .child(worker("w", &probe));
    let tree = match Tree::start(spec, store.sink()).await {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    let Some(w) = tree.directory().get::<TestMsg>("root/w") else {
        panic!("no root/w")
    };
    let _ = w.cast(TestMsg::Crash("boom".into()));
    let restarted = EventQuery {
        path: Some("root/w".into()),
        kind: Some("restarted".into()),
        ..Default::default()
    };
    let mut seen = false;
    for _ in 0..200 {
        let _ = store.flush(None).await;
        if !all(&store, &restarted).await.is_empty() {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen, "no restarted event stored");
    tree.shutdown().await;
    let _ = store.flush(None).await;
    let events = all(&store, &EventQuery::default()).await;
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.path.as_str(), e.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("root/w", "started"),
            ("root", "started"),
            ("root/w", "exited"),
            ("root/w", "restart_scheduled"),
            ("root/w", "restarted"),
            ("root/w", "exited"),
            ("root", "exited"),
        ]
    );
    let crash = &events[2];
    assert_eq!(crash.data["reason"], "failed");
    assert_eq!(crash.data["error"], "boom");
    assert_eq!(crash.data["incarnation"], 1);
    assert_eq!(events[5].data["reason"], "shutdown");
    store.close().await;
}

/// Breaker state and transitions, retry runs and heal actions: written on the durable lane,
/// read back after a reopen, and the history pruned with the events while the state stays.
#[tokio::test]
async fn breakers_retry_runs_and_heal_actions_survive_a_reopen() {
    use metasystem_actors::store::health::{self, BreakerSave, HealRow, RetryRunRow};
    let dir = tempdir();
    let db = dir.path().join("metastore.db");
    let (store, _join) = open(&db).await;
    // Recent times: older rows are pruned with the events.
    let t0 = store::unix_ms(SystemTime::now()) - 10_000;
    let save = |state: &str, at_ms: i64, transition: Option<(&str, &str)>| BreakerSave {
        name: "icloud_sync".into(),
        state: state.into(),
        snapshot: serde_json::json!({ "state": state, "failures": 3 }),
        at_ms,
        transition: transition.map(|(f, t)| (f.into(), t.into(), format!("{f} to {t}"))),
    };
    let ops = [
        DurableOp::BreakersSave(vec![save("open", t0 + 1_000, Some(("closed", "open")))]),
        DurableOp::BreakersSave(vec![save(
            "half_open",
            t0 + 2_000,
            Some(("open", "half_open")),
        )]),
        DurableOp::BreakersSave(vec![save("half_open", t0 + 3_000, None)]),
        DurableOp::RetryRuns(vec![RetryRunRow {
            op: "sync:icloud".into(),
            started_ms: t0 + 1_500,
            attempts: 3,
            outcome: "success".into(),
            summary: serde_json::json!({ "attempts": 3 }),
        }]),
    ];
    for op in ops {
        assert_eq!(store.durable(op, None).await, Ok(DurableReply::Done));
    }
    let heal = HealRow {
        probe: "root/disk".into(),
        action: "cleanup".into(),
        target: "/tmp/x".into(),
        started_ms: t0 + 2_500,
        took_ms: 12,
        outcome: "done".into(),
        detail: "removed 3 files".into(),
        recheck: Some("pass".into()),
    };
    let id = store.durable(DurableOp::Heal(heal.clone()), None).await;
    assert!(matches!(id, Ok(DurableReply::Id(_))), "{id:?}");
    store.close().await;

    let (store, _join) = open(&db).await;
    let rows = health::breakers(store.reader()).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, "half_open");
    assert_eq!(rows[0].updated_ms, t0 + 3_000);
    assert_eq!(rows[0].snapshot["failures"], 3);
    let t = health::transitions(store.reader(), Some("icloud_sync"), 10)
        .await
        .unwrap();
    let pairs: Vec<(&str, &str)> = t.iter().map(|t| (t.from.as_str(), t.to.as_str())).collect();
    assert_eq!(pairs, [("open", "half_open"), ("closed", "open")]);
    assert!(health::transitions(store.reader(), Some("other"), 10)
        .await
        .unwrap()
        .is_empty());
    let runs = health::retry_runs(store.reader(), None, 0, 100)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].attempts, 3);
    assert_eq!(
        health::heals(store.reader(), 0, 10).await.unwrap(),
        vec![heal]
    );
    store.close().await;
}

/// Every change of a target's base rows gives it a new generation, in the same transaction,
/// whoever makes it (the store's own writes, or SQL run by hand or by an older release): a
/// copy of the base taken at one generation is never taken for the base after a change.
/// Another target's rows leave it as it is.
#[tokio::test]
async fn every_change_of_a_base_gives_it_a_new_generation() {
    use metasystem_actors::store::sync::{generation, BaseChange, BaseEntry};
    let dir = tempdir();
    let (store, _join) = open(&dir.path().join("metastore.db")).await;
    let gen = |t: &'static str| {
        let pool = store.reader().clone();
        async move { generation(&pool, t).await.unwrap() }
    };
    assert_eq!(gen("t").await, 0, "never changed");
    let put = |p: &str| BaseChange::Put(p.to_string(), BaseEntry::default());
    let apply = |changes: Vec<BaseChange>| {
        store.durable(
            DurableOp::SyncBase {
                target: "t".into(),
                changes,
            },
            None,
        )
    };
    assert_eq!(
        apply(vec![put("a"), put("b")]).await,
        Ok(DurableReply::Done)
    );
    let first = gen("t").await;
    assert_ne!(first, 0);
    assert_eq!(apply(vec![put("a")]).await, Ok(DurableReply::Done));
    let second = gen("t").await;
    assert_ne!(second, first, "a put of a path held");
    assert_eq!(
        apply(vec![BaseChange::Forget("b".into())]).await,
        Ok(DurableReply::Done)
    );
    let third = gen("t").await;
    assert_ne!(third, second, "a forget");
    // By hand, on another connection (as an older release would write).
    let url = format!("sqlite://{}", dir.path().join("metastore.db").display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let mut seen = vec![third];
    for sql in [
        "UPDATE sync_base SET local_size = 7 WHERE target = 't'",
        "INSERT INTO sync_base (target, path, local_hash, local_size, local_mtime_ns, \
         remote_hash, remote_size, remote_mtime_ns) VALUES ('t', 'c', x'00', 0, 0, x'00', 0, 0)",
        "DELETE FROM sync_base WHERE target = 't' AND path = 'c'",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
        let now = gen("t").await;
        assert!(!seen.contains(&now), "{sql}: the generation stayed {now}");
        seen.push(now);
    }
    // Another target's rows.
    let before = gen("t").await;
    sqlx::query(
        "INSERT INTO sync_base (target, path, local_hash, local_size, local_mtime_ns, \
         remote_hash, remote_size, remote_mtime_ns) VALUES ('u', 'c', x'00', 0, 0, x'00', 0, 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(gen("t").await, before);
    assert_ne!(gen("u").await, 0);
    drop(conn);
    store.close().await;
}
