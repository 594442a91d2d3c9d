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

/// `cp -a` of a folder (an image of it, or a copy to move to): `from`'s contents into a fresh
/// `to`, times and modes kept.
fn copy_tree(from: &Path, to: &Path) {
    if to.exists() {
        fs::remove_dir_all(to).unwrap();
    }
    let st = Command::new("cp").arg("-a").arg(from).arg(to).status();
    assert!(
        st.unwrap().success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

/// A target restored from an image of itself taken after it was first synced carries the same
/// marker as then: it must still not roll the hosts back. Each run that changes the target gives
/// the marker a fresh nonce, so an older image's is not the one this host adopted last, nor in
/// its history: a union that keeps the edit and the new file, on both hosts.
#[tokio::test]
async fn a_target_restored_from_an_older_image_of_itself_rolls_nothing_back() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    let image = t.path().join("image");
    let mut a = Host::new(&target, "a").await;
    let mut b = Host::new(&target, "b").await;
    write(&a.local("old1.txt"), b"v1");
    write(&a.local("old2.txt"), b"v1");
    a.ok().await;
    b.ok().await;
    copy_tree(&target, &image);
    // Work after the image: an edit, a new file, on A; both hosts sync it.
    write(&a.local("old1.txt"), b"v2, after the image");
    write(&a.local("new.txt"), b"new");
    a.ok().await;
    b.ok().await;
    assert_eq!(read(&b.local("old1.txt")), b"v2, after the image");
    // The target goes back to the image (a restore, a cloud folder rolled back).
    copy_tree(&image, &target);
    for h in [&mut a, &mut b] {
        let r = h.ok().await;
        assert!(r.first_sync, "{}: {r:#?}", h.spec.host);
        assert_eq!((r.deleted_local, r.copied_to_local), (0, 0), "{r:#?}");
    }
    for dir in [&a.spec.primary, &b.spec.primary, &target] {
        assert_eq!(
            files(dir),
            ["new.txt", "old1.txt", "old2.txt"],
            "{}",
            dir.display()
        );
        assert_eq!(read(&dir.join("old1.txt")), b"v2, after the image");
    }
    // And after it, changes flow again without unions: a deletion on B reaches A.
    fs::remove_file(b.local("old2.txt")).unwrap();
    assert!(!b.ok().await.first_sync);
    let r = a.ok().await;
    assert!(!r.first_sync && r.deleted_local == 1, "{r:#?}");
    assert_eq!(files(&a.spec.primary), ["new.txt", "old1.txt"]);
}

/// The nonce and history of the marker in `target`.
fn marker_of(target: &Path) -> (String, Vec<String>) {
    let text = fs::read_to_string(target.join(".metasystem-sync")).unwrap();
    let nonce = metasystem_actors::sync::marker_nonce(&text).unwrap();
    (nonce, metasystem_actors::sync::marker_history(&text))
}

/// An image of the target taken while a run was writing (a backup or cloud snapshot during a
/// long upload) carries the nonce the run gave the marker before its first change: the run
/// rotates it again once its changes are made, so that image, restored, is a first sync too,
/// not a rollback of what the run finished.
#[tokio::test]
async fn a_target_image_taken_during_a_run_rolls_nothing_back() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    let image = t.path().join("image");
    let mut a = Host::new(&target, "a").await;
    write(&a.local("old.txt"), b"base");
    a.ok().await;
    let (before, _) = marker_of(&target);
    copy_tree(&target, &image);
    write(&a.local("old.txt"), b"edited in the run");
    for i in 0..5 {
        write(&a.local(&format!("new{i}.txt")), b"new");
    }
    a.ok().await;
    // What the marker said while the run wrote: the nonce it rotated to first.
    let (after, history) = marker_of(&target);
    assert_eq!(history.get(1), Some(&before), "{history:?}");
    let during = history[0].clone();
    assert_ne!(during, after);
    // The image of the target as it was mid-run (nothing landed yet), with that marker.
    let text = format!("metasystem sync target \"shared\"\nnonce: {during}\nhistory: {before}\n");
    copy_tree(&image, &target);
    fs::write(target.join(".metasystem-sync"), text).unwrap();
    let r = a.ok().await;
    assert!(r.first_sync, "{r:#?}");
    assert_eq!(r.deleted_local + r.copied_to_local, 0, "{r:#?}");
    assert_eq!(read(&a.local("old.txt")), b"edited in the run");
    assert_eq!(files(&target).len(), 6);
}

