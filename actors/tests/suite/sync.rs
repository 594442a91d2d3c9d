//! Sync runs on real folders and real SQLite files: the classification matrix end to end,
//! each strategy, deletions, the guards (offline, marker, max_delete, case collisions), live
//! databases, backups.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use metasystem_actors::store::sync::{conflicts, Base, BaseEntry};
use metasystem_actors::store::Store;
use metasystem_actors::sync::engine::{self, Progress};
use metasystem_actors::sync::{
    Direction, Outcome, Refusal, RunOptions, RunReport, Selection, Strategy, SyncSpec,
};

struct Fx {
    dir: tempfile::TempDir,
    store: Store,
    spec: SyncSpec,
    base: Base,
}

impl Fx {
    async fn new() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let primary = dir.path().join("primary");
        let target = dir.path().join("target");
        fs::create_dir_all(&primary).unwrap();
        fs::create_dir_all(&target).unwrap();
        let store = match Store::open(&dir.path().join("s.db"), Duration::from_secs(86_400)).await {
            Ok((s, _)) => s,
            Err(e) => panic!("store: {e}"),
        };
        let spec = SyncSpec {
            name: "t1".into(),
            primary,
            target,
            selection: Selection::default(),
            direction: Direction::Bidirectional,
            strategy: Strategy::Newest,
            backups: dir.path().join("backups"),
            retention: Duration::from_secs(30 * 86_400),
            max_delete: 0.5,
            max_delete_floor: 10,
            snapshots: Vec::new(),
            snapshot_every: Duration::from_secs(3600),
            host: "testhost".into(),
            state_dir: PathBuf::from("/nonexistent/state"),
        };
        Fx {
            dir,
            store,
            spec,
            base: Base::new(),
        }
    }

    fn local(&self, rel: &str) -> PathBuf {
        self.spec.primary.join(rel)
    }

    fn remote(&self, rel: &str) -> PathBuf {
        self.spec.target.join(rel)
    }

    async fn run_with(&mut self, opts: RunOptions) -> RunReport {
        let open = conflicts(self.store.reader(), Some(&self.spec.name), false)
            .await
            .unwrap();
        let progress = Progress::default();
        let r = tokio::time::timeout(
            Duration::from_secs(60),
            engine::run(
                &self.spec,
                &opts,
                &self.store,
                &mut self.base,
                &open,
                &progress,
            ),
        )
        .await
        .expect("a run took over 60 s");
        // The cache and the store agree after every run.
        let stored = metasystem_actors::store::sync::base(self.store.reader(), &self.spec.name)
            .await
            .unwrap();
        assert_eq!(stored, self.base, "the base cache and the store differ");
        r
    }

    async fn run(&mut self) -> RunReport {
        self.run_with(RunOptions::default()).await
    }

    async fn ok(&mut self) -> RunReport {
        let r = self.run().await;
        assert_eq!(r.outcome, Outcome::Success, "{r:#?}");
        r
    }

    fn backups(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(rd) = walk(&self.spec.backups) {
            out = rd;
        }
        out.sort();
        out
    }
}

fn walk(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            for sub in walk(&e.path())? {
                out.push(format!("{}/{sub}", e.file_name().to_string_lossy()));
            }
        } else {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(out)
}

fn write(path: &Path, text: &str) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, text).unwrap();
}

