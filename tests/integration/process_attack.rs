//! Managed processes attacked as a hostile user would (issue 10), on the real binary: one test
//! per bug found, asserting the right behaviour. Every wait is bounded.

use crate::util::{run_cli, write_file};

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