/// A target copied by hand to a new folder (moving to another cloud), the hosts repointed one
/// after the other: a file B made on the old folder meanwhile is not deleted by B's first run
/// on the new one (the new folder's marker does not descend from what B saw last).
#[tokio::test]
async fn a_target_copied_by_hand_and_repointed_host_by_host_loses_nothing() {
    let t = tempfile::tempdir().unwrap();
    let old = t.path().join("old");
    let new = t.path().join("new");
    let mut a = Host::new(&old, "a").await;
    let mut b = Host::new(&old, "b").await;
    write(&a.local("shared.txt"), b"1");
    a.ok().await;
    b.ok().await;
    copy_tree(&old, &new);
    a.spec.target = new.clone();
    write(&a.local("from-a.txt"), b"a");
    a.ok().await;
    // B, still on the old folder, makes a file and syncs it there; then is repointed.
    write(&b.local("from-b.txt"), b"b");
    b.ok().await;
    b.spec.target = new.clone();
    let r = b.ok().await;
    assert!(r.first_sync, "{r:#?}");
    assert_eq!(r.deleted_local, 0, "{r:#?}");
    assert_eq!(
        files(&b.spec.primary),
        ["from-a.txt", "from-b.txt", "shared.txt"]
    );
    a.ok().await;
    assert_eq!(
        files(&a.spec.primary),
        ["from-a.txt", "from-b.txt", "shared.txt"]
    );
}

/// A listed path of the primary that is a link to an external drive, unplugged (the link now
/// leads nowhere), or a listed folder moved away, is not the user deleting everything in it:
/// it is skipped with an error saying what to do, nothing under it is deleted on the target or
/// on another host, and once it is back the runs go on as before.
#[tokio::test]
async fn a_listed_folder_gone_from_the_primary_deletes_nothing_anywhere() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    let drive = t.path().join("drive");
    let mut a = Host::new(&target, "a").await;
    let mut b = Host::new(&target, "b").await;
    for h in [&mut a, &mut b] {
        h.spec.selection = Selection {
            paths: vec!["shared".into(), "notes".into(), "todo.txt".into()],
            ..Selection::default()
        };
    }
    write(&a.local("todo.txt"), b"a listed file");
    fs::create_dir_all(&drive).unwrap();
    std::os::unix::fs::symlink(&drive, a.local("shared")).unwrap();
    for i in 0..12 {
        write(&drive.join(format!("f{i}")), b"x");
    }
    write(&a.local("notes/n.txt"), b"n");
    a.ok().await;
    b.ok().await;
    assert_eq!(files(&b.spec.primary).len(), 14);
    // A listed file deleted is a deletion like any other.
    fs::remove_file(a.local("todo.txt")).unwrap();
    let r = a.ok().await;
    assert_eq!(r.deleted_remote, 1, "{r:#?}");
    b.ok().await;
    assert_eq!(files(&b.spec.primary).len(), 13);
    // The drive is unplugged (its folder gone: the link dangles); `notes` moved away.
    let away = t.path().join("drive-away");
    fs::rename(&drive, &away).unwrap();
    fs::rename(a.local("notes"), t.path().join("notes-away")).unwrap();
    let r = a.run().await;
    assert_eq!((r.deleted_remote, r.deleted_local), (0, 0), "{r:#?}");
    let said: Vec<&str> = r.errors.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(said, ["shared", "notes"], "{r:#?}");
    assert!(
        r.errors
            .iter()
            .all(|(_, why)| why.contains("synced before") && why.contains("`paths`")),
        "{r:#?}"
    );
    assert!(
        r.errors[0]
            .1
            .contains("a link to a place that is not there"),
        "{r:#?}"
    );
    let r = b.ok().await;
    assert_eq!(r.deleted_local, 0, "{r:#?}");
    assert_eq!(files(&target).len(), 13);
    assert_eq!(files(&b.spec.primary).len(), 13);
    // Back: an edit made meanwhile on B reaches A; nothing was lost.
    fs::rename(&away, &drive).unwrap();
    fs::rename(t.path().join("notes-away"), a.local("notes")).unwrap();
    write(&b.local("shared/f0"), b"edited on b");
    b.ok().await;
    let r = a.ok().await;
    assert_eq!(r.deleted_local + r.deleted_remote, 0, "{r:#?}");
    assert_eq!(read(&drive.join("f0")), b"edited on b");
    // A listed path never synced is only not there yet: another host's files come in.
    let mut c = Host::new(&target, "c").await;
    c.spec.selection = a.spec.selection.clone();
    let r = c.ok().await;
    assert_eq!(r.copied_to_local, 13, "{r:#?}");
}

/// A listed path that is a drive's mountpoint, the drive unmounted: the bare mountpoint is an
/// empty folder, not a missing path, and its files a small share of all that is synced. The run
/// stops as a mass deletion of that listed path: nothing is deleted on the target or on the
/// other host.
#[tokio::test]
async fn a_listed_mountpoint_left_empty_by_an_unmount_deletes_nothing() {
    if !can_mount("a_listed_mountpoint_left_empty_by_an_unmount_deletes_nothing") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    let mut a = Host::new(&target, "a").await;
    let mut b = Host::new(&target, "b").await;
    for h in [&mut a, &mut b] {
        h.spec.selection = Selection {
            paths: vec!["shared".into(), "docs".into()],
            ..Selection::default()
        };
        h.spec.max_delete = 0.5; // the default
    }
    let mnt = a.local("shared");
    fs::create_dir_all(&mnt).unwrap();
    let mount = |on: bool| {
        let st = if on {
            Command::new("mount")
                .args(["-t", "tmpfs", "tmpfs"])
                .arg(&mnt)
                .status()
        } else {
            Command::new("umount").arg(&mnt).status()
        };
        assert!(st.unwrap().success(), "mount {on}");
    };
    mount(true);
    for i in 0..15 {
        write(&a.local(&format!("shared/f{i}")), b"on the drive");
    }
    for i in 0..20 {
        write(&a.local(&format!("docs/d{i}")), b"doc");
    }
    a.ok().await;
    b.ok().await;
    mount(false);
    let r = a.run().await;
    assert_eq!(r.refusal, Some(Refusal::MaxDelete), "{r:#?}");
    assert!(
        r.reason.as_deref().unwrap_or("").contains("under `shared`"),
        "{r:#?}"
    );
    assert_eq!(files(&target).len(), 35);
    let r = b.ok().await;
    assert_eq!(r.deleted_local, 0, "{r:#?}");
    assert_eq!(files(&b.spec.primary).len(), 35);
}