/// Writes and sets the modification time (seconds since the epoch).
fn write_at(path: &Path, text: &str, secs: u64) {
    write(path, text);
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn first_run_copies_both_ways_then_nothing_to_do() {
    let mut fx = Fx::new().await;
    write(&fx.local("a.txt"), "a");
    write(&fx.local("dir/deep/b.txt"), "b");
    write(&fx.remote("c.txt"), "c");
    let r = fx.ok().await;
    assert_eq!((r.copied_to_remote, r.copied_to_local), (2, 1));
    assert_eq!(read(&fx.remote("dir/deep/b.txt")), "b");
    assert_eq!(read(&fx.local("c.txt")), "c");
    assert!(fx.remote(".metasystem-sync").exists(), "the marker");
    assert!(
        !fx.remote(".metasystem-sync.lock").exists(),
        "the lock is released"
    );
    assert_eq!(fx.base.len(), 3);
    // Copies keep the source's modification time.
    let t = |p: &Path| fs::metadata(p).unwrap().modified().unwrap();
    assert_eq!(t(&fx.local("a.txt")), t(&fx.remote("a.txt")));
    let again = fx.ok().await;
    assert_eq!(again.files_changed(), 0, "{again:#?}");
    assert_eq!(again.agreed, 0);
}

#[tokio::test]
async fn changes_flow_from_the_side_that_changed_with_backups() {
    let mut fx = Fx::new().await;
    write(&fx.local("a.txt"), "v1");
    write(&fx.local("b.txt"), "v1");
    fx.ok().await;
    write(&fx.local("a.txt"), "v2 local");
    write(&fx.remote("b.txt"), "v2 remote");
    let r = fx.ok().await;
    assert_eq!((r.copied_to_remote, r.copied_to_local), (1, 1));
    assert!(r.conflicts.is_empty());
    assert_eq!(read(&fx.remote("a.txt")), "v2 local");
    assert_eq!(read(&fx.local("b.txt")), "v2 remote");
    // What was replaced on each side is in the backups.
    let b = fx.backups();
    assert_eq!(b.len(), 2, "{b:?}");
    assert!(b.iter().all(|n| n.ends_with(".bak")));
    let contents: Vec<String> = b.iter().map(|n| read(&fx.spec.backups.join(n))).collect();
    assert_eq!(contents, ["v1", "v1"]);
}

#[tokio::test]
async fn touching_a_file_copies_nothing() {
    let mut fx = Fx::new().await;
    write_at(&fx.local("a.txt"), "same", 1_000_000);
    fx.ok().await;
    write_at(&fx.local("a.txt"), "same", 2_000_000);
    let r = fx.ok().await;
    assert_eq!(r.files_changed(), 0);
    assert_eq!(
        fx.base.get("a.txt").map(|e| e.local.mtime_ns),
        Some(2_000_000_000_000_000)
    );
}

#[tokio::test]
async fn both_sides_changed_to_the_same_contents_is_no_conflict() {
    let mut fx = Fx::new().await;
    write(&fx.local("a.txt"), "v1");
    fx.ok().await;
    write(&fx.local("a.txt"), "same");
    write(&fx.remote("a.txt"), "same");
    let r = fx.ok().await;
    assert!(r.conflicts.is_empty());
    assert_eq!(r.agreed, 1);
    assert_eq!(r.files_changed(), 0);
    // Created on both sides alike, no base: agreed too.
    write(&fx.local("n.txt"), "n");
    write(&fx.remote("n.txt"), "n");
    assert_eq!(fx.ok().await.agreed, 1);
}

/// Resolves `fx`'s open conflicts of target `t1` keeping `keep`, now.
async fn resolve_open(
    fx: &mut Fx,
    keep: metasystem_actors::sync::resolve::Keep,
) -> Result<metasystem_actors::sync::resolve::Resolution, metasystem_actors::sync::OpError> {
    let open = conflicts(fx.store.reader(), Some("t1"), false)
        .await
        .unwrap();
    metasystem_actors::sync::resolve::resolve(
        &fx.spec,
        &fx.store,
        &mut fx.base,
        &open,
        keep,
        std::time::SystemTime::now(),
    )
    .await
}

async fn conflict(strategy: Strategy) -> (Fx, RunReport) {
    let mut fx = Fx::new().await;
    fx.spec.strategy = strategy;
    write(&fx.local("a.txt"), "v1");
    fx.ok().await;
    write_at(&fx.local("a.txt"), "local edit", 2_000_000);
    write_at(&fx.remote("a.txt"), "remote edit (newer)", 3_000_000);
    let r = fx.ok().await;
    assert_eq!(r.conflicts.len(), 1, "{r:#?}");
    (fx, r)
}

#[tokio::test]
async fn strategy_newest_takes_the_later_time() {
    let (fx, r) = conflict(Strategy::Newest).await;
    assert_eq!(r.conflicts[0].kept, "remote");
    assert_eq!(read(&fx.local("a.txt")), "remote edit (newer)");
    // The losing version is backed up.
    let b = fx.backups();
    assert_eq!(read(&fx.spec.backups.join(&b[0])), "local edit");
}

#[tokio::test]
async fn strategy_local_and_remote() {
    let (fx, _) = conflict(Strategy::Local).await;
    assert_eq!(read(&fx.remote("a.txt")), "local edit");
    let (fx, _) = conflict(Strategy::Remote).await;
    assert_eq!(read(&fx.local("a.txt")), "remote edit (newer)");
}

#[tokio::test]
async fn strategy_manual_keeps_both_until_resolved() {
    let (mut fx, r) = conflict(Strategy::Manual).await;
    let copy = r.conflicts[0].copy.clone().unwrap();
    assert!(
        copy.starts_with("a.conflict-") && copy.ends_with("-t1.txt"),
        "{copy}"
    );
    assert_eq!(read(&fx.local("a.txt")), "local edit");
    assert_eq!(read(&fx.remote("a.txt")), "remote edit (newer)");
    assert_eq!(read(&fx.local(&copy)), "remote edit (newer)");
    let open = conflicts(fx.store.reader(), Some("t1"), false)
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].path, "a.txt");
    // The next run leaves it alone (no second copy); the copy itself syncs as a new file.
    let again = fx.ok().await;
    assert_eq!(again.unresolved, vec!["a.txt".to_string()]);
    assert!(again.conflicts.is_empty());
    assert_eq!(read(&fx.remote(&copy)), "remote edit (newer)");
}

#[tokio::test]
async fn deletions_propagate_after_a_backup_and_modification_beats_deletion() {
    let mut fx = Fx::new().await;
    for n in ["a", "b", "c", "d", "e"] {
        write(&fx.local(&format!("{n}.txt")), n);
    }
    fx.ok().await;
    fs::remove_file(fx.local("a.txt")).unwrap();
    fs::remove_file(fx.remote("b.txt")).unwrap();
    // Modify vs delete: the modification is kept, both ways round.
    fs::remove_file(fx.local("c.txt")).unwrap();
    write(&fx.remote("c.txt"), "c changed");
    write(&fx.local("d.txt"), "d changed");
    fs::remove_file(fx.remote("d.txt")).unwrap();
    let r = fx.ok().await;
    assert_eq!((r.deleted_remote, r.deleted_local), (1, 1), "{r:#?}");
    assert!(!fx.remote("a.txt").exists());
    assert!(!fx.local("b.txt").exists());
    assert_eq!(read(&fx.local("c.txt")), "c changed");
    assert_eq!(read(&fx.remote("d.txt")), "d changed");
    let b = fx.backups();
    assert!(b.iter().any(|n| n.starts_with("a.txt-")), "{b:?}");
    assert!(b.iter().any(|n| n.starts_with("b.txt-")), "{b:?}");
    // Both deleted: forgotten.
    fs::remove_file(fx.local("e.txt")).unwrap();
    fs::remove_file(fx.remote("e.txt")).unwrap();
    fx.ok().await;
    assert!(!fx.base.contains_key("e.txt"));
}

#[tokio::test]
async fn an_offline_target_is_skipped_never_read_as_deletions() {
    let mut fx = Fx::new().await;
    write(&fx.local("a.txt"), "a");
    fx.ok().await;
    let moved = fx.dir.path().join("unplugged");
    fs::rename(&fx.spec.target, &moved).unwrap();
    let r = fx.run().await;
    assert_eq!(r.outcome, Outcome::Skipped, "{r:#?}");
    assert!(r.reason.as_deref().unwrap_or("").contains("offline"));
    assert!(!fx.spec.target.exists(), "the folder is never created");
    assert!(fx.local("a.txt").exists());
    assert_eq!(fx.base.len(), 1);
    // Plugged back in: nothing to do.
    fs::rename(&moved, &fx.spec.target).unwrap();
    assert_eq!(fx.ok().await.files_changed(), 0);
}

#[tokio::test]
async fn the_first_run_creates_the_target_only_under_an_existing_parent() {
    let mut fx = Fx::new().await;
    write(&fx.local("a.txt"), "a");
    fs::remove_dir(&fx.spec.target).unwrap();
    fx.ok().await;
    assert_eq!(read(&fx.remote("a.txt")), "a");
    let mut fx = Fx::new().await;
    fx.spec.target = fx.dir.path().join("no/such/mount/.metasystem");
    assert_eq!(fx.run().await.outcome, Outcome::Skipped);
    assert!(!fx.dir.path().join("no").exists());
}

