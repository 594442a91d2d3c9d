//! Retried operations on the real daemon: a heal action that keeps failing opens its own
//! circuit breaker, the runs after that are rejected (recorded once per open period), and
//! `retries` reports the operation with its runs and a recommendation.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::TestDaemon;

const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);
const OP: &str = "heal:root/x:command:/bin/false";

/// Polls `ARGS --json` (exit 0) until `check` holds (bounded).
fn json_until(d: &TestDaemon, args: &[&str], what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = d.json(args, 0);
        if check(&v) {
            return v;
        }
        if Instant::now() >= deadline {
            panic!(
                "{args:?} never showed {what}: {v:#}\nlog:\n{}",
                d.log_text()
            );
        }
        std::thread::sleep(POLL);
    }
}

fn outcome_count(v: &Value, outcome: &str) -> usize {
    v["actions"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|a| a["outcome"] == outcome).count())
}

fn op_of<'a>(v: &'a Value, op: &str) -> &'a Value {
    v["ops"]
        .as_array()
        .and_then(|ops| ops.iter().find(|o| o["op"] == op))
        .unwrap_or(&Value::Null)
}

#[test]
fn a_failing_heal_action_opens_its_breaker_and_retries_reports_it() {
    let tree = r#"
[root]
[[root.children]]
name = "x"
kind = "probe"
check = "command"
command = "/bin/false"
every = "100ms"
failures_before_warning = 1
failures_before_critical = 1
heal = [{ action = "command", command = "/bin/false", cooldown = "0s", max_per_hour = 1000 }]
"#;
    let d = TestDaemon::start(tree);

    // Three failed runs open the action's breaker (for a minute: twice the cooldown, at least
    // a minute); the next run is refused, and recorded once.
    let v = json_until(&d, &["heal"], "a rejected heal action", |v| {
        outcome_count(v, "rejected") > 0
    });
    std::thread::sleep(Duration::from_millis(800));
    let v2 = d.json(&["heal"], 0);
    assert_eq!(
        v2, v,
        "nothing more runs or is recorded while the breaker is open"
    );
    let actions = v["actions"].as_array().cloned().unwrap_or_default();
    assert_eq!(actions.len(), 4, "{v:#}");
    assert_eq!(outcome_count(&v, "failed"), 3, "{v:#}");
    // Newest first: the rejection came last.
    let rejected = &actions[0];
    assert_eq!(rejected["outcome"], "rejected", "{v:#}");
    assert_eq!(rejected["probe"], "root/x");
    assert_eq!(rejected["action"], "command");
    assert_eq!(rejected["took_ms"], 0);
    assert!(rejected.get("recheck").is_none(), "not run, not re-checked");
    let detail = rejected["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with(&format!("circuit breaker {OP} is open (retry in")),
        "{detail}"
    );
    for failed in &actions[1..] {
        assert_eq!(failed["outcome"], "failed", "{failed:#}");
        assert_eq!(failed["recheck"], "warn", "{failed:#}");
    }

    // `retries`: the operation, its four runs and what they say.
    let v = json_until(&d, &["retries"], "the heal action's runs", |v| {
        op_of(v, OP)["runs"] == 4
    });
    let op = op_of(&v, OP);
    assert_eq!(
        op["outcomes"],
        serde_json::json!({ "exhausted": 3, "rejected": 1 }),
        "{op:#}"
    );
    assert_eq!(op["success_rate"], 0.0);
    assert_eq!(op["failed_attempts"], 3);
    assert_eq!(op["transient_share"], 1.0);
    assert_eq!(op["permanent_share"], 0.0);
    assert_eq!(
        op["commonest_errors"],
        serde_json::json!([{ "label": "heal_failed", "count": 3 }])
    );
    assert_eq!(op["recovered_runs"], 0);
    assert_eq!(op["policy"]["source"], "configured");
    assert_eq!(op["policy"]["max_attempts"], 1);
    let text = op["recommendation"]["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("transient") || text.contains("permanent"),
        "{text}"
    );
    assert!(text.contains("3 of 4 runs gave up"), "{text}");

    // One operation, a shorter window.
    let v = d.json(&["retries", "--op", OP, "--since", "1h"], 0);
    let ops = v["ops"].as_array().cloned().unwrap_or_default();
    assert_eq!(ops.len(), 1, "{v:#}");
    assert_eq!(ops[0]["runs"], 4);
    let v = d.json(&["retries", "--op", "alert:none"], 0);
    assert_eq!(v["ops"][0]["runs"], 0, "{v:#}");
    assert_eq!(v["ops"][0]["policy"]["source"], "default", "{v:#}");

    // For people.
    let out = d.cli(&["retries"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for want in [
        "heal:root/x:command:/bin/false: 4 run(s), 0% succeeded (3 exhausted, 1 rejected)",
        "failed attempts: 3 (100% transient, 0% permanent); commonest: heal_failed (3)",
        "policy (configured): one attempt per run",
        "recommendation: transient failures (heal_failed)",
    ] {
        assert!(
            out.stdout.contains(want),
            "{want:?} not in:\n{}",
            out.stdout
        );
    }

    // The breaker's opening is an event of the probe.
    let opened = d
        .events(&["--kind", "heal"])
        .into_iter()
        .filter(|e| e["data"]["breaker"] == OP && e["data"]["to"] == "open")
        .count();
    assert_eq!(opened, 1);
}

#[test]
fn two_actions_of_one_kind_on_one_probe_have_breakers_and_runs_of_their_own() {
    // Two commands on one probe: the failing one opens its breaker; the other keeps running,
    // and `retries` shows each under its own name.
    let tree = r#"
[root]
[[root.children]]
name = "x"
kind = "probe"
check = "command"
command = "/bin/false"
every = "100ms"
failures_before_warning = 1
failures_before_critical = 1
heal = [
  { action = "command", command = "/bin/false", cooldown = "0s", max_per_hour = 1000 },
  { action = "command", command = "/bin/true", cooldown = "0s", max_per_hour = 1000 },
]
"#;
    let d = TestDaemon::start(tree);
    const OK: &str = "heal:root/x:command:/bin/true";
    let v = json_until(&d, &["retries"], "both actions' runs", |v| {
        op_of(v, OP)["outcomes"]["rejected"] == 1 && op_of(v, OK)["runs"].as_u64() > Some(4)
    });
    let failing = op_of(&v, OP);
    assert_eq!(
        failing["outcomes"],
        serde_json::json!({ "exhausted": 3, "rejected": 1 }),
        "{failing:#}"
    );
    let ok = op_of(&v, OK);
    assert_eq!(ok["success_rate"], 1.0, "{ok:#}");
    assert_eq!(ok["outcomes"].get("rejected"), None, "{ok:#}");
    let heal_ops: Vec<&str> = v["ops"]
        .as_array()
        .map(|ops| {
            ops.iter()
                .filter_map(|o| o["op"].as_str())
                .filter(|o| o.starts_with("heal:"))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(heal_ops.len(), 2, "{v:#}");
    // The stored actions keep both targets apart too.
    let h = d.json(&["heal"], 0);
    let targets: std::collections::BTreeSet<&str> = h["actions"]
        .as_array()
        .map(|a| a.iter().filter_map(|a| a["target"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        targets,
        ["/bin/false", "/bin/true"].into_iter().collect(),
        "{h:#}"
    );
    // Only the failing one's breaker opened.
    let opened: Vec<Value> = d
        .events(&["--kind", "heal"])
        .into_iter()
        .filter(|e| e["data"]["to"] == "open")
        .collect();
    assert!(
        !opened.is_empty() && opened.iter().all(|e| e["data"]["breaker"] == OP),
        "{opened:#?}"
    );
}