/// `primary` pointed at another folder (a reload with a typo, an empty folder, a bare
/// mountpoint in its place): what the folder synced before held and this one lacks is not
/// deleted from the target, nor from another host: the run is a first sync (a union).
#[tokio::test]
async fn a_primary_changed_to_another_folder_is_a_first_sync_not_a_mass_deletion() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    let mut a = Host::new(&target, "a").await;
    let mut b = Host::new(&target, "b").await;
    for i in 0..8 {
        write(&a.local(&format!("f{i}")), b"x");
    }
    a.ok().await;
    b.ok().await;
    let elsewhere = t.path().join("typo");
    fs::create_dir_all(&elsewhere).unwrap();
    let before = a.spec.primary.clone();
    a.spec.primary = elsewhere.clone();
    let r = a.ok().await;
    assert!(r.first_sync, "{r:#?}");
    assert_eq!((r.deleted_remote, r.copied_to_local), (0, 8), "{r:#?}");
    let r = b.ok().await;
    assert_eq!(r.deleted_local, 0, "{r:#?}");
    assert_eq!(files(&b.spec.primary).len(), 8);
    // Back to the first folder: a first sync again, nothing deleted; then runs as usual.
    a.spec.primary = before;
    let r = a.ok().await;
    assert!(r.first_sync && r.deleted_remote == 0, "{r:#?}");
    fs::remove_file(a.local("f0")).unwrap();
    let r = a.ok().await;
    assert!(!r.first_sync && r.deleted_remote == 1, "{r:#?}");
    // The folder removed and made again with an old copy of some of it (`rm -rf`, `mkdir`, an
    // old archive unpacked): the same path, on ext4 often the same inode number, but another
    // folder: a first sync, and the newer versions on the target are not rolled back.
    write(&a.local("f1"), b"newer");
    a.ok().await;
    b.ok().await;
    fs::remove_dir_all(&a.spec.primary).unwrap();
    fs::create_dir_all(&a.spec.primary).unwrap();
    write(&a.local("f1"), b"x");
    // As unpacked from an archive: its old time.
    fs::File::options()
        .write(true)
        .open(a.local("f1"))
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    let r = a.run().await;
    assert!(r.first_sync, "{r:#?}");
    assert_eq!(r.deleted_remote, 0, "{r:#?}");
    assert_eq!(read(&target.join("f1")), b"newer");
    assert_eq!(read(&b.local("f1")), b"newer");
}

/// The same file made on two hosts with other modes converges to the narrower, not each kept
/// as it is for good; a chmod on both sides at once ends with what both allow, never the
/// wider (a 0640 and a 0604 become 0600, not world-readable).
#[tokio::test]
async fn modes_made_apart_or_changed_on_both_sides_converge_to_the_narrower() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    let mut a = Host::new(&target, "a").await;
    let mut b = Host::new(&target, "b").await;
    let set =
        |p: &Path, mode: u32| fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    write(&a.local("key"), b"secret");
    set(&a.local("key"), 0o600);
    write(&b.local("key"), b"secret");
    set(&b.local("key"), 0o644);
    for _ in 0..2 {
        a.ok().await;
        b.ok().await;
    }
    for p in [a.local("key"), b.local("key"), target.join("key")] {
        assert_eq!(mode_of(&p), 0o600, "{}", p.display());
    }
    set(&a.local("key"), 0o640);
    set(&b.local("key"), 0o604);
    b.ok().await;
    for _ in 0..2 {
        a.ok().await;
        b.ok().await;
    }
    for p in [a.local("key"), b.local("key"), target.join("key")] {
        assert_eq!(mode_of(&p), 0o600, "{}", p.display());
    }
    // Settled: no more changes either way.
    let r = a.ok().await;
    assert_eq!(r.modes, 0, "{r:#?}");
}