#[tokio::test]
async fn a_target_without_its_marker_is_refused() {
    let mut fx = Fx::new().await;
    write(&fx.local("a.txt"), "a");
    fx.ok().await;
    // Another (empty) drive mounted at the same place.
    fs::remove_dir_all(&fx.spec.target).unwrap();
    fs::create_dir(&fx.spec.target).unwrap();
    let r = fx.run().await;
    assert_eq!(r.outcome, Outcome::Error);
    assert_eq!(r.refusal, Some(Refusal::MarkerMissing));
    assert!(fx.local("a.txt").exists(), "nothing deleted");
    assert_eq!(fx.base.len(), 1);
}

#[tokio::test]
async fn max_delete_stops_a_mass_deletion_above_its_floor() {
    let mut fx = Fx::new().await;
    for i in 0..30 {
        write(&fx.remote(&format!("f{i}.txt")), "x");
    }
    fx.ok().await;
    for i in 0..16 {
        fs::remove_file(fx.local(&format!("f{i}.txt"))).unwrap();
    }
    let r = fx.run().await;
    assert_eq!(r.outcome, Outcome::Error);
    assert_eq!(r.refusal, Some(Refusal::MaxDelete));
    let why = r.reason.clone().unwrap();
    assert!(why.contains("16 of 30"), "{why}");
    assert!(why.contains("`metasystem sync t1 --dry-run`"), "{why}");
    assert!(
        why.contains("`metasystem sync t1 --allow-deletes 16`"),
        "{why}"
    );
    assert!(r.planned.is_empty() && r.run_id.is_none(), "{r:#?}");
    let untouched = |fx: &Fx| (0..30).all(|i| fx.remote(&format!("f{i}.txt")).exists());
    assert!(untouched(&fx), "nothing was deleted");

    // A dry run shows the plan the guard stops.
    let r = fx
        .run_with(RunOptions {
            dry_run: true,
            ..RunOptions::default()
        })
        .await;
    assert_eq!(r.refusal, Some(Refusal::MaxDelete));
    assert_eq!(r.planned.len(), 16, "{r:#?}");
    assert!(r
        .planned
        .iter()
        .all(|p| p.action == "delete on the target (backed up)"));
    assert!(r.run_id.is_none());

    // Let through for 15: still stopped, saying how many; nothing deleted.
    let allow = |n| RunOptions {
        allow_deletes: Some(n),
        ..RunOptions::default()
    };
    let r = fx.run_with(allow(15)).await;
    assert_eq!(r.refusal, Some(Refusal::MaxDelete));
    let why = r.reason.unwrap();
    assert!(
        why.contains("would delete 16 files, more than `--allow-deletes 15`"),
        "{why}"
    );
    assert_eq!(r.planned.len(), 16);
    assert!(untouched(&fx), "nothing was deleted");

    // For 16: through, each deletion listed; its backups all carry its ID.
    let r = fx.run_with(allow(16)).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:#?}");
    assert_eq!(r.deleted_remote, 16);
    let mut planned: Vec<&str> = r.planned.iter().map(|p| p.path.as_str()).collect();
    planned.sort_unstable();
    let mut want: Vec<String> = (0..16).map(|i| format!("f{i}.txt")).collect();
    want.sort();
    assert_eq!(planned, want);
    let id = r.run_id.clone().expect("a run that deleted has an ID");
    assert_eq!(id.len(), 15, "{id}");
    let b = fx.backups();
    assert_eq!(b.len(), 16);
    assert!(b.iter().all(|n| n.contains(&id)), "{b:?} {id}");
    // A run with nothing to do has none.
    assert_eq!(fx.ok().await.run_id, None);
}

#[tokio::test]
async fn deletions_at_or_below_the_floor_never_trip_the_guard() {
    let mut fx = Fx::new().await;
    for i in 0..3 {
        write(&fx.local(&format!("f{i}.txt")), "x");
    }
    fx.ok().await;
    // 2 of 3 is more than half, but not more than 10 files.
    for i in 0..2 {
        fs::remove_file(fx.remote(&format!("f{i}.txt"))).unwrap();
    }
    let r = fx.ok().await;
    assert_eq!(r.deleted_local, 2);
    assert!(r.planned.is_empty(), "only a run let through lists them");
    // No floor: the share applies from the first file.
    fx.spec.max_delete_floor = 0;
    fs::remove_file(fx.remote("f2.txt")).unwrap();
    let r = fx.run().await;
    assert_eq!(r.refusal, Some(Refusal::MaxDelete), "{r:#?}");
    assert!(fx.local("f2.txt").exists());
}

#[tokio::test]
async fn names_differing_only_by_case_or_normalisation_are_reported_not_merged() {
    let mut fx = Fx::new().await;
    write(&fx.local("Notes.txt"), "local");
    write(&fx.remote("notes.txt"), "remote");
    write(&fx.local("caf\u{e9}.txt"), "nfc");
    write(&fx.remote("cafe\u{301}.txt"), "nfd");
    let r = fx.ok().await;
    assert_eq!(r.collisions.len(), 2, "{r:#?}");
    assert_eq!(r.files_changed(), 0);
    assert!(!fx.remote("Notes.txt").exists());
    assert_eq!(read(&fx.remote("notes.txt")), "remote");
    // A case-only rename of a synced file: made on the other side, nothing deleted.
    let mut fx = Fx::new().await;
    write(&fx.local("a.txt"), "a");
    fx.ok().await;
    fs::rename(fx.local("a.txt"), fx.local("A.txt")).unwrap();
    let r = fx.ok().await;
    assert!(r.collisions.is_empty(), "{r:#?}");
    assert_eq!(r.renamed, vec![("a.txt".to_string(), "A.txt".to_string())]);
    assert_eq!(r.files_changed(), 0);
    assert_eq!(read(&fx.remote("A.txt")), "a");
    assert!(!fx.remote("a.txt").exists());
}

#[tokio::test]
async fn push_and_pull_leave_the_other_sides_changes_pending() {
    let mut fx = Fx::new().await;
    write(&fx.local("a.txt"), "a");
    write(&fx.local("b.txt"), "b");
    fx.ok().await;
    write(&fx.local("a.txt"), "a2");
    write(&fx.remote("b.txt"), "b2");
    let push = RunOptions {
        direction: Some(Direction::Push),
        ..Default::default()
    };
    let r = fx.run_with(push).await;
    assert_eq!(r.copied_to_remote, 1);
    assert_eq!(r.pending.len(), 1);
    assert_eq!(read(&fx.local("b.txt")), "b");
    let pull = RunOptions {
        direction: Some(Direction::Pull),
        ..Default::default()
    };
    let r = fx.run_with(pull).await;
    assert_eq!(r.copied_to_local, 1);
    assert_eq!(read(&fx.local("b.txt")), "b2");
}

