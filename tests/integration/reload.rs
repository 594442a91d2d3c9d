//! Hot reload as a diff: add, change, remove, invalid; by command and by SIGHUP.

use crate::util::{node_field, TestDaemon};

const V1: &str = r#"
[root]
intensity = 10

[[root.children]]
name = "keep"
kind = "heartbeat"
every = "1s"

[[root.children]]
name = "change"
kind = "heartbeat"
every = "1s"

[[root.children]]
name = "remove"
kind = "heartbeat"

[[root.children]]
name = "grp"
kind = "supervisor"
  [[root.children.children]]
  name = "stays"
  kind = "heartbeat"
"#;

const V2: &str = r#"
[root]
intensity = 10

[[root.children]]
name = "keep"
kind = "heartbeat"
every = "1s"

[[root.children]]
name = "change"
kind = "heartbeat"
every = "2s"

[[root.children]]
name = "added"
kind = "heartbeat"

[[root.children]]
name = "grp"
kind = "supervisor"
strategy = "one_for_all"
  [[root.children.children]]
  name = "stays"
  kind = "heartbeat"
  [[root.children.children]]
  name = "new_inner"
  kind = "heartbeat"
"#;

/// `reload --dry-run` lists the plan and applies nothing; an invalid file is refused as by
/// `reload`.
#[test]
fn a_dry_run_lists_the_plan_and_changes_nothing() {
    let d = TestDaemon::start(V1);
    let shape = |d: &TestDaemon| -> Vec<(String, String, u64)> {
        d.nodes()
            .iter()
            .map(|n| {
                (
                    n["path"].as_str().unwrap_or("").to_string(),
                    n["state"].as_str().unwrap_or("").to_string(),
                    n["incarnation"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    };
    let before = shape(&d);
    d.write_config(V2);
    let plan = d.json(&["reload", "--dry-run"], 0);
    assert_eq!(plan["dry_run"], true);
    let actions: Vec<(String, String)> = plan["changes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            (
                c["action"].as_str().unwrap_or("").to_string(),
                c["path"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expect = |a: &str, p: &str| (a.to_string(), p.to_string());
    assert_eq!(
        actions,
        [
            expect("remove", "root/remove"),
            expect("restart with new config", "root/change"),
            expect("add", "root/added"),
            expect("reconfigure", "root/grp"),
            expect("add", "root/grp/new_inner"),
            expect("record new config", "root/grp"),
        ]
    );
    assert_eq!(shape(&d), before, "nothing was applied");
    let human = d.cli(&["reload", "--dry-run"]);
    assert!(
        human
            .stdout
            .contains("6 change(s) would be made (dry run: nothing applied)"),
        "{}",
        human.stdout
    );
    // The text lists the plan as the JSON does.
    for line in [
        "remove",
        "root/remove",
        "restart with new config",
        "root/grp/new_inner",
    ] {
        assert!(human.stdout.contains(line), "{line:?} in {}", human.stdout);
    }
    assert_eq!(human.stdout.lines().count(), 7, "{}", human.stdout);
    d.write_config("[root]\nstratgy = 1\n");
    let invalid = d.cli(&["reload", "--dry-run"]);
    assert_eq!(invalid.code, 1, "{}", invalid.stderr);
    assert!(
        invalid.stderr.contains("nothing was changed"),
        "{}",
        invalid.stderr
    );
}

#[test]
fn reload_applies_only_the_difference() {
    let d = TestDaemon::start(V1);
    d.write_config(V2);
    let result = d.json(&["reload"], 0);
    let changes: Vec<(String, String)> = result["changes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            (
                c["action"].as_str().unwrap_or("").to_string(),
                c["path"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expect = |a: &str, p: &str| (a.to_string(), p.to_string());
    assert_eq!(
        changes,
        [
            expect("remove", "root/remove"),
            expect("restart with new config", "root/change"),
            expect("add", "root/added"),
            expect("reconfigure", "root/grp"),
            expect("add", "root/grp/new_inner"),
            expect("record new config", "root/grp"),
        ]
    );
    let nodes = d.nodes();
    let paths: Vec<&str> = nodes.iter().filter_map(|n| n["path"].as_str()).collect();
    assert_eq!(
        paths,
        [
            "root",
            "root/keep",
            "root/change",
            "root/added",
            "root/grp",
            "root/grp/stays",
            "root/grp/new_inner"
        ]
    );
    // Untouched children kept running with the same incarnation; the changed one restarted.
    assert_eq!(node_field(&nodes, "root/keep")["incarnation"], 1);
    assert_eq!(node_field(&nodes, "root/grp")["incarnation"], 1);
    assert_eq!(node_field(&nodes, "root/grp")["strategy"], "one_for_all");
    assert_eq!(node_field(&nodes, "root/grp/stays")["incarnation"], 1);
    assert_eq!(node_field(&nodes, "root/change")["incarnation"], 2);
    assert!(nodes.iter().all(|n| n["state"] == "running"), "{nodes:#?}");

    // The same file again: nothing to do.
    let again = d.json(&["reload"], 0);
    assert_eq!(again["changes"].as_array().map(Vec::len), Some(0));
    let human = d.cli(&["reload"]);
    assert!(human.stdout.contains("no changes"), "{}", human.stdout);
}

#[test]
fn an_invalid_file_changes_nothing_and_lists_every_error() {
    let d = TestDaemon::start(V1);
    let before = d.nodes();
    d.write_config(&format!(
        "{V1}\n[[root.children]]\nname = \"bad\"\nkind = \"heartbaet\"\n\n[[root.children]]\nname = \"keep\"\nkind = \"heartbeat\"\nevery = \"often\"\n"
    ));
    let out = d.cli(&["reload"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    let config = d.config.display().to_string();
    assert!(
        out.stderr.contains("3 error(s); nothing was changed"),
        "{}",
        out.stderr
    );
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with(&config))
        .collect();
    assert_eq!(lines.len(), 3, "{}", out.stderr);
    // Where those two values are in the file (1-based), to check the reported positions.
    let text = std::fs::read_to_string(&d.config).unwrap_or_else(|e| panic!("{e}"));
    let line_of = |needle: &str, nth: usize| {
        text.lines()
            .enumerate()
            .filter(|(_, l)| l.contains(needle))
            .nth(nth)
            .map(|(i, _)| i + 1)
            .unwrap_or(0)
    };
    let kind_line = line_of("heartbaet", 0);
    let dup_line = line_of("name = \"keep\"", 1);
    assert!(
        lines[0].contains(&format!(":{kind_line}:8: unknown kind \"heartbaet\" for child `root/bad`: it must be one of `supervisor`, `heartbeat`, "))
            && lines[0].ends_with("; did you mean `heartbeat`?"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].ends_with(&format!(
            ":{dup_line}:8: duplicate child name \"keep\" under `root`"
        )),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains(&format!(
            ":{}:9: `every` in child `root/keep`: \"often\" is not a duration",
            dup_line + 2
        )),
        "{}",
        lines[2]
    );
    let json = d.json(&["reload"], 1);
    assert_eq!(json["error"]["code"], "invalid_config");
    assert_eq!(json["error"]["details"].as_array().map(Vec::len), Some(3));
    // The old tree runs on untouched.
    let after = d.nodes();
    let strip = |nodes: &[serde_json::Value]| -> Vec<(String, u64)> {
        nodes
            .iter()
            .map(|n| {
                (
                    n["path"].as_str().unwrap_or("").to_string(),
                    n["incarnation"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    };
    assert_eq!(strip(&before), strip(&after));
    assert_eq!(d.cli(&["status"]).code, 0);
}

#[test]
fn sighup_reloads() {
    let d = TestDaemon::start(V1);
    d.write_config(V2);
    d.signal(rustix::process::Signal::HUP);
    d.wait_until("the SIGHUP reload", |d| d.node("root/added").is_some());
    assert!(d.node("root/remove").is_none());
    // A broken file on SIGHUP is refused and logged; the daemon keeps running.
    d.write_config("[root]\nstrategy = \n");
    d.signal(rustix::process::Signal::HUP);
    d.wait_until("the refusal in the log", |d| {
        d.log_text().contains("reload refused")
    });
    assert!(d.node("root/added").is_some());
    assert_eq!(d.cli(&["status"]).code, 0);
}

/// A config that is not a regular file (a FIFO would block a reader forever) is refused at
/// once; the daemon stays responsive and still stops promptly.
#[test]
fn a_fifo_config_is_refused() {
    let mut d = TestDaemon::start(V1);
    let _ = std::fs::remove_file(&d.config);
    let made = std::process::Command::new("mkfifo").arg(&d.config).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped: no mkfifo");
        return;
    }
    let out = d.cli(&["--timeout", "10s", "reload"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
    assert_eq!(d.cli(&["status"]).code, 0);
    let t0 = std::time::Instant::now();
    assert_eq!(d.terminate(), 0);
    assert!(t0.elapsed() < std::time::Duration::from_secs(10));
}

/// The engine forgets a temporary child once it stops; reloads still work: removing it is
/// already done, and new children land in the file's order.
#[test]
fn reload_copes_with_forgotten_temporary_children() {
    let tree =
        |children: &str| format!("[root]\nstrategy = \"rest_for_one\"\nintensity = 10\n{children}");
    let child = |name: &str, temporary: bool| {
        format!(
            "[[root.children]]\nname = \"{name}\"\nkind = \"heartbeat\"\n{}",
            if temporary {
                "restart = \"temporary\"\n"
            } else {
                ""
            }
        )
    };
    let d = TestDaemon::start(&tree(&format!("{}{}", child("t", true), child("x", false))));
    assert_eq!(d.cli(&["stop", "root/t"]).code, 0);
    assert!(
        d.node("root/t").is_none(),
        "a stopped temporary child is forgotten"
    );
    d.write_config(&tree(&format!(
        "{}{}{}",
        child("t", true),
        child("y", false),
        child("x", false)
    )));
    assert_eq!(d.cli(&["reload"]).code, 0);
    let names: Vec<String> = d
        .nodes()
        .iter()
        .filter_map(|n| n["path"].as_str().map(str::to_string))
        .collect();
    assert_eq!(names, ["root", "root/y", "root/x"]);
    d.write_config(&tree(&format!(
        "{}{}",
        child("y", false),
        child("x", false)
    )));
    let result = d.json(&["reload"], 0);
    let change = &result["changes"][0];
    assert_eq!(
        (change["action"].as_str(), change["note"].as_str()),
        (Some("remove"), Some("already gone"))
    );
}

/// Changes inside a nested supervisor an operator stopped are recorded, not failures: they
/// apply when it starts again.
#[test]
fn reload_into_a_stopped_supervisor_applies_when_it_starts() {
    let d = TestDaemon::start(V1);
    assert_eq!(d.cli(&["stop", "root/grp"]).code, 0);
    d.write_config(V2);
    let out = d.cli(&["reload"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("root/grp is not running; applies when it starts"),
        "{}",
        out.stdout
    );
    assert_eq!(
        d.node("root/grp").map(|n| n["state"].clone()),
        Some("stopped".into())
    );
    assert_eq!(d.cli(&["start", "root/grp"]).code, 0);
    let nodes = d.nodes();
    assert_eq!(node_field(&nodes, "root/grp")["strategy"], "one_for_all");
    assert!(nodes.iter().any(|n| n["path"] == "root/grp/new_inner"));
}

/// While the file is being edited (invalid), the CLI still finds the daemon: `status` works and
/// `reload` reports the errors with exit 1.
#[test]
fn the_cli_reaches_the_daemon_while_the_file_is_broken() {
    let d = TestDaemon::start(V1);
    crate::util::write_file(
        &d.config,
        format!(
            "{}[root]\nstrategy = \n",
            crate::util::daemon_section(d.dir.path(), "")
        ),
    );
    let config = d.config.display().to_string();
    let status = crate::util::run_cli(&["--config", &config, "status"], &[]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    let reload = crate::util::run_cli(&["--config", &config, "reload"], &[]);
    assert_eq!(reload.code, 1, "{}", reload.stderr);
    assert!(
        reload.stderr.contains("nothing was changed"),
        "{}",
        reload.stderr
    );
}
