//! `watch = true` on a sync target actor, on real folders and real inotify: a change is
//! synced without a forced run; a burst makes few runs; what the target does not sync (and
//! the daemon's own files, a database's churn) never starts one; the watcher goes with its
//! actor. Every wait is bounded.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use metasystem_actors::alerts::Alerts;
use metasystem_actors::breakers::Breakers;
use metasystem_actors::metrics::Metrics;
use metasystem_actors::store::events::{page, EventQuery};
use metasystem_actors::store::Store;
use metasystem_actors::sync::actor::{SyncTargetActor, SyncTargetArgs, SyncTargetMessage};
use metasystem_actors::sync::watch::{thread_name, WatchSpec, WatchState};
use metasystem_actors::sync::{Direction, Selection, Strategy, SyncSpec, SyncTargets};
use ractor::ActorRef;

/// The first scheduled run comes 5 s after start; tests wait for it so that every run they
/// count afterwards is the watch's.
const FIRST_RUN: Duration = Duration::from_secs(20);
const WAIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(50);

struct W {
    dir: tempfile::TempDir,
    store: Store,
    registry: SyncTargets,
    name: String,
    path: String,
    actor: ActorRef<SyncTargetMessage>,
    handle: tokio::task::JoinHandle<()>,
}

struct Opts {
    name: &'static str,
    min_interval: Duration,
    selection: Selection,
    /// Relative to the primary.
    ignore: Vec<&'static str>,
    /// Relative to the primary: the backups (inside it, so never synced).
    backups: Option<&'static str>,
    /// The primary is not created.
    no_primary: bool,
    /// Files in the primary before the target starts (relative path, contents).
    files: Vec<(&'static str, &'static str)>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            name: "w",
            min_interval: Duration::from_millis(500),
            selection: Selection::default(),
            ignore: Vec::new(),
            backups: None,
            no_primary: false,
            files: Vec::new(),
        }
    }
}

fn globs(patterns: &[&str]) -> Option<metasystem_actors::sync::select::Patterns> {
    Some(metasystem_actors::sync::select::Patterns::parse(patterns).unwrap())
}

impl W {
    async fn start(o: Opts) -> W {
        let dir = tempfile::tempdir().unwrap();
        let primary = dir.path().join("primary");
        let target = dir.path().join("target");
        if !o.no_primary {
            fs::create_dir_all(&primary).unwrap();
        }
        fs::create_dir_all(&target).unwrap();
        for (rel, text) in &o.files {
            write(&primary.join(rel), text);
        }
        let store = match Store::open(&dir.path().join("s.db"), Duration::from_secs(86_400)).await {
            Ok((s, _)) => s,
            Err(e) => panic!("store: {e}"),
        };
        let mut selection = o.selection;
        let backups = match o.backups {
            Some(b) => {
                selection.never.push(b.to_string());
                primary.join(b)
            }
            None => dir.path().join("backups"),
        };
        let spec = SyncSpec {
            name: o.name.into(),
            primary: primary.clone(),
            target,
            selection,
            direction: Direction::Bidirectional,
            strategy: Strategy::Newest,
            backups,
            retention: Duration::from_secs(30 * 86_400),
            max_delete: 0.5,
            max_delete_floor: 10,
            snapshots: Vec::new(),
            snapshot_every: Duration::from_secs(3600),
            host: "testhost".into(),
            state_dir: PathBuf::from("/nonexistent/state"),
        };
        let registry = SyncTargets::default();
        let path = format!("root/{}", o.name);
        let args = SyncTargetArgs {
            path: path.clone(),
            spec,
            every: Duration::from_secs(3600),
            min_interval: o.min_interval,
            breaker: None,
            store: store.clone(),
            metrics: Metrics::new(store.clone()),
            alerts: Alerts::new(store.clone()),
            breakers: Breakers::new(),
            registry: registry.clone(),
            watch: Some(WatchSpec {
                debounce: Duration::from_millis(200),
                ignore: o.ignore.iter().map(|i| primary.join(i)).collect(),
            }),
        };
        let (actor, handle) = ractor::Actor::spawn(None, SyncTargetActor, args)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        W {
            dir,
            store,
            registry,
            name: o.name.into(),
            path,
            actor,
            handle,
        }
    }

    fn primary(&self, rel: &str) -> PathBuf {
        self.dir.path().join("primary").join(rel)
    }

    fn target(&self, rel: &str) -> PathBuf {
        self.dir.path().join("target").join(rel)
    }

    fn watch_state(&self) -> Option<WatchState> {
        self.registry
            .published()
            .into_iter()
            .find(|s| s.name == self.name)
            .and_then(|s| s.watch)
    }