/// A folder made on the other side for a copy gets its source's mode (its owner's bits kept),
/// so a 0700 folder of keys never arrives readable by others, on the target or another host.
#[tokio::test]
async fn folders_made_for_copies_are_never_wider_than_their_source() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    let mut a = Host::new(&target, "a").await;
    let mut b = Host::new(&target, "b").await;
    write(&a.local("private/keys/id"), b"k");
    write(&a.local("shared/open.txt"), b"o");
    for (dir, mode) in [
        ("private", 0o700),
        ("private/keys", 0o750),
        ("shared", 0o755),
    ] {
        fs::set_permissions(a.local(dir), fs::Permissions::from_mode(mode)).unwrap();
    }
    a.ok().await;
    b.ok().await;
    for (dir, mode) in [
        ("private", 0o700),
        ("private/keys", 0o750),
        ("shared", 0o755),
    ] {
        assert_eq!(mode_of(&target.join(dir)), mode, "target {dir}");
        assert_eq!(mode_of(&b.local(dir)), mode, "b {dir}");
    }
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

/// Sets `path`'s modification time to `secs` since the epoch.
fn set_mtime(path: &Path, secs: u64) {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

/// Regression: an edit of the same size that kept the modification time (two writes within
/// one clock tick, or a time set back) and a file swapped in by `mv` with the same size and
/// time passed the size+time quick check, and the two sides stayed different for good.
#[tokio::test]
async fn same_size_edits_with_the_same_time_are_seen() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    let mut h = Host::new(&target, "h1").await;
    write(&h.local("inplace"), b"aaaa");
    write(&h.local("swapped"), b"cccc");
    set_mtime(&h.local("inplace"), 1_000_000);
    set_mtime(&h.local("swapped"), 1_000_000);
    h.ok().await;
    // A second run records what was racily clean the first time (nothing here: the times
    // are old), and copies nothing.
    assert_eq!(h.ok().await.files_changed(), 0);
    // Edited in place on the target: same size, the time put back.
    fs::write(target.join("inplace"), b"bbbb").unwrap();
    set_mtime(&target.join("inplace"), 1_000_000);
    // Swapped in the primary by `mv`, same size and time.
    write(&h.local("other"), b"dddd");
    set_mtime(&h.local("other"), 1_000_000);
    fs::rename(h.local("other"), h.local("swapped")).unwrap();
    let r = h.ok().await;
    assert_eq!((r.copied_to_local, r.copied_to_remote), (1, 1), "{r:#?}");
    assert_eq!(read(&h.local("inplace")), b"bbbb");
    assert_eq!(read(&target.join("swapped")), b"dddd");
    assert_eq!(h.ok().await.files_changed(), 0);
}

/// Two and three hosts on one target converge after any interleaving of edits (same-size
/// edits with identical times, deletions, creations) and runs: once the edits stop, two rounds
/// of runs leave every primary equal to the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_sharing_a_target_converge_after_any_interleaving() {
    for (seed, hosts) in [(1u64, 2usize), (2, 3), (3, 3), (4, 2)] {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("target");
        let mut all = Vec::new();
        for i in 0..hosts {
            all.push(Host::new(&target, &format!("host{i}")).await);
        }
        let mut rng = fastrand::Rng::with_seed(seed);
        for step in 0..60 {
            let h = rng.usize(0..hosts);
            let name = format!("f{}", rng.usize(0..8));
            match rng.usize(0..10) {
                // Same size, the same fixed time: only the contents tell the versions apart.
                0..=5 => {
                    let body = format!("{:04}", rng.u32(0..10_000));
                    write(&all[h].local(&name), body.as_bytes());
                    set_mtime(&all[h].local(&name), 1_000_000);
                }
                6 => {
                    let _ = fs::remove_file(all[h].local(&name));
                }
                _ => {
                    let r = all[h].run().await;
                    assert_ne!(r.outcome, Outcome::Error, "seed {seed} step {step}: {r:#?}");
                }
            }
        }
        for _round in 0..2 {
            for h in all.iter_mut() {
                h.ok().await;
            }
        }
        let want = files(&target);
        for h in &all {
            assert_eq!(files(&h.spec.primary), want, "seed {seed}");
            for f in &want {
                assert_eq!(read(&h.local(f)), read(&target.join(f)), "seed {seed}: {f}");
            }
        }
        // And they stay so: nothing more to do anywhere.
        for h in all.iter_mut() {
            assert_eq!(h.ok().await.files_changed(), 0, "seed {seed}");
        }
    }
}

/// A conflict copy names the host whose version it holds: the one that put it in the
/// target (noted on the file there), else the target's name.
#[tokio::test]
async fn conflict_copies_name_the_host_whose_version_they_hold() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    let mut a = Host::new(&target, "laptop-aaaaaaaaaaaa").await;
    let mut b = Host::new(&target, "desk-bbbbbbbbbbbb").await;
    b.spec.strategy = Strategy::Manual;
    write(&a.local("plan.txt"), b"v0");
    a.ok().await;
    b.ok().await;
    write(&a.local("plan.txt"), b"a's edit");
    write(&b.local("plan.txt"), b"b's edit");
    a.ok().await;
    let r = b.run().await;
    assert_eq!(r.conflicts.len(), 1, "{r:#?}");
    let copy = r.conflicts[0].copy.clone().unwrap();
    let mtime = fs::metadata(target.join("plan.txt"))
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let noted = metasystem_actors::sync::fsops::writer_of(&target.join("plan.txt"), mtime);
    let from = if noted.is_some() {
        "laptop-aaaaaaaaaaaa"
    } else {
        "shared"
    };
    assert!(
        copy.starts_with("plan.conflict-") && copy.ends_with(&format!("-{from}.txt")),
        "{copy}"
    );
    assert_eq!(read(&b.local(&copy)), b"a's edit");
    assert_eq!(read(&b.local("plan.txt")), b"b's edit");
}

