//! Managed processes attacked as a hostile user would (issue 10), on the real binary: one test
//! per bug found, asserting the right behaviour. Every wait is bounded.

use crate::util::{run_cli, write_file, TestDaemon};

/// `check` on a config with one process child with `extra` keys: exit code and stderr.
fn check(extra: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("s.toml");
    write_file(
        &file,
        format!(
            "[daemon]\nstate_dir = \"{}\"\n[root]\n[[root.children]]\nname = \"p\"\nkind = \"process\"\ncommand = \"sh\"\n{extra}\n",
            dir.path().display()
        ),
    );
    let out = run_cli(&["check", &file.display().to_string()], &[]);
    (out.code, out.stderr)
}

/// An argument or an environment entry longer than exec takes (128 KiB each on Linux) passed
/// `check`, so a reload stopped the running program and then could not start the new one
/// ("Argument list too long"). It is refused when the config is read, naming the key.
#[test]
fn arguments_and_environment_too_long_for_exec_are_refused() {
    let big = "a".repeat(200_000);
    let (code, err) = check(&format!("env = {{ BIG = \"{big}\" }}"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("`env` of child `root/p`") && err.contains("\"BIG\"") && err.contains("KiB"),
        "{err}"
    );
    let (code, err) = check(&format!("args = [\"-c\", \"{big}\"]"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("`args` in child `root/p`") && err.contains("KiB"),
        "{err}"
    );
    // Large but fine.
    let fine = "a".repeat(100_000);
    let (code, err) = check(&format!(
        "env = {{ BIG = \"{fine}\" }}\nargs = [\"{fine}\"]"
    ));
    assert_eq!(code, 0, "{err}");
}

/// A working directory removed after the config was read: the failed start says that the
/// directory is the problem, not a bare "No such file or directory" that reads as if the
/// program were missing.
#[test]
fn a_start_failing_on_a_missing_cwd_says_so() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cwd = dir.path().join("work");
    std::fs::create_dir(&cwd).unwrap_or_else(|e| panic!("{e}"));
    let mut d = TestDaemon::start(&format!(
        r#"
[root]
strategy = "one_for_one"
intensity = 100
period = "60s"
backoff = {{ initial = "50ms", max = "200ms" }}

[[root.children]]
name = "p"
kind = "process"
command = "sleep"
args = ["3001"]
cwd = "{}"
healthy_after = "0s"
"#,
        cwd.display()
    ));
    std::fs::remove_dir(&cwd).unwrap_or_else(|e| panic!("{e}"));
    let out = d.cli(&["kill", "root/p"]);
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
    let wanted = format!("working directory {}", cwd.display());
    d.wait_until("a failed start naming the cwd", |d| {
        d.log_text().contains(&wanted)
    });
    d.cli(&["shutdown"]);
    let _ = d.wait_exit();
}

/// The same for a program removed after the config was read, by path and by name in PATH.
#[test]
fn a_start_failing_on_a_missing_program_says_so() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap_or_else(|e| panic!("{e}"));
    let prog = bin.join("myprog");
    write_file(&prog, "#!/bin/sh\nexec /bin/sleep 3002\n");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let mut d = TestDaemon::start(&format!(
        r#"
[root]
strategy = "one_for_one"
intensity = 100
period = "60s"
backoff = {{ initial = "50ms", max = "200ms" }}

[[root.children]]
name = "bypath"
kind = "process"
command = "{prog}"
healthy_after = "0s"

[[root.children]]
name = "byname"
kind = "process"
command = "myprog"
env = {{ PATH = "{bin}" }}
healthy_after = "0s"
"#,
        prog = prog.display(),
        bin = bin.display()
    ));
    std::fs::remove_file(&prog).unwrap_or_else(|e| panic!("{e}"));
    for p in ["root/bypath", "root/byname"] {
        let out = d.cli(&["kill", p]);
        assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
    }
    let by_path = format!("the program {}", prog.display());
    d.wait_until("failed starts naming the program", |d| {
        let log = d.log_text();
        log.contains(&by_path) && log.contains("no program \"myprog\" in PATH")
    });
    d.cli(&["shutdown"]);
    let _ = d.wait_exit();
}