    async fn watching(&self) {
        self.until("the watch to be up", WAIT, || {
            matches!(self.watch_state(), Some(WatchState::Watching { .. }))
        })
        .await;
    }

    /// The runs recorded so far.
    async fn runs(&self) -> usize {
        self.store.flush(Some(WAIT)).await.unwrap();
        let q = EventQuery {
            kind: Some("sync_event".into()),
            path: Some(self.path.clone()),
            ..Default::default()
        };
        page(self.store.reader(), &q, None, 10_000)
            .await
            .unwrap()
            .len()
    }

    async fn until(&self, what: &str, limit: Duration, check: impl Fn() -> bool) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if check() {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("timed out ({limit:?}) waiting for {what}");
    }

    async fn until_runs(&self, at_least: usize, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let n = self.runs().await;
            if n >= at_least {
                return n;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {at_least} run(s), saw {n}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    async fn stop(self) {
        self.actor.stop(None);
        let _ = tokio::time::timeout(WAIT, self.handle).await;
    }
}

fn write(path: &Path, text: &str) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, text).unwrap();
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// A file written in the primary is in the target soon, with no forced run and long before
/// `every` (1 h), before even the first scheduled run (5 s after start).
#[tokio::test]
async fn a_change_is_synced_without_a_forced_run() {
    let w = W::start(Opts {
        name: "w-change",
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    w.watching().await;
    write(&w.primary("sub/new.txt"), "hello");
    let t = w.target("sub/new.txt");
    w.until("the change in the target", WAIT, || read(&t) == "hello")
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}: not the watch",
        started.elapsed()
    );
    // Recorded once the run has ended (the file is in place a moment before).
    assert_eq!(w.until_runs(1, WAIT).await, 1);
    w.stop().await;
}

/// Many writes close together make few runs; none once the primary is quiet; a change
/// inside `min_interval` waits for its end and is never dropped.
#[tokio::test]
async fn a_burst_of_writes_makes_few_runs_and_the_last_change_is_kept() {
    let w = W::start(Opts {
        name: "w-burst",
        min_interval: Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    w.watching().await;
    let base = w.until_runs(1, FIRST_RUN).await; // the first scheduled run
    for i in 0..40 {
        write(&w.primary(&format!("burst/f{i}.txt")), &format!("v{i}"));
        write(&w.primary("burst/same.txt"), &format!("v{i}"));
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let last = w.target("burst/same.txt");
    w.until("the burst in the target", WAIT, || {
        read(&last) == "v39" && w.target("burst/f39.txt").exists()
    })
    .await;
    // Quiet now: whatever follow-up run is due comes within min_interval, then none.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let after_burst = w.runs().await - base;
    assert!(
        (1..=3).contains(&after_burst),
        "{after_burst} runs for one burst"
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(w.runs().await - base, after_burst, "runs with no change");

    // A change right after a run: run at the end of min_interval (2 s), not at once, not lost.
    let before = w.runs().await;
    write(&w.primary("late.txt"), "1");
    let t = w.target("late.txt");
    w.until("the first change", WAIT, || read(&t) == "1").await;
    let ran = Instant::now();
    write(&w.primary("late.txt"), "2");
    w.until("the second change", WAIT, || read(&t) == "2").await;
    assert!(
        ran.elapsed() >= Duration::from_millis(1_500),
        "the second run came {:?} after the first: min_interval not kept",
        ran.elapsed()
    );
    // Recorded once each run has ended (its file is in place a moment before).
    let n = w.until_runs(before + 2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.runs().await - before, 2, "{n}");
    w.stop().await;
}

/// Excluded and unselected paths, our temp names, the backups in the primary, the daemon's
/// own database (written in WAL mode, checkpointed), metadata changes and reads: no run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_target_does_not_sync_starts_no_run() {
    let w = W::start(Opts {
        name: "w-ignore",
        selection: Selection {
            paths: vec!["shared".into(), "own.db".into()],
            exclude: globs(&["**/*.tmp", "shared/cache/**"]),
            ..Default::default()
        },
        ignore: vec!["own.db", "own.db-wal", "own.db-shm", "own.db-journal"],
        backups: Some("shared/backups"),
        files: vec![("shared/keep.txt", "k")],
        ..Default::default()
    })
    .await;
    w.watching().await;
    let base = w.until_runs(1, FIRST_RUN).await; // the first scheduled run

    let churn = {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
        use sqlx::{ConnectOptions, Connection};
        let mut db = SqliteConnectOptions::new()
            .filename(w.primary("own.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .connect()
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (x TEXT)")
            .execute(&mut db)
            .await
            .unwrap();
        async move {
            for i in 0..20 {
                sqlx::query("INSERT INTO t VALUES (?)")
                    .bind(format!("row {i}"))
                    .execute(&mut db)
                    .await
                    .unwrap();
                if i % 5 == 4 {
                    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                        .execute(&mut db)
                        .await
                        .unwrap();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = db.close().await;
        }
    };
    for rel in [
        "shared/x.tmp",
        "shared/cache/blob",
        "shared/cache/deep/er.txt",
        "shared/.keep.txt.msync-tmp-000000000000002a",
        "shared/backups/keep-20260101-000000.bak",
        "elsewhere.txt",
        "other/y.txt",
    ] {
        write(&w.primary(rel), "x");
    }
    let keep = w.primary("shared/keep.txt");
    // A touch of both times (a chmod alike) is metadata. (Setting the modification time
    // alone is reported by Linux as a modification, IN_MODIFY, and does start a run, which
    // copies nothing.)
    let f = fs::OpenOptions::new().write(true).open(&keep).unwrap();
    let then = std::time::SystemTime::now() - Duration::from_secs(60);
    f.set_times(fs::FileTimes::new().set_accessed(then).set_modified(then))
        .unwrap();
    drop(f);
    assert_eq!(read(&keep), "k");
    churn.await;
    fs::remove_file(w.primary("shared/x.tmp")).unwrap();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(w.runs().await, base, "a run started for what is not synced");

    // The watch still works: a synced file starts one.
    write(&w.primary("shared/ok.txt"), "ok");
    let t = w.target("shared/ok.txt");
    w.until("the synced change", WAIT, || read(&t) == "ok")
        .await;
    w.stop().await;
}

/// A synced database in use: its writes start runs, the runs' own reads of it (snapshots)
/// do not: once the writer stops, so do the runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synced_live_database_runs_when_written_and_then_rests() {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
    use sqlx::{ConnectOptions, Connection};
    let w = W::start(Opts {
        name: "w-db",
        min_interval: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    w.watching().await;
    let base = w.until_runs(1, FIRST_RUN).await;
    let mut db = SqliteConnectOptions::new()
        .filename(w.primary("app.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .connect()
        .await
        .unwrap();
    sqlx::query("CREATE TABLE t (x TEXT)")
        .execute(&mut db)
        .await
        .unwrap();
    for i in 0..5 {
        sqlx::query("INSERT INTO t VALUES (?)")
            .bind(format!("row {i}"))
            .execute(&mut db)
            .await
            .unwrap();
    }
    let t = w.target("app.db");
    w.until("the database in the target", WAIT, || t.exists())
        .await;
    // The writer keeps its connection (a live WAL) and writes no more.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let settled = w.runs().await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(w.runs().await, settled, "runs went on with no write");
    assert!(settled - base <= 4, "{} runs", settled - base);
    let _ = db.close().await;
    w.stop().await;
}

fn threads_named(name: &str) -> usize {
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| read(&t.path().join("comm")).trim_end() == name)
        .count()
}

/// The watcher thread (and the OS watch it owns) ends with its actor.
#[tokio::test]
async fn the_watcher_goes_with_its_actor() {
    if !Path::new("/proc/self/task").is_dir() {
        return;
    }
    let w = W::start(Opts {
        name: "w-gone",
        ..Default::default()
    })
    .await;
    w.watching().await;
    let name = thread_name("w-gone");
    assert_eq!(threads_named(&name), 1);
    w.stop().await;
    let deadline = Instant::now() + WAIT;
    while threads_named(&name) > 0 {
        assert!(
            Instant::now() < deadline,
            "the watcher thread is still there"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// A primary that is not there: not watched, said so in the status; the target goes on.
#[tokio::test]
async fn a_watch_that_cannot_be_set_up_is_reported_not_fatal() {
    let w = W::start(Opts {
        name: "w-missing",
        no_primary: true,
        ..Default::default()
    })
    .await;
    w.until("the watch to say why it is not up", WAIT, || {
        matches!(w.watch_state(), Some(WatchState::NotWatching { .. }))
    })
    .await;
    let Some(WatchState::NotWatching { reason }) = w.watch_state() else {
        unreachable!()
    };
    assert!(reason.contains("is not there"), "{reason}");
    let s = w
        .actor
        .call(SyncTargetMessage::Status, Some(WAIT))
        .await
        .unwrap();
    assert!(matches!(s, ractor::rpc::CallResult::Success(_)));
    w.stop().await;
}
