//! What `deploy/` ships: each example config passes `metasystem check`, the systemd units pass
//! `systemd-analyze verify` (where it is installed), the launchd plist is a well-formed plist.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{run_cli, write_file, BIN};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

/// `check FILE --json` on an example: valid, with the number of actors it declares. HOME is a
/// temp dir, so `~` paths point nowhere real (sync targets there are simply offline).
fn check_example(file: &str, actors: u64) {
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let home_s = home.path().display().to_string();
    let path = deploy(file).display().to_string();
    let out = run_cli(&["check", &path], &[("HOME", home_s.as_str())]);
    assert_eq!(out.code, 0, "{file}: {}{}", out.stdout, out.stderr);
    let json = run_cli(&["check", &path, "--json"], &[("HOME", home_s.as_str())]);
    assert_eq!(json.code, 0, "{file}: {}", json.stderr);
    assert_eq!(json.json()["actors"], actors, "{file}: {}", json.stdout);
}

#[test]
fn the_laptop_example_passes_check() {
    check_example("examples/laptop.toml", 13);
}

#[test]
fn the_server_example_passes_check() {
    check_example("examples/server.toml", 15);
}

/// The check is real: the same examples with one mistake each are refused, naming it.
#[test]
fn a_broken_example_is_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let text =
        std::fs::read_to_string(deploy("examples/server.toml")).unwrap_or_else(|e| panic!("{e}"));
    let broken = text.replace(
        "command = \"python3\"",
        "command = \"no-such-program-here\"",
    );
    assert_ne!(broken, text);
    let path = dir.path().join("server.toml");
    write_file(&path, broken);
    let out = run_cli(&["check", &path.display().to_string()], &[]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("no-such-program-here"),
        "{}",
        out.stderr
    );
}

/// `systemd-analyze verify` on both units, with ExecStart pointing at the built binary (verify
/// wants it to exist). verify exits 0 even on unknown keys or bad values, so its output must
/// be empty too. Skipped where systemd-analyze is not installed (`apt-get install systemd`).
#[test]
fn the_systemd_units_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let runtime = dir.path().join("run");
    std::fs::create_dir(&runtime).unwrap_or_else(|e| panic!("{e}"));
    crate::util::chmod(&runtime, 0o700);
    for (file, exec, user) in [
        ("metasystem.service", "%h/.local/bin/metasystem", true),
        (
            "metasystem-system.service",
            "/usr/local/bin/metasystem",
            false,
        ),
    ] {
        let text = std::fs::read_to_string(deploy(file)).unwrap_or_else(|e| panic!("{e}"));
        assert!(text.contains(&format!("ExecStart={exec} run")), "{file}");
        let unit = dir.path().join("metasystem.service");
        write_file(&unit, text.replace(exec, BIN));
        let mut cmd = Command::new("systemd-analyze");
        if user {
            cmd.arg("--user").env("XDG_RUNTIME_DIR", &runtime);
        }
        let out = cmd
            .arg("verify")
            .arg(&unit)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{file}: {said}");
        assert_eq!(said.trim(), "", "{file}: systemd-analyze verify complained");
        for key in [
            "Type=notify",
            "WatchdogSec=",
            "Restart=on-failure",
            "NoNewPrivileges=yes",
        ] {
            assert!(text.contains(key), "{file} lacks {key}");
        }
    }
}

/// The launchd agent is a well-formed plist that keeps the daemon alive after a failure (python3's
/// plistlib stands in for plutil, which is macOS only; skipped without python3).
#[test]
fn the_launchd_plist_is_well_formed() {
    let path = deploy("com.metasystem.daemon.plist").display().to_string();
    let script =
        "import plistlib,sys,json; p=plistlib.load(open(sys.argv[1],'rb')); print(json.dumps(p))";
    let Ok(out) = Command::new("python3").args(["-c", script, &path]).output() else {
        eprintln!("skipped: no python3");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plist: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plist["Label"], "com.metasystem.daemon");
    assert_eq!(plist["KeepAlive"]["SuccessfulExit"], false);
    assert_eq!(plist["ProgramArguments"][1], "run");
}
