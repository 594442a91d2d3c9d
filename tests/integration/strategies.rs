//! Chaos kills under each strategy, intensity and escalation, the root giving up.

use crate::util::{node_field, TestDaemon};

fn incarnations(d: &TestDaemon, paths: &[&str]) -> Vec<u64> {
    let nodes = d.nodes();
    paths
        .iter()
        .map(|p| node_field(&nodes, p)["incarnation"].as_u64().unwrap_or(0))
        .collect()
}

const STRATEGIES: &str = r#"
[root]
intensity = 50
period = "10s"

[[root.children]]
name = "ofo"
kind = "supervisor"
strategy = "one_for_one"
intensity = 10
  [[root.children.children]]
  name = "a"
  kind = "heartbeat"
  [[root.children.children]]
  name = "b"
  kind = "heartbeat"
  [[root.children.children]]
  name = "c"
  kind = "heartbeat"

[[root.children]]
name = "ofa"
kind = "supervisor"
strategy = "one_for_all"
intensity = 10
  [[root.children.children]]
  name = "a"
  kind = "heartbeat"
  [[root.children.children]]
  name = "b"
  kind = "heartbeat"
  [[root.children.children]]
  name = "c"
  kind = "heartbeat"

[[root.children]]
name = "rfo"
kind = "supervisor"
strategy = "rest_for_one"
intensity = 10
  [[root.children.children]]
  name = "a"
  kind = "heartbeat"
  [[root.children.children]]
  name = "b"
  kind = "heartbeat"
  [[root.children.children]]
  name = "c"
  kind = "heartbeat"
"#;

#[test]
fn kill_under_each_strategy() {
    let d = TestDaemon::start(STRATEGIES);
    for (sup, expected) in [("ofo", [1, 2, 1]), ("ofa", [2, 2, 2]), ("rfo", [1, 2, 2])] {
        let paths: Vec<String> = ["a", "b", "c"]
            .iter()
            .map(|c| format!("root/{sup}/{c}"))
            .collect();
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        assert_eq!(d.cli(&["kill", paths[1]]).code, 0);
        d.wait_until(&format!("{sup} restarts"), |d| {
            incarnations(d, &paths) == expected && d.nodes().iter().all(|n| n["state"] == "running")
        });
        let nodes = d.nodes();
        assert_eq!(node_field(&nodes, paths[1])["restarts"], 1, "{sup}");
        assert_eq!(node_field(&nodes, &format!("root/{sup}"))["incarnation"], 1);
    }
    assert_eq!(d.cli(&["status"]).code, 0);
}

#[test]
fn intensity_exceeded_escalates_to_the_parent() {
    let d = TestDaemon::start(
        r#"
[root]
intensity = 5
period = "30s"

[[root.children]]
name = "steady"
kind = "heartbeat"

[[root.children]]
name = "grp"
kind = "supervisor"
intensity = 1
period = "30s"
  [[root.children.children]]
  name = "x"
  kind = "heartbeat"
  [[root.children.children]]
  name = "y"
  kind = "heartbeat"
"#,
    );
    assert_eq!(d.cli(&["kill", "root/grp/x"]).code, 0);
    d.wait_until("first restart of x", |d| {
        d.node("root/grp/x").is_some_and(|n| n["incarnation"] == 2)
    });
    assert_eq!(d.cli(&["kill", "root/grp/x"]).code, 0);
    // grp gave up; root restarted it with a fresh subtree.
    d.wait_until("grp restarted by root", |d| {
        d.node("root/grp")
            .is_some_and(|n| n["incarnation"] == 2 && n["state"] == "running")
    });
    let nodes = d.nodes();
    let grp = node_field(&nodes, "root/grp");
    assert_eq!(grp["last_exit"], "max_restart_intensity");
    assert_eq!(grp["restarts"], 1);
    assert_eq!(node_field(&nodes, "root/grp/x")["incarnation"], 1);
    assert_eq!(node_field(&nodes, "root/grp/y")["incarnation"], 1);
    assert_eq!(node_field(&nodes, "root/steady")["incarnation"], 1);
    let gave_up = d.events(&["--kind", "gave_up"]);
    assert_eq!(gave_up.len(), 1, "{gave_up:#?}");
    assert_eq!(gave_up[0]["path"], "root/grp");
    let exits = d.events(&["--path", "root/grp", "--kind", "exited"]);
    assert!(
        exits
            .iter()
            .any(|e| e["path"] == "root/grp" && e["data"]["reason"] == "max_restart_intensity"),
        "{exits:#?}"
    );
}

#[test]
fn the_root_giving_up_ends_the_daemon_with_code_3() {
    let mut d = TestDaemon::start(
        r#"
[root]
intensity = 0
period = "30s"

[[root.children]]
name = "fragile"
kind = "heartbeat"
"#,
    );
    assert_eq!(d.cli(&["kill", "root/fragile"]).code, 0);
    assert_eq!(d.wait_exit(), 3, "{}", d.log_text());
    let log = d.log_text();
    assert!(log.contains("reached max restart intensity"), "{log}");
    assert!(!d.socket.exists(), "the socket file is removed");
}
