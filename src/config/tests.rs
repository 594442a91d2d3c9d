use std::path::Path;
use std::time::Duration;

use metasystem_actors::{Backoff, Jitter, Restart, Shutdown, Strategy};

use super::diff::{plan, Step};
use super::*;
use crate::kinds::heartbeat::HeartbeatConfig;

fn ok(src: &str) -> Config {
    match parse(src, "t.toml", Path::new("/base")) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn errors(src: &str) -> Vec<String> {
    match parse(src, "t.toml", Path::new("/base")) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

const NESTED: &str = r#"
[daemon]
state_dir = "/var/lib/ms"
socket = "run/ms.sock"

[root]
strategy = "rest_for_one"
intensity = 3
period = "10s"
backoff = { initial = "200ms", max = "5s", factor = 3, jitter = "none", reset_after = "1m" }

[[root.children]]
name = "beat"
kind = "heartbeat"
every = "2s"
restart = "transient"
shutdown = "brutal_kill"

[[root.children]]
name = "sync"
kind = "supervisor"
strategy = "one_for_all"

  [[root.children.children]]
  name = "icloud"
  kind = "heartbeat"
  shutdown = "250ms"
"#;

#[test]
fn the_embedded_default_is_valid() {
    let config = match parse(EMBEDDED, EMBEDDED_NAME, Path::new("/")) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(config.root.settings.strategy, Strategy::OneForOne);
    assert!(config
        .root
        .children
        .iter()
        .any(|c| matches!(c.kind, Kind::Heartbeat(_))));
}

#[test]
fn a_nested_tree_parses_with_defaults_filled_in() {
    let c = ok(NESTED);
    assert_eq!(c.daemon.state_dir, Path::new("/var/lib/ms"));
    assert_eq!(c.daemon.socket, Path::new("/base/run/ms.sock"));
    assert_eq!(c.daemon.max_connections, 32);
    assert_eq!(
        c.daemon.blocking_checks,
        metasystem_actors::probes::Slots::default_limit()
    );
    assert!((4..=32).contains(&c.daemon.blocking_checks));
    let root = &c.root.settings;
    assert_eq!(
        (root.strategy, root.intensity, root.period),
        (Strategy::RestForOne, 3, Duration::from_secs(10))
    );
    assert_eq!(
        root.backoff,
        Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
            factor: 3.0,
            jitter: Jitter::None,
            reset_after: Duration::from_secs(60),
        }
    );
    let beat = &c.root.children[0];
    assert_eq!(beat.name, "beat");
    assert_eq!(beat.restart, Restart::Transient);
    assert_eq!(beat.shutdown, Shutdown::BrutalKill);
    assert_eq!(
        beat.kind,
        Kind::Heartbeat(HeartbeatConfig {
            every: Duration::from_secs(2)
        })
    );
    let Kind::Supervisor(sync) = &c.root.children[1].kind else {
        panic!("sync is a supervisor")
    };
    assert_eq!(c.root.children[1].shutdown, Shutdown::Infinity);
    assert_eq!(sync.settings.strategy, Strategy::OneForAll);
    assert_eq!(sync.settings.intensity, 1, "OTP's default");
    assert_eq!(sync.settings.backoff, c.root.settings.backoff, "inherited");
    let icloud = &sync.children[0];
    assert_eq!(
        icloud.shutdown,
        Shutdown::Timeout(Duration::from_millis(250))
    );
    assert_eq!(
        icloud.kind,
        Kind::Heartbeat(HeartbeatConfig {
            every: Duration::from_secs(10)
        })
    );
}

#[test]
fn tilde_is_home() {
    let home = std::env::var("HOME").unwrap_or_default();
    if home.is_empty() {
        return;
    }
    let c = ok(&format!("[daemon]\nstate_dir = \"~/x\"\n{ONE_CHILD}"));
    assert_eq!(c.daemon.state_dir, Path::new(&home).join("x"));
    assert_eq!(c.daemon.socket, Path::new(&home).join("x/control.sock"));
}

/// Every problem in the file is reported at once, each at its line and column.
#[test]
fn every_error_is_collected_with_its_position() {
    let src = r#"[daemon]
state_dir = "/s"
sockt = "/x.sock"

[root]
strategy = "one_for_al"
intensty = 3
period = "soon"
backoff = { initial = "1s", max = "10ms" }

[[root.children]]
name = "a/b"
kind = "heartbeat"

[[root.children]]
name = "dup"
kind = "heartbat"

[[root.children]]
name = "dup"
kind = "heartbeat"
every = 5

[[root.children]]
kind = "heartbeat"
password = "hunter2"
"#;
    let got = errors(src);
    let expected = [
        "t.toml:3:1: unknown key `sockt` in [daemon]; did you mean `socket`?",
        "t.toml:6:12: `strategy` in [root] is \"one_for_al\", which is not one of `one_for_one`, `one_for_all`, `rest_for_one`, `dynamic`; did you mean `one_for_all`?",
        "t.toml:7:1: unknown key `intensty` in [root]; did you mean `intensity`?",
        "t.toml:8:10: `period` in [root]: \"soon\" is not a duration",
        "t.toml:9:35: `max` in the backoff of [root] must not be less than `initial`",
        "t.toml:12:8: \"a/b\" is not a valid name: a child name is 1 to 64 characters: letters, digits, '-', '_' and '.', starting with a letter or digit, without '..'",
        "t.toml:17:8: unknown kind \"heartbat\" for child `root/dup`: it must be one of `supervisor`, `heartbeat`, ",
        "t.toml:20:8: duplicate child name \"dup\" under `root`",
        "t.toml:22:9: `every` in child `root/dup` must be a string, not an integer",
        "t.toml:24:1: a child of `root` is missing the required key `name`",
        "t.toml:26:1: secrets are never written in the file",
    ];
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (got, want) in got.iter().zip(expected) {
        assert!(got.starts_with(want), "\n got: {got}\nwant: {want}");
    }
}

#[test]
fn syntax_errors_have_positions() {
    let got = errors("[root]\nstrategy = one_for_one\n");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("t.toml:2:12: "), "{got:?}");
}

