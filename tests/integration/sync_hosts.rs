//! Several hosts sharing one target, as a user with two or three machines and one cloud folder
//! has them: each host a real daemon (its own process, state dir, socket, primary and
//! identity: `[daemon] host_id` for some, `METASYSTEM_HOST_ID` for another) syncing one
//! folder. Edits on different hosts converge, same-size edits with the same modification time
//! are decided the same way everywhere with the loser backed up, deletions propagate (with
//! backups) but never beat an edit, two forced runs at once take turns on the lock, a daemon
//! killed mid-run takes its own dead lock over at once when it comes back, and each host's
//! snapshot of its store stays in its own folder of the target.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::util::{run_cli, write_file, Out, Reaped, TestDaemon, BIN};

/// The identities of the hosts, in order.
pub(crate) const IDS: [&str; 3] = ["host-a", "host-b", "host-c"];

/// One host: a daemon and the environment it is (re)started with.
pub(crate) struct Host {
    pub d: TestDaemon,
    pub id: &'static str,
    env: Vec<(&'static str, &'static str)>,
}

impl Host {
    /// The primary's synced folder.
    pub fn shared(&self) -> PathBuf {
        self.d.state.join("shared")
    }

    /// `sync t --json` (plus `extra`), which must exit with `code`; its one report.
    pub fn sync(&self, code: i32) -> Value {
        self.sync_with(&[], code)
    }

    pub fn sync_with(&self, extra: &[&str], code: i32) -> Value {
        let mut args = vec!["sync", "t"];
        args.extend_from_slice(extra);
        let v = self.d.json(&args, code);
        v["reports"][0].clone()
    }

    /// `sync t ARGS` through the CLI, whatever its exit code.
    pub fn sync_out(&self, extra: &[&str]) -> Out {
        let mut args = vec!["sync", "t"];
        args.extend_from_slice(extra);
        self.d.cli(&args)
    }

    /// (Re)launches the daemon with its identity and waits until it answers.
    pub fn relaunch(&mut self) {
        let env = self.env.clone();
        self.d.launch(&env);
        self.d.wait_ready();
    }

    /// Replaces the config's tree (its `[daemon]` and identity kept) and reloads.
    pub fn reconfigure(&self, tree: &str) {
        let extra = if self.env.is_empty() {
            format!("host_id = \"{}\"", self.id)
        } else {
            String::new()
        };
        let text = format!(
            "{}{tree}",
            crate::util::daemon_section(self.d.dir.path(), &extra)
        );
        write_file(&self.d.config, text);
        self.d.json(&["reload"], 0);
    }

    /// Files in this host's backups of target `t`, with their contents.
    pub fn backups(&self) -> BTreeMap<String, Vec<u8>> {
        files(&self.d.state.join("backups/t"))
    }
}

/// Hosts sharing one target folder.
pub(crate) struct Fleet {
    /// Holds the target (removed with the fleet).
    pub remote: tempfile::TempDir,
    pub target: PathBuf,
    pub hosts: Vec<Host>,
}

impl Fleet {
    /// The target's synced folder.
    pub fn shared(&self) -> PathBuf {
        self.target.join("shared")
    }
}

/// The sync target `t` of each host: `shared` of its state dir with the common `target`,
/// forced runs only (`every` an hour: the first scheduled run comes 5 s after the start),
/// the daemon's store pushed as a per-host snapshot; `extra` keys added to the child.
pub(crate) fn target_tree(target: &Path, extra: &str) -> String {
    format!(
        "[[root.children]]\nname = \"t\"\nkind = \"sync_target\"\ntarget = \"{}\"\n\
         paths = [\"shared\"]\nevery = \"1h\"\nmin_interval = \"0s\"\n\
         snapshots = [\"metastore.db\"]\n{extra}\n",
        target.display()
    )
}

