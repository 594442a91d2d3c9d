//! Power loss, as far as it can be simulated here: the real daemon runs under
//! `tests/faultshim/faultshim.c` with an undo log (`FAULTSHIM_UNDO`), is SIGKILLed at a random
//! point of a sync run, and every change it made to its state dir and its target that was not
//! made durable (fsync of the file for its content, fsync of the folder for its entries,
//! syncfs for everything) is undone, newest first, as a disk losing its cache would lose it.
//! The `-shm` files (shared memory, never durable) go too.
//!
//! Then, before the daemon runs again: its store opens, and every file the store records as
//! synced is on both sides, whole, and no older than what was recorded (a newer version is a
//! user's later edit). After every round the daemon restarts on what is left; at the end the
//! sync converges with nothing torn, and every version the test did not overwrite itself
//! somewhere, live or backed up.
//!
//! `METASYSTEM_POWER_ROUNDS` (default 24) sets the number of power cuts.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use metasystem_actors::sync::fsops::hash_file;

use crate::faults::{shim, survey, whole, Ledger, Rng};
use crate::sync_hosts::files;
use crate::util::{write_file, Reaped, TestDaemon, BIN};

type Id = (u64, u64);

/// An undo record (see the shim's header).
#[derive(Debug)]
enum Rec {
    File {
        id: Id,
        data: u64,
    },
    Synced(Id),
    Entry {
        dir: Id,
        name: Vec<u8>,
        prior: Prior,
    },
    DirSynced(Id),
    All,
}

#[derive(Debug)]
enum Prior {
    Absent,
    Dir,
    File(u64),
}

fn parse_log(text: &str) -> Vec<Rec> {
    let num = |s: Option<&str>| -> u64 { s.and_then(|s| s.parse().ok()).unwrap_or(0) };
    let mut out = Vec::new();
    for line in text.lines() {
        let mut w = line.split(' ');
        let rec = match w.next() {
            Some("F") => Rec::File {
                id: (num(w.next()), num(w.next())),
                data: num(w.next()),
            },
            Some("S") => Rec::Synced((num(w.next()), num(w.next()))),
            Some("D") => Rec::DirSynced((num(w.next()), num(w.next()))),
            Some("A") => Rec::All,
            Some("E") => {
                let dir = (num(w.next()), num(w.next()));
                let hex = w.next().unwrap_or_default();
                let name = (0..hex.len() / 2)
                    .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                    .collect();
                let prior = match w.next() {
                    Some("d") => Prior::Dir,
                    Some("f") => Prior::File(num(w.next())),
                    _ => Prior::Absent,
                };
                Rec::Entry { dir, name, prior }
            }
            // A line cut by the kill: it was never acted on (the call came after).
            _ => continue,
        };
        out.push(rec);
    }
    out
}

/// The records a power cut now would undo, oldest first.
fn not_durable(recs: Vec<Rec>) -> Vec<Rec> {
    let mut pending: Vec<Rec> = Vec::new();
    for r in recs {
        match r {
            Rec::Synced(id) => {
                pending.retain(|p| !matches!(p, Rec::File { id: f, .. } if *f == id))
            }
            Rec::DirSynced(id) => {
                pending.retain(|p| !matches!(p, Rec::Entry { dir, .. } if *dir == id))
            }
            Rec::All => pending.clear(),
            other => pending.push(other),
        }
    }
    pending
}

/// Where each file and folder under `roots` is now, by (device, inode).
fn inodes(roots: &[&Path]) -> HashMap<Id, PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let mut out = HashMap::new();
    let mut stack: Vec<PathBuf> = roots.iter().map(|p| p.to_path_buf()).collect();
    while let Some(p) = stack.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        out.entry((m.dev(), m.ino())).or_insert_with(|| p.clone());
        if m.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    out
}