/// Under `newest`, a conflict where one side's time is far ahead of this host's clock keeps
/// both versions (a clock set wrong on one machine does not win every conflict).
#[tokio::test]
async fn a_time_far_in_the_future_keeps_both_versions() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    let mut h = Host::new(&target, "h1").await;
    write(&h.local("f"), b"v0");
    h.ok().await;
    write(&h.local("f"), b"mine, now");
    write(&target.join("f"), b"theirs, from a clock a day ahead");
    let ahead = std::time::SystemTime::now() + Duration::from_secs(86_400);
    fs::OpenOptions::new()
        .write(true)
        .open(target.join("f"))
        .unwrap()
        .set_modified(ahead)
        .unwrap();
    let r = h.run().await;
    assert_eq!(r.conflicts.len(), 1, "{r:#?}");
    let copy = r.conflicts[0].copy.clone().expect("both kept");
    assert_eq!(read(&h.local("f")), b"mine, now");
    assert_eq!(read(&h.local(&copy)), b"theirs, from a clock a day ahead");
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Regression: a 0600 key arrived as 0644, and a chmod alone never synced. Mode bits sync
/// both ways, and a copy is never wider than its source, not even for a moment.
#[tokio::test]
async fn permissions_sync_and_a_copy_is_never_wider_than_its_source() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    let mut h = Host::new(&target, "h1").await;
    write(&h.local("id_ed25519"), b"secret");
    set_mode(&h.local("id_ed25519"), 0o600);
    write(&h.local("run.sh"), b"#!/bin/sh\n");
    set_mode(&h.local("run.sh"), 0o755);
    h.ok().await;
    assert_eq!(mode_of(&target.join("id_ed25519")), 0o600);
    assert_eq!(mode_of(&target.join("run.sh")), 0o755);
    // A chmod alone, on either side.
    set_mode(&h.local("run.sh"), 0o700);
    set_mode(&target.join("id_ed25519"), 0o400);
    let r = h.ok().await;
    assert_eq!(r.modes, 2, "{r:#?}");
    assert_eq!(r.files_changed(), 0);
    assert_eq!(mode_of(&target.join("run.sh")), 0o700);
    assert_eq!(mode_of(&h.local("id_ed25519")), 0o400);
    assert_eq!(h.ok().await.modes, 0);
    // An edit replaces the file with the source's mode.
    write(&target.join("id_ed25519"), b"new secret");
    set_mode(&target.join("id_ed25519"), 0o600);
    h.ok().await;
    assert_eq!(read(&h.local("id_ed25519")), b"new secret");
    assert_eq!(mode_of(&h.local("id_ed25519")), 0o600);
}