#[test]
fn values_out_of_range_are_errors() {
    let got = errors(
        "[daemon]\nstate_dir = \"/s\"\nmax_connections = 0\n[root]\nintensity = -1\nperiod = \"0s\"\nbackoff = { factor = 0.5, jitter = \"some\" }\n",
    );
    let slots = errors(&format!(
        "[daemon]\nstate_dir = \"/s\"\nblocking_checks = 0\n{ONE_CHILD}"
    ));
    assert_eq!(
        slots,
        ["t.toml:3:19: `blocking_checks` in [daemon] must be between 1 and 256"]
    );
    let joined = got.join("\n");
    for want in [
        "t.toml:3:19: `max_connections` in [daemon] must be between 2 and 1024",
        "t.toml:5:13: `intensity` in [root] must be between 0 and",
        "t.toml:6:10: `period` in [root] must be more than zero",
        "t.toml:7:22: `factor` in the backoff of [root] must be at least 1.0",
        "t.toml:7:36: `jitter` in the backoff of [root] is \"some\", which is not one of `none`, `full`",
    ] {
        assert!(joined.contains(want), "missing {want:?} in\n{joined}");
    }
}

#[test]
fn log_stderr_defaults_to_off_with_a_log_file_and_needs_one_to_be_off() {
    let with = |daemon: &str| format!("[daemon]\nstate_dir = \"/s\"\n{daemon}\n{ONE_CHILD}");
    assert!(
        ok(&with("")).daemon.log_stderr,
        "no file: stderr is the log"
    );
    let c = ok(&with("log_file = \"logs/d.log\""));
    assert!(
        !c.daemon.log_stderr,
        "a file: stderr only for what cannot go there"
    );
    assert_eq!(
        c.daemon.log_file.map(|f| f.path),
        Some(PathBuf::from("/s/logs/d.log"))
    );
    assert!(
        ok(&with("log_file = \"d.log\"\nlog_stderr = true"))
            .daemon
            .log_stderr
    );
    assert!(ok(&with("log_stderr = true")).daemon.log_stderr);
    assert_eq!(
        errors(&with("log_stderr = false")),
        ["t.toml:3:14: `log_stderr = false` in [daemon] needs a `log_file`: without one the daemon would log nowhere"]
    );
    assert_eq!(
        errors(&with("log_file = \"d.log\"\nlog_stderr = \"no\"")),
        ["t.toml:4:14: `log_stderr` in [daemon] must be true or false, not a string"]
    );
}

