//! Injected I/O errors: the real daemon, run under `tests/faultshim/faultshim.c` (an
//! `LD_PRELOAD` library), has its file-system calls on its state dir, its primary and its
//! target refused (ENOSPC, EIO, EACCES), one call site at a time (open, read, write, fsync,
//! rename, truncate, unlink, mkdir) and then all at once, at random, while a workload runs:
//! actors killed, files edited on both sides of a sync target and synced, a probe flapping
//! with its alerts going to a loopback webhook, a managed process writing its log, the daemon
//! writing its own log file. Sockets, pipes and the runtime's wake-ups are not touched.
//!
//! Throughout, the daemon answers `status`. Once the faults stop: every kill it accepted is an
//! exit in its store, the sync converges, no synced file or backup is torn, every version
//! written on either side that the test did not overwrite itself is still somewhere (live, or
//! in the backups), no temp is left, every database verifies, and the receiver's last word on every alert is the
//! truth.
//!
//! `METASYSTEM_FAULT_ROUNDS` (default 1) repeats the rounds of call sites,
//! `METASYSTEM_FAULT_PPM` (default 100000) sets the rate, per million calls, and
//! `METASYSTEM_FAULT_EDITS` (default 1) the files edited on each side per step;
//! `benches/faults.sh` runs many rounds for the long figures. The figures (calls seen and refused per site) are
//! printed.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use metasystem_actors::alerts::fingerprint;
use metasystem_actors::sinks::HttpSink;
use serde_json::Value;

use crate::sync_hosts::files;
use crate::util::{write_file, TestDaemon};

const SITES: [&str; 8] = [
    "open", "read", "write", "fsync", "rename", "truncate", "unlink", "mkdir",
];
const ERRNOS: [(&str, i32); 3] = [("ENOSPC", 28), ("EIO", 5), ("EACCES", 13)];
const MAGIC: u32 = 0x3148_5346;
const CTL_LEN: usize = 16 + 8 * 8 * 2;
/// Files edited on both sides.
const FILES: usize = 16;
/// Workload steps per phase (one site, or all of them).
const STEPS: usize = 8;

/// The shim built into `dir`, or `None` (the test says it is skipped) where there is no C
/// compiler; under CI, which has one (the Rust toolchain links with it), that fails the test.
pub(crate) fn shim(dir: &Path) -> Option<PathBuf> {
    match build_shim(dir) {
        Ok(p) => Some(p),
        Err(why) => {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
            assert!(
                !ci,
                "{why}: CI has a C compiler (the Rust toolchain needs one)"
            );
            eprintln!("skipped: {why}");
            None
        }
    }
}

fn build_shim(dir: &Path) -> Result<PathBuf, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faultshim/faultshim.c");
    let out = dir.join("faultshim.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .args(["-ldl", "-lpthread"])
        .status()
        .map_err(|e| format!("no C compiler (cc): {e}"))?;
    if !status.success() {
        return Err(format!("cc failed on {}: {status}", src.display()));
    }
    Ok(out)
}

/// The control file the shim maps: which sites fail, how often, with which errno, and its
/// counters.
struct Faults {
    file: std::fs::File,
    pub path: PathBuf,
}

impl Faults {
    fn create(path: PathBuf) -> Faults {
        let mut bytes = vec![0u8; CTL_LEN];
        bytes[..4].copy_from_slice(&MAGIC.to_le_bytes());
        write_file(&path, &bytes);
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Faults { file, path }
    }

    /// From now on calls at `sites` (a bit per site) fail with `errno` at `ppm` per million.
    fn set(&self, sites: u32, ppm: u32, errno: i32) {
        let mut b = Vec::with_capacity(12);
        b.extend_from_slice(&sites.to_le_bytes());
        b.extend_from_slice(&ppm.to_le_bytes());
        b.extend_from_slice(&errno.to_le_bytes());
        self.file
            .write_all_at(&b, 4)
            .unwrap_or_else(|e| panic!("control: {e}"));
    }

    fn off(&self) {
        self.set(0, 0, 0);
    }

    /// (calls seen, calls refused) per site.
    fn counts(&self) -> Vec<(u64, u64)> {
        let mut b = vec![0u8; CTL_LEN];
        self.file
            .read_exact_at(&mut b, 0)
            .unwrap_or_else(|e| panic!("control: {e}"));
        let at = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[16 + 8 * i..24 + 8 * i]);
            u64::from_le_bytes(w)
        };
        (0..8).map(|s| (at(s), at(8 + s))).collect()
    }
}

