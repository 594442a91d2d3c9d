//! The sync attacked as a hostile (or merely unlucky) user would, with the real binary, on one
//! host and on several sharing a target: odd names, symlinks, a file and a folder swapping
//! places, modes, empty folders, case-only renames, excludes, a target swapped for a link
//! into the primary, markers and locks tampered with, clocks far ahead, full disks, a drive
//! unplugged mid-run, files edited during runs, bad input. A test marked `#[ignore = "BUG:
//! ..."]` shows a behaviour that loses data, skips a file silently, leaves hosts different,
//! lies, or hangs: it fails until the bug is fixed.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::sync_hosts::{
    assert_converged, bulk, changed, files, finish, fleet, fleet_with, names, rounds, set_mtime,
    spawn_sync, wait_lock_of,
};
use crate::util::{write_file, Mount, TestDaemon};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn mkdir(path: &Path) {
    std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn list(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|e| match e {
            Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(": "),
            other => other.as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

/// Odd but legal names (spaces, a newline, a tab, backslashes, quotes, glob characters, a
/// leading dash, a name of one space, unicode in NFC and NFD, the longest name a file system
/// takes) sync from one host to another, both ways, with edits and deletions.
#[test]
fn odd_names_sync_between_hosts() {
    let long = format!("{}.txt", "L".repeat(251));
    let odd: Vec<String> = vec![
        "with space.txt".into(),
        "new\nline.txt".into(),
        "tab\there.txt".into(),
        "back\\slash.txt".into(),
        "quote\"s 'and' `ticks`.txt".into(),
        "*?[glob]{a,b}.txt".into(),
        "-rf".into(),
        " ".into(),
        "trailing space ".into(),
        "naïve café ☕.txt".into(),
        "cafe\u{301} nfd.txt".into(),
        "日本語/ファイル.txt".into(),
        "emoji 👩‍👩‍👧.txt".into(),
        ".hidden".into(),
        long.clone(),
        format!("{}/{}", "D".repeat(200), "E".repeat(200)),
    ];
    let f = fleet(2, "", |i, shared| {
        if i == 0 {
            for (n, name) in odd_names(&odd) {
                let p = shared.join(name);
                if let Some(parent) = p.parent() {
                    mkdir(parent);
                }
                write_file(&p, format!("v0 of {n}"));
            }
        }
    });
    rounds(&f, 1);
    assert_converged(&f);
    assert_eq!(
        files(&f.shared()).len(),
        odd.len(),
        "{:?}",
        names(&files(&f.shared()))
    );
    let b = &f.hosts[1];
    // Edited on B, one deleted on B: back to A, the replaced and deleted ones backed up.
    for (n, name) in odd_names(&odd) {
        write_file(b.shared().join(name), format!("v1 of {n}, edited on B"));
    }
    std::fs::remove_file(b.shared().join(&long)).unwrap_or_else(|e| panic!("{e}"));
    rounds(&f, 2);
    assert_converged(&f);
    assert!(!f.shared().join(&long).exists());
    let kept = f.hosts[0].backups();
    let n = odd.iter().position(|n| *n == long).unwrap_or(0);
    assert!(
        kept.values()
            .any(|v| v.as_slice() == format!("v0 of {n}").as_bytes()),
        "A kept no backup of the long name: {:?}",
        names(&kept)
    );
    for h in &f.hosts {
        let r = h.sync(0);
        assert_eq!(changed(&r), 0, "{r:#}");
        assert_eq!(r["skipped"].as_array().map(Vec::len), Some(0), "{r:#}");
    }
}

fn odd_names(odd: &[String]) -> impl Iterator<Item = (usize, &str)> {
    odd.iter().map(String::as_str).enumerate()
}

/// A user's file named like this tool's temp files is neither synced nor deleted: reported on
/// every run, on every host.
#[test]
fn a_file_named_like_a_temp_is_reported_and_never_deleted() {
    let name = ".msync-0123456789abcdef-00000001.tmp";
    let f = fleet(2, "", |i, shared| {
        if i == 0 {
            write_file(shared.join(name), "mine, not a temp");
            write_file(shared.join("plain.txt"), "plain");
        }
    });
    for _ in 0..2 {
        for h in &f.hosts {
            let r = h.sync(0);
            let skipped = list(&r["skipped"]);
            if h.id == "host-a" {
                assert!(
                    skipped
                        .iter()
                        .any(|s| s.starts_with(&format!("shared/{name}: "))),
                    "{r:#}"
                );
            }
        }
    }
    assert_eq!(read(&f.hosts[0].shared().join(name)), "mine, not a temp");
    assert_eq!(read(&f.hosts[1].shared().join("plain.txt")), "plain");
}

/// Regression: a file whose name is not UTF-8 (Latin-1 from an old archive) was skipped in
/// silence. It syncs with its exact bytes, to the target and to another host, and the JSON
/// output writes its odd bytes as `\xNN`.
#[test]
fn a_name_that_is_not_utf8_syncs_with_its_exact_bytes() {
    let raw = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    let f = fleet(2, "", |i, shared| {
        if i == 0 {
            write_file(shared.join("ok.txt"), "ok");
            write_file(shared.join(raw), "latin-1 name");
        }
    });
    let a = &f.hosts[0];
    // (Each daemon's first run has synced what was there.) A second such name, new.
    let raw2 = std::ffi::OsStr::from_bytes(b"na\xefve.txt");
    write_file(a.shared().join(raw2), "another");
    let plan = a.sync_out(&["--json", "--dry-run"]).json();
    let planned: Vec<&str> = plan["reports"][0]["planned"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["path"].as_str())
        .collect();
    assert!(planned.contains(&"shared/na\\xefve.txt"), "{planned:?}");
    a.sync(0);
    assert_eq!(read(&f.shared().join(raw)), "latin-1 name");
    f.hosts[1].sync(0);
    assert_eq!(read(&f.hosts[1].shared().join(raw)), "latin-1 name");
    assert_eq!(read(&f.hosts[1].shared().join(raw2)), "another");
}

/// Names that merely end like SQLite's companions (`-journal`, `-wal`, `-shm`) with no
/// database beside them are a user's files: they sync.
#[test]
fn files_ending_like_sqlite_companions_without_a_database_sync() {
    let names = [
        "travel-journal",
        "fire-wal",
        "mesh-shm",
        "notes.txt-journal",
    ];
    let f = fleet(2, "", |i, shared| {
        if i == 0 {
            for n in names {
                write_file(shared.join(n), format!("user file {n}"));
            }
        }
    });
    rounds(&f, 1);
    let got = files(&f.hosts[1].shared());
    let missing: Vec<&str> = names
        .into_iter()
        .filter(|n| !got.contains_key(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "never reached host B (nor reported): {missing:?}"
    );
}

/// With a primary synced whole (no `paths`), the user's own top-level file or folder named
/// `hosts` (an Ansible inventory, say) is synced like any other: only the target's `hosts/`
/// holds snapshots.
#[test]
fn a_users_top_level_hosts_file_is_synced() {
    let f = fleet_with(
        2,
        |i, target| {
            let home = target.with_file_name(format!("home-{i}"));
            mkdir(&home);
            if i == 0 {
                write_file(home.join("hosts"), "[web]\nweb1.example.org\n");
                write_file(home.join("site.yml"), "- hosts: web\n");
            }
            format!(
                "[[root.children]]\nname = \"t\"\nkind = \"sync_target\"\ntarget = \"{}\"\n\
                 primary = \"{}\"\nevery = \"1h\"\nmin_interval = \"0s\"\n",
                target.display(),
                home.display()
            )
        },
        |_, _| {},
    );
    rounds(&f, 1);
    let home_b = f.target.with_file_name("home-1");
    assert_eq!(read(&home_b.join("site.yml")), "- hosts: web\n");
    assert!(
        home_b.join("hosts").is_file(),
        "the inventory `hosts` never reached host B: target has {:?}",
        names(&files(&f.target))
    );
}

/// Symlinks on either side are skipped and reported; nothing is read or written through
/// them, and nothing outside the two folders is touched.
#[test]
fn symlinks_are_skipped_and_nothing_is_read_or_written_through_them() {
    let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write_file(outside.path().join("secret.txt"), "outside secret");
    let out_path = outside.path().to_path_buf();
    let f = fleet(2, "", move |i, shared| {
        if i == 0 {
            write_file(shared.join("real.txt"), "real");
            mkdir(&shared.join("dir"));
            write_file(shared.join("dir/inner.txt"), "inner");
            std::os::unix::fs::symlink(out_path.join("secret.txt"), shared.join("link.txt"))
                .unwrap_or_else(|e| panic!("{e}"));
            std::os::unix::fs::symlink(&out_path, shared.join("linkdir"))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    });
    rounds(&f, 1);
    // The target's copy of a synced file and of a folder swapped for links out.
    let t = f.shared();
    std::fs::remove_file(t.join("real.txt")).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), t.join("real.txt"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_dir_all(t.join("dir")).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(outside.path(), t.join("dir")).unwrap_or_else(|e| panic!("{e}"));
    write_file(f.hosts[0].shared().join("dir/inner.txt"), "inner v2");
    for h in &f.hosts {
        let r = h.sync(0);
        let skipped = list(&r["skipped"]);
        assert!(
            skipped
                .iter()
                .any(|s| s.starts_with("shared/real.txt: a symlink")),
            "{}: {r:#}",
            h.id
        );
    }
    for h in &f.hosts {
        assert_ne!(
            read(&h.shared().join("real.txt")),
            "outside secret",
            "{}",
            h.id
        );
        assert!(!h.shared().join("link.txt").exists() || h.id == "host-a");
    }
    assert_eq!(read(&f.hosts[0].shared().join("real.txt")), "real");
    let outside_now = files(outside.path());
    assert_eq!(
        names(&outside_now),
        ["secret.txt"],
        "written outside through a link"
    );
}

/// The host's snapshot folder in the target (`hosts/HOST`) swapped for a link out of the
/// target (by another host's user, say): the snapshot is not written through it.
#[test]
fn a_snapshot_folder_linked_out_of_the_target_is_not_written_through() {
    let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let f = fleet(1, "", |_, shared| write_file(shared.join("a.txt"), "a"));
    let h = &f.hosts[0];
    h.sync(0);
    let dir = f.target.join(".metasystem-hosts/host-a");
    std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(outside.path(), &dir).unwrap_or_else(|e| panic!("{e}"));
    // Due again: a new identity's first snapshot is due at once; here, make it old.
    h.reconfigure(&crate::sync_hosts::target_tree(
        &f.target,
        "snapshot_every = \"1s\"",
    ));
    crate::sync_hosts::wait_first_run(h);
    std::thread::sleep(Duration::from_millis(1100));
    let out = h.sync_out(&["--json"]);
    let written = files(outside.path());
    assert!(
        written.is_empty(),
        "written outside the target: {:?} (exit {}): {}",
        names(&written),
        out.code,
        out.stdout
    );
}

/// A listed path (`paths = ["shared"]`) that is a symlink in the *target* (a cloud folder
/// others write to) leads out of the target: the run must not follow it, neither writing the
/// primary's files there nor reading what is missing there as deletions.
#[test]
fn a_listed_path_linked_out_of_the_target_is_not_followed() {
    let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let f = fleet(1, "", |_, shared| {
        write_file(shared.join("a.txt"), "a");
        others(shared);
    });
    let h = &f.hosts[0];
    h.sync(0);
    // The target's `shared` swapped for a link to a folder elsewhere that holds the same
    // files but a.txt.
    std::fs::remove_dir_all(f.shared()).unwrap_or_else(|e| panic!("{e}"));
    others(outside.path());
    std::os::unix::fs::symlink(outside.path(), f.shared()).unwrap_or_else(|e| panic!("{e}"));
    write_file(h.shared().join("b.txt"), "b");
    let out = h.sync_out(&["--json"]);
    let written: Vec<String> = files(outside.path())
        .into_keys()
        .filter(|k| !k.starts_with("other-"))
        .collect();
    let mut wrong = Vec::new();
    if !written.is_empty() {
        wrong.push(format!("written outside the target: {written:?}"));
    }
    if !h.shared().join("a.txt").exists() {
        wrong.push("a.txt deleted from the primary (missing out there)".to_string());
    }
    assert!(
        wrong.is_empty(),
        "{wrong:?} (exit {}): {}",
        out.code,
        out.stdout
    );
}

/// Files beside the one a test works on, so that its deletion stays under `max_delete`.
fn others(shared: &Path) {
    for i in 0..4 {
        write_file(shared.join(format!("other-{i}.txt")), format!("other {i}"));
    }
}

/// A synced file replaced by a folder of the same name on one host (and the other way
/// round on another path): every host ends with the folder (or the file), nothing is lost,
/// and the runs succeed within two rounds.
#[test]
fn a_file_replaced_by_a_folder_converges() {
    let f = fleet(2, "", |i, shared| {
        if i == 0 {
            write_file(shared.join("x"), "x was a file");
            others(shared);
        }
    });
    rounds(&f, 1);
    let a = &f.hosts[0];
    std::fs::remove_file(a.shared().join("x")).unwrap_or_else(|e| panic!("{e}"));
    mkdir(&a.shared().join("x"));
    write_file(a.shared().join("x/inside.txt"), "now a folder");
    let mut codes = Vec::new();
    for _ in 0..2 {
        for h in &f.hosts {
            codes.push(h.sync_out(&["--json"]).code);
        }
    }
    assert_converged(&f);
    assert_eq!(read(&f.shared().join("x/inside.txt")), "now a folder");
    assert!(
        f.hosts[1].backups().values().any(|v| v == b"x was a file"),
        "B kept no backup of the file x"
    );
    // Settled now.
    for h in &f.hosts {
        let r = h.sync(0);
        assert_eq!(changed(&r), 0, "{r:#}");
    }
    eprintln!("exit codes of the two rounds: {codes:?}");
}

#[test]
fn a_folder_replaced_by_a_file_converges() {
    let f = fleet(2, "", |i, shared| {
        if i == 0 {
            mkdir(&shared.join("y"));
            write_file(shared.join("y/inner.txt"), "inside y");
            others(shared);
        }
    });
    rounds(&f, 1);
    let a = &f.hosts[0];
    std::fs::remove_dir_all(a.shared().join("y")).unwrap_or_else(|e| panic!("{e}"));
    write_file(a.shared().join("y"), "y is a file now");
    let mut reports = Vec::new();
    for _ in 0..3 {
        for h in &f.hosts {
            let out = h.sync_out(&["--json"]);
            reports.push(format!("{} exit {}: {}", h.id, out.code, out.stdout));
        }
    }
    assert!(
        f.shared().join("y").is_file() && f.hosts[1].shared().join("y").is_file(),
        "y never became a file on the target / host B after 3 rounds:\n{}",
        reports.join("\n")
    );
    assert_converged(&f);
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A private file (0600) stays private on the target and the other hosts, an executable
/// stays executable, and a chmod-only change reaches the other hosts.
#[test]
fn modes_are_kept_and_chmod_only_changes_sync() {
    let f = fleet(2, "", |i, shared| {
        if i == 0 {
            write_file(shared.join("id_key"), "private key");
            crate::util::chmod(shared.join("id_key"), 0o600);
            write_file(shared.join("run.sh"), "#!/bin/sh\necho hi\n");
            crate::util::chmod(shared.join("run.sh"), 0o755);
            write_file(shared.join("later.sh"), "#!/bin/sh\n");
            crate::util::chmod(shared.join("later.sh"), 0o644);
        }
    });
    rounds(&f, 1);
    let mut wrong = Vec::new();
    for (what, root) in [("target", f.shared()), ("host-b", f.hosts[1].shared())] {
        for (name, want) in [("id_key", 0o600), ("run.sh", 0o755)] {
            let got = mode(&root.join(name));
            if got != want {
                wrong.push(format!("{what}: {name} is {got:o}, not {want:o}"));
            }
        }
    }
    crate::util::chmod(f.hosts[0].shared().join("later.sh"), 0o755);
    rounds(&f, 2);
    let got = mode(&f.hosts[1].shared().join("later.sh"));
    if got != 0o755 {
        wrong.push(format!(
            "host-b: chmod +x of later.sh never arrived: {got:o}"
        ));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Empty folders: one made on a host reaches the others, and a folder whose files were all
/// deleted on one host does not stay behind on the others.
#[test]
fn empty_folders_sync_and_removed_folders_go() {
    let f = fleet(2, "", |i, shared| {
        if i == 0 {
            mkdir(&shared.join("old/sub"));
            write_file(shared.join("old/sub/f.txt"), "f");
            others(shared);
        }
    });
    rounds(&f, 1);
    let a = &f.hosts[0];
    mkdir(&a.shared().join("inbox/empty"));
    std::fs::remove_dir_all(a.shared().join("old")).unwrap_or_else(|e| panic!("{e}"));
    rounds(&f, 2);
    let b = f.hosts[1].shared();
    let mut wrong = Vec::new();
    if !b.join("inbox/empty").is_dir() {
        wrong.push("the new empty folder inbox/empty is not on host B".to_string());
    }
    if b.join("old").exists() {
        wrong.push("the removed folder old/ is still on host B (empty)".to_string());
    }
    if f.shared().join("old").exists() {
        wrong.push("the removed folder old/ is still on the target (empty)".to_string());
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// A case-only rename on one host (Linux: two different names) reaches the other hosts.
#[test]
fn a_case_only_rename_on_one_host_converges() {
    let f = fleet(2, "", |i, shared| {
        if i == 0 {
            write_file(shared.join("Notes.txt"), "notes");
        }
    });
    rounds(&f, 1);
    let a = &f.hosts[0];
    std::fs::rename(a.shared().join("Notes.txt"), a.shared().join("notes.txt"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    for _ in 0..2 {
        for h in &f.hosts {
            let out = h.sync_out(&["--json"]);
            seen.push(format!(
                "{} exit {}: collisions {}",
                h.id,
                out.code,
                out.json()["reports"][0]["collisions"]
            ));
        }
    }
    let b = files(&f.hosts[1].shared());
    assert_eq!(
        names(&b),
        ["notes.txt"],
        "host B after two rounds:\n{}",
        seen.join("\n")
    );
    assert_converged(&f);
}

/// An exclude added on one host (files it synced before) and taken away again deletes
/// nothing anywhere; an excluded file is never sent.
#[test]
fn an_exclude_added_and_removed_deletes_nothing() {
    let f = fleet(2, "", |i, shared| {
        if i == 0 {
            write_file(shared.join("keep.txt"), "keep");
            write_file(shared.join("app.log"), "log v0");
            mkdir(&shared.join("cache"));
            write_file(shared.join("cache/blob"), "cache v0");
        }
    });
    rounds(&f, 1);
    assert_converged(&f);
    // Host A now excludes logs and caches.
    let a_tree = crate::sync_hosts::target_tree(&f.target, "exclude = [\"*.log\", \"cache/\"]");
    f.hosts[0].reconfigure(&a_tree);
    crate::sync_hosts::wait_first_run(&f.hosts[0]);
    write_file(f.hosts[0].shared().join("new.log"), "never sent");
    write_file(f.hosts[1].shared().join("app.log"), "log v1 from B");
    rounds(&f, 2);
    for h in &f.hosts {
        assert!(h.shared().join("cache/blob").is_file(), "{}", h.id);
        assert!(h.shared().join("keep.txt").is_file(), "{}", h.id);
    }
    assert!(
        !f.shared().join("new.log").exists(),
        "an excluded file was sent"
    );
    assert_eq!(read(&f.shared().join("app.log")), "log v1 from B");
    assert_eq!(
        read(&f.hosts[0].shared().join("app.log")),
        "log v0",
        "excluded: left alone"
    );
    // The exclude taken away: A's log meets B's version: decided as a conflict, nothing lost.
    f.hosts[0].reconfigure(&crate::sync_hosts::target_tree(&f.target, ""));
    crate::sync_hosts::wait_first_run(&f.hosts[0]);
    rounds(&f, 2);
    assert_converged(&f);
    assert_eq!(read(&f.shared().join("new.log")), "never sent");
    let all: Vec<Vec<u8>> = f
        .hosts
        .iter()
        .flat_map(|h| h.backups().into_values())
        .chain(files(&f.shared()).into_values())
        .collect();
    assert!(
        all.iter().any(|v| v == b"log v0"),
        "A's app.log v0 was lost"
    );
}

/// The target swapped (after a first sync) for a link into the primary: refused at run time,
/// nothing copied or deleted.
#[test]
fn a_target_swapped_for_a_link_into_the_primary_is_refused() {
    let f = fleet(1, "", |_, shared| {
        write_file(shared.join("a.txt"), "a");
        mkdir(&shared.join("inner"));
    });
    let h = &f.hosts[0];
    h.sync(0);
    let moved = f.target.with_file_name("cloud-away");
    std::fs::rename(&f.target, &moved).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(h.shared().join("inner"), &f.target)
        .unwrap_or_else(|e| panic!("{e}"));
    let out = h.sync_out(&["--json"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("refused"), "{}", out.stdout);
    let want: BTreeMap<String, Vec<u8>> = [("a.txt".to_string(), b"a".to_vec())].into();
    assert_eq!(files(&h.shared()), want, "the primary changed");
}

/// A marker deleted from the shared target: every host refuses (exit 1), nothing changes.
/// A marker replaced by one with another nonce (a restored drive): a first sync, a union that
/// deletes nothing on any host.
#[test]
fn a_deleted_marker_is_refused_and_a_replaced_one_deletes_nothing() {
    let f = fleet(2, "", |i, shared| {
        if i == 0 {
            for n in ["a.txt", "b.txt", "c.txt"] {
                write_file(shared.join(n), n);
            }
        }
    });
    rounds(&f, 1);
    let marker = f.target.join(".metasystem-sync");
    let text = read(&marker);
    std::fs::remove_file(&marker).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(f.shared().join("a.txt")).unwrap_or_else(|e| panic!("{e}"));
    for h in &f.hosts {
        let out = h.sync_out(&["--json"]);
        assert_eq!(out.code, 1, "{}: {}", h.id, out.stdout);
        assert_eq!(out.json()["reports"][0]["refusal"], "marker_missing");
        assert!(h.shared().join("a.txt").is_file(), "{}: deleted", h.id);
    }
    // Another nonce, with no history naming what the hosts saw last (another folder's marker,
    // an image of another lineage): a union; a.txt (gone from the target) comes back, nothing
    // is deleted. (A marker whose history names a host's last nonce descends from what that
    // host saw: its changes, deletions too, are the target's.)
    let other: String = text
        .lines()
        .filter(|l| !l.starts_with("history:"))
        .map(|l| format!("{}\n", l.replace("nonce: ", "nonce: f")))
        .collect();
    write_file(&marker, other);
    std::fs::remove_file(f.hosts[1].shared().join("b.txt")).unwrap_or_else(|e| panic!("{e}"));
    for h in &f.hosts {
        let r = h.sync(0);
        assert_eq!(r["first_sync"], true, "{r:#}");
        assert_eq!(r["deleted_local"], 0, "{r:#}");
        assert_eq!(r["deleted_remote"], 0, "{r:#}");
    }
    rounds(&f, 1);
    assert_converged(&f);
    assert_eq!(names(&files(&f.shared())), ["a.txt", "b.txt", "c.txt"]);
}

/// Makes a FIFO at `path`.
fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mkfifo {}", path.display());
}

/// `name` in the target replaced by a FIFO (a file that never answers a read) after a first
/// sync; a forced run is tried: what went wrong, if anything (did not answer in 15 s, exit 0),
/// and whether the daemon then stops on SIGTERM within 15 s.
fn fifo_in_the_target(name: &str) -> Vec<String> {
    let mut f = fleet(1, "", |_, shared| write_file(shared.join("a.txt"), "a"));
    f.hosts[0].sync(0);
    let path = f.target.join(name);
    let _ = std::fs::remove_file(&path);
    mkfifo(&path);
    let mut problems = Vec::new();
    let run = spawn_sync(&f.hosts[0], &["--json"]);
    match finish(run, Duration::from_secs(15)) {
        None => problems.push(format!("{name} as a FIFO: `sync t` did not answer in 15 s")),
        Some(out) if out.code == 0 => {
            problems.push(format!("{name} as a FIFO: exit 0: {}", out.stdout))
        }
        Some(_) => {}
    }
    if !problems.is_empty() {
        let s = f.hosts[0].d.json(&["sync", "status"], 0);
        problems.push(format!(
            "sync status meanwhile: running {}",
            s["targets"][0]["running"]
        ));
        f.hosts[0].d.signal(rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        let stopped = loop {
            let pid = rustix::process::Pid::from_raw(f.hosts[0].d.pid());
            let gone = pid.is_none_or(|p| {
                rustix::process::test_kill_process(p).is_err()
                    || std::fs::read_to_string(format!("/proc/{}/stat", f.hosts[0].d.pid()))
                        .is_ok_and(|s| s.contains(") Z"))
            });
            if gone || Instant::now() > deadline {
                break gone;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if !stopped {
            problems.push("SIGTERM during that run: the daemon did not stop in 15 s".into());
        }
    }
    // Unblock whatever still waits on it (the daemon is killed when the test ends).
    let _ = rustix::fs::open(
        &path,
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::NONBLOCK,
        rustix::fs::Mode::empty(),
    );
    let _ = &mut f;
    problems
}

/// A marker replaced by a FIFO does not hang the target: the run fails promptly saying the
/// marker is not a file, and the daemon still stops when told.
#[test]
fn a_marker_that_is_a_fifo_does_not_hang_the_target() {
    let problems = fifo_in_the_target(".metasystem-sync");
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The same with the lock file.
#[test]
fn a_lock_that_is_a_fifo_does_not_hang_the_target() {
    let problems = fifo_in_the_target(".metasystem-sync.lock");
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A lock "file" that is a folder (made by hand, by a sync client's conflict handling): no
/// run can ever take it, so a run fails saying so (exit 1, an alert), rather than being
/// skipped as if another run held it (75: "try later") forever.
#[test]
fn a_lock_that_is_a_folder_fails_the_run() {
    let f = fleet(1, "", |_, shared| write_file(shared.join("a.txt"), "a"));
    let lock = f.target.join(".metasystem-sync.lock");
    mkdir(&lock);
    set_mtime_dir(&lock, 600);
    let out = f.hosts[0].sync_out(&["--timeout", "1s"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
}

/// Sets a folder's modification time `ago_secs` in the past.
fn set_mtime_dir(path: &Path, ago_secs: u64) {
    let t = std::time::SystemTime::now() - Duration::from_secs(ago_secs);
    let ok = Command::new("touch")
        .arg("-d")
        .arg(format!(
            "@{}",
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        ))
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "touch {}", path.display());
}

/// Files whose modification times are far in the future (a clock far ahead) move nothing
/// when their contents did not change: a real edit elsewhere wins.
#[test]
fn future_mtimes_do_not_move_unchanged_files() {
    const FUTURE: u64 = 4_102_444_800; // 2100
    let f = fleet(2, "", |i, shared| {
        if i == 0 {
            write_file(shared.join("f.txt"), "v0");
        }
    });
    rounds(&f, 1);
    let [a, b] = [&f.hosts[0], &f.hosts[1]];
    set_mtime(&b.shared().join("f.txt"), FUTURE); // touched only, clock far ahead
    write_file(a.shared().join("f.txt"), "edited on A now");
    rounds(&f, 2);
    assert_converged(&f);
    assert_eq!(read(&f.shared().join("f.txt")), "edited on A now");
    // And far in the past (1950): copied with its time.
    write_file(b.shared().join("old.txt"), "from 1950");
    set_mtime_signed(&b.shared().join("old.txt"), -631_152_000);
    rounds(&f, 2);
    assert_converged(&f);
    let t = std::fs::metadata(f.hosts[0].shared().join("old.txt"))
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        t,
        std::time::UNIX_EPOCH - Duration::from_secs(631_152_000),
        "the time of a file from before 1970 was not kept"
    );
}

/// Sets a file's modification time to `secs` seconds from the epoch (negative: before).
fn set_mtime_signed(path: &Path, secs: i64) {
    let t = if secs >= 0 {
        std::time::UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        std::time::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    };
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(t))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// A host's snapshot in the target given a modification time far in the future (a clock
/// ahead, a cloud client, a hostile user): the snapshot is still refreshed every
/// `snapshot_every`, not "fresh enough" until that time.
#[test]
fn a_snapshot_with_a_future_mtime_is_still_refreshed() {
    const FUTURE: u64 = 4_102_444_800; // 2100
    let f = fleet(1, "snapshot_every = \"1s\"", |_, shared| {
        write_file(shared.join("a.txt"), "a");
    });
    let h = &f.hosts[0];
    let r = h.sync(0);
    let snap = f.target.join(".metasystem-hosts/host-a/metastore.db");
    assert!(snap.is_file(), "{r:#}");
    // Untouched, it is refreshed after `snapshot_every`.
    std::thread::sleep(Duration::from_millis(1500));
    let r = h.sync(0);
    assert!(list(&r["snapshots"]).join("; ").contains("pushed"), "{r:#}");
    set_mtime(&snap, FUTURE);
    std::thread::sleep(Duration::from_millis(1500));
    let r = h.sync(0);
    let said = list(&r["snapshots"]).join("; ");
    assert!(
        said.contains("pushed"),
        "the snapshot was not refreshed: {said}"
    );
}

/// A lock another host left with a refresh time far in the future (its clock was ahead, and
/// it died): it must not lock every host out until that time.
#[test]
fn a_lock_refreshed_in_the_future_is_not_fresh_forever() {
    let f = fleet(1, "", |_, shared| write_file(shared.join("a.txt"), "a"));
    let lock = f.target.join(".metasystem-sync.lock");
    let year_ms = 365 * 24 * 3600 * 1000u128;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    write_file(
        &lock,
        format!("skewed-aaaaaaaaaaaa 4242 {} 5eed\n", now_ms + year_ms),
    );
    set_mtime(&lock, ((now_ms + year_ms) / 1000) as u64);
    let out = f.hosts[0].sync_out(&["--timeout", "1s"]);
    // Today it is "last refreshed 1s ago": the lock looks fresh, forever (until next year).
    assert!(
        out.code == 0 || out.stdout.contains("future"),
        "a lock refreshed a year from now is judged fresh: {}",
        out.stdout
    );
}

/// A full target (a small tmpfs): a file that does not fit fails, named, with nothing
/// replaced and no temp left; the rest syncs; a target too full for the lock fails the run
/// (exit 1, not 0 or 75); once there is room everything converges, on both hosts.
#[test]
fn a_full_target_fails_what_does_not_fit_and_loses_nothing() {
    let remote = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let disk = remote.path().join("disk");
    let Some(_mount) = Mount::tmpfs(&disk, "2m") else {
        crate::util::skipped("cannot mount a tmpfs here");
        return;
    };
    let target = disk.join("cloud");
    mkdir(&target);
    let f = fleet_with(
        2,
        |_, _| crate::sync_hosts::target_tree(&target, ""),
        |i, shared| {
            if i == 0 {
                write_file(shared.join("small.txt"), "small");
            }
        },
    );
    rounds(&f, 1);
    let [a, b] = [&f.hosts[0], &f.hosts[1]];
    write_file(a.shared().join("big.bin"), vec![7u8; 3 << 20]);
    write_file(a.shared().join("small2.txt"), "small 2");
    write_file(a.shared().join("small.txt"), "small, edited");
    let out = a.sync_out(&["--json"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    let r = &out.json()["reports"][0];
    let errors = list(&r["errors"]);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("shared/big.bin: ") && e.contains("no space")),
        "{r:#}"
    );
    assert_eq!(read(&target.join("shared/small2.txt")), "small 2");
    assert_eq!(read(&target.join("shared/small.txt")), "small, edited");
    assert!(!target.join("shared/big.bin").exists());
    let temps: Vec<String> = files(&target)
        .into_keys()
        .filter(|k| metasystem_actors::sync::temps::is_temp(k.rsplit('/').next().unwrap_or(k)))
        .collect();
    assert!(temps.is_empty(), "{temps:?}");
    assert_eq!(b.sync(0)["outcome"], "success");
    // Full to the last byte: no lock can be written.
    let filler = crate::util::fill(&disk);
    write_file(a.shared().join("small3.txt"), "small 3");
    let out = a.sync_out(&["--json"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(a.shared().join("small3.txt").is_file());
    // Room again.
    std::fs::remove_file(&filler).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(a.shared().join("big.bin")).unwrap_or_else(|e| panic!("{e}"));
    rounds(&f, 2);
    let want = files(&target.join("shared"));
    for h in &f.hosts {
        assert_eq!(files(&h.shared()), want, "{}", h.id);
    }
    assert_eq!(names(&want), ["small.txt", "small2.txt", "small3.txt"]);
}

/// A full primary (a small tmpfs): a pull that does not fit fails, named; the file it would
/// have replaced is intact and no temp is left; once there is room it arrives.
#[test]
fn a_full_primary_fails_the_pull_and_keeps_the_old_file() {
    let remote = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let disk = remote.path().join("disk");
    let Some(_mount) = Mount::tmpfs(&disk, "4m") else {
        crate::util::skipped("cannot mount a tmpfs here");
        return;
    };
    let homes = [disk.join("home-a"), remote.path().join("home-b")];
    for h in &homes {
        mkdir(h);
    }
    write_file(homes[0].join("f.bin"), "old f");
    let f = fleet_with(
        2,
        |i, target| {
            format!(
                "[[root.children]]\nname = \"t\"\nkind = \"sync_target\"\ntarget = \"{}\"\n\
                 primary = \"{}\"\nevery = \"1h\"\nmin_interval = \"0s\"\n",
                target.display(),
                homes[i].display()
            )
        },
        |_, _| {},
    );
    rounds(&f, 1);
    let filler = disk.join("filler");
    write_file(&filler, vec![0u8; 2 << 20]);
    write_file(homes[1].join("f.bin"), vec![9u8; 3 << 20]);
    assert_eq!(f.hosts[1].sync(0)["copied_to_remote"], 1);
    let out = f.hosts[0].sync_out(&["--json"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("no space"), "{}", out.stdout);
    assert_eq!(read(&homes[0].join("f.bin")), "old f");
    assert_eq!(
        names(&files(&homes[0])),
        ["f.bin"],
        "temps left in the primary"
    );
    std::fs::remove_file(&filler).unwrap_or_else(|e| panic!("{e}"));
    let r = f.hosts[0].sync(0);
    assert_eq!(r["copied_to_local"], 1, "{r:#}");
    assert_eq!(
        std::fs::read(homes[0].join("f.bin")).ok(),
        Some(vec![9u8; 3 << 20])
    );
    assert!(
        f.hosts[0].backups().values().any(|v| v == b"old f"),
        "the replaced file was not backed up"
    );
}

/// A bind mount standing for an external drive.
struct Bind(PathBuf);

impl Bind {
    fn new(from: &Path, at: &Path) -> Option<Bind> {
        mkdir(at);
        let ok = Command::new("mount")
            .arg("--bind")
            .arg(from)
            .arg(at)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| Bind(at.to_path_buf()))
    }

    /// `umount -l`: the drive pulled out.
    fn pull(&self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        self.pull();
    }
}

/// The drive unplugged (lazily unmounted) in the middle of a run, the target being the
/// drive's mountpoint itself: the run stops, is not a success, records nothing, deletes
/// nothing; another host meanwhile deletes nothing either; with the drive back, both hosts
/// converge with every file. (What the run wrote to the bare mountpoint after the drive left
/// is printed.)
#[test]
fn a_drive_unplugged_mid_run_stops_the_run_and_loses_nothing() {
    let remote = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let drive = remote.path().join("drive");
    let mnt = remote.path().join("mnt");
    mkdir(&drive);
    let Some(bind) = Bind::new(&drive, &mnt) else {
        crate::util::skipped("cannot bind-mount here");
        return;
    };
    let target = mnt.clone();
    let f = fleet_with(
        2,
        |_, _| crate::sync_hosts::target_tree(&target, ""),
        |_, _| {},
    );
    rounds(&f, 1);
    let a = &f.hosts[0];
    bulk(&a.shared().join("bulk"), "a", 800, 64 << 10);
    let running = spawn_sync(a, &["--json"]);
    wait_lock_of(&target, "host-a", Duration::from_secs(20))
        .unwrap_or_else(|| panic!("A's run never held the lock"));
    std::thread::sleep(Duration::from_millis(50));
    bind.pull();
    let out = finish(running, Duration::from_secs(60)).unwrap_or_else(|| panic!("A's run hung"));
    assert_ne!(
        out.code, 0,
        "a run that lost its drive exits 0: {}",
        out.stdout
    );
    eprintln!(
        "A's run: exit {}: {}",
        out.code,
        out.stdout.lines().next().unwrap_or("")
    );
    assert_eq!(
        files(&a.shared().join("bulk")).len(),
        800,
        "lost in the primary"
    );
    // B while the drive is away: not a success, nothing deleted.
    let out_b = f.hosts[1].sync_out(&["--json"]);
    assert!(
        matches!(out_b.code, 1 | 75),
        "{}\n{}",
        out_b.stdout,
        out_b.stderr
    );
    assert!(f.hosts[1].shared().is_dir());
    let on_bare = files(&mnt);
    eprintln!(
        "written to the bare mountpoint after the drive left: {} file(s), e.g. {:?}",
        on_bare.len(),
        on_bare.keys().take(3).collect::<Vec<_>>()
    );
    // Back: the bare mountpoint cleared, the drive mounted again.
    std::fs::remove_dir_all(&mnt).unwrap_or_else(|e| panic!("{e}"));
    let Some(_back) = Bind::new(&drive, &mnt) else {
        panic!("cannot mount the drive again");
    };
    rounds(&f, 2);
    let want = files(&target.join("shared"));
    for h in &f.hosts {
        assert_eq!(files(&h.shared()), want, "{}", h.id);
    }
    assert_eq!(files(&target.join("shared/bulk")).len(), 800);
}

/// As above, what the run does once the drive is gone: it writes nothing to the bare
/// mountpoint (the local disk under it: the daemon's snapshot included) and says the target
/// went away, rather than "N file(s) failed: No such file or directory".
#[test]
fn a_drive_unplugged_mid_run_gets_nothing_written_to_its_mountpoint() {
    let remote = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let drive = remote.path().join("drive");
    let mnt = remote.path().join("mnt");
    mkdir(&drive);
    let Some(bind) = Bind::new(&drive, &mnt) else {
        crate::util::skipped("cannot bind-mount here");
        return;
    };
    let target = mnt.clone();
    let f = fleet_with(
        1,
        |_, _| crate::sync_hosts::target_tree(&target, "snapshot_every = \"1s\""),
        |_, _| {},
    );
    rounds(&f, 1);
    let a = &f.hosts[0];
    bulk(&a.shared().join("bulk"), "a", 800, 64 << 10);
    std::thread::sleep(Duration::from_millis(1100)); // the snapshot due again
    let running = spawn_sync(a, &["--json"]);
    wait_lock_of(&target, "host-a", Duration::from_secs(20))
        .unwrap_or_else(|| panic!("A's run never held the lock"));
    std::thread::sleep(Duration::from_millis(50));
    bind.pull();
    let out = finish(running, Duration::from_secs(60)).unwrap_or_else(|| panic!("A's run hung"));
    let on_bare = files(&mnt);
    let v = out.json();
    let reason = v["reports"][0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut wrong = Vec::new();
    if !on_bare.is_empty() {
        wrong.push(format!(
            "written to the bare mountpoint: {:?}",
            names(&on_bare)
        ));
    }
    if !reason.contains("changed during the run") && !reason.contains("offline") {
        wrong.push(format!(
            "the reason does not say the drive went away: {reason}"
        ));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// A file rewritten over and over during runs: every version the target gets is one that was
/// written whole (or the empty file between a truncate and its write), never half of one;
/// once the writes stop, the next run takes the last one.
#[test]
fn a_file_edited_during_runs_is_never_torn() {
    const SIZE: usize = 256 << 10;
    let f = fleet(1, "", |_, shared| {
        bulk(&shared.join("bulk"), "b", 200, 16 << 10);
        write_file(shared.join("hot.dat"), version(0, SIZE));
    });
    let h = &f.hosts[0];
    let hot = h.shared().join("hot.dat");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (hot, stop) = (hot.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 1;
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                crate::sync_hosts::overwrite(&hot, &version(n, SIZE));
                n += 1;
            }
            n - 1
        })
    };
    for i in 0..6 {
        write_file(
            h.shared().join(format!("bulk/b-{i:04}.dat")),
            format!("round {i}"),
        );
        let out = h.sync_out(&["--json"]);
        assert!(matches!(out.code, 0 | 3), "{}", out.stdout);
        if let Ok(bytes) = std::fs::read(f.shared().join("hot.dat")) {
            assert!(
                whole(&bytes, SIZE),
                "torn: {} bytes, starts {:?}",
                bytes.len(),
                &bytes[..bytes.len().min(20)]
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let last = writer.join().unwrap_or_else(|_| panic!("writer"));
    let r = h.sync(0);
    assert_eq!(r["outcome"], "success", "{r:#}");
    assert_eq!(
        std::fs::read(f.shared().join("hot.dat")).ok(),
        Some(version(last, SIZE))
    );
}

fn version(n: usize, size: usize) -> Vec<u8> {
    format!("version {n:08}\n")
        .bytes()
        .cycle()
        .take(size)
        .collect()
}

fn whole(bytes: &[u8], size: usize) -> bool {
    if bytes.is_empty() {
        return true;
    }
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(17)]).into_owned();
    let n = head
        .strip_prefix("version ")
        .and_then(|s| s.get(..8))
        .and_then(|s| s.parse::<usize>().ok());
    n.is_some_and(|n| bytes == version(n, size).as_slice())
}

/// The binary with `args` and `env`, killed if it has not exited within `limit`.
fn run_bounded(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Option<crate::util::Out> {
    let mut cmd = Command::new(crate::util::BIN);
    cmd.args(args)
        .env_remove("METASYSTEM_SOCKET")
        .env_remove("METASYSTEM_CONFIG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    finish(
        crate::util::Reaped(cmd.spawn().unwrap_or_else(|e| panic!("{e}"))),
        limit,
    )
}

/// Bad host identities are refused with a clear error naming them, by `check` and `run`
/// (never a folder named `..` or with a `/` in a shared target); bad `sync` arguments are
/// usage errors.
#[test]
fn bad_host_ids_and_sync_arguments_are_refused() {
    let remote = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let tree = crate::sync_hosts::target_tree(&remote.path().join("cloud"), "");
    let long = "x".repeat(101);
    for bad in ["../evil", "a/b", "has space", "-dash", ".", long.as_str()] {
        let d = TestDaemon::prepare(&format!("host_id = {bad:?}"), &tree);
        let config = d.config.display().to_string();
        let out = d.cli(&["check", "--config", &config]);
        assert_eq!(out.code, 1, "{bad}: {}", out.stderr);
        assert!(out.stderr.contains("host_id"), "{bad}: {}", out.stderr);
        let out = run_bounded(
            &["run", "--config", &config],
            &[("METASYSTEM_HOST_ID", "")],
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| panic!("{bad}: `run` started with a bad host_id"));
        assert_eq!(out.code, 2, "{bad}: {}", out.stderr);
        let good = TestDaemon::prepare("", &tree);
        let config = good.config.display().to_string();
        let out = run_bounded(
            &["run", "--config", &config],
            &[("METASYSTEM_HOST_ID", bad)],
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| panic!("{bad}: `run` started with a bad METASYSTEM_HOST_ID"));
        assert_eq!(out.code, 2, "{bad}: {}\n{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("METASYSTEM_HOST_ID"),
            "{bad}: {}",
            out.stderr
        );
    }
    assert!(!remote.path().join("evil").exists());
    let f = fleet(1, "", |_, shared| write_file(shared.join("a.txt"), "a"));
    let h = &f.hosts[0];
    for args in [
        vec!["--strategy", "bogus"],
        vec!["--push", "--pull"],
        vec!["--strategy", ""],
    ] {
        let out = h.sync_out(&args);
        assert_eq!(out.code, 2, "{args:?}: {}\n{}", out.stdout, out.stderr);
    }
    let out = h.d.cli(&[
        "conflicts",
        "resolve",
        "../../etc/passwd",
        "--keep",
        "remote",
    ]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert_eq!(read(&h.shared().join("a.txt")), "a");
}

/// A conflict on a file whose name is as long as a file system takes, under `manual`: both
/// versions are kept (the copy's name shortened to fit), not a failure on every run.
#[test]
fn a_conflict_on_a_long_name_is_kept() {
    let long = format!("{}.txt", "n".repeat(240));
    let f = fleet(2, "strategy = \"manual\"", |i, shared| {
        if i == 0 {
            write_file(shared.join(&long), "v0");
        }
    });
    let l2 = long.clone();
    rounds(&f, 1);
    write_file(f.hosts[0].shared().join(&l2), "edited on A");
    write_file(f.hosts[1].shared().join(&l2), "edited on B!");
    f.hosts[0].sync(0);
    let out = f.hosts[1].sync_out(&["--json"]);
    let v = out.json();
    let r = &v["reports"][0];
    assert_eq!(out.code, 3, "a kept conflict is exit 3: {r:#}");
    assert_eq!(r["conflicts"].as_array().map(Vec::len), Some(1), "{r:#}");
    let b = files(&f.hosts[1].shared());
    assert!(
        b.values().any(|v| v == b"edited on A") && b.values().any(|v| v == b"edited on B!"),
        "{:?}",
        names(&b)
    );
}