fn dirs(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(root).min_depth(1) {
        let Ok(e) = e else { continue };
        if e.file_type().is_dir() {
            out.push(
                e.path()
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    out.sort();
    out
}

/// Regression: empty folders never synced. They are created on the other side; a folder
/// removed on one side goes on the other once the sync has emptied it; a folder whose files
/// were deleted but which was kept stays on both.
#[tokio::test]
async fn empty_folders_sync_and_a_folder_emptied_by_a_sync_goes() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    let mut h = Host::new(&target, "h1").await;
    fs::create_dir_all(h.local("inbox/2026")).unwrap();
    fs::create_dir_all(h.local("empty")).unwrap();
    write(&h.local("proj/src/main.rs"), b"fn main() {}");
    write(&h.local("keep/old.txt"), b"old");
    h.ok().await;
    assert_eq!(dirs(&target), dirs(&h.spec.primary));
    assert!(target.join("inbox/2026").is_dir() && target.join("empty").is_dir());
    // A folder removed whole on one side; another's files deleted but the folder kept; an
    // empty folder removed on the other side.
    fs::remove_dir_all(h.local("proj")).unwrap();
    fs::remove_file(h.local("keep/old.txt")).unwrap();
    fs::remove_dir(target.join("empty")).unwrap();
    let r = h.ok().await;
    // main.rs and old.txt there, the empty folder here.
    assert_eq!((r.deleted_remote, r.deleted_local), (2, 1), "{r:#?}");
    assert!(!target.join("proj").exists(), "{:?}", dirs(&target));
    assert!(target.join("keep").is_dir());
    assert!(!h.local("empty").exists());
    assert_eq!(dirs(&target), dirs(&h.spec.primary));
    // Stable: nothing more to do; a folder that fills up is not a folder deleted.
    assert_eq!(h.ok().await.files_changed(), 0);
    write(&target.join("inbox/2026/mail.eml"), b"hi");
    let r = h.ok().await;
    assert_eq!(
        (r.copied_to_local, r.deleted_local, r.deleted_remote),
        (1, 0, 0),
        "{r:#?}"
    );
    assert_eq!(read(&h.local("inbox/2026/mail.eml")), b"hi");
}

/// Sparse files stay sparse: a 64 MiB file holding two small runs of data is copied as
/// such, and its hash is the hash of all its bytes (holes read as zeros).
#[tokio::test]
async fn sparse_files_stay_sparse() {
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::fs::MetadataExt;
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    let mut h = Host::new(&target, "h1").await;
    let len = 64 << 20;
    {
        let mut f = fs::File::create(h.local("disk.img")).unwrap();
        f.set_len(len).unwrap();
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(b"boot sector").unwrap();
        f.seek(SeekFrom::Start(40 << 20)).unwrap();
        f.write_all(&[7u8; 100_000]).unwrap();
    }
    let src = fs::metadata(h.local("disk.img")).unwrap();
    if src.blocks() * 512 >= len {
        eprintln!("sparse_files_stay_sparse: skipped (this file system makes no holes)");
        return;
    }
    h.ok().await;
    let copy = fs::metadata(target.join("disk.img")).unwrap();
    assert_eq!(copy.len(), len);
    assert!(copy.blocks() * 512 < 4 << 20, "{} blocks", copy.blocks());
    assert!(read(&target.join("disk.img")) == read(&h.local("disk.img")));
    // The next run finds it agreeing (the copy hashed as a whole).
    assert_eq!(h.ok().await.files_changed(), 0);
}

/// A folder replaced by a file on one side (the other untouched) converges: the folder's
/// files are deleted there (backed up), the emptied folder goes, then the file follows. And
/// the other way round.
#[tokio::test]
async fn a_folder_replaced_by_a_file_and_back_converge() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    let mut h = Host::new(&target, "h1").await;
    write(&h.local("y/inner.txt"), b"inner");
    write(&h.local("z"), b"a file");
    h.ok().await;
    fs::remove_dir_all(h.local("y")).unwrap();
    write(&h.local("y"), b"now a file");
    fs::remove_file(target.join("z")).unwrap();
    write(&target.join("z/inside.txt"), b"now a folder");
    for _ in 0..3 {
        let r = h.run().await;
        assert!(r.errors.is_empty(), "{r:#?}");
    }
    assert_eq!(read(&target.join("y")), b"now a file");
    assert_eq!(read(&h.local("z/inside.txt")), b"now a folder");
    assert_eq!(files(&target), files(&h.spec.primary));
    assert_eq!(h.ok().await.files_changed(), 0);
}

/// A type conflict (a new file here, a new folder of the same name there) is settled by the
/// strategy: under newest the later wins and the other goes to the backups; under manual both
/// are kept, the file under its conflict name.
#[tokio::test]
async fn a_file_here_and_a_folder_there_is_settled_by_the_strategy() {
    for manual in [false, true] {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("target");
        let mut h = Host::new(&target, "h1").await;
        if manual {
            h.spec.strategy = Strategy::Manual;
        }
        write(&h.local("seed"), b"seed");
        h.ok().await;
        write(&target.join("notes/a.txt"), b"the folder's file");
        set_mtime(&target.join("notes/a.txt"), 1_000_000);
        write(&h.local("notes"), b"the file, newer");
        let r = h.run().await;
        assert!(r.errors.is_empty(), "{r:#?}");
        assert_eq!(r.conflicts.len(), 1, "{r:#?}");
        let r = h.ok().await;
        assert_eq!(r.files_changed(), 0, "{r:#?}");
        assert_eq!(files(&target), files(&h.spec.primary));
        if manual {
            let copy = files(&target)
                .into_iter()
                .find(|f| f.starts_with("notes.conflict-"))
                .expect("the file kept under its conflict name");
            assert_eq!(read(&target.join(copy)), b"the file, newer");
            assert_eq!(read(&h.local("notes/a.txt")), b"the folder's file");
        } else {
            assert_eq!(read(&target.join("notes")), b"the file, newer");
            assert!(
                h.backups().iter().any(|b| b.starts_with("notes/a.txt")),
                "{:?}",
                h.backups()
            );
        }
    }
}

/// Regression: a case-only rename on one side was held as two colliding names for good, the
/// sides different. It is made on the other side too, for a file and for a folder (moved
/// whole, as a case-insensitive file system needs).
#[tokio::test]
async fn a_case_only_rename_is_made_on_the_other_side() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    let mut h = Host::new(&target, "h1").await;
    write(&h.local("Notes.txt"), b"notes");
    write(&h.local("Docs/a.txt"), b"a");
    write(&h.local("Docs/b.txt"), b"b");
    h.ok().await;
    fs::rename(h.local("Notes.txt"), h.local("notes.txt")).unwrap();
    fs::rename(target.join("Docs"), target.join("docs")).unwrap();
    let r = h.ok().await;
    assert!(r.collisions.is_empty(), "{r:#?}");
    assert_eq!(r.renamed.len(), 2, "{r:#?}");
    assert_eq!((r.deleted_local, r.deleted_remote), (0, 0), "{r:#?}");
    assert_eq!(files(&target), ["docs/a.txt", "docs/b.txt", "notes.txt"]);
    assert_eq!(files(&target), files(&h.spec.primary));
    assert_eq!(h.ok().await.files_changed(), 0);
    // Two names that collide on one side stay reported, not merged.
    write(&h.local("README"), b"1");
    write(&h.local("readme"), b"2");
    let r = h.ok().await;
    assert_eq!(
        r.collisions,
        vec![vec!["README".to_string(), "readme".to_string()]]
    );
}

