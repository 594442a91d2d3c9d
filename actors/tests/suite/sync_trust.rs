//! Sync you can trust: regressions of the defect classes a hostile test of the sync found
//! (issue 19): a drive that drops out mid-run, a marker put back or restored, temps, change
//! detection, names, metadata, and two or three hosts sharing one target. Each runs the real
//! engine on real folders and a real store per host.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use metasystem_actors::store::sync::{conflicts, Base};
use metasystem_actors::store::Store;
use metasystem_actors::sync::engine::{self, Progress};
use metasystem_actors::sync::{
    Direction, Outcome, Refusal, RunOptions, RunReport, Selection, Strategy, SyncSpec,
};

/// One host: its primary, store and backups in a temp dir of its own, syncing into a target
/// it may share with other hosts.
struct Host {
    dir: tempfile::TempDir,
    store: Store,
    spec: SyncSpec,
    base: Base,
    progress: Arc<Progress>,
}

impl Host {
    async fn new(target: &Path, host: &str) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let primary = dir.path().join("primary");
        fs::create_dir_all(&primary).unwrap();
        let store = match Store::open(&dir.path().join("s.db"), Duration::from_secs(86_400)).await {
            Ok((s, _)) => s,
            Err(e) => panic!("store: {e}"),
        };
        let spec = SyncSpec {
            name: "shared".into(),
            primary,
            target: target.to_path_buf(),
            selection: Selection::default(),
            direction: Direction::Bidirectional,
            strategy: Strategy::Newest,
            backups: dir.path().join("backups"),
            retention: Duration::from_secs(30 * 86_400),
            max_delete: 1.0,
            max_delete_floor: 10,
            snapshots: Vec::new(),
            snapshot_every: Duration::from_secs(3600),
            host: host.into(),
            state_dir: PathBuf::from("/nonexistent/state"),
        };
        Host {
            dir,
            store,
            spec,
            base: Base::new(),
            progress: Arc::new(Progress::default()),
        }
    }

    async fn run_with(&mut self, opts: RunOptions) -> RunReport {
        let open = conflicts(self.store.reader(), Some(&self.spec.name), false)
            .await
            .unwrap();
        let r = tokio::time::timeout(
            Duration::from_secs(120),
            engine::run(
                &self.spec,
                &opts,
                &self.store,
                &mut self.base,
                &open,
                &self.progress,
            ),
        )
        .await
        .expect("a run took over 120 s");
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
        assert!(r.errors.is_empty() && r.deferred.is_empty(), "{r:#?}");
        r
    }

    fn local(&self, rel: &str) -> PathBuf {
        self.spec.primary.join(rel)
    }

    fn backups(&self) -> Vec<String> {
        files(&self.dir.path().join("backups"))
    }
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, bytes).unwrap();
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file under `dir` (relative, sorted), this tool's own files left out.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(dir).min_depth(1) {
        let Ok(e) = e else { continue };
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(dir).unwrap().to_string_lossy();
            if !rel.starts_with(".metasystem") {
                out.push(rel.into_owned());
            }
        }
    }
    out.sort();
    out
}

/// Whether this process can mount (root); under CI a test that needs it fails instead.
fn can_mount(test: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test} needs root (mount), which CI has"
        );
        eprintln!("{test}: skipped (needs root)");
    }
    root
}