#[test]
fn alerts_name_the_host_by_its_identity_not_the_hostname() {
    // Alertmanager's `host` label and the alerts' text: two cloned machines with one
    // hostname and their own host_id must not merge their alerts.
    let src = "[daemon]\nstate_dir = \"/s\"\nhost_id = \"amhost\"\n[root]\n\
               [[root.children]]\nname = \"alerts\"\nkind = \"alerts\"\n";
    match &ok(src).root.children[0].kind {
        crate::kinds::Kind::Alerts(a) => assert_eq!(a.host, "amhost"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn host_id_is_checked_where_it_is_written() {
    let with = |daemon: &str| format!("[daemon]\nstate_dir = \"/s\"\n{daemon}\n{ONE_CHILD}");
    let c = ok(&with("host_id = \"laptop-2\""));
    assert_eq!(c.daemon.host_id.as_deref(), Some("laptop-2"));
    assert_eq!(ok(&with("")).daemon.host_id, None);
    for (value, says) in [
        ("\"\"", "it is empty"),
        ("\"my laptop\"", "it holds ' '"),
        ("\"../x\"", "it holds '/'"),
        ("\".hidden\"", "it starts with '.'"),
    ] {
        let got = errors(&with(&format!("host_id = {value}")));
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("t.toml:3:11: `host_id` in [daemon]: ") && got[0].contains(says),
            "{value}: {got:?}"
        );
    }
    let got = errors(&with("host_id = 7"));
    assert!(got[0].starts_with("t.toml:3:11: "), "{got:?}");
}

#[test]
fn unknown_keys_without_a_close_match_list_the_valid_ones() {
    let got = errors(&format!(
        "[daemon]\nstate_dir = \"/s\"\ncolour = \"red\"\n{ONE_CHILD}"
    ));
    assert_eq!(
        got,
        ["t.toml:3:1: unknown key `colour` in [daemon] (valid keys: blocking_checks, host_id, http, http_allow_remote, idle_timeout, log_file, log_format, log_keep, log_rotate, log_stderr, max_connections, socket, state_dir)"]
    );
}

#[test]
fn the_embedded_defaults_commented_export_keys_are_valid_when_uncommented() {
    let uncommented: String = EMBEDDED
        .lines()
        .map(|l| {
            for key in ["# http", "# [telemetry]", "# otlp_", "# blocking_checks"] {
                if let Some(rest) = l.strip_prefix(key) {
                    return format!("{}{rest}\n", &key[2..]);
                }
            }
            format!("{l}\n")
        })
        .collect();
    assert!(uncommented.contains("\n[telemetry]\n"));
    let c = ok(&uncommented);
    assert_eq!(c.daemon.http, Some("127.0.0.1:9464".parse().unwrap()));
    assert_eq!(c.daemon.blocking_checks, 4);
    assert_eq!(
        c.telemetry.otlp_endpoint.as_deref(),
        Some("http://127.0.0.1:4318")
    );
}

#[test]
fn http_and_telemetry_are_off_unless_set() {
    let c = ok(&format!("[daemon]\nstate_dir = \"/s\"\n{ONE_CHILD}"));
    assert_eq!(c.daemon.http, None);
    assert_eq!(c.telemetry.otlp_endpoint, None);
    assert_eq!(c.telemetry.otlp_interval, Duration::from_secs(60));
}

#[test]
fn http_on_loopback_and_telemetry_parse() {
    let c = ok(&format!(
        "[daemon]\nstate_dir = \"/s\"\nhttp = \"127.0.0.1:9464\"\n[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318/\"\notlp_interval = \"5s\"\n{ONE_CHILD}"
    ));
    assert_eq!(c.daemon.http, Some("127.0.0.1:9464".parse().unwrap()));
    assert_eq!(c.daemon.blocking_checks, 4);
    assert_eq!(
        c.telemetry.otlp_endpoint.as_deref(),
        Some("http://127.0.0.1:4318")
    );
    assert_eq!(c.telemetry.otlp_interval, Duration::from_secs(5));
    let c = ok(&format!(
        "[daemon]\nstate_dir = \"/s\"\nhttp = \"[::1]:0\"\n[telemetry]\notlp_endpoint = \"https://[::1]:4318/otel\"\n{ONE_CHILD}"
    ));
    assert_eq!(c.daemon.http, Some("[::1]:0".parse().unwrap()));
    assert_eq!(
        c.telemetry.otlp_endpoint.as_deref(),
        Some("https://[::1]:4318/otel")
    );
}

#[test]
fn http_on_another_address_needs_allow_remote() {
    let got = errors(&format!(
        "[daemon]\nstate_dir = \"/s\"\nhttp = \"0.0.0.0:9464\"\n{ONE_CHILD}"
    ));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with(
            "t.toml:3:8: `http` in [daemon] is 0.0.0.0:9464, which is not a loopback address"
        ),
        "{got:?}"
    );
    assert!(got[0].contains("set `http_allow_remote = true`"), "{got:?}");
    let c = ok(&format!(
        "[daemon]\nstate_dir = \"/s\"\nhttp = \"0.0.0.0:9464\"\nhttp_allow_remote = true\n{ONE_CHILD}"
    ));
    assert_eq!(c.daemon.http, Some("0.0.0.0:9464".parse().unwrap()));
}

#[test]
fn bad_http_and_telemetry_values_are_errors_with_positions() {
    let got = errors(&format!(
        "[daemon]\nstate_dir = \"/s\"\nhttp = \"localhost:9464\"\nhttp_allow_remote = \"yes\"\n[telemetry]\notlp_endpoint = \"ftp://x\"\notlp_interval = \"0s\"\notlp_intervall = \"1s\"\n{ONE_CHILD}"
    ));
    let joined = got.join("\n");
    for want in [
        "t.toml:3:8: `http` in [daemon] is \"localhost:9464\": it must be an IP address and a port",
        "t.toml:4:21: `http_allow_remote` in [daemon] must be true or false, not a string",
        "t.toml:6:17: `otlp_endpoint` in [telemetry] is \"ftp://x\": it must be an http or https URL",
        "t.toml:7:17: `otlp_interval` in [telemetry] must be between 1s and 1h",
        "t.toml:8:1: unknown key `otlp_intervall` in [telemetry]; did you mean `otlp_interval`?",
    ] {
        assert!(joined.contains(want), "missing {want:?} in\n{joined}");
    }
    for endpoint in [
        "http://",
        "http:///v1",
        "https://h:port",
        "http://h:70000",
        "http://user:pw@h",
        "http://h/?q=1",
        "http://h /x",
        "127.0.0.1:4318",
    ] {
        let got = errors(&format!(
            "[telemetry]\notlp_endpoint = {endpoint:?}\n[daemon]\nstate_dir = \"/s\"\n{ONE_CHILD}"
        ));
        assert_eq!(got.len(), 1, "{endpoint}: {got:?}");
        assert!(
            got[0].starts_with("t.toml:2:17: `otlp_endpoint`"),
            "{got:?}"
        );
    }
    let got = errors(&format!(
        "[telemetry]\nhttp = \"127.0.0.1:1\"\n[daemon]\nstate_dir = \"/s\"\n{ONE_CHILD}"
    ));
    assert!(
        got[0].contains("unknown key `http` in [telemetry]"),
        "{got:?}"
    );
}

/// The smallest tree a config may have.
const ONE_CHILD: &str = "[root]\n[[root.children]]\nname = \"a\"\nkind = \"heartbeat\"\n";

/// Regression: an empty file, or one truncated at a line boundary, reloaded as "remove
/// everything" and `status` said healthy.
#[test]
fn a_config_needs_a_root_with_children() {
    for src in ["", "\n", "[daemon]\nstate_dir = \"/s\"\n"] {
        let got = errors(src);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("t.toml:1:1: the file has no [root] table"),
            "{got:?}"
        );
    }
    let got = errors("[daemon]\nstate_dir = \"/s\"\n[root]\nstrategy = \"one_for_all\"\n");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("[root] has no children"), "{got:?}");
    assert!(
        ok(&format!("[daemon]\nstate_dir = \"/s\"\n{ONE_CHILD}"))
            .root
            .children
            .len()
            == 1
    );
}

/// Regression: `check` accepted a socket path that `run` refuses (over 100 bytes).
#[test]
fn a_socket_path_too_long_for_a_unix_socket_is_refused() {
    let long = format!("/{}/control.sock", "d".repeat(100));
    let got = errors(&format!(
        "[daemon]\nsocket = \"{long}\"\nstate_dir = \"/s\"\n{ONE_CHILD}"
    ));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("t.toml:2:10: `socket` in [daemon]:")
            && got[0].contains("too long for a Unix socket"),
        "{got:?}"
    );
    // The default socket lives in the state dir: a long state dir is caught too.
    let got = errors(&format!(
        "[daemon]\nstate_dir = \"/{}\"\n{ONE_CHILD}",
        "s".repeat(100)
    ));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("`state_dir` in [daemon] holds the control socket"),
        "{got:?}"
    );
}

/// `levels` supervisors nested under the root, with a heartbeat in the deepest.
fn nested(levels: usize) -> String {
    let mut src = String::from("[daemon]\nstate_dir = \"/s\"\n[root]\n");
    let mut key = String::from("root.children");
    for i in 0..levels {
        src.push_str(&format!(
            "[[{key}]]\nname = \"s{i}\"\nkind = \"supervisor\"\n"
        ));
        key.push_str(".children");
    }
    src.push_str(&format!(
        "[[{key}]]\nname = \"leaf\"\nkind = \"heartbeat\"\n"
    ));
    src
}