#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let mut fx = Fx::new().await;
    write(&fx.local("a.txt"), "a");
    let r = fx
        .run_with(RunOptions {
            dry_run: true,
            ..Default::default()
        })
        .await;
    assert_eq!(r.planned.len(), 1);
    assert_eq!(r.planned[0].action, "copy to the target");
    assert!(!fx.remote("a.txt").exists());
    assert!(!fx.remote(".metasystem-sync").exists());
    assert!(fx.base.is_empty());
}

#[tokio::test]
async fn old_backups_are_pruned() {
    let mut fx = Fx::new().await;
    write(&fx.spec.backups.join("x.txt-20200101-000000.bak"), "old");
    write(
        &fx.spec.backups.join("sub/y.txt-20200101-000000.1.bak"),
        "old",
    );
    let fresh = metasystem_actors::sync::backup_name::BackupName::new(
        "z.txt",
        std::time::SystemTime::now(),
        0,
    )
    .to_string();
    write(&fx.spec.backups.join(&fresh), "new");
    write(&fx.spec.backups.join("not-a-backup.txt"), "keep");
    let r = fx.ok().await;
    assert_eq!(r.backups_pruned, 2);
    let mut left = fx.backups();
    left.sort();
    assert_eq!(left, vec!["not-a-backup.txt".to_string(), fresh]);
}

/// Temps a killed run left are removed by the next run when the store lists their nonce for
/// this target; others (another target's, another host's) are left alone and never synced.
#[tokio::test]
async fn leftover_temp_files_are_removed_and_never_synced() {
    let mut fx = Fx::new().await;
    // A run that was killed after recording its nonce and writing its temps.
    let ours = "00000000deadbeef";
    fx.store
        .durable(
            metasystem_actors::store::DurableOp::SyncTemps {
                target: fx.spec.name.clone(),
                add: Some(ours.into()),
                forget: Vec::new(),
                at_ms: 0,
            },
            None,
        )
        .await
        .unwrap();
    let torn = format!("dir/.msync-{ours}-00000003.tmp");
    write(&fx.remote(&torn), "torn");
    write(&fx.local(&torn), "torn");
    let foreign = "dir/.msync-0123456789abcdef-00000000.tmp";
    write(&fx.remote(foreign), "another host's, being written");
    // Regression (found by the SIGKILL test): a backup being written when the daemon was
    // killed stayed in the backups folder for ever.
    let torn_backup = fx
        .spec
        .backups
        .join(format!("dir/.msync-{ours}-00000004.tmp"));
    write(&torn_backup, "torn");
    write(&fx.local("dir/a.txt"), "a");
    let r = fx.ok().await;
    assert!(!fx.remote(&torn).exists());
    assert!(!fx.local(&torn).exists());
    assert!(!torn_backup.exists());
    assert_eq!(read(&fx.remote("dir/a.txt")), "a");
    assert_eq!(read(&fx.remote(foreign)), "another host's, being written");
    assert!(!fx.local(foreign).exists());
    assert!(r.skipped.iter().any(|(p, _)| p == foreign), "{r:#?}");
    // The nonce is forgotten once its temps are gone; the run's own is listed (it copied).
    let nonces = metasystem_actors::store::sync::temp_nonces(fx.store.reader(), &fx.spec.name)
        .await
        .unwrap();
    assert!(!nonces.contains(&ours.to_string()), "{nonces:?}");
    assert_eq!(nonces.len(), 1);
}

/// Regression: a folder never synced (the daemon's own state inside the primary) was still
/// read by every scan, and a name in it that looked like a leftover temp file was deleted.
#[tokio::test]
async fn a_folder_never_synced_is_not_read_and_nothing_in_it_is_touched() {
    let mut fx = Fx::new().await;
    fx.spec.selection.never = vec!["state".into()];
    let theirs = fx.local("state/sub/.x.msync-tmp-00000000deadbeef");
    write(&theirs, "not ours to remove");
    write(&fx.local("state/kept.txt"), "never synced");
    write(&fx.local("a.txt"), "a");
    let r = fx.ok().await;
    assert!(r.skipped.is_empty() && r.errors.is_empty(), "{r:#?}");
    assert_eq!(read(&theirs), "not ours to remove");
    assert!(!fx.remote("state").exists());
    assert_eq!(read(&fx.remote("a.txt")), "a");
}