fn remove_any(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = std::fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// Undoes what was not durable; the number of records undone.
fn power_cut(undo: &Path, roots: &[&Path]) -> usize {
    use std::os::unix::ffi::OsStrExt;
    let text = std::fs::read_to_string(undo.join("log")).unwrap_or_default();
    let pending = not_durable(parse_log(&text));
    let data = |n: u64| -> Vec<u8> {
        match std::fs::read(undo.join(n.to_string())) {
            Ok(b) => b,
            Err(e) => panic!("undo copy {n}: {e}"),
        }
    };
    for r in pending.iter().rev() {
        match r {
            Rec::File { id, data: n } => {
                if let Some(path) = inodes(roots).get(id) {
                    if path.is_file() {
                        // In place: the same inode, its content as last made durable.
                        let mut f = std::fs::File::options()
                            .write(true)
                            .truncate(true)
                            .open(path)
                            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                        std::io::Write::write_all(&mut f, &data(*n))
                            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    }
                }
            }
            Rec::Entry { dir, name, prior } => {
                let Some(dir) = inodes(roots).get(dir).cloned() else {
                    continue;
                };
                let at = dir.join(std::ffi::OsStr::from_bytes(name));
                match prior {
                    Prior::Absent => remove_any(&at),
                    // A folder was there (a mkdir that found it, or a rename or rmdir of it):
                    // one is there again, with what it holds now.
                    Prior::Dir if at.is_dir() => {}
                    Prior::Dir => {
                        remove_any(&at);
                        let _ = std::fs::create_dir(&at);
                    }
                    Prior::File(n) => {
                        remove_any(&at);
                        write_file(&at, data(*n));
                    }
                }
            }
            _ => {}
        }
    }
    // The shared-memory index of each database is never durable.
    for root in roots {
        for (path, _) in files(root) {
            if path.ends_with("-shm") {
                let _ = std::fs::remove_file(root.join(path));
            }
        }
    }
    let _ = std::fs::remove_dir_all(undo);
    std::fs::create_dir_all(undo).unwrap_or_else(|e| panic!("{e}"));
    pending.len()
}

/// The base the store holds for target `t`: path -> (primary's hash, target's hash).
fn recorded(db: &Path) -> BTreeMap<String, ([u8; 32], [u8; 32])> {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        // Read-write: the first connection after a crash recovers the WAL.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(SqliteConnectOptions::new().filename(db))
            .await
            .unwrap_or_else(|e| panic!("the store does not open after the power cut: {e}"));
        let base = metasystem_actors::store::sync::base(&pool, "t")
            .await
            .unwrap_or_else(|e| panic!("the base does not read after the power cut: {e}"));
        let out = base
            .iter()
            .map(|(p, e)| (p.to_string(), (e.local.hash, e.remote.hash)))
            .collect();
        pool.close().await;
        out
    })
}

struct Cut {
    d: TestDaemon,
    env: Vec<(&'static str, String)>,
    primary: PathBuf,
    target: PathBuf,
    undo: PathBuf,
    scratch: PathBuf,
    /// Every version the test wrote, by content hash: (name, version).
    versions: HashMap<[u8; 32], (String, u32)>,
    ledger: Ledger,
}

impl Cut {
    fn launch(&mut self) {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.d.launch(&env);
        self.d.wait_ready();
    }

    fn write(&mut self, side: char, name: &str) {
        let root = if side == 'p' {
            &self.primary
        } else {
            &self.target
        };
        let (version, bytes) = self.ledger.write(root, side, name);
        write_file(&self.scratch, &bytes);
        let hash = hash_file(&self.scratch, false).unwrap_or_else(|e| panic!("{e}"));
        self.versions.insert(hash, (name.to_string(), version));
    }

