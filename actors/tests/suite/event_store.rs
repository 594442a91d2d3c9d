//! The event store on a real SQLite file: batching, queries, persistence, and a disk that
//! refuses writes for a while (nothing is lost).

use std::time::{Duration, SystemTime};

use metasystem_actors::store::{EventQuery, Store, StoreActor, StoreArgs, StoredEvent};
use ractor::Actor;

async fn start(path: &std::path::Path) -> (Store, tokio::task::JoinHandle<()>) {
    let args = StoreArgs {
        path: path.to_path_buf(),
        retention: Duration::from_secs(30 * 24 * 3600),
    };
    match Actor::spawn(None, StoreActor, args).await {
        Ok((actor, join)) => (Store::new(actor), join),
        Err(e) => panic!("store did not start: {e}"),
    }
}

fn event(path: &str, kind: &str, i: usize) -> StoredEvent {
    let mut e = StoredEvent::new(path, kind, format!("{kind} #{i}"));
    e.data = serde_json::json!({ "i": i });
    e
}

#[tokio::test]
async fn records_batches_and_queries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("metastore.db");
    let (store, join) = start(&db).await;
    for i in 0..2000 {
        let path = if i % 2 == 0 { "root/a" } else { "root/grp/x" };
        store.record(event(path, "heartbeat", i));
    }
    store.record(event("root/grp", "exited", 2000));
    store.record(event("root/grpx", "exited", 2001));
    store.record(event("root/grüppe/x", "exited", 2002));
    store.record(event("root/GRP/x", "exited", 2003));
    store.record(event("root/g*p/x", "exited", 2004));
    store.flush().await.expect("flush");

    let all = store
        .query(EventQuery {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .expect("query");
    assert_eq!(all.len(), 2005);
    assert_eq!(all[0].message, "heartbeat #0");
    assert_eq!(all[0].data["i"], 0);

    // A path selects itself and its subtree, not a sibling that shares a prefix.
    let grp = store
        .query(EventQuery {
            path: Some("root/grp".into()),
            limit: 10_000,
            ..Default::default()
        })
        .await
        .expect("query");
    assert_eq!(grp.len(), 1001);
    assert!(grp
        .iter()
        .all(|e| e.path == "root/grp" || e.path.starts_with("root/grp/")));

    // The most recent `limit`, oldest first.
    let last = store
        .query(EventQuery {
            kind: Some("heartbeat".into()),
            limit: 3,
            ..Default::default()
        })
        .await
        .expect("query");
    let messages: Vec<&str> = last.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        ["heartbeat #1997", "heartbeat #1998", "heartbeat #1999"]
    );

    let future = store
        .query(EventQuery {
            since: Some(SystemTime::now() + Duration::from_secs(60)),
            ..Default::default()
        })
        .await
        .expect("query");
    assert!(future.is_empty());

    store.actor().stop(None);
    let _ = join.await;

    // Everything is on disk: a new store sees it.
    let (store, join) = start(&db).await;
    store.record(event("root/a", "started", 0));
    let again = store
        .query(EventQuery {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .expect("query");
    assert_eq!(again.len(), 2006);
    store.actor().stop(None);
    let _ = join.await;
}

/// While the database refuses inserts the events wait; once it accepts them again they are
/// all written, in order.
#[tokio::test]
async fn a_refusing_database_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("metastore.db");
    let (store, join) = start(&db).await;
    store.record(event("root/a", "heartbeat", 0));
    store.flush().await.expect("flush");

    let other = metasystem_actors::store::open(&db)
        .await
        .expect("second connection");
    sqlx::query(
        "CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'disk says no'); END",
    )
    .execute(&other)
    .await
    .expect("trigger");

    for i in 1..=100 {
        store.record(event("root/a", "heartbeat", i));
    }
    let err = store.flush().await.expect_err("writes are refused");
    assert!(err.contains("disk says no"), "{err}");

    sqlx::query("DROP TRIGGER refuse")
        .execute(&other)
        .await
        .expect("drop trigger");
    store.flush().await.expect("writes again");
    let all = store
        .query(EventQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("query");
    let indexes: Vec<i64> = all
        .iter()
        .map(|e| e.data["i"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(indexes, (0..=100).collect::<Vec<i64>>());
    other.close().await;
    store.actor().stop(None);
    let _ = join.await;
}

/// Lifecycle events of a real tree land in the store with their typed fields.
#[tokio::test]
async fn tree_lifecycle_events_are_stored() {
    use metasystem_actors::testkit::{worker, Probe, TestMsg};
    use metasystem_actors::{Strategy, SupervisorSpec, Tree};
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, join) = start(&dir.path().join("metastore.db")).await;
    let probe = Probe::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(5, Duration::from_secs(10))
        .child(worker("w", &probe));
    let tree = Tree::start(spec, store.sink()).await.expect("tree");
    let w = tree.directory().get::<TestMsg>("root/w").expect("w");
    let _ = w.cast(TestMsg::Crash("boom".into()));
    let mut restarted = false;
    for _ in 0..200 {
        let events = store
            .query(EventQuery {
                path: Some("root/w".into()),
                kind: Some("restarted".into()),
                ..Default::default()
            })
            .await
            .expect("query");
        if !events.is_empty() {
            restarted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(restarted, "no restarted event stored");
    tree.shutdown().await;
    let events = store.query(EventQuery::default()).await.expect("query");
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
    store.actor().stop(None);
    let _ = join.await;
}