/// Following our own hint (put the marker back) on a folder that lacks files must not
/// delete them from the primary: a new or restored marker is a first sync, a union.
#[tokio::test]
async fn a_marker_put_back_by_hand_is_a_first_sync_that_deletes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    let mut h = Host::new(&target, "h1").await;
    for i in 0..20 {
        write(&h.local(&format!("f{i}")), format!("v{i}").as_bytes());
    }
    h.ok().await;
    assert_eq!(files(&target).len(), 20);
    // A new folder in its place (a fresh cloud folder, another drive), with a file of its own.
    fs::remove_dir_all(&target).unwrap();
    write(&target.join("theirs"), b"theirs");
    let r = h.run().await;
    assert_eq!(r.refusal, Some(Refusal::MarkerMissing), "{r:#?}");
    let hint = r.reason.clone().unwrap();
    assert!(hint.contains("deleting nothing"), "{hint}");
    // The hint, followed.
    fs::write(target.join(".metasystem-sync"), b"").unwrap();
    let r = h.ok().await;
    assert!(r.first_sync, "{r:#?}");
    assert_eq!((r.deleted_local, r.deleted_remote), (0, 0), "{r:#?}");
    assert_eq!(files(&h.spec.primary).len(), 21);
    assert_eq!(files(&target), files(&h.spec.primary));
    // The marker now has a nonce of its own; the next run is an ordinary one, and deletions
    // flow again.
    let marker = fs::read_to_string(target.join(".metasystem-sync")).unwrap();
    assert!(marker.contains("nonce: "), "{marker}");
    fs::remove_file(h.local("f3")).unwrap();
    let r = h.ok().await;
    assert!(!r.first_sync);
    assert_eq!(r.deleted_remote, 1);
}

/// A drive restored from an older image brings back an older marker: its nonce is not the
/// one adopted, so the run is a union and the files the old image lacks stay in the primary.
#[tokio::test]
async fn a_restored_marker_is_a_union_not_a_mass_deletion() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    let mut h = Host::new(&target, "h1").await;
    write(&h.local("old"), b"old");
    h.ok().await;
    // The drive is replaced by an older image: marked, with another nonce, missing what was
    // synced since.
    write(&h.local("new"), b"new");
    h.ok().await;
    fs::remove_dir_all(&target).unwrap();
    fs::create_dir_all(&target).unwrap();
    let other = "metasystem sync target \"shared\", marked by h1\nnonce: 00112233445566778899aabbccddeeff\n";
    fs::write(target.join(".metasystem-sync"), other).unwrap();
    let r = h.ok().await;
    assert!(r.first_sync);
    assert_eq!(r.deleted_local, 0, "{r:#?}");
    assert_eq!(files(&h.spec.primary), ["new", "old"]);
    assert_eq!(files(&target), ["new", "old"]);
    assert!(h.backups().is_empty(), "{:?}", h.backups());
}