/// What the test writes: a header naming the file, the side and the version, then a body
/// whose length and bytes follow from them, then a trailer. Anything else is torn.
pub(crate) fn content(name: &str, side: char, version: u32) -> Vec<u8> {
    let len = 64 + (version as usize * 7919 + name.len() * 104_729) % 48_000;
    let mut out = format!("faults {name} {side} {version}\n").into_bytes();
    out.extend((0..len).map(|i| b'a' + ((i + version as usize) % 26) as u8));
    out.extend_from_slice(format!("\nend {len}\n").as_bytes());
    out
}

/// The (name, side, version) a file written by [`content`] holds, if it is whole.
pub(crate) fn whole(bytes: &[u8]) -> Option<(String, char, u32)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let header = text.lines().next()?;
    let mut words = header.split(' ');
    if words.next()? != "faults" {
        return None;
    }
    let name = words.next()?.to_string();
    let side = words.next()?.chars().next()?;
    let version: u32 = words.next()?.parse().ok()?;
    (content(&name, side, version) == bytes).then_some((name, side, version))
}

/// A small deterministic generator (the test's choices; the shim has its own).
pub(crate) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// What the test wrote, and which of those versions it overwrote itself (a user's own edit
/// replacing a version is not a loss): every other version must survive, live or backed up.
#[derive(Default)]
pub(crate) struct Ledger {
    version: u32,
    written: BTreeMap<u32, (String, char)>,
    released: BTreeSet<u32>,
}

impl Ledger {
    /// Writes a new version of `name` under `root`'s `shared` (side `side`): releases the
    /// version it replaces; answers the new version and its bytes.
    pub fn write(&mut self, root: &Path, side: char, name: &str) -> (u32, Vec<u8>) {
        self.version += 1;
        let path = root.join("shared").join(name);
        if let Ok(old) = std::fs::read(&path) {
            if let Some((_, _, v)) = whole(&old) {
                self.released.insert(v);
            }
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        let bytes = content(name, side, self.version);
        write_file(&path, &bytes);
        self.written.insert(self.version, (name.to_string(), side));
        (self.version, bytes)
    }

    /// The names written.
    pub fn names(&self) -> BTreeSet<&str> {
        self.written.values().map(|(n, _)| n.as_str()).collect()
    }

    /// Versions owed (written, not overwritten by the test) that are not in `seen`.
    pub fn lost(&self, seen: &BTreeSet<u32>) -> Vec<String> {
        self.written
            .iter()
            .filter(|(v, _)| !self.released.contains(v) && !seen.contains(v))
            .map(|(v, (n, side))| format!("version {v} of {n} (written on side {side})"))
            .collect()
    }
}

/// The versions held whole in `roots` (and, under `backups`, the synced folder's backups);
/// panics at a torn file, or at a temp left behind unless `temps` (where a run was cut short,
/// before the next run cleans up).
pub(crate) fn survey(primary: &Path, target: &Path, temps: bool) -> BTreeSet<u32> {
    let mut seen = BTreeSet::new();
    for (root, listing) in [
        ("primary", files(&primary.join("shared"))),
        ("target", files(&target.join("shared"))),
        ("backups", files(&primary.join("backups"))),
    ] {
        for (path, bytes) in &listing {
            let leaf = path.rsplit('/').next().unwrap_or(path);
            if metasystem_actors::sync::temps::is_temp(leaf) {
                assert!(temps, "a temp is left in the {root}: {path}");
                continue;
            }
            if root == "backups" && !path.contains("shared/") {
                continue;
            }
            match whole(bytes) {
                Some((_, _, v)) => {
                    seen.insert(v);
                }
                None => panic!(
                    "{root}: {path} is torn ({} bytes): {:?}",
                    bytes.len(),
                    String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
                ),
            }
        }
    }
    seen
}

struct Workload {
    d: TestDaemon,
    hook: HttpSink,
    primary: PathBuf,
    target: PathBuf,
    down: PathBuf,
    rng: Rng,
    ledger: Ledger,
    /// Files edited on each side per step.
    edits: usize,
    kills: BTreeMap<String, usize>,
    status_failures: Vec<String>,
    status_calls: usize,
}

const BEATS: [&str; 3] = ["w1", "w2", "w3"];

fn tree(hook: &HttpSink, target: &Path, down: &Path) -> String {
    let mut t = format!(
        r#"
[root]
strategy = "one_for_one"
intensity = 100000
period = "1s"
backoff = "none"

[[root.children]]
name = "alerts"
kind = "alerts"
group_wait = "100ms"
retry = {{ initial = "50ms", max = "500ms" }}
timeout = "2s"
channels = [ {{ name = "hook", type = "webhook", url = "{}" }} ]
routes = {{ critical = ["hook"], warning = ["hook"], info = ["hook"] }}

[[root.children]]
name = "svc"
kind = "probe"
check = "command"
command = "/bin/sh"
args = ["-c", "test ! -e '{}' || exit 2"]
every = "200ms"
failures_before_warning = 1
failures_before_critical = 3

[[root.children]]
name = "t"
kind = "sync_target"
target = "{}"
paths = ["shared"]
every = "1h"
min_interval = "0s"
snapshots = ["metastore.db"]
snapshot_every = "1s"

[[root.children]]
name = "printer"
kind = "process"
command = "/bin/sh"
args = ["-c", "i=0; while [ $i -lt 100000 ]; do echo line $i; i=$((i+1)); sleep 0.02; done"]
"#,
        hook.url("/hook"),
        down.display(),
        target.display()
    );
    for b in BEATS {
        t.push_str(&format!(
            "\n[[root.children]]\nname = \"{b}\"\nkind = \"heartbeat\"\nevery = \"1h\"\n"
        ));
    }
    t
}

impl Workload {
    /// One step: an edit on each side, a kill, the probe flipped, `status`, and every other
    /// step a sync run.
    fn step(&mut self, i: usize) {
        // No run going on (a run that outlived its CLI's timeout): what the test reads before
        // it overwrites a file is what it replaces.
        self.idle();
        for side in ['p', 't'].repeat(self.edits) {
            let name = format!("f{:02}", self.rng.next(FILES));
            let root = if side == 'p' {
                &self.primary
            } else {
                &self.target
            };
            self.ledger.write(root, side, &name);
        }
        let beat = BEATS[self.rng.next(BEATS.len())];
        let path = format!("root/{beat}");
        if self.d.cli(&["kill", &path]).code == 0 {
            *self.kills.entry(path).or_default() += 1;
        }
        if self.rng.next(3) == 0 {
            if self.down.exists() {
                let _ = std::fs::remove_file(&self.down);
            } else {
                write_file(&self.down, "");
            }
        }
        self.status();
        if i % 2 == 1 {
            // Whatever it answers: a run that met a refusal fails, and says so.
            let _ = self.d.cli(&["sync", "t", "--json", "--timeout", "10s"]);
            self.status();
        }
    }