/// Regression: nesting deeper than 78 failed with `FILE:1:1: recursion limit`. 63 nested
/// supervisors (64 levels) are fine; deeper says the limit and the line where it is passed.
#[test]
fn deep_nesting_has_a_stated_limit() {
    let deepest = ok(&nested(63));
    let mut sup = &deepest.root;
    let mut levels = 0;
    while let Some(Kind::Supervisor(inner)) = sup.children.first().map(|c| &c.kind) {
        sup = inner;
        levels += 1;
    }
    assert_eq!(levels, 63);
    for too_deep in [64, 77, 100, 300] {
        let got = errors(&nested(too_deep));
        assert_eq!(got.len(), 1, "{too_deep}: {got:?}");
        // The header of the 65th level is on line 4 + 3 * 64.
        assert!(
            got[0].starts_with("t.toml:196:1: ")
                && got[0].contains("at most 64 levels below the root"),
            "{too_deep}: {got:?}"
        );
    }
}

fn tree(src: &str) -> SupervisorConfig {
    ok(&format!("[daemon]\nstate_dir = \"/s\"\n{src}")).root
}

fn paths(steps: &[Step]) -> Vec<(String, &'static str)> {
    steps.iter().map(|s| (s.path(), s.verb())).collect()
}

const BASE: &str = r#"
[[root.children]]
name = "a"
kind = "heartbeat"
[[root.children]]
name = "grp"
kind = "supervisor"
  [[root.children.children]]
  name = "x"
  kind = "heartbeat"
  [[root.children.children]]
  name = "y"
  kind = "heartbeat"
[[root.children]]
name = "b"
kind = "heartbeat"
"#;

#[test]
fn an_unchanged_config_plans_nothing() {
    let t = tree(BASE);
    assert!(plan("root", &t, &t).is_empty());
}

#[test]
fn startup_is_the_diff_from_an_empty_root() {
    let t = tree(BASE);
    let empty = SupervisorConfig {
        settings: t.settings,
        children: Vec::new(),
    };
    let steps = plan("root", &empty, &t);
    assert_eq!(
        paths(&steps),
        [
            ("root/a".to_string(), "add"),
            ("root/grp".to_string(), "add"),
            ("root/b".to_string(), "add")
        ]
    );
}

#[test]
fn add_change_remove() {
    let old = tree(BASE);
    let new = tree(
        r#"
[[root.children]]
name = "a"
kind = "heartbeat"
every = "1s"
[[root.children]]
name = "new"
kind = "heartbeat"
[[root.children]]
name = "grp"
kind = "supervisor"
  [[root.children.children]]
  name = "x"
  kind = "heartbeat"
  [[root.children.children]]
  name = "y"
  kind = "heartbeat"
"#,
    );
    let steps = plan("root", &old, &new);
    assert_eq!(
        paths(&steps),
        [
            ("root/b".to_string(), "remove"),
            ("root/a".to_string(), "restart with new config"),
            ("root/new".to_string(), "add"),
        ]
    );
    assert!(matches!(&steps[2], Step::Add { position: 1, .. }));
}

/// A nested supervisor changes in place: its untouched children keep running, and the parent
/// records the new config afterwards.
#[test]
fn nested_changes_happen_in_place() {
    let old = tree(BASE);
    let new = tree(&BASE.replace(
        "  [[root.children.children]]\n  name = \"y\"\n  kind = \"heartbeat\"\n",
        "  [[root.children.children]]\n  name = \"z\"\n  kind = \"heartbeat\"\n",
    ));
    let steps = plan("root", &old, &new);
    assert_eq!(
        paths(&steps),
        [
            ("root/grp/y".to_string(), "remove"),
            ("root/grp/z".to_string(), "add"),
            ("root/grp".to_string(), "record new config"),
        ]
    );
    let new = tree(&BASE.replace(
        "kind = \"supervisor\"\n",
        "kind = \"supervisor\"\nstrategy = \"one_for_all\"\n",
    ));
    assert_eq!(
        paths(&plan("root", &old, &new)),
        [
            ("root/grp".to_string(), "reconfigure"),
            ("root/grp".to_string(), "record new config"),
        ]
    );
    // Changing how the supervisor itself is supervised replaces it whole.
    let new = tree(&BASE.replace(
        "kind = \"supervisor\"\n",
        "kind = \"supervisor\"\nrestart = \"transient\"\n",
    ));
    assert_eq!(
        paths(&plan("root", &old, &new)),
        [("root/grp".to_string(), "restart with new config")]
    );
}

#[test]
fn root_settings_and_order() {
    let old = tree(BASE);
    let reordered = tree(&format!(
        "[root]\nintensity = 9\n{}",
        r#"
[[root.children]]
name = "b"
kind = "heartbeat"
[[root.children]]
name = "a"
kind = "heartbeat"
[[root.children]]
name = "grp"
kind = "supervisor"
  [[root.children.children]]
  name = "x"
  kind = "heartbeat"
  [[root.children.children]]
  name = "y"
  kind = "heartbeat"
"#
    ));
    let steps = plan("root", &old, &reordered);
    assert_eq!(
        paths(&steps),
        [
            ("root".to_string(), "reconfigure"),
            ("root".to_string(), "reorder")
        ]
    );
    assert!(matches!(&steps[1], Step::Reorder { names, .. } if names == &["b", "a", "grp"]));
}