/// A `process` probe naming a path that is not in the tree, or a child that is not a process
/// (a heartbeat), passed `check` and reload and only said at run time that the path "has not
/// started". `check` refuses it, naming the file, the line and the key; so for `restart` and
/// `sync` heal actions that name nothing in the tree.
#[test]
fn references_to_missing_or_wrong_children_are_refused() {
    let probe = |body: &str| {
        format!(
            "[[root.children]]\nname = \"hb\"\nkind = \"heartbeat\"\n\
             [[root.children]]\nname = \"watch\"\nkind = \"probe\"\n{body}\n"
        )
    };
    let (code, err) = check(&probe("check = \"process\"\nprocess = \"root/p\""));
    assert_eq!(code, 0, "{err}");
    for (body, line, says) in [
        (
            "check = \"process\"\nprocess = \"root/missing\"",
            15,
            "`process` in child `root/watch`: \"root/missing\" is not in the tree",
        ),
        (
            "check = \"process\"\nprocess = \"root/hb\"",
            15,
            "\"root/hb\" is a `heartbeat`, not a `kind = \"process\"` child",
        ),
        (
            "check = \"breakers\"\nheal = [{ action = \"restart\", path = \"root/gone\" }]",
            15,
            "`path` in a heal action of child `root/watch`: \"root/gone\" is not in the tree",
        ),
        (
            "check = \"breakers\"\nheal = [{ action = \"sync\", target = \"icloud\" }]",
            15,
            "\"icloud\" is not the name of a `kind = \"sync_target\"` child",
        ),
    ] {
        let (code, err) = check(&probe(body));
        assert_eq!(code, 1, "{body}: {err}");
        assert!(
            err.contains(&format!("s.toml:{line}:")) && err.contains(says),
            "{body}: {err}"
        );
    }
}

/// A directory at `output.log.1` made every rotation fail (a rename onto a directory), and
/// with it every write: all output was dropped for good. The log is now truncated at its size
/// limit and written on (the disk stays bounded), the directory is left alone, and the daemon
/// says once what is in the way.
#[test]
fn a_directory_at_a_rotated_name_does_not_stop_the_output_log() {
    let tree = r#"
[root]
[[root.children]]
name = "p"
kind = "process"
command = "sh"
args = ["-c", "i=0; while :; do echo \"line $i\"; i=$((i+1)); sleep 0.002; done"]
log_max_size = "1KiB"
log_keep = 3
healthy_after = "0s"
"#;
    let mut d = TestDaemon::prepare("", tree);
    let log = d.state.join("logs/root/p/output.log");
    let blocked = d.state.join("logs/root/p/output.log.1");
    std::fs::create_dir_all(blocked.join("inner")).unwrap_or_else(|e| panic!("{e}"));
    d.launch(&[]);
    d.wait_ready();
    // Still written after many rotations (1 KiB holds about 100 lines): the newest lines
    // reach the file.
    d.wait_until("line 500 or later in the log", |d| {
        let last = d.cli(&["logs", "root/p", "-n", "1"]).stdout;
        last.trim()
            .strip_prefix("line ")
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n >= 500)
    });
    let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    assert!(size > 0 && size <= 1024, "{size}");
    assert!(blocked.join("inner").is_dir());
    let said = format!("{} is not a regular file", blocked.display());
    d.wait_until("the notice naming output.log.1", |d| {
        d.log_text().contains(&said)
    });
    assert_eq!(d.log_text().matches(&said).count(), 1, "{}", d.log_text());
    d.cli(&["shutdown"]);
    let _ = d.wait_exit();
}
