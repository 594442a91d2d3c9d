//! The fleet view (`metasystem hosts`): three real daemons with their own identities on one
//! shared target folder, each pushing its store's snapshot into `.metasystem-hosts/HOST/`.
//! One host reads them all: versions, sync outcomes, a failing probe and its firing alert on
//! another host, a stopped host whose snapshot goes stale, a damaged snapshot reported for its
//! host alone, and nothing in the shared folder written or created by reading.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::sync_hosts::{fleet_with, target_tree, Fleet, Host};

/// Every entry under `root` (relative path -> size, mtime), symlinks not followed.
fn listing(root: &Path) -> BTreeMap<String, (u64, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p.clone());
            }
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.insert(rel, (m.len(), m.modified().unwrap()));
        }
    }
    out
}

/// `hosts --json` on `h` (exit 0).
fn hosts(h: &Host) -> Value {
    h.d.json(&["hosts"], 0)
}

fn host<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {v}"))
}

/// Forced runs on `h` until one pushes a fresh snapshot of its store (bounded).
fn push(h: &Host) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = h.sync(0);
        if r["snapshots"].to_string().contains("pushed") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: no snapshot pushed: {r}",
            h.id
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Polls `hosts --json` on `h` until `ok` holds (bounded); the answer.
fn wait_hosts(h: &Host, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = hosts(h);
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn fleet() -> Fleet {
    fleet_with(
        3,
        |i, t| {
            let mut tree = target_tree(t, "snapshot_every = \"2s\"");
            if i == 1 {
                // host-b: a probe that always fails (and so raises its alert).
                tree.push_str(
                    "[[root.children]]\nname = \"broken\"\nkind = \"probe\"\ncheck = \"command\"\n\
                     command = \"/bin/false\"\nevery = \"100ms\"\nfailures_before_warning = 1\n\
                     failures_before_critical = 1\n",
                );
            }
            tree
        },
        |_, _| {},
    )
}

#[test]
fn hosts_shows_the_fleet_from_its_snapshots() {
    let mut f = fleet();
    // host-b's probe has failed (and its alert fires) before its next snapshot.
    let b = &f.hosts[1];
    b.d.wait_until("host-b's probe fails", |d| {
        let out = d.cli(&["probes", "--json"]).stdout;
        out.contains("\"warn\"") || out.contains("\"fail\"")
    });
    // Each pushes a snapshot, twice: the second carries the outcome of the first forced run
    // (a snapshot is taken during a run, so it tells the run before).
    for _ in 0..2 {
        for h in &f.hosts {
            push(h);
        }
    }
    let a = &f.hosts[0];
    let v = hosts(a);
    let ids: Vec<&str> = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["host-a", "host-b", "host-c"], "{v}");
    let me = host(&v, "host-a");
    assert_eq!(me["this"], true, "{v}");
    assert_eq!(me["source"], "live", "{v}");
    for id in ["host-b", "host-c"] {
        let h = host(&v, id);
        assert_eq!(h["source"], "snapshot", "{h}");
        assert_eq!(h["target"], "t", "{h}");
        assert!(h["unreadable"].is_null(), "{h}");
        assert_eq!(h["stale"], false, "{h}");
        assert_eq!(h["version"], metasystem::VERSION, "{h}");
        assert_eq!(h["snapshot_every_s"], 2, "{h}");
        assert!(h["uptime_s"].as_u64().is_some(), "{h}");
        let sync = &h["summary"]["sync"][0];
        assert_eq!(sync["name"], "t", "{h}");
        assert_eq!(sync["outcome"], "success", "{h}");
        assert!(
            h["summary"]["tree"]["running"].as_u64().unwrap() >= 2,
            "{h}"
        );
    }
    let hb = host(&v, "host-b");
    assert_eq!(hb["summary"]["probes"][0]["path"], "root/broken", "{hb}");
    assert_ne!(hb["summary"]["probes"][0]["status"], "pass", "{hb}");
    assert!(
        hb["summary"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["source"] == "root/broken"),
        "{hb}"
    );
    let hc = host(&v, "host-c");
    assert_eq!(hc["summary"]["probes"], serde_json::json!([]), "{hc}");
    assert_eq!(hc["summary"]["alerts"], serde_json::json!([]), "{hc}");

    // The text says the same.
    let out = a.d.cli(&["hosts"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for want in [
        "host-a: ok (this host, live state)",
        "host-b: trouble",
        "probe root/broken ",
        "alert firing",
        "host-c: ok",
        "sync t: success at",
    ] {
        assert!(out.stdout.contains(want), "{want:?} in:\n{}", out.stdout);
    }
    // `top` has a hosts panel (here in `--summary`, under `hosts`).
    let top = a.d.cli(&["top", "--summary"]);
    assert_eq!(top.code, 0, "{}", top.stderr);
    let top: Value = serde_json::from_str(&top.stdout).unwrap();
    assert_eq!(top["hosts"]["hosts"].as_array().unwrap().len(), 3, "{top}");
    // `--target` names a running target.
    let bad = a.d.cli(&["hosts", "--target", "nope"]);
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr.contains("no sync target `nope`"),
        "{}",
        bad.stderr
    );
    let only = a.d.json(&["hosts", "--target", "t"], 0);
    assert_eq!(only["hosts"].as_array().unwrap().len(), 3, "{only}");
    assert_eq!(only["targets"][0]["name"], "t", "{only}");
    assert_eq!(only["targets"][0]["hosts"], 3, "{only}");

    // Reading writes nothing in the shared folder: no -wal, -shm or -journal, no new mtime.
    let before = listing(&f.target);
    for h in &f.hosts {
        hosts(h);
    }
    a.d.cli(&["hosts"]);
    let after = listing(&f.target);
    assert_eq!(before, after, "the target changed by reading it");
    assert!(
        !after
            .keys()
            .any(|k| k.ends_with("-wal") || k.ends_with("-shm") || k.ends_with("-journal")),
        "{after:?}"
    );

    // A damaged snapshot (half-synced, or not a database) is reported for its host only.
    let dir = f.target.join(".metasystem-hosts");
    let whole = std::fs::read(dir.join("host-c/metastore.db")).unwrap();
    std::fs::create_dir_all(dir.join("host-x")).unwrap();
    std::fs::write(dir.join("host-x/metastore.db"), &whole[..whole.len() / 2]).unwrap();
    std::fs::create_dir_all(dir.join("host-y")).unwrap();
    std::fs::write(
        dir.join("host-y/metastore.db"),
        b"not a database at all, no",
    )
    .unwrap();
    let v = hosts(a);
    let x = host(&v, "host-x");
    assert!(
        x["unreadable"].as_str().unwrap().contains("truncated"),
        "{x}"
    );
    let y = host(&v, "host-y");
    assert!(
        y["unreadable"]
            .as_str()
            .unwrap()
            .contains("not an SQLite database"),
        "{y}"
    );
    assert!(host(&v, "host-b")["unreadable"].is_null(), "{v}");
    let out = a.d.cli(&["hosts"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("host-x: unreadable"), "{}", out.stdout);
    assert!(
        out.stdout.contains("  unreadable: truncated"),
        "{}",
        out.stdout
    );
    std::fs::remove_dir_all(dir.join("host-x")).unwrap();
    std::fs::remove_dir_all(dir.join("host-y")).unwrap();

    // host-c stops: its snapshot (every 2 s) is stale once older than 4 s.
    f.hosts[2].d.terminate();
    let a = &f.hosts[0];
    let v = wait_hosts(a, "host-c never stale", |v| {
        host(v, "host-c")["stale"] == true
    });
    let hc = host(&v, "host-c");
    assert!(hc["age_s"].as_u64().unwrap() >= 4, "{hc}");
    let out = a.d.cli(&["hosts"]);
    assert!(out.stdout.contains("host-c: stale"), "{}", out.stdout);
    assert!(out.stdout.contains("STALE"), "{}", out.stdout);
    // host-b is not stale as long as it pushes (a run pushes one at most every 2 s).
    push(&f.hosts[1]);
    let v = hosts(a);
    assert_eq!(host(&v, "host-b")["stale"], false, "{v}");
}
