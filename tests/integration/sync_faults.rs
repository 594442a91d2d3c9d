//! Unreadable files and folders on the real daemon: the run says which file and why, the rest
//! still syncs, nothing unreadable is read as deleted on the other side, its base is kept, and
//! once it is readable again the next run takes its change with no conflict.
//!
//! As root the daemon would read through `chmod 000`, so it runs under `setpriv` without
//! CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (bounding and inheritable sets): root then obeys
//! permission bits, as a user does. Not root: the bits apply as they are.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::util::{chmod, write_file, TestDaemon};

/// What to run the daemon under so that `chmod 000` keeps it out; `None` (with why) where
/// that cannot be arranged here.
fn without_dac_override(probe: &Path) -> Result<Vec<&'static str>, String> {
    if !rustix::process::geteuid().is_root() {
        return Ok(Vec::new());
    }
    let wrapper = vec![
        "setpriv",
        "--inh-caps=-dac_override,-dac_read_search",
        "--bounding-set=-dac_override,-dac_read_search",
    ];
    // It must exist, and really keep a process out of a mode-000 file.
    write_file(probe, "x");
    chmod(probe, 0o000);
    let out = Command::new(wrapper[0])
        .args(&wrapper[1..])
        .arg("cat")
        .arg(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match out {
        Ok(s) if !s.success() => Ok(wrapper),
        Ok(_) => Err("setpriv did not drop the capability to read any file".into()),
        Err(e) => Err(format!("no setpriv here: {e}")),
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn report(v: &Value) -> &Value {
    &v["reports"][0]
}

fn paths(list: &Value) -> Vec<String> {
    let mut out: Vec<String> = list
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e[0].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn unreadable_files_and_folders_are_reported_never_deleted_and_synced_once_readable() {
    let remote = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let wrapper = match without_dac_override(&remote.path().join("probe")) {
        Ok(w) => w,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let target = remote.path().join("target");
    std::fs::create_dir(&target).unwrap_or_else(|e| panic!("{e}"));
    let mut d = TestDaemon::prepare(
        "",
        &format!(
            "[root]\n[[root.children]]\nname = \"breakers\"\nkind = \"breakers\"\n\
             breakers.tb = {{ failure_threshold = 1, success_threshold = 1, open_for = \"1h\", half_open_calls = 1 }}\n\
             [[root.children]]\nname = \"t\"\nkind = \"sync_target\"\ntarget = \"{}\"\npaths = [\"shared\"]\nevery = \"1h\"\nbreaker = \"tb\"\n",
            target.display()
        ),
    );
    let shared = d.state.join("shared");
    std::fs::create_dir_all(shared.join("dir")).unwrap_or_else(|e| panic!("{e}"));
    for (name, text) in [
        ("ok.txt", "ok v1"),
        ("secret.txt", "secret v1"),
        ("dir/inner.txt", "inner v1"),
        ("dir/more.txt", "more v1"),
    ] {
        write_file(shared.join(name), text);
    }
    let log = std::fs::File::create(&d.log).unwrap_or_else(|e| panic!("{e}"));
    d.launch_via(&wrapper, &[], Stdio::from(log));
    d.wait_ready();
    let v = d.json(&["sync", "t"], 0);
    assert_eq!(report(&v)["copied_to_remote"], 4, "{v:#}");

    // A changed file and a new one the daemon cannot read, a folder it cannot list, and a
    // readable change beside them.
    write_file(shared.join("ok.txt"), "ok v2");
    write_file(shared.join("secret.txt"), "secret v2, longer");
    chmod(shared.join("secret.txt"), 0o000);
    write_file(shared.join("new.txt"), "new");
    chmod(shared.join("new.txt"), 0o000);
    chmod(shared.join("dir"), 0o000);
    let v = d.json(&["sync", "t"], 1);
    let r = report(&v);
    assert_eq!(r["outcome"], "error", "{v:#}");
    let reason = r["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("3 file(s) failed, first: shared/")
            && reason.contains("Permission denied"),
        "{reason}"
    );
    // The folder it cannot list is an error too (an alert), not a quiet skip.
    assert_eq!(
        paths(&r["errors"]),
        ["shared/dir", "shared/new.txt", "shared/secret.txt"],
        "{v:#}"
    );
    for e in r["errors"].as_array().into_iter().flatten() {
        if e[0] == "shared/dir" {
            continue;
        }
        let why = e[1].as_str().unwrap_or_default();
        assert!(
            why.starts_with("cannot read ")
                && why.contains(&shared.display().to_string())
                && why.contains("Permission denied (os error 13)"),
            "{why}"
        );
    }
    assert_eq!(paths(&r["skipped"]), ["shared/dir"], "{v:#}");
    assert!(
        r["skipped"][0][1]
            .as_str()
            .is_some_and(|w| w.starts_with("unreadable") && w.contains("Permission denied")),
        "{v:#}"
    );
    // The rest went on; nothing unreadable was replaced or deleted on the other side.
    assert_eq!(r["copied_to_remote"], 1, "{v:#}");
    assert_eq!(r["deleted_remote"], 0, "{v:#}");
    assert_eq!(r["deleted_local"], 0, "{v:#}");
    assert_eq!(read(&target.join("shared/ok.txt")), "ok v2");
    assert_eq!(read(&target.join("shared/secret.txt")), "secret v1");
    assert!(!target.join("shared/new.txt").exists());
    assert_eq!(read(&target.join("shared/dir/inner.txt")), "inner v1");
    assert_eq!(read(&target.join("shared/dir/more.txt")), "more v1");
    // The failed run is a sync_error naming the files.
    let errors = d.events(&["--kind", "sync_error"]);
    let last = errors.last().unwrap_or_else(|| panic!("no sync_error"));
    let text = last["data"]["errors"].to_string();
    assert!(
        text.contains("shared/secret.txt") && text.contains("shared/new.txt"),
        "{last:#}"
    );
    // Files that failed are for the alert, not the breaker: one bad file must not stop every
    // run (regression: with failure_threshold = 1 the breaker opened and refused the rest).
    let b = d.json(&["breakers"], 0);
    assert_eq!(b["breakers"][0]["name"], "tb", "{b:#}");
    assert_eq!(b["breakers"][0]["state"], "closed", "{b:#}");
    // The base of what could not be read is kept: the target still tracks all four files.
    let s = d.json(&["sync", "status"], 0);
    assert_eq!(s["targets"][0]["tracked"], 4, "{s:#}");

    // Readable again: the changes go out, as changes (no conflict: the base was kept), and
    // the folder's files were never lost on either side.
    chmod(shared.join("secret.txt"), 0o644);
    chmod(shared.join("new.txt"), 0o644);
    chmod(shared.join("dir"), 0o755);
    let v = d.json(&["sync", "t"], 0);
    let r = report(&v);
    assert_eq!(r["outcome"], "success", "{v:#}");
    assert_eq!(r["copied_to_remote"], 2, "{v:#}");
    assert_eq!(r["conflicts"].as_array().map(Vec::len), Some(0), "{v:#}");
    assert_eq!(r["deleted_remote"], 0, "{v:#}");
    assert_eq!(r["deleted_local"], 0, "{v:#}");
    assert_eq!(read(&target.join("shared/secret.txt")), "secret v2, longer");
    assert_eq!(read(&target.join("shared/new.txt")), "new");
    for side in [&shared, &target.join("shared")] {
        assert_eq!(read(&side.join("dir/inner.txt")), "inner v1");
        assert_eq!(read(&side.join("dir/more.txt")), "more v1");
    }
}