/// `n` hosts (1 to 3) on one new target folder, each with `tree` (given the target): the
/// first two named by `[daemon] host_id`, the third by `METASYSTEM_HOST_ID`. `seed` writes
/// each host's files before its daemon starts (host index, its primary's `shared`). Returns
/// once every daemon has answered and made its first (scheduled) run, so that no scheduled
/// run comes in the middle of a test.
pub(crate) fn fleet_with(
    n: usize,
    tree: impl Fn(usize, &Path) -> String,
    seed: impl Fn(usize, &Path),
) -> Fleet {
    let remote = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let target = remote.path().join("cloud");
    std::fs::create_dir(&target).unwrap_or_else(|e| panic!("{e}"));
    let mut hosts = Vec::new();
    for (i, id) in IDS.iter().take(n).enumerate() {
        let (extra, env) = if i < 2 {
            (format!("host_id = \"{id}\""), vec![])
        } else {
            (String::new(), vec![("METASYSTEM_HOST_ID", *id)])
        };
        let d = TestDaemon::prepare(&extra, &tree(i, &target));
        let shared = d.state.join("shared");
        std::fs::create_dir_all(&shared).unwrap_or_else(|e| panic!("{e}"));
        seed(i, &shared);
        let mut h = Host { d, id, env };
        let env = h.env.clone();
        h.d.launch(&env);
        hosts.push(h);
    }
    for h in &mut hosts {
        h.d.wait_ready();
    }
    for h in &hosts {
        wait_first_run(h);
    }
    Fleet {
        remote,
        target,
        hosts,
    }
}

/// [`fleet_with`] on [`target_tree`] with `extra` keys.
pub(crate) fn fleet(n: usize, extra: &str, seed: impl Fn(usize, &Path)) -> Fleet {
    fleet_with(n, |_, t| target_tree(t, extra), seed)
}

/// Waits (bounded) until the host's target has a last run (the scheduled one, 5 s after the
/// start), whatever it did.
pub(crate) fn wait_first_run(h: &Host) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = h.d.json(&["sync", "status"], 0);
        if !v["targets"][0]["last"].is_null() && v["targets"][0]["running"] == false {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: no first run: {v}\n{}",
            h.id,
            h.d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every regular file under `root` (relative path -> contents); symlinks are not followed.
pub(crate) fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                if let (Ok(r), Ok(bytes)) = (p.strip_prefix(root), std::fs::read(&p)) {
                    out.insert(r.to_string_lossy().into_owned(), bytes);
                }
            }
        }
    }
    out
}

/// Paths only, for messages.
pub(crate) fn names(m: &BTreeMap<String, Vec<u8>>) -> Vec<&str> {
    m.keys().map(String::as_str).collect()
}

/// Asserts every host's `shared` holds exactly what the target's does.
pub(crate) fn assert_converged(f: &Fleet) {
    let want = files(&f.shared());
    for h in &f.hosts {
        let got = files(&h.shared());
        if got != want {
            let differ: Vec<&String> = want
                .keys()
                .chain(got.keys())
                .filter(|k| want.get(*k) != got.get(*k))
                .collect();
            panic!(
                "{} differs from the target at {differ:?}\nhost: {:?}\ntarget: {:?}",
                h.id,
                names(&got),
                names(&want)
            );
        }
    }
}

/// Files copied or deleted by a run, both ways.
pub(crate) fn changed(r: &Value) -> u64 {
    [
        "copied_to_remote",
        "copied_to_local",
        "deleted_remote",
        "deleted_local",
    ]
    .iter()
    .map(|k| r[*k].as_u64().unwrap_or(0))
    .sum()
}

