//! Circuit breakers through the real binary: `breakers` and its actions, `status`, the state
//! kept across a restart of the daemon, and what `check` says of a breakers child.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{run_cli, write_file, TestDaemon};

const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(25);

const TREE: &str = r#"
[root]

[[root.children]]
name = "breakers"
kind = "breakers"
breakers.db  = { failure_threshold = 5, success_threshold = 2, open_for = "5m", half_open_calls = 1 }
breakers.api = { failure_threshold = 3, success_threshold = 1, open_for = "1m", open_for_max = "4m", failure_rate = 0.5, window = 10 }

[[root.children]]
name = "beat"
kind = "heartbeat"
every = "1h"
"#;

/// `name -> state` of every breaker in a `breakers --json` answer.
fn states(answer: &Value) -> Vec<(String, String)> {
    answer["breakers"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    (
                        r["name"].as_str().unwrap_or_default().to_string(),
                        r["state"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// `(name, from, to)` of the listed transitions, oldest first.
fn transitions(answer: &Value) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = answer["transitions"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|t| {
                    (
                        t["name"].as_str().unwrap_or_default().to_string(),
                        t["from"].as_str().unwrap_or_default().to_string(),
                        t["to"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.reverse();
    out
}

fn step(name: &str, from: &str, to: &str) -> (String, String, String) {
    (name.to_string(), from.to_string(), to.to_string())
}

/// `breakers --json` (its exit code ignored) until `pred` holds on the answer; the answer.
fn breakers_until(d: &TestDaemon, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = d.cli(&["breakers", "--json"]);
        let answer = out.json();
        if pred(&answer) {
            return answer;
        }
        if Instant::now() >= deadline {
            panic!(
                "breakers never showed {what}: {answer:#}\nlog:\n{}",
                d.log_text()
            );
        }
        std::thread::sleep(POLL);
    }
}

#[test]
fn operators_drive_breakers_and_their_state_survives_a_restart() {
    let mut d = TestDaemon::start(TREE);

    // Listed closed, in name order, with their config; nothing not closed: exit 0.
    let listed = d.json(&["breakers"], 0);
    assert_eq!(
        states(&listed),
        pairs(&[("api", "closed"), ("db", "closed")])
    );
    assert_eq!(listed["breakers"][1]["failure_threshold"], 5);
    assert_eq!(listed["breakers"][1]["success_threshold"], 2);
    assert_eq!(listed["breakers"][1]["wait_s"], 300.0);
    assert_eq!(listed["transitions"].as_array().map(Vec::len), Some(0));
    let human = d.cli(&["breakers"]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.starts_with("db ") && l.contains("closed")),
        "{}",
        human.stdout
    );
    let status = d.json(&["status"], 0);
    assert_eq!(status["breakers_open"], Value::Null, "omitted when none");

    // Forced open: the answer is the breaker as it is now.
    let forced = d.json(&["breakers", "open", "db"], 0);
    assert_eq!(forced["name"], "db");
    assert_eq!(forced["state"], "forced_open");
    // `status` shows it; its exit code is about the tree, which is healthy.
    let status = d.json(&["status"], 0);
    assert_eq!(status["healthy"], true);
    assert_eq!(
        status["breakers_open"],
        serde_json::json!(["db (forced_open)"])
    );
    let human = d.cli(&["status"]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(
        human
            .stdout
            .contains("breakers:  not closed: db (forced_open) (`metasystem breakers`)"),
        "{}",
        human.stdout
    );
    // `breakers` says with its exit code that one is not closed.
    let listed = breakers_until(&d, "the transition to forced_open", |a| {
        transitions(a) == vec![step("db", "closed", "forced_open")]
    });
    assert_eq!(
        states(&listed),
        pairs(&[("api", "closed"), ("db", "forced_open")])
    );
    assert!(listed["transitions"][0]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("forced open by the operator")));
    assert_eq!(d.cli(&["breakers", "--json"]).code, 1);
    let human = d.cli(&["breakers"]);
    assert_eq!(human.code, 1);
    assert!(
        human.stdout.contains("transitions (newest first):")
            && human
                .stdout
                .contains("db: closed -> forced_open (forced open by the operator)"),
        "{}",
        human.stdout
    );

    // A restart of the daemon (SIGTERM, then the same state dir): still forced open, the
    // transition still listed.
    assert_eq!(d.terminate(), 0, "{}", d.log_text());
    d.launch(&[]);
    d.wait_ready();
    let listed = d.json(&["breakers"], 1);
    assert_eq!(
        states(&listed),
        pairs(&[("api", "closed"), ("db", "forced_open")])
    );
    assert_eq!(
        transitions(&listed),
        vec![step("db", "closed", "forced_open")]
    );
    let status = d.json(&["status"], 0);
    assert_eq!(
        status["breakers_open"],
        serde_json::json!(["db (forced_open)"])
    );

    // half-open and disable; disabled is not reported as "not closed".
    let trial = d.json(&["breakers", "half-open", "api"], 0);
    assert_eq!(trial["state"], "half_open");
    let disabled = d.json(&["breakers", "disable", "db"], 0);
    assert_eq!(disabled["state"], "disabled");
    let status = d.json(&["status"], 0);
    assert_eq!(
        status["breakers_open"],
        serde_json::json!(["api (half_open)"])
    );
    assert_eq!(d.cli(&["breakers"]).code, 1);

    // Reset: closed, and `breakers` exits 0 again.
    for name in ["api", "db"] {
        let reset = d.json(&["breakers", "reset", name], 0);
        assert_eq!(reset["state"], "closed", "{reset}");
    }
    // Resetting a closed breaker changes nothing and is no error.
    assert_eq!(d.json(&["breakers", "reset", "db"], 0)["state"], "closed");
    let listed = breakers_until(&d, "every transition", |a| transitions(a).len() == 5);
    assert_eq!(
        transitions(&listed),
        vec![
            step("db", "closed", "forced_open"),
            step("api", "closed", "half_open"),
            step("db", "forced_open", "disabled"),
            step("api", "half_open", "closed"),
            step("db", "disabled", "closed"),
        ]
    );
    assert_eq!(
        states(&listed),
        pairs(&[("api", "closed"), ("db", "closed")])
    );
    assert_eq!(d.cli(&["breakers"]).code, 0);
    assert_eq!(d.json(&["status"], 0)["breakers_open"], Value::Null);

    // An unknown name: a clear error, with the nearest name, and a non-zero exit.
    let typo = d.cli(&["breakers", "open", "dbb"]);
    assert_eq!(typo.code, 1, "{}", typo.stderr);
    assert!(
        typo.stderr
            .contains("no breaker named `dbb`; did you mean `db`?"),
        "{}",
        typo.stderr
    );
    let unknown = d.cli(&["breakers", "reset", "nothing-like-it", "--json"]);
    assert_eq!(unknown.code, 1);
    assert_eq!(unknown.json()["error"]["code"], "not_found");
    assert!(
        unknown
            .stderr
            .contains("no breaker named `nothing-like-it`; the breakers are api, db"),
        "{}",
        unknown.stderr
    );
    // Nothing changed.
    assert_eq!(
        states(&d.json(&["breakers"], 0)),
        pairs(&[("api", "closed"), ("db", "closed")])
    );
    assert_eq!(d.terminate(), 0);
}

/// A daemon with no breakers child: `breakers` lists none, an action says how to add one.
#[test]
fn without_a_breakers_child_there_is_none() {
    let d = TestDaemon::start(crate::util::ONE_CHILD);
    let listed = d.json(&["breakers"], 0);
    assert_eq!(listed["breakers"], serde_json::json!([]));
    let human = d.cli(&["breakers"]);
    assert!(human.stdout.contains("no breakers"), "{}", human.stdout);
    let out = d.cli(&["breakers", "open", "db"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("no breaker named `db`; none is configured"),
        "{}",
        out.stderr
    );
}

/// `check` on a file whose breakers child holds `breakers` (the lines after the child's
/// header); its exit code and output.
fn check_breakers(
    dir: &tempfile::TempDir,
    file: &str,
    breakers: &str,
) -> (String, crate::util::Out) {
    let path = dir.path().join(file);
    write_file(
        &path,
        format!(
            "[root]\n[[root.children]]\nname = \"breakers\"\nkind = \"breakers\"\n{breakers}\n"
        ),
    );
    let shown = path.display().to_string();
    let home = dir.path().display().to_string();
    let out = run_cli(&["check", &shown], &[("HOME", home.as_str())]);
    (shown, out)
}

#[test]
fn check_explains_what_is_wrong_in_a_breaker() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    // A valid one, with every key.
    let (_, ok) = check_breakers(
        &dir,
        "ok.toml",
        "breakers.db = { failure_threshold = 0, failure_rate = 0.5, window = \"1m\", \
         minimum_calls = 5, success_threshold = 2, open_for = \"10s\", open_for_max = \"1m\", \
         backoff = 1.5, half_open_calls = 2, half_open_max_wait = \"30s\" }",
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(ok.stdout.contains("ok (2 actors)"), "{}", ok.stdout);

    // An unknown key: where, and the key it was meant to be.
    let (file, typo) = check_breakers(&dir, "typo.toml", "breakers.db = { failure_treshold = 3 }");
    assert_eq!(typo.code, 1);
    let first = typo.stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("{file}:5:17: unknown key `failure_treshold`"))
            && first.contains("breaker `db`")
            && first.ends_with("did you mean `failure_threshold`?"),
        "{}",
        typo.stderr
    );
    assert!(typo.stderr.ends_with("1 error(s)\n"), "{}", typo.stderr);

    // A breaker that can never open.
    let (file, never) = check_breakers(
        &dir,
        "never.toml",
        "breakers.db = { failure_threshold = 0 }",
    );
    assert_eq!(never.code, 1);
    assert!(
        never.stderr.starts_with(&format!("{file}:5:"))
            && never
                .stderr
                .contains("can never open: set `failure_threshold` above 0 or a `failure_rate`"),
        "{}",
        never.stderr
    );

    // A cap below the first wait.
    let (file, cap) = check_breakers(
        &dir,
        "cap.toml",
        "breakers.db = { open_for = \"5m\", open_for_max = \"1m\" }",
    );
    assert_eq!(cap.code, 1);
    assert!(
        cap.stderr.starts_with(&format!("{file}:5:"))
            && cap.stderr.contains("`open_for_max` in breaker `db`")
            && cap.stderr.contains("must not be less than `open_for`"),
        "{}",
        cap.stderr
    );

    // A breaker that is not a table.
    let (file, scalar) = check_breakers(&dir, "scalar.toml", "breakers.x = 3");
    assert_eq!(scalar.code, 1);
    assert!(
        scalar
            .stderr
            .starts_with(&format!("{file}:5:14: `x` in `breakers`"))
            && scalar.stderr.contains("must be a table, not an integer"),
        "{}",
        scalar.stderr
    );

    // Out of range and mistyped values, each reported, all at once.
    let (_, many) = check_breakers(
        &dir,
        "many.toml",
        "breakers.a = { failure_rate = 1.5 }\nbreakers.b = { half_open_calls = 0 }\n\
         breakers.c = { open_for = 5 }\nbreakers.\"bad name\" = { failure_threshold = 1 }",
    );
    assert_eq!(many.code, 1);
    assert!(many.stderr.ends_with("4 error(s)\n"), "{}", many.stderr);
}

/// The embedded default passes `check` and, run, has its four breakers (and one for each of
/// its probes' heal actions, listed with them).
#[test]
fn the_embedded_default_has_its_four_breakers() {
    let home = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let home_s = home.path().display().to_string();
    let check = run_cli(&["check"], &[("HOME", home_s.as_str())]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(
        check.stdout.starts_with("<embedded supervision.toml>: ok"),
        "{}",
        check.stdout
    );

    // The same tree, with a [daemon] of its own (a temp state dir).
    let embedded = include_str!("../../supervision.toml");
    let tree = match embedded.find("\n[root]") {
        Some(at) => &embedded[at..],
        None => panic!("the embedded default has no [root]"),
    };
    let mut d = TestDaemon::start(tree);
    let listed = d.json(&["breakers"], 0);
    let found: Vec<(String, String, u64, u64)> = listed["breakers"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    (
                        r["name"].as_str().unwrap_or_default().to_string(),
                        r["state"].as_str().unwrap_or_default().to_string(),
                        r["failure_threshold"].as_u64().unwrap_or_default(),
                        r["wait_s"].as_f64().unwrap_or_default() as u64,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let expected: Vec<(String, String, u64, u64)> = [
        ("database_write", 5),
        ("external_sync", 3),
        ("icloud_sync", 3),
        ("knowledge_graph", 4),
    ]
    .iter()
    .map(|(n, t)| (n.to_string(), "closed".to_string(), *t, 300))
    .collect();
    let (heal, shared): (Vec<_>, Vec<_>) =
        found.into_iter().partition(|b| b.0.starts_with("heal:"));
    assert_eq!(shared, expected);
    let heal: Vec<(String, String)> = heal
        .into_iter()
        .map(|(name, state, ..)| {
            let kind = name.split(':').take(3).collect::<Vec<_>>().join(":");
            (kind, state)
        })
        .collect();
    assert_eq!(
        heal,
        vec![
            (
                "heal:root/disk:prune_backups".to_string(),
                "closed".to_string()
            ),
            ("heal:root/store:vacuum".to_string(), "closed".to_string()),
        ]
    );
    assert_eq!(d.terminate(), 0);
}

/// A reload that changes the breakers child restarts it with the new config: the breakers the
/// registry holds keep their state and take the new settings; one removed from the file is
/// gone, one added is there, closed.
#[test]
fn a_reload_keeps_the_state_of_breakers_and_applies_their_new_config() {
    let d = TestDaemon::start(TREE);
    assert_eq!(
        d.json(&["breakers", "open", "db"], 0)["state"],
        "forced_open"
    );
    breakers_until(&d, "the transition to forced_open", |a| {
        transitions(a).len() == 1
    });
    d.write_config(
        r#"
[root]

[[root.children]]
name = "breakers"
kind = "breakers"
breakers.db    = { failure_threshold = 7, success_threshold = 3, open_for = "2m" }
breakers.queue = { failure_threshold = 2 }

[[root.children]]
name = "beat"
kind = "heartbeat"
every = "1h"
"#,
    );
    let reloaded = d.json(&["reload"], 0);
    assert_eq!(
        reloaded["changes"][0]["path"], "root/breakers",
        "{reloaded}"
    );
    let listed = d.json(&["breakers"], 1);
    assert_eq!(
        states(&listed),
        pairs(&[("db", "forced_open"), ("queue", "closed")])
    );
    let db = &listed["breakers"][0];
    assert_eq!(
        (
            &db["failure_threshold"],
            &db["success_threshold"],
            &db["wait_s"]
        ),
        (&Value::from(7), &Value::from(3), &Value::from(120.0))
    );
    assert_eq!(
        transitions(&listed),
        vec![step("db", "closed", "forced_open")]
    );
    // The new incarnation persists what happens next.
    d.json(&["breakers", "reset", "db"], 0);
    breakers_until(&d, "the reset", |a| transitions(a).len() == 2);

    d.json(&["breakers", "open", "queue"], 0);
    breakers_until(&d, "queue forced open", |a| transitions(a).len() == 3);

    // Without a breakers child, there is no breaker to list or act on.
    d.write_config(crate::util::ONE_CHILD);
    d.json(&["reload"], 0);
    let listed = d.json(&["breakers"], 0);
    assert_eq!(listed["breakers"], serde_json::json!([]), "{listed}");
    assert_eq!(d.cli(&["breakers", "open", "db"]).code, 1);
    assert_eq!(d.json(&["status"], 0)["breakers_open"], Value::Null);

    // A config that brings them back brings their stored state back.
    d.write_config(TREE);
    d.json(&["reload"], 0);
    let listed = d.json(&["breakers"], 0);
    assert_eq!(
        states(&listed),
        pairs(&[("api", "closed"), ("db", "closed")])
    );
    d.write_config(&TREE.replace("breakers.api", "breakers.queue"));
    d.json(&["reload"], 0);
    let listed = d.json(&["breakers"], 1);
    assert_eq!(
        states(&listed),
        pairs(&[("db", "closed"), ("queue", "forced_open")])
    );
}

/// With the breakers actor stopped by an operator, the breakers still work and their changes
/// are still stored; started again, it takes them over without storing anything twice.
#[test]
fn breakers_work_and_are_stored_while_their_actor_is_stopped() {
    let d = TestDaemon::start(TREE);
    assert_eq!(d.cli(&["stop", "root/breakers"]).code, 0);
    assert_eq!(
        d.json(&["breakers", "open", "db"], 0)["state"],
        "forced_open"
    );
    breakers_until(&d, "the transition stored without the actor", |a| {
        transitions(a) == vec![step("db", "closed", "forced_open")]
    });
    assert_eq!(d.cli(&["start", "root/breakers"]).code, 0);
    assert_eq!(
        states(&d.json(&["breakers"], 1)),
        pairs(&[("api", "closed"), ("db", "forced_open")])
    );
    d.json(&["breakers", "reset", "db"], 0);
    let listed = breakers_until(&d, "the reset", |a| transitions(a).len() >= 2);
    assert_eq!(
        transitions(&listed),
        vec![
            step("db", "closed", "forced_open"),
            step("db", "forced_open", "closed")
        ]
    );
}