/// Regression: names that are not UTF-8 never synced, and nobody was told. They sync with
/// their exact bytes both ways, their base goes through the store and back, and a deletion
/// follows.
#[tokio::test]
async fn names_that_are_not_utf8_sync_with_their_exact_bytes() {
    use std::os::unix::ffi::OsStrExt;
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    let mut h = Host::new(&target, "h1").await;
    let latin1 = std::ffi::OsStr::from_bytes(b"r\xe9sum\xe9.txt");
    let odd = std::ffi::OsStr::from_bytes(b"d\xff/\xfe\xfd");
    write(&h.spec.primary.join(latin1), b"cv");
    fs::create_dir_all(target.join(std::ffi::OsStr::from_bytes(b"d\xff"))).unwrap();
    write(&target.join(odd), b"odd");
    h.ok().await;
    assert_eq!(read(&target.join(latin1)), b"cv");
    assert_eq!(read(&h.spec.primary.join(odd)), b"odd");
    assert_eq!(h.ok().await.files_changed(), 0);
    fs::remove_file(h.spec.primary.join(latin1)).unwrap();
    let r = h.ok().await;
    assert_eq!(r.deleted_remote, 1, "{r:#?}");
    assert!(!target.join(latin1).exists());
}

/// A relative folder path longer than PATH_MAX: 24 levels of 200 bytes (4,824 bytes).
fn deep_rel(tag: &str) -> String {
    (0..24)
        .map(|i| format!("{tag}{i:02}{}", "d".repeat(197)))
        .collect::<Vec<_>>()
        .join("/")
}

/// Writes `bytes` at `path` whatever its length (the test's own steps, not the engine's).
fn write_deep(path: &Path, bytes: &[u8]) {
    use metasystem_actors::sync::longfs;
    use std::io::Write;
    longfs::create_dir_all(path.parent().unwrap()).unwrap();
    let _ = longfs::remove_file(path);
    longfs::create_new(path, 0o644)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

fn read_deep(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    metasystem_actors::sync::longfs::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Paths longer than PATH_MAX sync both ways, are backed up when replaced or deleted, and an
/// empty folder that deep is made: each call goes relative to an open folder.
#[tokio::test]
async fn paths_longer_than_path_max_sync_and_are_backed_up() {
    use metasystem_actors::sync::longfs;
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    let mut h = Host::new(&target, "h1").await;
    let (a, b) = (deep_rel("a"), deep_rel("b"));
    assert!(h.local(&a).as_os_str().len() > 4096);
    let fa = format!("{a}/here.txt");
    let fb = format!("{b}/there.txt");
    let empty = format!("{a}/empty");
    write_deep(&h.local(&fa), b"from the primary");
    longfs::create_dir_all(&h.local(&empty)).unwrap();
    fs::create_dir_all(&target).unwrap();
    write_deep(&target.join(&fb), b"from the target");
    let r = h.ok().await;
    assert_eq!((r.copied_to_remote, r.copied_to_local), (2, 1), "{r:#?}");
    assert!(r.skipped.is_empty(), "{:#?}", r.skipped);
    assert_eq!(read_deep(&target.join(&fa)), b"from the primary");
    assert_eq!(read_deep(&h.local(&fb)), b"from the target");
    assert!(longfs::is_dir(&target.join(&empty)));
    assert_eq!(h.ok().await.files_changed(), 0);

    // Edited on the target: replaced in the primary, the old version backed up.
    write_deep(&target.join(&fa), b"edited on the target");
    let r = h.ok().await;
    assert_eq!((r.copied_to_local, r.backups), (1, 1), "{r:#?}");
    assert_eq!(read_deep(&h.local(&fa)), b"edited on the target");

    // Deleted in the primary: deleted on the target, backed up.
    longfs::remove_file(&h.local(&fb)).unwrap();
    let r = h.ok().await;
    assert_eq!((r.deleted_remote, r.backups), (1, 1), "{r:#?}");
    assert!(!longfs::exists(&target.join(&fb)));
    assert!(longfs::exists(&h.local(&fa)));
    assert_eq!(h.ok().await.files_changed(), 0);

    // The backups that deep are listed and restored.
    let all = metasystem_actors::sync::backups::all(&h.spec).unwrap();
    assert_eq!(all.len(), 2, "{all:#?}");
    let gone = all
        .iter()
        .find(|b| b.original == fb)
        .expect("the deleted file's backup");
    let temps = metasystem_actors::sync::temps::Temps::new();
    temps.register(&h.store, &h.spec.name).await.unwrap();
    metasystem_actors::sync::backups::restore(
        &h.spec,
        &gone.name,
        std::time::SystemTime::now(),
        &temps,
    )
    .unwrap();
    assert_eq!(read_deep(&h.local(&fb)), b"from the target");

    // Edited on both sides under `manual`: both versions kept, the copy beside it.
    h.spec.strategy = Strategy::Manual;
    h.ok().await;
    write_deep(&h.local(&fa), b"mine");
    write_deep(&target.join(&fa), b"theirs, longer");
    let r = h.run().await;
    assert_eq!(r.conflicts.len(), 1, "{r:#?}");
    let mut names = Vec::new();
    longfs::walk_files(&h.local(&a), &mut |p, _| {
        names.push(p.file_name().unwrap().to_string_lossy().into_owned())
    })
    .unwrap();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].starts_with("here.conflict-"), "{names:?}");
    assert_eq!(read_deep(&h.local(&fa)), b"mine");
}