    /// What the store records as synced, held against both sides: (entries checked,
    /// violations).
    fn check_recorded(&self) -> (usize, Vec<String>) {
        let base = recorded(&self.d.state.join("metastore.db"));
        let mut bad = Vec::new();
        for (path, (local, remote)) in &base {
            for (side, root, want) in [
                ("primary", &self.primary, local),
                ("target", &self.target, remote),
            ] {
                let file = root.join(path);
                let Ok(bytes) = std::fs::read(&file) else {
                    bad.push(format!(
                        "{path}: recorded as synced, missing from the {side}"
                    ));
                    continue;
                };
                let Some((_, _, now)) = whole(&bytes) else {
                    bad.push(format!("{path}: recorded as synced, torn in the {side}"));
                    continue;
                };
                match self.versions.get(want) {
                    Some((_, then)) if now < *then => bad.push(format!(
                        "{path}: recorded as synced at version {then}, the {side} has the older {now}"
                    )),
                    Some(_) => {}
                    None => bad.push(format!("{path}: recorded with a hash no version had")),
                }
            }
        }
        (base.len(), bad)
    }
}

fn rounds() -> usize {
    std::env::var("METASYSTEM_POWER_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24)
}

fn tree(target: &Path) -> String {
    format!(
        "[root]\n[[root.children]]\nname = \"t\"\nkind = \"sync_target\"\ntarget = \"{}\"\n\
         paths = [\"shared\"]\nevery = \"1h\"\nmin_interval = \"0s\"\n\
         snapshots = [\"metastore.db\"]\n",
        target.display()
    )
}

#[test]
fn a_power_cut_in_a_sync_run_loses_nothing_recorded_as_synced() {
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let Some(shim) = shim(work.path()) else {
        return;
    };
    let target = work.path().join("cloud");
    std::fs::create_dir_all(target.join("shared")).unwrap_or_else(|e| panic!("{e}"));
    let undo = work.path().join("undo");
    std::fs::create_dir_all(&undo).unwrap_or_else(|e| panic!("{e}"));
    let d = TestDaemon::prepare("", &tree(&target));
    let primary = d.state.clone();
    std::fs::create_dir_all(primary.join("shared")).unwrap_or_else(|e| panic!("{e}"));
    let roots = format!("{}:{}", d.state.display(), target.display());
    let mut c = Cut {
        env: vec![
            ("LD_PRELOAD", shim.display().to_string()),
            ("FAULTSHIM_ROOTS", roots),
            ("FAULTSHIM_UNDO", undo.display().to_string()),
        ],
        d,
        primary,
        target,
        undo,
        scratch: work.path().join("scratch"),
        versions: HashMap::new(),
        ledger: Ledger::default(),
    };
    let names: Vec<String> = (0..48).map(|i| format!("d{}/f{i:02}", i % 4)).collect();
    for n in &names {
        c.write('p', n);
    }
    c.launch();
    assert_eq!(c.d.cli(&["sync", "t"]).code, 0, "{}", c.d.log_text());

    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut undone, mut checked) = (0, 0);
    let delays = [0u64, 5, 20, 50, 100, 200, 400];
    for round in 0..rounds() {
        for _ in 0..8 {
            let n = names[rng.next(names.len())].clone();
            c.write('p', &n);
            let n = names[rng.next(names.len())].clone();
            c.write('t', &n);
        }
        let socket = c.d.socket.display().to_string();
        let run = Command::new(BIN)
            .args(["--socket", &socket, "sync", "t"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let run = Reaped(run);
        std::thread::sleep(Duration::from_millis(delays[round % delays.len()]));
        c.d.signal(rustix::process::Signal::KILL);
        let _ = c.d.wait_exit();
        drop(run);
        let _ = std::fs::remove_file(&c.d.socket);
        let logged = std::fs::read_to_string(c.undo.join("log")).unwrap_or_default();
        undone += power_cut(&c.undo, &[&c.primary, &c.target]);
        let lost = c.ledger.lost(&survey(&c.primary, &c.target, true));
        assert!(
            lost.is_empty(),
            "round {round}: lost in a power cut {} ms into a run: {lost:#?}\nundo log:\n{logged}\nlog:\n{}",
            delays[round % delays.len()],
            c.d.log_text()
        );
        let (n, bad) = c.check_recorded();
        // Every file was synced by the first run, which answered: its base is durable. (The
        // store committed its durable writes under `synchronous = NORMAL`, so a power cut
        // rolled the whole base back: 48 entries before, 0 after.)
        assert_eq!(
            n,
            names.len(),
            "round {round}: the base lost entries in the power cut"
        );
        checked += n;
        assert!(
            bad.is_empty(),
            "round {round}: after a power cut {} ms into a run: {bad:#?}\nlog:\n{}",
            delays[round % delays.len()],
            c.d.log_text()
        );
        c.launch();
    }

    // Power stays on: the sync converges and nothing is lost or torn.
    let mut converged = false;
    let mut runs = Vec::new();
    for _ in 0..6 {
        let out = c.d.cli(&["sync", "t", "--json"]);
        if out.code == 0
            && crate::sync_hosts::changed(&out.json()["reports"][0]) == 0
            && files(&c.primary.join("shared")) == files(&c.target.join("shared"))
        {
            converged = true;
            break;
        }
        runs.push(format!("exit {}: {}{}", out.code, out.stdout, out.stderr));
    }
    assert!(
        converged,
        "no convergence after the power cuts\nruns:\n{}\nlog:\n{}",
        runs.join("\n"),
        c.d.log_text()
    );
    let lost = c.ledger.lost(&survey(&c.primary, &c.target, false));
    assert!(lost.is_empty(), "lost: {lost:#?}\nlog:\n{}", c.d.log_text());
    let verify = c.d.cli(&["verify"]);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
    eprintln!(
        "power cuts: {}, changes undone: {undone}, recorded entries checked: {checked}",
        rounds()
    );
    assert_eq!(c.d.terminate(), 0);
}