#[test]
fn durations_are_bounded() {
    let got = errors(
        "[daemon]\nstate_dir = \"/s\"\n[root]\nperiod = \"500y\"\nbackoff = { initial = \"2d\", max = \"1s\" }\n[[root.children]]\nname = \"h\"\nkind = \"heartbeat\"\nevery = \"1ms\"\nshutdown = \"2h\"\n",
    );
    let joined = got.join("\n");
    for want in [
        "t.toml:4:10: `period` in [root] must be more than zero and at most 366d",
        "t.toml:5:23: `initial` in the backoff of [root] must be more than zero and at most 1d",
        "t.toml:9:9: `every` in child `root/h` must be between 100ms and 1d",
        "t.toml:10:12: `shutdown` in child `root/h` is \"2h\"",
    ] {
        assert!(joined.contains(want), "missing {want:?} in\n{joined}");
    }
    // A bad `initial` is reported once, not again as "max less than initial".
    assert!(!joined.contains("must not be less than"), "{joined}");
}

#[test]
fn the_socket_is_found_even_in_a_broken_file() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let path = dir.path().join("s.toml");
    std::fs::write(
        &path,
        "[daemon]\nsocket = \"run/ms.sock\"\nstate_dir = \"/x\"\n[root]\nstrategy = \n",
    )
    .unwrap_or_default();
    assert_eq!(
        socket_of(&Origin::File(path.clone())),
        Ok(dir.path().join("run/ms.sock"))
    );
    std::fs::write(&path, "[daemon]\nstate_dir = \"/var/ms\"\nbogus = 1\n").unwrap_or_default();
    assert_eq!(
        socket_of(&Origin::File(path)),
        Ok(Path::new("/var/ms/control.sock").to_path_buf())
    );
}

#[test]
fn only_regular_files_of_sane_size_are_read() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        let err = load(&Origin::File(fifo)).expect_err("a FIFO is refused");
        assert!(
            err.to_string()
                .ends_with(":1:1: cannot read: not a regular file"),
            "{err}"
        );
    }
    let err = load(&Origin::File(Path::new("/dev/zero").to_path_buf())).expect_err("a device");
    assert!(err.to_string().contains("not a regular file"), "{err}");
    let big = dir.path().join("big.toml");
    std::fs::write(&big, vec![b'#'; (MAX_FILE + 1) as usize]).unwrap_or_default();
    let err = load(&Origin::File(big)).expect_err("too big");
    assert!(err.to_string().contains("limit"), "{err}");
}

/// `start_timeout`: a duration or `infinity` on workers (default 60 s); refused on a
/// supervisor, whose start is its children's starts.
#[test]
fn start_timeouts() {
    let c = tree(
        r#"
[root]
[[root.children]]
name = "default"
kind = "heartbeat"
[[root.children]]
name = "quick"
kind = "heartbeat"
start_timeout = "250ms"
[[root.children]]
name = "patient"
kind = "heartbeat"
start_timeout = "infinity"
[[root.children]]
name = "grp"
kind = "supervisor"
  [[root.children.children]]
  name = "x"
  kind = "heartbeat"
"#,
    );
    let timeouts: Vec<Option<Duration>> = c.children.iter().map(|c| c.start_timeout).collect();
    assert_eq!(
        timeouts,
        [
            Some(Duration::from_secs(60)),
            Some(Duration::from_millis(250)),
            None,
            None
        ]
    );
    let got = errors(
        "[daemon]\nstate_dir = \"/s\"\n[root]\n[[root.children]]\nname = \"g\"\nkind = \"supervisor\"\nstart_timeout = \"5s\"\n  [[root.children.children]]\n  name = \"x\"\n  kind = \"heartbeat\"\n[[root.children]]\nname = \"h\"\nkind = \"heartbeat\"\nstart_timeout = \"soon\"\n",
    );
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].starts_with(
            "t.toml:7:17: `start_timeout` does not apply to child `root/g` (a supervisor)"
        ),
        "{got:?}"
    );
    assert!(
        got[1].starts_with("t.toml:14:17: `start_timeout` in child `root/h` is \"soon\""),
        "{got:?}"
    );
}

/// Regression: a 70,000-character child name passed `check` and `reload`, then `tree` panicked
/// for everyone and the actor could not be addressed. Names are bounded and the error says the
/// rule (without repeating the whole name).
#[test]
fn child_names_follow_a_stated_rule() {
    for bad in [
        "x".repeat(70_000),
        "a\u{202e}b".into(),
        "..".into(),
        "zero\u{200b}width".into(),
    ] {
        let got = errors(&format!(
            "[daemon]\nstate_dir = \"/s\"\n[root]\n[[root.children]]\nname = \"{bad}\"\nkind = \"heartbeat\"\n"
        ));
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("t.toml:5:8: "), "{}", got[0]);
        assert!(got[0].contains("1 to 64 characters"), "{}", got[0]);
        assert!(got[0].len() < 300, "{}", got[0].len());
    }
}