/// A database deeper than SQLite can open (its VFS takes 512 bytes of path): an error that
/// names it, the run partial, never silently skipped nor copied torn.
#[tokio::test]
async fn a_database_too_deep_for_sqlite_is_an_error_not_a_silent_skip() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    let mut h = Host::new(&target, "h1").await;
    let rel = format!("{}/app.db", deep_rel("q")[..700].trim_end_matches('/'));
    let short = h.dir.path().join("app.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", short.display()))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let dest = h.local(&rel);
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    fs::rename(&short, &dest).unwrap();
    for _ in 0..2 {
        let r = h.run().await;
        assert_eq!(r.outcome, Outcome::Error, "{r:#?}");
        assert_eq!(r.errors.len(), 1, "{r:#?}");
        assert_eq!(r.errors[0].0, rel);
        assert!(r.errors[0].1.contains("unable to open"), "{r:#?}");
        assert!(!target.join(&rel).exists());
    }
}

/// A replaced file's backup is a second name of it where the backups are on its file system
/// (nothing copied): it holds the replaced version, alone; a file with a user's hard links is
/// copied instead, so an edit through another of its names never changes its backup; and
/// backups on another file system are copies.
#[tokio::test]
async fn backups_of_replaced_files_hold_the_replaced_version_whatever_links_it_has() {
    use std::os::unix::fs::MetadataExt;
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    let mut h = Host::new(&target, "h1").await;
    write(&h.local("plain.txt"), b"v1 plain");
    write(&h.local("linked.txt"), b"v1 linked");
    h.ok().await;
    // On the target, `linked.txt` gets another name (a user's hard link).
    fs::hard_link(target.join("linked.txt"), target.join("other-name.txt")).unwrap();
    h.ok().await;
    write(&h.local("plain.txt"), b"v2 plain!");
    write(&h.local("linked.txt"), b"v2 linked!");
    let r = h.ok().await;
    assert_eq!((r.copied_to_remote, r.backups), (2, 2), "{r:#?}");
    let backups = metasystem_actors::sync::backups::all(&h.spec).unwrap();
    let of = |rel: &str| {
        let b = backups.iter().find(|b| b.original == rel).unwrap();
        h.dir.path().join("backups").join(&b.name)
    };
    let (plain, linked) = (of("plain.txt"), of("linked.txt"));
    assert_eq!(read(&plain), b"v1 plain");
    assert_eq!(
        fs::metadata(&plain).unwrap().nlink(),
        1,
        "the replaced file, under one name"
    );
    assert_eq!(read(&linked), b"v1 linked");
    // An edit in place through the user's other name leaves the backup as it was.
    fs::write(
        target.join("other-name.txt"),
        b"edited through the other name",
    )
    .unwrap();
    assert_eq!(read(&linked), b"v1 linked");

    // Backups on another file system (tmpfs): copies.
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && fs::metadata(shm).unwrap().dev() != fs::metadata(t.path()).unwrap().dev() {
        let elsewhere = tempfile::tempdir_in(shm).unwrap();
        h.spec.backups = elsewhere.path().to_path_buf();
        write(&h.local("plain.txt"), b"v3 plain!!");
        // (and `other-name.txt`, the replaced version's other name, edited, comes back to the
        // primary).
        let r = h.ok().await;
        assert_eq!(
            (r.copied_to_remote, r.copied_to_local, r.backups),
            (1, 1, 2),
            "{r:#?}"
        );
        let b = metasystem_actors::sync::backups::all(&h.spec).unwrap();
        let plain = b.iter().find(|b| b.original == "plain.txt").unwrap();
        let at = elsewhere.path().join(&plain.name);
        assert_eq!(read(&at), b"v2 plain!");
        assert_eq!(fs::metadata(&at).unwrap().nlink(), 1);
        assert_eq!(
            read(&h.local("other-name.txt")),
            b"edited through the other name"
        );
        assert_eq!(read(&h.local("linked.txt")), b"v2 linked!");
    }
}