/// A database written continuously while it is synced: the copy passes integrity_check and
/// holds every row committed before the run began; the live file is never replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_database_is_copied_as_a_consistent_snapshot() {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
    use sqlx::{ConnectOptions, Row};
    let mut fx = Fx::new().await;
    let db = fx.local("notes.db");
    let mut conn = SqliteConnectOptions::new()
        .filename(&db)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .connect()
        .await
        .unwrap();
    sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        .execute(&mut conn)
        .await
        .unwrap();
    for i in 0..500 {
        sqlx::query("INSERT INTO t (v) VALUES (?)")
            .bind(format!("row {i}"))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    // A writer that goes on during the run.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let writer = tokio::spawn(async move {
        let mut n = 0;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) && n < 100_000 {
            let _ = sqlx::query("INSERT INTO t (v) VALUES ('more')")
                .execute(&mut conn)
                .await;
            n += 1;
            tokio::task::yield_now().await;
        }
        conn
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = fx.ok().await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut conn = writer.await.unwrap();
    assert_eq!(r.copied_to_remote, 1, "{r:#?}");
    let copy = fx.remote("notes.db");
    metasystem_actors::sync::snapshot::integrity(&copy)
        .await
        .unwrap();
    assert!(!fx.remote("notes.db-wal").exists(), "no WAL in the target");
    let mut c = SqliteConnectOptions::new()
        .filename(&copy)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let n: i64 = sqlx::query("SELECT count(*) FROM t")
        .fetch_one(&mut c)
        .await
        .unwrap()
        .get(0);
    assert!(
        n >= 500,
        "the copy holds every row committed before the run: {n}"
    );
    // The live file (and its WAL) were never replaced: the writer's connection still works.
    sqlx::query("INSERT INTO t (v) VALUES ('after')")
        .execute(&mut conn)
        .await
        .unwrap();
    // A newer copy in the target is not pulled over the live database.
    drop(c);
    let later = fx.remote("notes.db");
    let f = fs::OpenOptions::new().write(true).open(&later).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(3600))
        .unwrap();
    drop(f);
    sqlx::query("INSERT INTO t (v) VALUES ('changes the remote hash')")
        .execute(
            &mut SqliteConnectOptions::new()
                .filename(&later)
                .connect()
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    let _ = fs::remove_file(fx.remote("notes.db-wal"));
    let r = fx.run().await;
    assert!(
        r.deferred
            .iter()
            .any(|(p, why)| p == "notes.db" && why.contains("in use"))
            || r.conflicts
                .iter()
                .any(|c| c.path == "notes.db" && c.kept == "local"),
        "{r:#?}"
    );
    sqlx::query("INSERT INTO t (v) VALUES ('still fine')")
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn snapshots_of_the_daemons_database_go_to_a_per_host_folder() {
    let mut fx = Fx::new().await;
    let live = fx.dir.path().join("s.db"); // the store itself, open and written
    fx.spec.snapshots = vec![live.clone()];
    let r = fx.ok().await;
    assert!(r.snapshots[0].1.starts_with("pushed"), "{r:#?}");
    let copy = fx.remote(".metasystem-hosts/testhost/s.db");
    metasystem_actors::sync::snapshot::integrity(&copy)
        .await
        .unwrap();
    // Fresh enough: not redone at the next run; never listed as a synced file.
    let r = fx.ok().await;
    assert_eq!(r.snapshots[0].1, "fresh enough");
    assert_eq!(r.remote_files, 0);
    assert!(!fx.local(".metasystem-hosts").exists());
}

/// Regression: anything under a top-level `hosts/` never synced (the per-host snapshots'
/// folder). The snapshots live in a reserved dotted folder now; a host's snapshot in the old
/// folder (`hosts/HOSTNAME/`) moves there, and a user's `hosts/` syncs.
#[tokio::test]
async fn a_users_hosts_folder_syncs_and_old_snapshot_folders_move() {
    let mut fx = Fx::new().await;
    let live = fx.dir.path().join("s.db");
    fx.spec.snapshots = vec![live.clone()];
    // A snapshot where an older version pushed it, and a user's own hosts/ folder.
    let old = fx.remote(&format!(
        "hosts/{}/s.db",
        metasystem_actors::host::hostname()
    ));
    fs::create_dir_all(old.parent().unwrap()).unwrap();
    fs::copy(&live, &old).unwrap();
    write(&fx.local("hosts/web1/nginx.conf"), "server {}");
    let r = fx.ok().await;
    assert_eq!(read(&fx.remote("hosts/web1/nginx.conf")), "server {}");
    assert!(!old.exists(), "{r:#?}");
    assert!(
        !old.parent().unwrap().exists(),
        "the emptied old folder stays"
    );
    assert!(fx.remote(".metasystem-hosts/testhost/s.db").is_file());
    assert!(!fx
        .local(&format!("hosts/{}", metasystem_actors::host::hostname()))
        .exists());
}

/// `conflicts resolve`, each way: the kept version on both sides, the replaced one in the
/// backups, the base agreeing (the next run copies nothing), the conflict closed.
#[tokio::test]
async fn a_kept_conflict_is_resolved_each_way() {
    use metasystem_actors::sync::resolve::{resolve, Keep};
    for keep in [Keep::Local, Keep::Remote, Keep::Both] {
        let (mut fx, r) = conflict(Strategy::Manual).await;
        let copy = r.conflicts[0].copy.clone().unwrap();
        let open = conflicts(fx.store.reader(), Some("t1"), false)
            .await
            .unwrap();
        let before = fx.backups().len();
        let res = resolve(
            &fx.spec,
            &fx.store,
            &mut fx.base,
            &open,
            keep,
            std::time::SystemTime::now(),
        )
        .await
        .unwrap_or_else(|e| panic!("{keep:?}: {e}"));
        assert_eq!(res.resolved, 1);
        let want = match keep {
            Keep::Local | Keep::Both => "local edit",
            Keep::Remote => "remote edit (newer)",
        };
        assert_eq!(read(&fx.local("a.txt")), want, "{keep:?}");
        assert_eq!(read(&fx.remote("a.txt")), want, "{keep:?}");
        // The replaced version is in the backups; the copy moved there too unless kept.
        let b = fx.backups();
        let replaced = b.iter().filter(|n| n.starts_with("a.txt-")).count();
        assert_eq!(replaced, 1, "{keep:?}: {b:?}");
        assert!(res.backup.is_some());
        if keep == Keep::Both {
            assert_eq!(read(&fx.local(&copy)), "remote edit (newer)");
            assert_eq!(b.len(), before + 1, "{b:?}");
        } else {
            assert!(!fx.local(&copy).exists(), "{keep:?}");
            assert!(b.iter().any(|n| n.starts_with("a.conflict-")), "{b:?}");
        }
        let open = conflicts(fx.store.reader(), Some("t1"), false)
            .await
            .unwrap();
        assert!(open.is_empty(), "{open:?}");
        let all = conflicts(fx.store.reader(), Some("t1"), true)
            .await
            .unwrap();
        assert_eq!(all[0].resolution.as_deref(), Some(keep.name()));
        // The cache and the store agree, and the next run has nothing to do for the path
        // (the copy, when kept, goes out as a new file).
        let stored = metasystem_actors::store::sync::base(fx.store.reader(), "t1")
            .await
            .unwrap();
        assert_eq!(stored, fx.base);
        let next = fx.ok().await;
        assert!(next.unresolved.is_empty(), "{next:#?}");
        assert!(next.conflicts.is_empty(), "{next:#?}");
        assert_eq!(read(&fx.local("a.txt")), want);
        assert_eq!(read(&fx.remote("a.txt")), want);
        match keep {
            Keep::Both => assert_eq!(read(&fx.remote(&copy)), "remote edit (newer)"),
            _ => assert_eq!(next.files_changed(), 0, "{next:#?}"),
        }
    }
}

/// A path with no open conflict, an offline target: clear errors, nothing touched.
/// A version written over the target's side after the conflict was recorded (another host, a
/// program) was never shown to whoever resolves: `--keep local` does not overwrite it unasked;
/// the next sync settles the conflict with it instead.
#[tokio::test]
async fn a_resolution_never_overwrites_a_version_written_since_the_conflict() {
    use metasystem_actors::sync::resolve::Keep;
    let (mut fx, _) = conflict(Strategy::Manual).await;
    write(&fx.remote("a.txt"), "v4, written on another host since");
    let e = resolve_open(&mut fx, Keep::Local)
        .await
        .expect_err("a version never shown must not be replaced");
    assert!(
        matches!(e, metasystem_actors::sync::OpError::Refused(ref m) if m.contains("changed since the conflict was recorded")),
        "{e}"
    );
    assert_eq!(
        read(&fx.remote("a.txt")),
        "v4, written on another host since"
    );
    assert_eq!(read(&fx.local("a.txt")), "local edit");
    // The next run: the primary's side is the conflict's, the target's was edited: it wins.
    let r = fx.ok().await;
    assert!(r.unresolved.is_empty(), "{r:#?}");
    assert_eq!(
        read(&fx.local("a.txt")),
        "v4, written on another host since"
    );

    // Deleted on the target since (another host): not made again unasked.
    let (mut fx, _) = conflict(Strategy::Manual).await;
    std::fs::remove_file(fx.remote("a.txt")).unwrap();
    let e = resolve_open(&mut fx, Keep::Local)
        .await
        .expect_err("a deletion never shown must not be undone");
    assert!(
        matches!(e, metasystem_actors::sync::OpError::Refused(ref m) if m.contains("was deleted since the conflict was recorded")),
        "{e}"
    );
    assert!(!fx.remote("a.txt").exists());
}

/// A resolution that changes the target gives its marker a fresh nonce first: an image of the
/// target from before it, restored, is a first sync that raises the conflict again, not a quiet
/// return of the version the operator rejected.
#[tokio::test]
async fn a_resolution_that_changes_the_target_rotates_its_marker() {
    use metasystem_actors::sync::resolve::Keep;
    let (mut fx, _) = conflict(Strategy::Manual).await;
    let target = fx.spec.target.clone();
    let marker = || {
        let text = std::fs::read_to_string(target.join(".metasystem-sync")).unwrap();
        (
            metasystem_actors::sync::marker_nonce(&text).unwrap(),
            metasystem_actors::sync::marker_history(&text),
        )
    };
    let (before, _) = marker();
    resolve_open(&mut fx, Keep::Local)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (after, history) = marker();
    assert_ne!(after, before);
    assert_eq!(history.first(), Some(&before), "{history:?}");
    // The store adopted it: the next run is an ordinary one.
    let r = fx.ok().await;
    assert!(!r.first_sync, "{r:#?}");
}

#[tokio::test]
async fn resolving_what_cannot_be_resolved_says_why() {
    use metasystem_actors::sync::resolve::{resolve, Keep};
    let (mut fx, _) = conflict(Strategy::Manual).await;
    let err = resolve(
        &fx.spec,
        &fx.store,
        &mut fx.base,
        &[],
        Keep::Local,
        std::time::SystemTime::now(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, metasystem_actors::sync::OpError::NotFound(ref m) if m.contains("no open conflict")),
        "{err}"
    );
    let open = conflicts(fx.store.reader(), Some("t1"), false)
        .await
        .unwrap();
    let away = fx.dir.path().join("away");
    fs::rename(&fx.spec.target, &away).unwrap();
    let err = resolve(
        &fx.spec,
        &fx.store,
        &mut fx.base,
        &open,
        Keep::Local,
        std::time::SystemTime::now(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, metasystem_actors::sync::OpError::Offline(ref m) if m.contains("offline")),
        "{err}"
    );
    assert_eq!(read(&fx.local("a.txt")), "local edit");
    assert_eq!(read(&away.join("a.txt")), "remote edit (newer)");
    let msg = metasystem_actors::sync::actor::no_conflict("t1", "b.txt", &open);
    assert!(msg.contains("open: a.txt"), "{msg}");
}

/// The actor never resolves during a run: a resolution asked while a run holds the target
/// waits for it (queued like a forced run) and is answered after it.
#[tokio::test]
async fn the_actor_queues_a_resolution_behind_a_running_run() {
    use metasystem_actors::sync::actor::SyncTargetMessage;
    use metasystem_actors::sync::Keep;
    let (fx, _) = conflict(Strategy::Manual).await;
    let (actor, handle) = spawn_target(&fx).await;
    let (run_tx, run_rx) = ractor::concurrency::oneshot();
    let (res_tx, res_rx) = ractor::concurrency::oneshot();
    // Both in the mailbox before the actor reads the first: the run takes the target, the
    // resolution must wait for it.
    actor
        .cast(SyncTargetMessage::Run(
            RunOptions::default(),
            Some(run_tx.into()),
        ))
        .unwrap();
    actor
        .cast(SyncTargetMessage::Resolve(
            "a.txt".into(),
            Keep::Local,
            res_tx.into(),
        ))
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(30), run_rx)
        .await
        .unwrap()
        .unwrap();
    // The run saw the conflict still open (the resolution had not happened yet).
    assert_eq!(report.unresolved, vec!["a.txt".to_string()], "{report:#?}");
    let res = tokio::time::timeout(Duration::from_secs(30), res_rx)
        .await
        .unwrap()
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(res.keep, Keep::Local);
    assert_eq!(read(&fx.remote("a.txt")), "local edit");
    // A path with no open conflict: the error names the open ones (none left now).
    let err = actor
        .call(
            |r| SyncTargetMessage::Resolve("a.txt".into(), Keep::Remote, r),
            Some(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    match err {
        ractor::rpc::CallResult::Success(Err(e)) => assert!(
            matches!(e, metasystem_actors::sync::OpError::NotFound(ref m) if m.contains("no open conflict")),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    actor.stop(None);
    let _ = handle.await;
}

/// With the backups on another file system (a rename cannot move there), the conflict copy
/// still leaves the primary: copied into the backups, then removed.
#[tokio::test]
async fn a_resolution_moves_the_copy_across_file_systems() {
    use metasystem_actors::sync::resolve::{resolve, Keep};
    let Ok(shm) = tempfile::tempdir_in("/dev/shm") else {
        return; // no second file system here
    };
    let (mut fx, r) = conflict(Strategy::Manual).await;
    fx.spec.backups = shm.path().join("backups");
    let copy = r.conflicts[0].copy.clone().unwrap();
    let open = conflicts(fx.store.reader(), Some("t1"), false)
        .await
        .unwrap();
    let res = resolve(
        &fx.spec,
        &fx.store,
        &mut fx.base,
        &open,
        Keep::Local,
        std::time::SystemTime::now(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!fx.local(&copy).exists(), "{res:?}");
    assert!(fx.backups().iter().any(|n| n.starts_with("a.conflict-")));
}

/// Regression: with the backups on another file system, a primary file deleted on the target
/// was copied into the backups but left in the primary while the base forgot it, so the next
/// run brought it back to the target.
#[tokio::test]
async fn a_deletion_from_the_primary_holds_with_backups_on_another_file_system() {
    let Ok(shm) = tempfile::tempdir_in("/dev/shm") else {
        return; // no second file system here
    };
    let mut fx = Fx::new().await;
    fx.spec.backups = shm.path().join("backups");
    for n in ["a", "b", "c"] {
        write(&fx.local(&format!("{n}.txt")), n);
    }
    fx.ok().await;
    fs::remove_file(fx.remote("a.txt")).unwrap();
    let r = fx.ok().await;
    assert_eq!(r.deleted_local, 1, "{r:#?}");
    assert!(!fx.local("a.txt").exists(), "the primary's copy stayed");
    assert!(fx.backups().iter().any(|n| n.starts_with("a.txt-")));
    let again = fx.ok().await;
    assert!(
        !fx.remote("a.txt").exists(),
        "the deleted file came back: {again:#?}"
    );
    assert!(!fx.local("a.txt").exists());
}

async fn open_conflicts(fx: &Fx) -> Vec<metasystem_actors::store::sync::ConflictRow> {
    conflicts(fx.store.reader(), Some("t1"), false)
        .await
        .unwrap()
}

async fn closed_as(fx: &Fx) -> Vec<(String, Option<String>)> {
    conflicts(fx.store.reader(), Some("t1"), true)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.resolved_ms.is_some())
        .map(|c| (c.path, c.resolution))
        .collect()
}

/// Regression: a kept conflict whose path the user then edited stayed open, and every such
/// edit made one more conflict copy and one more open record.
#[tokio::test]
async fn editing_one_side_of_a_kept_conflict_settles_it() {
    let (mut fx, r) = conflict(Strategy::Manual).await;
    let copy = r.conflicts[0].copy.clone().unwrap();
    // The user merges by hand into the primary's file.
    write_at(&fx.local("a.txt"), "merged", 4_000_000);
    let r = fx.ok().await;
    assert!(r.conflicts.is_empty(), "{r:#?}");
    assert_eq!(read(&fx.remote("a.txt")), "merged");
    assert!(open_conflicts(&fx).await.is_empty());
    assert_eq!(
        closed_as(&fx).await,
        vec![("a.txt".to_string(), Some("edited".to_string()))]
    );
    // Settled for good: the next runs have nothing to do and make no copies.
    let again = fx.ok().await;
    assert!(
        again.conflicts.is_empty() && again.unresolved.is_empty(),
        "{again:#?}"
    );
    let copies: Vec<String> = walk(&fx.spec.primary)
        .unwrap()
        .into_iter()
        .filter(|n| n.contains(".conflict-"))
        .collect();
    assert_eq!(copies, vec![copy]);
}

#[tokio::test]
async fn a_kept_conflict_made_equal_by_hand_is_settled() {
    let (mut fx, _) = conflict(Strategy::Manual).await;
    write_at(&fx.local("a.txt"), "remote edit (newer)", 4_000_000);
    let r = fx.ok().await;
    assert!(r.conflicts.is_empty(), "{r:#?}");
    assert!(open_conflicts(&fx).await.is_empty());
    assert_eq!(read(&fx.remote("a.txt")), "remote edit (newer)");
}

#[tokio::test]
async fn both_sides_edited_again_supersede_the_kept_conflict() {
    let (mut fx, _) = conflict(Strategy::Manual).await;
    write_at(&fx.local("a.txt"), "local again", 5_000_000);
    write_at(&fx.remote("a.txt"), "remote again", 6_000_000);
    let r = fx.ok().await;
    assert_eq!(r.conflicts.len(), 1, "{r:#?}");
    let open = open_conflicts(&fx).await;
    assert_eq!(open.len(), 1, "one open record per path: {open:#?}");
    assert_eq!(
        closed_as(&fx).await,
        vec![("a.txt".to_string(), Some("superseded".to_string()))]
    );
    assert_eq!(read(&fx.local("a.txt")), "local again");
    assert_eq!(read(&fx.remote("a.txt")), "remote again");
    // Two copies, even within the same second: the second one's name says which it is.
    let copies: Vec<String> = walk(&fx.spec.primary)
        .unwrap()
        .into_iter()
        .filter(|n| n.contains(".conflict-"))
        .collect();
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert_eq!(read(&fx.local(&open[0].copy)), "remote again");
}

#[tokio::test]
async fn a_kept_conflict_deleted_on_both_sides_is_closed() {
    let mut fx = Fx::new().await;
    fx.spec.strategy = Strategy::Manual;
    write_at(&fx.local("n.txt"), "made here", 2_000_000);
    write_at(&fx.remote("n.txt"), "made there", 3_000_000);
    let r = fx.ok().await;
    assert_eq!(r.conflicts.len(), 1, "{r:#?}");
    fs::remove_file(fx.local("n.txt")).unwrap();
    fs::remove_file(fx.remote("n.txt")).unwrap();
    fx.ok().await;
    assert!(open_conflicts(&fx).await.is_empty());
    assert_eq!(
        closed_as(&fx).await,
        vec![("n.txt".to_string(), Some("gone".to_string()))]
    );
}

/// Regression: a target whose files were all deleted on both sides (an empty base) counted as
/// never synced: its marker was no longer required, and a missing folder was created again.
#[tokio::test]
async fn a_target_emptied_on_both_sides_is_still_one_synced_before() {
    let mut fx = Fx::new().await;
    write(&fx.local("a.txt"), "a");
    fx.ok().await;
    fs::remove_file(fx.local("a.txt")).unwrap();
    fs::remove_file(fx.remote("a.txt")).unwrap();
    fx.ok().await;
    assert!(fx.base.is_empty());
    // Unplugged: offline, and the folder is not made again under the mount point.
    fs::remove_dir_all(&fx.spec.target).unwrap();
    assert_eq!(fx.run().await.outcome, Outcome::Skipped);
    assert!(
        !fx.spec.target.exists(),
        "the target folder was created again"
    );
    // Another (empty) drive there: refused for its missing marker.
    fs::create_dir(&fx.spec.target).unwrap();
    write(&fx.local("b.txt"), "b");
    let r = fx.run().await;
    assert_eq!(r.refusal, Some(Refusal::MarkerMissing), "{r:#?}");
    assert!(!fx.remote("b.txt").exists());
}

#[tokio::test]
async fn the_base_takes_large_batches_of_puts_and_forgets_in_order() {
    use metasystem_actors::store::sync::{base, BaseChange, SideState};
    use metasystem_actors::store::DurableOp;
    let fx = Fx::new().await;
    let entry = |n: u64| {
        let side = SideState {
            hash: [n as u8; 32],
            size: n,
            mtime_ns: n as i64,
            ..SideState::default()
        };
        BaseEntry {
            local: side,
            remote: side,
        }
    };
    let write = |changes: Vec<BaseChange>| {
        fx.store.durable(
            DurableOp::SyncBase {
                target: "t1".into(),
                changes,
            },
            Some(Duration::from_secs(30)),
        )
    };
    // 1,000 puts (several statement sizes), then forgets and puts interleaved in runs.
    write(
        (0..1_000)
            .map(|i| BaseChange::Put(format!("f{i:04}"), entry(i)))
            .collect(),
    )
    .await
    .unwrap();
    let mut changes = Vec::new();
    for i in 0..300 {
        changes.push(BaseChange::Forget(format!("f{i:04}")));
    }
    changes.push(BaseChange::Put("f0000".into(), entry(7)));
    for i in 300..305 {
        changes.push(BaseChange::Forget(format!("f{i:04}")));
    }
    changes.push(BaseChange::Put("f0300".into(), entry(9)));
    write(changes).await.unwrap();
    let b = base(fx.store.reader(), "t1").await.unwrap();
    assert_eq!(b.len(), 1_000 - 305 + 2);
    assert_eq!(b.get("f0000"), Some(entry(7)));
    assert_eq!(b.get("f0300"), Some(entry(9)));
    assert!(!b.contains_key("f0299") && !b.contains_key("f0304"));
    assert_eq!(b.get("f0999"), Some(entry(999)));
    assert!(base(fx.store.reader(), "other").await.unwrap().is_empty());
}

/// The actor of `fx`'s target.
async fn spawn_target(
    fx: &Fx,
) -> (
    ractor::ActorRef<metasystem_actors::sync::actor::SyncTargetMessage>,
    tokio::task::JoinHandle<()>,
) {
    use metasystem_actors::alerts::Alerts;
    use metasystem_actors::breakers::Breakers;
    use metasystem_actors::metrics::Metrics;
    use metasystem_actors::sync::actor::{SyncTargetActor, SyncTargetArgs};
    let args = SyncTargetArgs {
        path: "root/t1".into(),
        spec: fx.spec.clone(),
        every: Duration::from_secs(3600),
        min_interval: Duration::from_secs(60),
        breaker: None,
        store: fx.store.clone(),
        metrics: Metrics::new(fx.store.clone()),
        alerts: Alerts::new(fx.store.clone()),
        breakers: Breakers::new(),
        registry: metasystem_actors::sync::SyncTargets::default(),
        watch: None,
    };
    let (actor, handle) = ractor::Actor::spawn(None, SyncTargetActor, args)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (actor, handle)
}

/// The actor holds no base between runs: a run reads it from its files beside the store while
/// they are of the store's generation, and from the rows otherwise (no file yet, a damaged
/// file, rows changed behind them). A run that changed a few paths writes only a delta over
/// the base file; one that read the rows writes the whole base again.
#[tokio::test]
async fn between_runs_the_base_is_a_file_at_the_stores_generation() {
    use metasystem_actors::store::base_file;
    use metasystem_actors::store::sync::generation;
    use metasystem_actors::sync::actor::SyncTargetMessage;
    let fx = Fx::new().await;
    write(&fx.local("a.txt"), "one");
    write(&fx.local("d/b.txt"), "two");
    let (actor, handle) = spawn_target(&fx).await;
    let run = || async {
        let r = actor
            .call(
                |r| SyncTargetMessage::Run(RunOptions::default(), Some(r)),
                Some(Duration::from_secs(60)),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.outcome, Outcome::Success, "{r:#?}");
    };
    let file = base_file::path_of(fx.store.path(), "t1");
    let delta = base_file::delta_path(&file);
    let rows = || async {
        metasystem_actors::store::sync::base(fx.store.reader(), "t1")
            .await
            .unwrap()
    };
    // The base as its files give it, once the run's base is kept (after its report): the
    // same as the rows.
    let kept = || async {
        for _ in 0..400 {
            let l = base_file::load(&fx.store, "t1").await.unwrap();
            if l.from_file {
                assert_eq!(l.base, rows().await, "the files and the rows differ");
                return l;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no base file of the store's generation after 10 s");
    };
    run().await;
    assert_eq!(read(&fx.remote("d/b.txt")), "two");
    let first = kept().await;
    assert_eq!(first.base.len(), 2);
    assert!(first.delta.is_none());
    let whole = fs::read(&file).unwrap();

    // One path changed: a delta over the base file, which is left as it was.
    write_at(&fx.local("a.txt"), "three", 1_700_000_000);
    run().await;
    assert_eq!(read(&fx.remote("a.txt")), "three");
    let second = kept().await;
    let d = second.delta.expect("a delta");
    assert_eq!(d.changes.len(), 1, "{d:?}");
    assert_eq!(d.changes[0].path(), "a.txt");
    assert_eq!(fs::read(&file).unwrap(), whole);
    assert_eq!(d.to, generation(fx.store.reader(), "t1").await.unwrap());

    // A damaged base file: the rows are read (the edit is seen as an edit, not a conflict or
    // a first sync), and the whole base is written again, the delta gone.
    fs::write(&file, b"not a base").unwrap();
    write_at(&fx.local("a.txt"), "four", 1_700_000_100);
    run().await;
    assert_eq!(read(&fx.remote("a.txt")), "four");
    assert!(kept().await.delta.is_none());
    assert!(!delta.exists());

    // Rows changed behind the files (by hand): the store is at another generation, the files
    // are passed over.
    let before = generation(fx.store.reader(), "t1").await.unwrap();
    let url = format!("sqlite://{}", fx.store.path().display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("DELETE FROM sync_base WHERE target = 't1' AND path = 'd/b.txt'")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    assert_ne!(generation(fx.store.reader(), "t1").await.unwrap(), before);
    assert!(!base_file::load(&fx.store, "t1").await.unwrap().from_file);
    run().await;
    // Both sides hold the same d/b.txt: recorded again, nothing copied or kept apart.
    assert_eq!(kept().await.base.len(), 2);
    assert!(open_conflicts(&fx).await.is_empty());
    let status = actor
        .call(SyncTargetMessage::Status, Some(Duration::from_secs(10)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.tracked, 2);
    actor.stop(None);
    let _ = handle.await;
}