/// A probe's `process`, a `restart` heal action's `path` and a `sync` heal action's `target`
/// must name something in the tree (of the right kind): otherwise the daemon would start and
/// only say at run time that "root/missing has not started". Each is reported at its value.
#[test]
fn references_to_other_children_must_resolve() {
    let head = "[daemon]\nstate_dir = \"/tmp/x\"\n[root]\n\
        [[root.children]]\nname = \"hb\"\nkind = \"heartbeat\"\n\
        [[root.children]]\nname = \"apps\"\nkind = \"supervisor\"\n\
        [[root.children.children]]\nname = \"web\"\nkind = \"process\"\ncommand = \"/bin/sh\"\n\
        [[root.children]]\nname = \"icloud\"\nkind = \"sync_target\"\ntarget = \"/tmp/elsewhere\"\npaths = [\"shared\"]\n";
    let probe =
        |body: &str| format!("{head}[[root.children]]\nname = \"p\"\nkind = \"probe\"\n{body}\n");
    // What resolves is accepted.
    ok(&probe(
        "check = \"process\"\nprocess = \"root/apps/web\"\nheal = [\
         { action = \"restart\", path = \"root/apps/web\" }, \
         { action = \"restart\", path = \"root/apps/\" }, \
         { action = \"sync\", target = \"icloud\" }]",
    ));

    // A sync_recency probe watches a target of the tree (regression: one naming no target
    // warned "no run recorded yet" for ever).
    ok(&probe("check = \"sync_recency\"\ntarget = \"icloud\""));
    let got = errors(&probe("check = \"sync_recency\"\ntarget = \"icluod\""));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("`target` in child `root/p`")
            && got[0].contains("did you mean \"icloud\"?"),
        "{got:?}"
    );

    let got = errors(&probe("check = \"process\"\nprocess = \"root/missing\""));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("t.toml:23:11: `process` in child `root/p`: \"root/missing\" is not in the tree (processes in the tree: root/apps/web)"),
        "{got:?}"
    );
    let got = errors(&probe("check = \"process\"\nprocess = \"root/hb\""));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("`process` in child `root/p`: \"root/hb\" is a `heartbeat`, not a `kind = \"process\"` child"),
        "{got:?}"
    );
    let got = errors(&probe("check = \"process\"\nprocess = \"root/apps/wbe\""));
    assert!(
        got[0].contains("did you mean \"root/apps/web\"?"),
        "{got:?}"
    );

    let got = errors(&probe(
        "check = \"breakers\"\nheal = [{ action = \"restart\", path = \"root/gone\" }, \
         { action = \"sync\", target = \"dropbox\" }, { action = \"sync\", target = \"root/icloud\" }, \
         { action = \"sync\", target = \"hb\" }]",
    ));
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(
        got[0].starts_with("t.toml:23:")
            && got[0].contains(
                "`path` in a heal action of child `root/p`: \"root/gone\" is not in the tree"
            ),
        "{got:?}"
    );
    assert!(
        got[1].contains("`target` in a heal action of child `root/p`: \"dropbox\" is not the name of a `kind = \"sync_target\"` child (sync targets: icloud)"),
        "{got:?}"
    );
    assert!(got[2].contains("not their tree path"), "{got:?}");
    assert!(got[3].contains("\"hb\" is not the name of"), "{got:?}");

    // A reference to a child whose own config is broken is not a second error.
    let broken = head.replace("command = \"/bin/sh\"", "command = \"/bin/sh\"\ncolour = 1");
    let src = format!(
        "{broken}[[root.children]]\nname = \"p\"\nkind = \"probe\"\ncheck = \"process\"\nprocess = \"root/apps/web\"\n"
    );
    let got = errors(&src);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("unknown key `colour`"), "{got:?}");
}

/// A directory at `log_file` refuses every line, and the daemon used to start anyway (its
/// lines then went to stderr, counted as stderr's drops): refused when the file is read,
/// naming the key.
#[test]
fn a_log_file_that_is_a_directory_is_refused() {
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(state.path().join("logs/daemon.log")).unwrap_or_else(|e| panic!("{e}"));
    let src = format!(
        "[daemon]\nstate_dir = \"{}\"\nlog_file = \"logs/daemon.log\"\n{ONE_CHILD}",
        state.path().display()
    );
    let got = errors(&src);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("t.toml:3:12: `log_file` in [daemon] is ")
            && got[0].contains("logs/daemon.log, which is a directory"),
        "{got:?}"
    );
    // A file that does not exist yet (nor its directory) is fine: it is made.
    let src = src.replace("logs/daemon.log", "new/daemon.log");
    assert!(ok(&src).daemon.log_file.is_some());
}

/// `log_max_size` too small was reported at the child's table header, not at the key.
#[test]
fn a_too_small_log_max_size_is_reported_at_its_value() {
    for value in ["\"10\"", "100"] {
        let src = format!(
            "[daemon]\nstate_dir = \"/s\"\n[root]\n[[root.children]]\nname = \"p\"\nkind = \"process\"\ncommand = \"/bin/sh\"\nlog_max_size = {value}\n"
        );
        assert_eq!(
            errors(&src),
            ["t.toml:8:16: `log_max_size` in child `root/p` must be at least 1KiB"],
            "{value}"
        );
    }
}

/// A pattern ending in `/` matches folders only, as rsync's (it was refused, 2026-11-23, when it
/// matched nothing: `exclude = ["**/cache/"]` synced every cache folder); bad patterns are
/// reported at their value, all of them.
#[test]
fn a_pattern_ending_in_a_slash_matches_folders_only() {
    let head = "[daemon]\nstate_dir = \"/tmp/s\"\n[root]\n[[root.children]]\nname = \"t\"\n\
                kind = \"sync_target\"\ntarget = \"/tmp/elsewhere\"\npaths = [\"shared\"]\n";
    let c = ok(&format!(
        "{head}exclude = [\"cache/\", \"*.bak\"]\ninclude = [\"docs/\", \"/shared/top.md\"]\n"
    ));
    let Kind::SyncTarget(t) = &c.root.children[0].kind else {
        panic!("not a sync target")
    };
    let sel = &t.spec.selection;
    // Every folder named `cache`, at any depth, with all it holds; a file so named is synced.
    for rel in [
        "shared/docs/cache/a",
        "shared/x/docs/cache/b",
        "shared/docs/a.bak",
    ] {
        assert!(!sel.wants(rel), "{rel} is synced");
    }
    assert!(sel.excludes_folder("shared/docs/cache"));
    // Only what `docs` folders hold, and the anchored file.
    for rel in [
        "shared/docs/cache",
        "shared/docs/a.md",
        "shared/x/docs/b",
        "shared/top.md",
    ] {
        assert!(sel.wants(rel), "{rel} is not synced");
    }
    assert!(!sel.wants("shared/a.md") && !sel.wants("shared/x/top.md"));

    let got = errors(&format!(
        "{head}exclude = [\"a//b\", \"ok\", \"{{x\"]\ninclude = [\"../up\", \"/\"]\n"
    ));
    let expected = [
        "t.toml:9:12: `exclude` in child `root/t`: \"a//b\" has an empty path component (`//`)",
        "t.toml:9:26: `exclude` in child `root/t`: \"{x\" is not a glob: unclosed alternate group",
        "t.toml:10:12: `include` in child `root/t`: \"../up\" has a `.` or `..` component",
        "t.toml:10:21: `include` in child `root/t`: \"/\" names no file or folder",
    ];
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (g, e) in got.iter().zip(expected) {
        assert!(g.starts_with(e), "{g}\nexpected: {e}");
    }
}