    /// Waits (bounded) until no run of `t` is going on.
    fn idle(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let out = self.d.cli(&["sync", "status", "--json"]);
            let v: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
            if v["targets"][0]["running"] == false {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "a run never ended: {}{}",
                out.stdout,
                out.stderr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn status(&mut self) {
        self.status_calls += 1;
        let out = self.d.cli(&["status", "--json"]);
        if !(out.code == 0 || out.code == 1) || serde_json::from_str::<Value>(&out.stdout).is_err()
        {
            self.status_failures
                .push(format!("exit {}: {}{}", out.code, out.stdout, out.stderr));
        }
    }
}

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn injected_io_errors_lose_nothing_and_the_daemon_keeps_answering() {
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let Some(shim) = shim(work.path()) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let hook = rt.block_on(HttpSink::start());
    let target = work.path().join("cloud");
    std::fs::create_dir_all(target.join("shared")).unwrap_or_else(|e| panic!("{e}"));
    let down = work.path().join("down");
    let faults = Faults::create(work.path().join("ctl"));
    let d = TestDaemon::prepare("log_file = \"daemon.log\"", &tree(&hook, &target, &down));
    let primary = d.state.clone();
    std::fs::create_dir_all(primary.join("shared")).unwrap_or_else(|e| panic!("{e}"));
    let roots = format!("{}:{}", d.state.display(), target.display());
    let mut w = Workload {
        d,
        hook,
        primary,
        target,
        down,
        rng: Rng(0x9e37_79b9_7f4a_7c15),
        ledger: Ledger::default(),
        edits: env_or("METASYSTEM_FAULT_EDITS", 1).clamp(1, FILES as u32) as usize,
        kills: BTreeMap::new(),
        status_failures: Vec::new(),
        status_calls: 0,
    };
    let ctl = faults.path.display().to_string();
    let preload = shim.display().to_string();
    w.d.launch(&[
        ("LD_PRELOAD", preload.as_str()),
        ("FAULTSHIM_ROOTS", roots.as_str()),
        ("FAULTSHIM_CTL", ctl.as_str()),
    ]);
    w.d.wait_ready();

    // One site at a time (by default a tenth of its calls refused), then all of them.
    let mut phase = 0usize;
    // The rate of a site's own phase; the phase of all sites has a third of it.
    let ppm = env_or("METASYSTEM_FAULT_PPM", 100_000).min(1_000_000);
    for _ in 0..env_or("METASYSTEM_FAULT_ROUNDS", 1) {
        for site in 0..=SITES.len() {
            let (_, errno) = ERRNOS[phase % ERRNOS.len()];
            phase += 1;
            if site < SITES.len() {
                // The sites called less often (fsync, rename, truncate, unlink, mkdir) fail
                // three times as often, so that each phase refuses some of them.
                let rate = if site <= 2 {
                    ppm
                } else {
                    (ppm * 3).min(500_000)
                };
                faults.set(1 << site, rate, errno);
            } else {
                faults.set(u32::MAX >> 24, ppm / 3, errno);
            }
            for i in 0..STEPS {
                w.step(i);
            }
        }
    }
    faults.off();
    let counts = faults.counts();

    // The probe ends failing: its alert must end firing, every other resolved.
    write_file(&w.down, "");
    assert!(
        w.status_failures.is_empty(),
        "status failed {} of {} times under faults: {:#?}\nlog:\n{}",
        w.status_failures.len(),
        w.status_calls,
        w.status_failures,
        w.d.log_text()
    );

    // The sync converges: runs until one changes nothing on either side (bounded).
    let mut converged = false;
    let mut last_run = Value::Null;
    for _ in 0..8 {
        let out = w.d.cli(&["sync", "t", "--json"]);
        last_run = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
        let r = &last_run["reports"][0];
        if out.code == 0
            && r["outcome"] == "success"
            && crate::sync_hosts::changed(r) == 0
            && files(&w.primary.join("shared")) == files(&w.target.join("shared"))
        {
            converged = true;
            break;
        }
    }
    assert!(
        converged,
        "no convergence after the faults stopped: {last_run:#}\nlog:\n{}",
        w.d.log_text()
    );

    // No file torn, no temp left, and every version the test did not overwrite itself is
    // somewhere: live, or backed up.
    let seen = survey(&w.primary, &w.target, false);
    let lost = w.ledger.lost(&seen);
    assert!(lost.is_empty(), "lost: {lost:#?}\nlog:\n{}", w.d.log_text());
    let live = files(&w.primary.join("shared"));
    for name in w.ledger.names() {
        assert!(
            live.contains_key(name),
            "{name} is gone from the primary: {:?}",
            live.keys()
        );
    }
    let verify = w.d.cli(&["verify", "--json"]);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);

    // Every kill accepted is an exit in the store (the store retries until the disk takes it).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut missing = Vec::new();
        for (path, n) in &w.kills {
            let exits = w.d.events(&["--kind", "exited", "--path", path]).len();
            if exits < *n {
                missing.push(format!("{path}: {n} kills, {exits} exits"));
            }
        }
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "accepted kills without their exit in the store: {missing:?}\nlog:\n{}",
            w.d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The receiver's last word on each alert is the truth: the probe's failure firing (its
    // warning superseded), every restart resolved (every actor runs).
    let fail = fingerprint("probe:root/svc:fail");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut last: BTreeMap<String, String> = BTreeMap::new();
        for r in w.hook.requests() {
            for a in r.json()["alerts"].as_array().cloned().unwrap_or_default() {
                last.insert(
                    a["fingerprint"].as_str().unwrap_or_default().to_string(),
                    a["status"].as_str().unwrap_or_default().to_string(),
                );
            }
        }
        let wrong: Vec<(&String, &String)> = last
            .iter()
            .filter(|(fp, status)| {
                let want = if **fp == fail { "firing" } else { "resolved" };
                status.as_str() != want
            })
            .collect();
        if wrong.is_empty() && last.get(&fail).is_some_and(|s| s == "firing") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the receiver believes what is not true: {wrong:?} (probe failure: {:?})\nalerts: {}\nlog:\n{}",
            last.get(&fail),
            w.d.cli(&["alerts"]).stdout,
            w.d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The logs are written again: the daemon's own file and the managed process's output.
    let log_len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let daemon_log = w.primary.join("daemon.log");
    let output_log = w.primary.join("logs/root/printer/output.log");
    let before = (log_len(&daemon_log), log_len(&output_log));
    let deadline = Instant::now() + Duration::from_secs(20);
    while log_len(&output_log) <= before.1 {
        assert!(Instant::now() < deadline, "the process log stays silent");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(before.0 > 0, "the daemon's log file is empty");

    let refused: u64 = counts.iter().map(|c| c.1).sum();
    eprintln!("injected faults: {refused} calls refused");
    eprintln!("{:<9} {:>10} {:>9}", "site", "calls", "refused");
    for (name, (seen, refused)) in SITES.iter().zip(&counts) {
        eprintln!("{name:<9} {seen:>10} {refused:>9}");
    }
    eprintln!(
        "kills accepted: {}, status answered: {} of {}",
        w.kills.values().sum::<usize>(),
        w.status_calls - w.status_failures.len(),
        w.status_calls
    );
    // The busy sites, hundreds of calls in each phase, always meet refusals.
    for (i, name) in SITES.iter().enumerate().take(3) {
        assert!(counts[i].1 > 0, "no {name} was refused: {counts:?}");
    }
    assert_eq!(w.d.terminate(), 0, "log:\n{}", w.d.log_text());
}
