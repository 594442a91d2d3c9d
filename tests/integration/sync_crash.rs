//! The daemon killed with SIGKILL at random points of sync runs, 100 times: after each kill no
//! file under a real name is torn (every file is one whole version this test wrote), and after
//! the last one a run completes, both sides hold the latest version of every file, no temp
//! file is left, and the next run has nothing to do (the base is consistent).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Reaped, TestDaemon, BIN};

const FILES: usize = 1_000;
const DIRS: usize = 10;
const KILLS: usize = 100;
const SIZE: usize = 4096;

fn rel(i: usize) -> String {
    format!("shared/d{:02}/f{i:04}.dat", i % DIRS)
}

/// A whole version: its header line repeated to SIZE bytes.
fn body(rel: &str, version: usize) -> Vec<u8> {
    let line = format!("{rel} v{version}\n");
    line.as_bytes().iter().copied().cycle().take(SIZE).collect()
}

/// The version a file holds, or why it is torn.
fn version_of(path: &Path, rel: &str) -> Result<usize, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let first = text.lines().next().unwrap_or("");
    let v = first
        .strip_prefix(&format!("{rel} v"))
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or_else(|| format!("{}: torn or foreign: {first:?}", path.display()))?;
    if bytes != body(rel, v) {
        return Err(format!(
            "{}: torn (v{v}, {} bytes)",
            path.display(),
            bytes.len()
        ));
    }
    Ok(v)
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Every regular file under `root` (relative), temp files included.
fn files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from(root)];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(r) = p.strip_prefix(root) {
                out.push(r.to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// Whether the file `rel` has one of this tool's temp names.
fn is_temp(rel: &str) -> bool {
    metasystem_actors::sync::temps::is_temp(rel.rsplit('/').next().unwrap_or(rel))
}

fn check_whole(root: &Path) {
    for r in files(&root.join("shared")) {
        let full = format!("shared/{r}");
        if is_temp(&r) {
            continue; // a temp name, removed by the next run
        }
        if let Err(e) = version_of(&root.join(&full), &full) {
            panic!("after a kill: {e}");
        }
    }
}

#[test]
fn sigkill_at_random_points_of_runs_never_tears_or_loses_a_file() {
    let remote = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let target = remote.path().join("target");
    std::fs::create_dir(&target).unwrap_or_else(|e| panic!("{e}"));
    let tree = format!(
        "[[root.children]]\nname = \"t\"\nkind = \"sync_target\"\ntarget = \"{}\"\npaths = [\"shared\"]\nevery = \"1h\"\nmin_interval = \"0s\"\nmax_delete = \"100%\"\n",
        target.display()
    );
    let mut d = TestDaemon::prepare("", &tree);
    // The latest version written of each file (both sides end with it).
    let mut latest: BTreeMap<usize, usize> = BTreeMap::new();
    for i in 0..FILES {
        write(&d.state.join(rel(i)), &body(&rel(i), 0));
        latest.insert(i, 0);
    }
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    // How long a whole run of this size takes here (the first copy): the kills are spread
    // over that much time after the forced run is asked for.
    d.launch(&[]);
    d.wait_ready();
    let v = d.json(&["sync", "t"], 0);
    assert_eq!(v["reports"][0]["outcome"], "success", "{v}");
    // The first copy's files were racily clean (just written): the next run hashes them once
    // and records their stamps. Done here, so that the measured run is like a round's.
    std::thread::sleep(Duration::from_millis(2_100));
    let v = d.json(&["sync", "t"], 0);
    assert_eq!(v["reports"][0]["outcome"], "success", "{v}");
    // A run of a round's size (100 files changed) sets the window, not the first copy, which
    // is longer: with that, too many kills fell after the run had ended.
    for i in 0..100 {
        write(&d.state.join(rel(i)), &body(&rel(i), 1_000));
        latest.insert(i, 1_000);
    }
    let t0 = Instant::now();
    let v = d.json(&["sync", "t"], 0);
    assert_eq!(v["reports"][0]["outcome"], "success", "{v}");
    let window = t0.elapsed().max(Duration::from_millis(50));
    d.signal(rustix::process::Signal::KILL);
    d.wait_exit();
    let started = Instant::now();
    let mut mid_run = 0;
    for round in 1..=KILLS {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "100 kills took over 10 minutes (round {round})"
        );
        // Changes on both sides since the last run.
        for _ in 0..100 {
            let i = rng.usize(0..FILES);
            let side = if rng.bool() { &d.state } else { &target };
            write(&side.join(rel(i)), &body(&rel(i), round));
            latest.insert(i, round);
        }
        d.launch(&[]);
        d.wait_ready();
        let sync = Command::new(BIN)
            .args([
                "--socket",
                &d.socket.display().to_string(),
                "sync",
                "t",
                "--json",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let mut sync = Reaped(sync);
        std::thread::sleep(window.mul_f64(rng.f64()));
        d.signal(rustix::process::Signal::KILL);
        d.wait_exit();
        // Whether the run had answered before the kill.
        let _ = sync.0.wait();
        let mut answer = String::new();
        if let Some(mut out) = sync.0.stdout.take() {
            use std::io::Read;
            let _ = out.read_to_string(&mut answer);
        }
        if !answer.contains("\"reports\"") {
            mid_run += 1;
        }
        check_whole(&d.state);
        check_whole(&target);
    }
    assert!(
        mid_run >= KILLS / 3,
        "only {mid_run} of {KILLS} kills fell inside a run (window {window:?})"
    );
    // The last run completes and leaves both sides with the latest of everything.
    d.launch(&[]);
    d.wait_ready();
    let v = d.json(&["sync", "t"], 0);
    assert_eq!(v["reports"][0]["outcome"], "success", "{v}");
    for (i, want) in &latest {
        let r = rel(*i);
        for root in [&d.state, &target] {
            match version_of(&root.join(&r), &r) {
                Ok(got) => assert_eq!(
                    got,
                    *want,
                    "{}: v{got}, latest v{want}",
                    root.join(&r).display()
                ),
                Err(e) => panic!("{e}"),
            }
        }
    }
    for root in [&d.state, &target] {
        let temps: Vec<String> = files(root).into_iter().filter(|f| is_temp(f)).collect();
        assert!(temps.is_empty(), "temp files left: {temps:?}");
    }
    let v = d.json(&["sync", "t"], 0);
    let r = &v["reports"][0];
    let changed: u64 = [
        "copied_to_remote",
        "copied_to_local",
        "deleted_remote",
        "deleted_local",
    ]
    .iter()
    .map(|k| r[*k].as_u64().unwrap_or(0))
    .sum();
    assert_eq!(changed, 0, "the base is not consistent: {v}");
    assert_eq!(r["agreed"], 0, "{v}");
    d.terminate();
}