/// A target inside its primary, a primary inside its target, and the state dir inside a target
/// are refused, each at the value it is about, after resolving symlinks (a target reached
/// through a link into the primary was let through, as the paths were compared as written).
#[test]
fn a_target_nested_with_its_primary_or_the_state_dir_is_refused_at_its_value() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = std::fs::canonicalize(tmp.path()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(d.join("p")).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(d.join("p"), d.join("link")).unwrap_or_else(|e| panic!("{e}"));
    let d = d.display();
    let child = |name: &str, keys: &str| {
        format!("[[root.children]]\nname = \"{name}\"\nkind = \"sync_target\"\n{keys}\n")
    };
    let src = [
        format!("[daemon]\nstate_dir = \"{d}/s/state\"\n[root]\n"),
        child("t1", &format!("primary = \"{d}/p\"\ntarget = \"{d}/p/t\"")),
        child(
            "t2",
            &format!("primary = \"{d}/t2/p\"\ntarget = \"{d}/t2\""),
        ),
        child("t3", &format!("primary = \"{d}/p\"\ntarget = \"{d}/s\"")),
        child(
            "t4",
            &format!("primary = \"{d}/p\"\ntarget = \"{d}/link/sub\""),
        ),
        child(
            "t5",
            &format!("target = \"{d}/s/state/mirror\"\npaths = [\"shared\"]"),
        ),
        child(
            "fine",
            &format!("primary = \"{d}/p\"\ntarget = \"{d}/elsewhere\""),
        ),
    ]
    .concat();
    let got = errors(&src);
    let why =
        "(a target must be outside its primary and hold neither it nor the daemon's state dir)";
    let expected = [
        format!("t.toml:8:10: `target` in child `root/t1`: the target {d}/p/t is inside the primary {d}/p {why}"),
        format!("t.toml:12:11: `primary` in child `root/t2`: the primary {d}/t2/p is inside the target {d}/t2 {why}"),
        format!("t.toml:18:10: `target` in child `root/t3`: the daemon's state dir {d}/s/state is inside the target {d}/s {why}"),
        format!("t.toml:23:10: `target` in child `root/t4`: the target {d}/link/sub (resolved: {d}/p/sub) is inside the primary {d}/p {why}"),
        format!("t.toml:27:10: `target` in child `root/t5`: the target {d}/s/state/mirror is inside the primary {d}/s/state {why}"),
    ];
    assert_eq!(got, expected);
}

/// A listed path that is one of the daemon's own (its backups, its database) or inside one
/// would never sync, silently: an error at its value.
#[test]
fn a_listed_path_of_the_daemons_own_files_is_refused_at_its_value() {
    let src = r#"
[daemon]
state_dir = "/var/lib/ms"

[root]

[[root.children]]
name = "t"
kind = "sync_target"
target = "/mnt/drive/ms"
paths = ["shared", "backups/mine", "metastore.db"]
"#;
    let got = errors(src);
    let why =
        "(the daemon's own: never synced); take it out of `paths`, or sync a folder of your own";
    assert_eq!(
        got,
        [
            format!("t.toml:11:20: `paths` in child `root/t`: `backups/mine` is inside /var/lib/ms/backups {why}"),
            format!("t.toml:11:36: `paths` in child `root/t`: `metastore.db` is /var/lib/ms/metastore.db {why}"),
        ]
    );
}

#[test]
fn anomalies_name_watchable_series_and_bad_names_are_errors_with_positions() {
    let tree = |list: &str| {
        format!(
            "[daemon]\nstate_dir = \"/s\"\n[root]\n[[root.children]]\nname = \"m\"\nkind = \"metrics\"\nanomalies = {list}\n"
        )
    };
    ok(&tree("[\"sync_run\", \"probe_check:root/*\"]"));
    let got = errors(&tree("[\"actor_restarts\", \"nope\"]")).join("\n");
    for want in [
        "t.toml:7:14: `actor_restarts` in `anomalies` of",
        "counts occurrences",
        "t.toml:7:32: no metric named `nope`",
    ] {
        assert!(got.contains(want), "missing {want:?} in\n{got}");
    }
}

#[test]
fn a_range_that_allows_zero_says_so() {
    let src = "[daemon]\nstate_dir = \"/s\"\n[root]\n[[root.children]]\nname = \"a\"\nkind = \"alerts\"\ngroup_wait = \"2h\"\ncooldown = { warning = \"0s\" }\n";
    let got = errors(src).join("\n");
    assert!(
        got.contains("t.toml:7:14: `group_wait` in")
            && got.contains("must be at most 1h (0 allowed)"),
        "{got}"
    );
    let fine = "[daemon]\nstate_dir = \"/s\"\n[root]\n[[root.children]]\nname = \"a\"\nkind = \"alerts\"\ngroup_wait = \"0s\"\ncooldown = { warning = \"0s\" }\n";
    ok(fine);
}

#[test]
fn bad_channel_settings_are_errors_where_they_are_written() {
    let src = "[daemon]\nstate_dir = \"/s\"\n[root]\n[[root.children]]\nname = \"a\"\nkind = \"alerts\"\nchannels = [\n  { name = \"h\", type = \"webhook\", url = \"ftp://x/y\" },\n  { name = \"m\", type = \"email\", smtp = \"host:70000\", from = \"not an address\", to = [\"ok@example.org\", \"bad\"] },\n  { name = \"e\", type = \"email\", smtp = \"host:25\", from = \"a@example.org\", to = [] },\n]\n";
    let got = errors(src).join("\n");
    for want in [
        "t.toml:8:41: `url` is not an http(s) URL in channel `h`",
        "t.toml:9:40: `smtp` \"host:70000\" is not host:port in channel `m`",
        "t.toml:9:61: `from` \"not an address\" is not an email address",
        "t.toml:9:103: `to` \"bad\" is not an email address",
        "`to` in channel `e` of",
        "is empty",
    ] {
        assert!(got.contains(want), "missing {want:?} in\n{got}");
    }
    // Missing settings stay a warning (the channel is skipped): the file is valid.
    ok("[daemon]\nstate_dir = \"/s\"\n[root]\n[[root.children]]\nname = \"a\"\nkind = \"alerts\"\nchannels = [{ name = \"h\", type = \"webhook\" }]\n");
}