/// Sets a file's modification time (seconds since the epoch).
pub(crate) fn set_mtime(path: &Path, secs: u64) {
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Overwrites a file in place (same inode), as an editor that writes through does.
pub(crate) fn overwrite(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::File::options()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    f.write_all(bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Each host forced to sync in turn, `rounds` times; every run must succeed.
pub(crate) fn rounds(f: &Fleet, rounds: usize) {
    for _ in 0..rounds {
        for h in &f.hosts {
            let r = h.sync(0);
            assert_eq!(r["outcome"], "success", "{}: {r:#}", h.id);
        }
    }
}

/// Three hosts edit, create and delete different files; each syncs in turn, two rounds:
/// every primary then equals the target, and a third round changes nothing.
#[test]
fn edits_on_different_hosts_converge() {
    let f = fleet(3, "", |i, shared| {
        if i == 0 {
            std::fs::create_dir_all(shared.join("docs/deep")).unwrap_or_else(|e| panic!("{e}"));
            for name in ["a.txt", "b.txt", "c.txt", "common.txt", "docs/deep/x.md"] {
                write_file(shared.join(name), format!("{name} v0"));
            }
        }
    });
    // Everyone gets host A's files.
    rounds(&f, 1);
    assert_converged(&f);
    let [a, b, c] = [&f.hosts[0], &f.hosts[1], &f.hosts[2]];
    // Each host its own changes: an edit, a new file (in a new folder), a deletion.
    write_file(a.shared().join("a.txt"), "a.txt edited on A");
    write_file(a.shared().join("from-a.txt"), "new on A");
    write_file(b.shared().join("b.txt"), "b.txt edited on B, longer");
    std::fs::create_dir_all(b.shared().join("new/dir")).unwrap_or_else(|e| panic!("{e}"));
    write_file(b.shared().join("new/dir/from-b.txt"), "new on B");
    std::fs::remove_file(c.shared().join("c.txt")).unwrap_or_else(|e| panic!("{e}"));
    write_file(c.shared().join("docs/deep/x.md"), "x.md edited on C");
    rounds(&f, 2);
    assert_converged(&f);
    let target = files(&f.shared());
    let text = |k: &str| String::from_utf8_lossy(&target[k]).into_owned();
    assert_eq!(text("a.txt"), "a.txt edited on A");
    assert_eq!(text("b.txt"), "b.txt edited on B, longer");
    assert_eq!(text("docs/deep/x.md"), "x.md edited on C");
    assert_eq!(text("from-a.txt"), "new on A");
    assert_eq!(text("new/dir/from-b.txt"), "new on B");
    assert_eq!(text("common.txt"), "common.txt v0");
    assert!(!target.contains_key("c.txt"), "{:?}", names(&target));
    // Settled: nothing more to do anywhere.
    for h in &f.hosts {
        let r = h.sync(0);
        assert_eq!(changed(&r), 0, "{}: {r:#}", h.id);
        assert_eq!(r["errors"].as_array().map(Vec::len), Some(0), "{r:#}");
    }
}

/// Both hosts edit the same file in place to different contents of the same size and give it
/// the same (old) modification time: the quick check is not fooled, the conflict is decided
/// the same way on both hosts (equal times: the greater hash), the losing version is in the
/// losing host's backups, and nothing differs afterwards.
#[test]
fn same_size_edits_with_the_same_mtime_converge_and_the_loser_is_backed_up() {
    const OLD: u64 = 1_600_000_000; // 2020: not racily clean
    let f = fleet(2, "strategy = \"newest\"", |i, shared| {
        if i == 0 {
            write_file(shared.join("same.txt"), "original contents");
            set_mtime(&shared.join("same.txt"), OLD);
        }
    });
    rounds(&f, 1);
    assert_converged(&f);
    let [a, b] = [&f.hosts[0], &f.hosts[1]];
    // Let the base record trusted stamps (no side racily clean): one more round.
    rounds(&f, 1);
    let (va, vb) = ("edited on host A", "edited on host B");
    assert_eq!(va.len(), vb.len());
    for (h, v) in [(a, va), (b, vb)] {
        let p = h.shared().join("same.txt");
        overwrite(&p, v.as_bytes());
        set_mtime(&p, OLD);
    }
    let ra = a.sync(0);
    assert_eq!(ra["copied_to_remote"], 1, "A's edit was not seen: {ra:#}");
    let rb = b.sync(0);
    assert_eq!(rb["conflicts"].as_array().map(Vec::len), Some(1), "{rb:#}");
    rounds(&f, 1);
    assert_converged(&f);
    // The winner: the greater SHA-256 (the same answer on every host).
    let hash = |s: &str| {
        let p = f.remote.path().join("h");
        write_file(&p, s);
        metasystem_actors::sync::fsops::hash_file(&p, false).unwrap_or_else(|e| panic!("{e}"))
    };
    let (winner, loser, losing_host) = if hash(va) >= hash(vb) {
        (va, vb, b)
    } else {
        (vb, va, a)
    };
    assert_eq!(read(&f.shared().join("same.txt")), winner);
    let kept = losing_host.backups();
    assert!(
        kept.values().any(|v| v == loser.as_bytes()),
        "{}'s version is not in its backups: {:?}",
        losing_host.id,
        names(&kept)
    );
    for h in &f.hosts {
        let r = h.sync(0);
        assert_eq!(changed(&r), 0, "{}: {r:#}", h.id);
    }
}

/// A deletion on one host reaches the others, each keeping a backup; a deletion racing an
/// edit (either syncing first) keeps the edit everywhere.
#[test]
fn deletions_propagate_with_backups_and_never_beat_an_edit() {
    let f = fleet(3, "", |i, shared| {
        if i == 0 {
            for name in ["gone.txt", "r1.txt", "r2.txt", "stay.txt", "stay2.txt"] {
                write_file(shared.join(name), format!("{name} v0"));
            }
        }
    });
    rounds(&f, 1);
    assert_converged(&f);
    let [a, b, c] = [&f.hosts[0], &f.hosts[1], &f.hosts[2]];
    // gone.txt: deleted on A. r1.txt: deleted on A, edited on B (A syncs first). r2.txt:
    // edited on A (syncing first), deleted on B.
    std::fs::remove_file(a.shared().join("gone.txt")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(a.shared().join("r1.txt")).unwrap_or_else(|e| panic!("{e}"));
    write_file(b.shared().join("r1.txt"), "r1 edited on B");
    write_file(a.shared().join("r2.txt"), "r2 edited on A");
    std::fs::remove_file(b.shared().join("r2.txt")).unwrap_or_else(|e| panic!("{e}"));
    let r = a.sync(0);
    assert_eq!(r["deleted_remote"], 2, "{r:#}");
    let r = b.sync(0);
    assert_eq!(r["deleted_local"], 1, "gone.txt on B: {r:#}");
    rounds(&f, 2);
    assert_converged(&f);
    assert!(!f.shared().join("gone.txt").exists());
    assert_eq!(read(&f.shared().join("r1.txt")), "r1 edited on B");
    assert_eq!(read(&f.shared().join("r2.txt")), "r2 edited on A");
    assert_eq!(read(&f.shared().join("stay.txt")), "stay.txt v0");
    // Every host kept what it deleted (A: the target's copy; B, C: their own).
    for h in [a, b, c] {
        let kept = h.backups();
        assert!(
            kept.iter()
                .any(|(k, v)| k.starts_with("shared/gone.txt-") && v == b"gone.txt v0"),
            "{}: no backup of gone.txt: {:?}",
            h.id,
            names(&kept)
        );
    }
}

/// Files of `n` x `size` bytes in `dir` (a run that takes a while).
pub(crate) fn bulk(dir: &Path, prefix: &str, n: usize, size: usize) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    for i in 0..n {
        let line = format!("{prefix} {i}\n");
        let body: Vec<u8> = line.bytes().cycle().take(size).collect();
        write_file(dir.join(format!("{prefix}-{i:04}.dat")), body);
    }
}

/// The lock file's text, if there is one.
pub(crate) fn lock_text(target: &Path) -> Option<String> {
    std::fs::read_to_string(target.join(".metasystem-sync.lock")).ok()
}

/// Starts `sync t --json ARGS` against `h` as a child process (killed if the test fails).
pub(crate) fn spawn_sync(h: &Host, extra: &[&str]) -> Reaped {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["--socket", &h.d.socket.display().to_string(), "sync", "t"])
        .args(extra)
        .env_remove("METASYSTEM_SOCKET")
        .env_remove("METASYSTEM_CONFIG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    Reaped(cmd.spawn().unwrap_or_else(|e| panic!("{e}")))
}

/// Waits (bounded by `limit`) for a child's exit; its code and output.
pub(crate) fn finish(mut child: Reaped, limit: Duration) -> Option<Out> {
    let deadline = Instant::now() + limit;
    loop {
        match child.0.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
    let mut stdout = String::new();
    let mut stderr = String::new();
    use std::io::Read;
    if let Some(mut o) = child.0.stdout.take() {
        let _ = o.read_to_string(&mut stdout);
    }
    if let Some(mut e) = child.0.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let code = child.0.wait().ok().and_then(|s| s.code()).unwrap_or(-1);
    Some(Out {
        code,
        stdout,
        stderr,
    })
}

/// Waits (bounded) until the target's lock says `host`; its text.
pub(crate) fn wait_lock_of(target: &Path, host: &str, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(t) = lock_text(target) {
            if t.starts_with(&format!("{host} ")) {
                return Some(t);
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// Two hosts forced to sync at the same moment: one runs, the other waits for its lock
/// (`sync status` naming the holder) and runs after it; the lock only ever names one holder.
/// A run that may not wait (`--timeout 1ms`) is skipped with 75 naming the holder. Afterwards
/// everything converges.
#[test]
fn two_hosts_forced_at_once_take_turns_on_the_lock() {
    let f = fleet(2, "", |_, _| {});
    rounds(&f, 1);
    let [a, b] = [&f.hosts[0], &f.hosts[1]];
    bulk(&a.shared().join("bulk-a"), "a", 300, 64 << 10);
    bulk(&b.shared().join("bulk-b"), "b", 300, 64 << 10);
    // Both at once; a sampler records the lock's holders meanwhile.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (target, stop) = (f.target.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seen: Vec<String> = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                if let Some(t) = lock_text(&target) {
                    if seen.last() != Some(&t) && !t.is_empty() {
                        seen.push(t);
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            seen
        })
    };
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let runs: Vec<_> = f
        .hosts
        .iter()
        .map(|h| {
            let socket = h.d.socket.display().to_string();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                run_cli(&["--socket", &socket, "sync", "t", "--json"], &[])
            })
        })
        .collect();
    // Whoever waits says whose lock it waits for.
    let mut waiting = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while waiting.is_none() && Instant::now() < deadline && runs.iter().any(|r| !r.is_finished()) {
        for h in &f.hosts {
            let v = h.d.json(&["sync", "status"], 0);
            if let Some(w) = v["targets"][0]["waiting"].as_str() {
                waiting = Some((h.id, w.to_string()));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let outs: Vec<Out> = runs
        .into_iter()
        .map(|r| r.join().unwrap_or_else(|_| panic!("a CLI thread panicked")))
        .collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = sampler.join().unwrap_or_else(|_| panic!("sampler"));
    for (h, out) in f.hosts.iter().zip(&outs) {
        assert_eq!(
            out.code,
            0,
            "{}: {}\n{}\n{}",
            h.id,
            out.stdout,
            out.stderr,
            h.d.log_text()
        );
        assert_eq!(out.json()["reports"][0]["outcome"], "success");
    }
    // One holder at a time: each lock text names one host, and both took it in turn.
    let holders: Vec<&str> = seen
        .iter()
        .filter_map(|t| t.split_whitespace().next())
        .collect();
    assert!(
        holders.contains(&"host-a") && holders.contains(&"host-b"),
        "{seen:?}"
    );
    let (who, w) = waiting.unwrap_or_else(|| panic!("nobody was seen waiting; locks: {seen:?}"));
    let other = if who == "host-a" { "host-b" } else { "host-a" };
    assert!(w.contains(&format!("held by {other} ")), "{who}: {w}");

    // A run that may not wait: skipped (75), naming the holder.
    bulk(&a.shared().join("bulk-a2"), "a2", 300, 64 << 10);
    let running = spawn_sync(a, &["--json"]);
    let text = wait_lock_of(&f.target, "host-a", Duration::from_secs(20))
        .unwrap_or_else(|| panic!("A's run never held the lock"));
    let out = b.sync_out(&["--timeout", "1ms"]);
    if lock_text(&f.target).as_deref() == Some(text.as_str()) || out.code == 75 {
        assert_eq!(out.code, 75, "{}\n{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains("t: skipped: ") && out.stdout.contains("held by host-a pid "),
            "{}",
            out.stdout
        );
    }
    let out = finish(running, Duration::from_secs(60)).unwrap_or_else(|| panic!("A's run hung"));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    rounds(&f, 2);
    assert_converged(&f);
    assert!(lock_text(&f.target).is_none(), "a lock left behind");
}

/// A daemon killed with SIGKILL in the middle of a run leaves its lock: another host is kept
/// out (75, naming it), and the killed host's daemon, restarted with the same identity, takes
/// its own dead lock over at once, removes its temp files and completes; then everything
/// converges.
#[test]
fn a_killed_hosts_restarted_daemon_takes_its_dead_lock_over_at_once() {
    let mut f = fleet(2, "", |_, _| {});
    rounds(&f, 1);
    bulk(&f.hosts[0].shared().join("bulk"), "a", 600, 64 << 10);
    let pid = f.hosts[0].d.pid();
    let running = spawn_sync(&f.hosts[0], &["--json"]);
    let text = wait_lock_of(&f.target, "host-a", Duration::from_secs(20))
        .unwrap_or_else(|| panic!("A's run never held the lock"));
    assert!(text.starts_with(&format!("host-a {pid} ")), "{text}");
    // Some files on their way.
    std::thread::sleep(Duration::from_millis(30));
    f.hosts[0].d.signal(rustix::process::Signal::KILL);
    f.hosts[0].d.wait_exit();
    drop(running);
    assert_eq!(
        lock_text(&f.target).as_deref(),
        Some(text.as_str()),
        "the killed run's lock should be left (else this test did not kill it mid-run)"
    );
    // Another host is kept out (it is fresh), told whose lock it is.
    let out = f.hosts[1].sync_out(&["--timeout", "1s"]);
    assert_eq!(out.code, 75, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&format!("held by host-a pid {pid}")),
        "{}",
        out.stdout
    );
    // The same host back: its own dead lock is taken over at once.
    f.hosts[0].relaunch();
    let started = Instant::now();
    let r = f.hosts[0].sync_with(&["--timeout", "10s"], 0);
    assert_eq!(r["outcome"], "success", "{r:#}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    rounds(&f, 2);
    assert_converged(&f);
    assert_eq!(files(&f.shared().join("bulk")).len(), 600);
    let temps: Vec<String> = files(&f.target)
        .into_keys()
        .chain(files(&f.hosts[1].shared()).into_keys())
        .filter(|k| metasystem_actors::sync::temps::is_temp(k.rsplit('/').next().unwrap_or(k)))
        .collect();
    assert!(temps.is_empty(), "temp files left: {temps:?}");
}

/// Each host's `metastore.db` lands, as a consistent snapshot, in its own `hosts/HOST/` of the
/// target, and no host's primary ever gets another's (nor its own) back, even a primary
/// synced whole (no `paths`).
#[test]
fn per_host_snapshots_stay_in_their_own_folders() {
    let home_of = |target: &Path, i: usize| {
        target
            .parent()
            .map(|p| p.join(format!("home-{i}")))
            .unwrap_or_else(|| panic!("no parent"))
    };
    let f = fleet_with(
        3,
        |i, target| {
            let home = home_of(target, i);
            std::fs::create_dir_all(&home).unwrap_or_else(|e| panic!("{e}"));
            write_file(home.join(format!("note-{i}.txt")), format!("from host {i}"));
            format!(
                "[[root.children]]\nname = \"t\"\nkind = \"sync_target\"\ntarget = \"{}\"\n\
                 primary = \"{}\"\nevery = \"1h\"\nmin_interval = \"0s\"\n\
                 snapshots = [\"metastore.db\"]\n",
                target.display(),
                home.display()
            )
        },
        |_, _| {},
    );
    let home = |h: &Host| {
        let i = IDS.iter().position(|id| *id == h.id).unwrap_or(0);
        home_of(&f.target, i)
    };
    rounds(&f, 2);
    for h in &f.hosts {
        let snap = f
            .target
            .join(format!(".metasystem-hosts/{}/metastore.db", h.id));
        let head = std::fs::read(&snap).unwrap_or_else(|e| panic!("{}: {e}", snap.display()));
        assert!(head.starts_with(b"SQLite format 3\0"), "{}", snap.display());
        let mine = files(&home(h));
        let want: Vec<String> = (0..3).map(|i| format!("note-{i}.txt")).collect();
        assert_eq!(
            mine.keys().cloned().collect::<Vec<_>>(),
            want,
            "{}'s primary",
            h.id
        );
        assert!(!home(h).join("hosts").exists(), "{}", h.id);
        // Nor in the state dir's own tree.
        assert!(!h.d.state.join("hosts").exists(), "{}", h.id);
    }
    let folders: Vec<String> = std::fs::read_dir(f.target.join(".metasystem-hosts"))
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(folders, IDS, "one folder per host");
    // `verify` on one host finds every host's snapshot, each sound.
    let v = f.hosts[0].d.json(&["verify"], 0);
    let snaps: Vec<String> = v["locations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["kind"] == "snapshots")
        .flat_map(|l| l["databases"].as_array().cloned().unwrap_or_default())
        .filter_map(|d| d["path"].as_str().map(str::to_string))
        .collect();
    for id in IDS {
        assert!(
            snaps.contains(&format!(".metasystem-hosts/{id}/metastore.db")),
            "{snaps:?}"
        );
    }
}

/// Two hosts syncing a new target for the first time at once (two machines set up together):
/// both wait for the lock, and the second must not write a marker of its own over the
/// first's, or the first host's next run is a first sync again (a union): a file deleted
/// meanwhile on any host comes back everywhere.
#[test]
fn two_first_syncs_at_once_do_not_undo_a_later_deletion() {
    let f = fleet_with(
        2,
        |_, target| {
            // Held by a host that is busy: the daemons' first scheduled runs are skipped.
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            write_file(
                target.join(".metasystem-sync.lock"),
                format!("busy-cccccccccccc 4242 {now} 5eed\n"),
            );
            target_tree(target, "")
        },
        |i, shared| {
            if i == 0 {
                for n in ["f.txt", "g.txt", "h.txt", "k.txt"] {
                    write_file(shared.join(n), n);
                }
            }
        },
    );
    assert!(!f.target.join(".metasystem-sync").exists());
    // Both forced at once: both wait for the busy host's lock.
    let runs: Vec<_> = f.hosts.iter().map(|h| spawn_sync(h, &["--json"])).collect();
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::remove_file(f.target.join(".metasystem-sync.lock")).unwrap_or_else(|e| panic!("{e}"));
    for r in runs {
        let out = finish(r, Duration::from_secs(60)).unwrap_or_else(|| panic!("a run hung"));
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    }
    // Which host took the lock first is a race: if B did, it found the target empty and has
    // the files only after its next run (which must not be a first sync either).
    let mut unions = Vec::new();
    if f.hosts[1].sync(0)["first_sync"] == true {
        unions.push(f.hosts[1].id);
    }
    // Right after, B deletes f.txt; then everyone syncs, twice. No run after the first may be
    // a first sync.
    std::fs::remove_file(f.hosts[1].shared().join("f.txt")).unwrap_or_else(|e| panic!("{e}"));
    for h in [&f.hosts[1], &f.hosts[0], &f.hosts[1], &f.hosts[0]] {
        let r = h.sync(0);
        if r["first_sync"] == true {
            unions.push(h.id);
        }
    }
    let back: Vec<&str> = f
        .hosts
        .iter()
        .filter(|h| h.shared().join("f.txt").exists())
        .map(|h| h.id)
        .collect();
    assert!(
        back.is_empty() && unions.is_empty() && !f.shared().join("f.txt").exists(),
        "runs that were first syncs again: {unions:?}; f.txt deleted on host-b is back on {back:?} \
         (target: {})",
        f.shared().join("f.txt").exists()
    );
}