/// A run whose target is lazily unmounted in the middle (the path now the bare mountpoint)
/// stops: what it wrote afterwards is never recorded as synced, and once the drive is back
/// the next run deletes nothing from the primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drive_unmounted_in_the_middle_of_a_run_stops_it_and_loses_nothing() {
    if !can_mount("a_drive_unmounted_in_the_middle_of_a_run_stops_it_and_loses_nothing") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let drive = t.path().join("drive");
    let mnt = t.path().join("mnt");
    fs::create_dir_all(&drive).unwrap();
    fs::create_dir_all(&mnt).unwrap();
    let bind = |on: bool| {
        let st = if on {
            Command::new("mount")
                .arg("--bind")
                .arg(&drive)
                .arg(&mnt)
                .status()
        } else {
            Command::new("umount").arg("-l").arg(&mnt).status()
        };
        assert!(st.unwrap().success(), "mount {on}");
    };
    bind(true);
    let mut h = Host::new(&mnt, "h1").await;
    write(&h.local("first"), b"1");
    h.ok().await;
    const N: usize = 9_000;
    for i in 0..N {
        write(&h.local(&format!("d{}/f{i}", i % 30)), &[b'x'; 700]);
    }
    let progress = h.progress.clone();
    let run = tokio::spawn(async move {
        let r = h.run().await;
        (h, r)
    });
    // Unmounted once the first files are copied and before the last are.
    let mut unmounted = false;
    for _ in 0..6_000 {
        // This run's counters (the first run's are still there until it starts).
        let total = progress.files_total.load(Ordering::Relaxed);
        let done = progress.files_done.load(Ordering::Relaxed);
        if total == N as u64 && done > 0 {
            bind(false);
            unmounted = done < N as u64;
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (mut h, r) = run.await.unwrap();
    assert!(
        unmounted,
        "the run ended before the drive was unmounted: {r:#?}"
    );
    assert_ne!(r.outcome, Outcome::Success, "{r:#?}");
    let reason = r.reason.clone().unwrap_or_default();
    assert!(reason.contains("changed during the run"), "{reason}");
    // What the base recorded is on the drive, every path of it.
    for (rel, _) in h.base.iter() {
        assert!(
            drive.join(rel).is_file(),
            "{rel} recorded but not on the drive"
        );
    }
    // With the mountpoint bare, a run is refused (no marker), never read as deletions.
    let r = h.run().await;
    assert_eq!(r.refusal, Some(Refusal::MarkerMissing), "{r:#?}");
    // The drive back: the sync completes, nothing deleted from the primary.
    bind(true);
    let r = h.ok().await;
    assert_eq!(r.deleted_local, 0, "{r:#?}");
    assert_eq!(files(&h.spec.primary).len(), N + 1);
    assert_eq!(files(&drive), files(&h.spec.primary));
    bind(false);
}

/// Names up to 255 bytes sync, copied, replaced (with a backup) and deleted: temp names have
/// one short length whatever their destination's, and a long name's backup goes in a folder
/// of that name.
#[tokio::test]
async fn names_of_255_bytes_sync_and_are_backed_up() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    let mut h = Host::new(&target, "h1").await;
    let long = "n".repeat(255);
    let nested = format!("{}/{}", "d".repeat(250), "é".repeat(127));
    assert_eq!(nested.rsplit('/').next().unwrap().len(), 254);
    for (i, rel) in [&long, &nested].into_iter().enumerate() {
        write(&h.local(rel), format!("v1 {i}").as_bytes());
    }
    h.ok().await;
    for rel in [&long, &nested] {
        assert_eq!(read(&target.join(rel)), read(&h.local(rel)));
    }
    // Edited on the target: replaced in the primary, the old one backed up.
    write(&target.join(&long), b"v2");
    let r = h.ok().await;
    assert_eq!((r.copied_to_local, r.backups), (1, 1), "{r:#?}");
    assert_eq!(read(&h.local(&long)), b"v2");
    let backups = h.backups();
    assert_eq!(backups.len(), 1);
    assert!(backups[0].starts_with(&format!("{long}/")), "{backups:?}");
    // Deleted in the primary: deleted on the target, backed up.
    fs::remove_file(h.local(&nested)).unwrap();
    let r = h.ok().await;
    assert_eq!(r.deleted_remote, 1, "{r:#?}");
    assert!(!target.join(&nested).exists());
    assert_eq!(h.backups().len(), 2);
}

/// Two targets share a primary: the temps one of them left (killed mid-run) are its own, never
/// removed nor synced by the other; its own next run removes them.
#[tokio::test]
async fn a_targets_temps_are_left_alone_by_another_target_of_the_same_primary() {
    let t = tempfile::tempdir().unwrap();
    let mut a = Host::new(&t.path().join("a"), "h1").await;
    write(&a.local("doc"), b"doc");
    a.ok().await;
    // Target "a" was killed with a temp in the primary (its nonce recorded first, as always).
    let nonce = "00000000000000aa";
    a.store
        .durable(
            metasystem_actors::store::DurableOp::SyncTemps {
                target: a.spec.name.clone(),
                add: Some(nonce.into()),
                forget: Vec::new(),
                at_ms: 0,
            },
            None,
        )
        .await
        .unwrap();
    let temp = format!(".msync-{nonce}-00000000.tmp");
    write(&a.local(&temp), b"half of a file");
    // Target "b", same primary and store.
    let mut b_spec = a.spec.clone();
    b_spec.name = "b".into();
    b_spec.target = t.path().join("b");
    b_spec.backups = a.dir.path().join("backups-b");
    let mut b_base = Base::new();
    let r = engine::run(
        &b_spec,
        &RunOptions::default(),
        &a.store,
        &mut b_base,
        &[],
        &Progress::default(),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:#?}");
    assert!(a.local(&temp).exists(), "b removed a's temp");
    assert!(!b_spec.target.join(&temp).exists(), "b synced a's temp");
    assert!(b_spec.target.join("doc").exists());
    // a's next run removes it.
    a.ok().await;
    assert!(!a.local(&temp).exists());
}