/// A supervisor without `backoff` inherits its parent's, the root the default one; `"none"`
/// restarts at once (OTP); any other word is an error at its position.
#[test]
fn backoff_is_inherited_defaulted_or_none() {
    let tree = |root: &str, inner: &str| {
        format!(
            "[daemon]\nstate_dir = \"/s\"\n[root]\n{root}\n[[root.children]]\nname = \"g\"\nkind = \"supervisor\"\n{inner}\n[[root.children.children]]\nname = \"h\"\nkind = \"heartbeat\"\n"
        )
    };
    let inner_of = |c: &Config| match &c.root.children[0].kind {
        Kind::Supervisor(g) => g.settings.backoff,
        other => panic!("{other:?}"),
    };
    let c = ok(&tree("", ""));
    assert_eq!(
        c.root.settings.backoff,
        crate::kinds::supervisor::DEFAULT_BACKOFF
    );
    assert_eq!(inner_of(&c), crate::kinds::supervisor::DEFAULT_BACKOFF);
    assert_eq!(c.root.settings.backoff.jitter, Jitter::Full);

    let c = ok(&tree("backoff = { initial = \"1s\", max = \"2s\" }", ""));
    assert_eq!(inner_of(&c).initial, Duration::from_secs(1));
    assert_eq!(inner_of(&c).max, Duration::from_secs(2));

    let c = ok(&tree("backoff = \"none\"", ""));
    assert_eq!(c.root.settings.backoff, Backoff::none());
    assert_eq!(inner_of(&c), Backoff::none(), "inherited");

    let c = ok(&tree("", "backoff = \"none\""));
    assert_eq!(
        c.root.settings.backoff,
        crate::kinds::supervisor::DEFAULT_BACKOFF
    );
    assert_eq!(inner_of(&c), Backoff::none());

    assert_eq!(
        errors(&tree("backoff = \"fast\"", "")),
        vec![
            "t.toml:4:11: `backoff` in [root] is \"fast\": it must be a table such as { initial = \"100ms\", max = \"30s\" }, or \"none\" (restart at once)"
        ]
    );
    assert_eq!(
        errors(&tree("backoff = 3", "")),
        vec!["t.toml:4:11: `backoff` in [root] must be a table, not an integer"]
    );
}

#[test]
fn bad_alertmanager_settings_are_errors_where_they_are_written() {
    let src = "[daemon]\nstate_dir = \"/s\"\n[root]\n[[root.children]]\nname = \"a\"\nkind = \"alerts\"\nchannels = [\n  { name = \"am\", type = \"alertmanager\", urls = [\"http://am1:9093\", \"am2:9093\", \"http://am1:9093/\"], resend_interval = \"2h\" },\n  { name = \"none\", type = \"alertmanager\", urls = [] },\n  { name = \"fast\", type = \"alertmanager\", urls = [\"http://h\"], resend_interval = \"0s\" },\n]\n";
    let got = errors(src).join("\n");
    for want in [
        "t.toml:8:68: `urls` item \"am2:9093\" in channel `am` of",
        "is not an http(s) URL (an Alertmanager's address, such as \"http://am1:9093\")",
        "t.toml:8:80: `urls` in channel `am` of",
        "names the Alertmanager \"http://am1:9093/\" twice",
        "`resend_interval` in channel `am` of",
        "must be between 1s and 1h",
        "`urls` in channel `none` of",
        "is empty: name at least one Alertmanager",
        "`resend_interval` in channel `fast` of",
    ] {
        assert!(got.contains(want), "missing {want:?} in\n{got}");
    }
    // An API path pasted as the address, port 0: errors at the item, the password never
    // shown (regression: a warning at run time, the whole channel skipped, the password in it).
    let got = errors("[daemon]\nstate_dir = \"/s\"\n[root]\n[[root.children]]\nname = \"a\"\nkind = \"alerts\"\nchannels = [{ name = \"am\", type = \"alertmanager\", urls = [\"http://u:s3cret@h:9093/api/v2/alerts\", \"http://h:0\"] }]\n");
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].starts_with("t.toml:7:59: `urls` item \"http://u:***@h:9093/api/v2/alerts\""),
        "{got:?}"
    );
    assert!(
        got[0].contains("ends in the API path /api/v2/alerts"),
        "{got:?}"
    );
    assert!(
        got[1].contains("names port 0, which nothing listens on"),
        "{got:?}"
    );
    assert!(!got.join("").contains("s3cret"), "{got:?}");
    // An item that is not a string is said once, not also as "empty".
    let got = errors("[daemon]\nstate_dir = \"/s\"\n[root]\n[[root.children]]\nname = \"a\"\nkind = \"alerts\"\nchannels = [{ name = \"am\", type = \"alertmanager\", urls = [9093] }]\n");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("every item of `urls`"), "{got:?}");
    // Complete, with the default resend interval; without `urls` it is skipped (a warning).
    ok("[daemon]\nstate_dir = \"/s\"\n[root]\n[[root.children]]\nname = \"a\"\nkind = \"alerts\"\nchannels = [{ name = \"am\", type = \"alertmanager\", urls = [\"http://127.0.0.1:9093\", \"http://127.0.0.1:9094\"] }]\n");
    ok("[daemon]\nstate_dir = \"/s\"\n[root]\n[[root.children]]\nname = \"a\"\nkind = \"alerts\"\nchannels = [{ name = \"am\", type = \"alertmanager\", resend_interval = \"30s\" }]\n");
}
