//! `metasystem schema` checked by a real validator: Python's `jsonschema` (draft-07) against
//! the repository's `supervision.toml` and every example in `deploy/examples/`, each turned
//! into JSON by the `toml` crate; and a typo'd key and a wrong type refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::{missing_tool, BIN};

const VALIDATE: &str = r#"
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft7Validator.check_schema(schema)
validator = jsonschema.Draft7Validator(schema)
bad = 0
for path in sys.argv[2:]:
    errors = sorted(validator.iter_errors(json.load(open(path))), key=lambda e: list(e.absolute_path))
    for e in errors:
        # The deepest cause: `if`/`then` branches report the key that failed.
        leaf = e
        while leaf.context:
            leaf = leaf.context[0]
        print(f"{path}: {'/'.join(map(str, e.absolute_path))}: {e.message[:300]} ({leaf.message[:200]})")
    bad += len(errors) > 0
    if not errors:
        print(f"{path}: valid")
sys.exit(1 if bad else 0)
"#;

/// Whether python3 can import jsonschema.
fn have_jsonschema() -> bool {
    Command::new("python3")
        .args(["-c", "import jsonschema"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Writes `toml_text` as JSON into `dir`, named after `name`.
fn as_json(dir: &Path, name: &str, toml_text: &str) -> PathBuf {
    let value: serde_json::Value =
        toml::from_str(toml_text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    path
}

/// Runs the validator on `files`: (passed, what it printed).
fn validate(schema: &Path, files: &[PathBuf]) -> (bool, String) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(VALIDATE)
        .arg(schema)
        .args(files)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_schema_accepts_the_shipped_configs_and_refuses_typos_and_wrong_types() {
    if !have_jsonschema() {
        missing_tool("python3 cannot import jsonschema (pip install jsonschema)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN).arg("schema").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let schema = dir.path().join("supervision.schema.json");
    std::fs::write(&schema, &out.stdout).unwrap();

    // The shipped configs are valid.
    let mut good = vec![as_json(
        dir.path(),
        "supervision",
        &std::fs::read_to_string(repo().join("supervision.toml")).unwrap(),
    )];
    let mut examples: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    examples.sort();
    assert!(!examples.is_empty());
    for p in &examples {
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        good.push(as_json(
            dir.path(),
            &name,
            &std::fs::read_to_string(p).unwrap(),
        ));
    }
    let (ok, text) = validate(&schema, &good);
    assert!(ok, "the schema refuses a shipped config:\n{text}");
    assert_eq!(text.matches(": valid").count(), good.len(), "{text}");

    // Each mistake, alone in an otherwise valid file, is refused where it is.
    let base = "[daemon]\nstate_dir = \"/tmp/x\"\n[root]\nstrategy = \"one_for_one\"\n";
    let mistakes = [
        // A typo'd key of the file, of a table, of a child, of a kind, of a nested table.
        ("top_typo", format!("{base}[deamon]\n[[root.children]]\nname = \"h\"\nkind = \"heartbeat\"\n"), "deamon"),
        ("daemon_typo", "[daemon]\nstate_dri = \"/tmp/x\"\n[root]\n[[root.children]]\nname = \"h\"\nkind = \"heartbeat\"\n".to_string(), "state_dri"),
        ("child_typo", format!("{base}[[root.children]]\nname = \"h\"\nkind = \"heartbeat\"\nrestrat = \"transient\"\n"), "restrat"),
        ("kind_typo", format!("{base}[[root.children]]\nname = \"h\"\nkind = \"heartbeat\"\nevery_s = 10\n"), "every_s"),
        ("probe_typo", format!("{base}[[root.children]]\nname = \"p\"\nkind = \"probe\"\ncheck = \"disk\"\npath = \"/\"\nwarn_bellow = \"1GB\"\n"), "warn_bellow"),
        ("key_of_another_check", format!("{base}[[root.children]]\nname = \"p\"\nkind = \"probe\"\ncheck = \"memory\"\npath = \"/\"\n"), "path"),
        ("heal_typo", format!("{base}[[root.children]]\nname = \"p\"\nkind = \"probe\"\ncheck = \"breakers\"\n[[root.children.heal]]\naction = \"vacuum\"\ndb = \"x.db\"\nmax_per_huor = 2\n"), "max_per_huor"),
        ("channel_typo", format!("{base}[[root.children]]\nname = \"a\"\nkind = \"alerts\"\n[[root.children.channels]]\nname = \"w\"\ntype = \"webhook\"\nulr = \"http://127.0.0.1/\"\n"), "ulr"),
        ("backoff_typo", format!("{base}backoff = {{ inital = \"1s\" }}\n[[root.children]]\nname = \"h\"\nkind = \"heartbeat\"\n"), "inital"),
        ("breaker_typo", format!("{base}[[root.children]]\nname = \"b\"\nkind = \"breakers\"\nbreakers.x = {{ open_fro = \"1m\" }}\n"), "open_fro"),
        ("start_timeout_of_a_supervisor", format!("{base}[[root.children]]\nname = \"s\"\nkind = \"supervisor\"\nstart_timeout = \"5s\"\n"), "start_timeout"),
        // Wrong types and words.
        ("intensity_as_string", "[daemon]\nstate_dir = \"/tmp/x\"\n[root]\nintensity = \"3\"\n[[root.children]]\nname = \"h\"\nkind = \"heartbeat\"\n".to_string(), "'3' is not of type 'integer'"),
        ("every_as_integer", format!("{base}[[root.children]]\nname = \"h\"\nkind = \"heartbeat\"\nevery = 10\n"), "10 is not of type 'string'"),
        ("watch_as_string", format!("{base}[[root.children]]\nname = \"s\"\nkind = \"sync_target\"\ntarget = \"/tmp/t\"\nwatch = \"yes\"\n"), "'yes' is not of type 'boolean'"),
        ("unknown_kind", format!("{base}[[root.children]]\nname = \"h\"\nkind = \"hearbeat\"\n"), "hearbeat"),
        ("unknown_strategy", "[daemon]\nstate_dir = \"/tmp/x\"\n[root]\nstrategy = \"one_for_none\"\n[[root.children]]\nname = \"h\"\nkind = \"heartbeat\"\n".to_string(), "one_for_none"),
        ("no_root", "[daemon]\nstate_dir = \"/tmp/x\"\n".to_string(), "'root' is a required property"),
        ("child_without_name", format!("{base}[[root.children]]\nkind = \"heartbeat\"\n"), "'name' is a required property"),
    ];
    for (name, text, expected) in &mistakes {
        let file = as_json(dir.path(), name, text);
        let (ok, said) = validate(&schema, std::slice::from_ref(&file));
        assert!(!ok, "{name}: the schema accepts it:\n{text}\n{said}");
        assert!(
            said.contains(expected),
            "{name}: expected {expected:?} in:\n{said}"
        );
    }
}
