//! Names the commit the binary is built from, for `--version`, `status`, `/health` and
//! `metasystem_build_info`: sets `METASYSTEM_BUILD` to `abc1234 2026-12-07` (the short hash of
//! HEAD, `-dirty` when tracked files differ from it, and the commit's date), or `unknown` where
//! there is no git or no repository (a tarball build still builds). A packager building from
//! a tarball can give it in the environment: `METASYSTEM_BUILD="abc1234 2026-12-07"`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=METASYSTEM_BUILD");
    let build = match std::env::var("METASYSTEM_BUILD") {
        Ok(given) if !given.trim().is_empty() => given.trim().to_string(),
        _ => from_git().unwrap_or_else(|| "unknown".into()),
    };
    println!("cargo:rustc-env=METASYSTEM_BUILD={build}");
}

/// `git` in the package's directory, its trimmed stdout when it succeeds.
fn git(args: &[&str]) -> Option<String> {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")?;
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn from_git() -> Option<String> {
    // Only our own repository: sources unpacked inside another one (vendored, a tarball
    // under someone's checkout) are not built from that repository's HEAD.
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    if top.canonicalize().ok()? != manifest.canonicalize().ok()? {
        return None;
    }
    // Run again when HEAD moves (a checkout, a commit on the branch, a fetch into packed refs)
    // or the index changes (staged edits). A worktree's HEAD is in its own git dir, its
    // branch's ref in the common one.
    let git_dir = PathBuf::from(git(&["rev-parse", "--absolute-git-dir"])?);
    let common = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"])
        .map(PathBuf::from)
        .unwrap_or_else(|| git_dir.clone());
    watch(&git_dir.join("HEAD"));
    watch(&git_dir.join("index"));
    watch(&common.join("packed-refs"));
    if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch(&common.join(&head_ref));
        watch(&git_dir.join(&head_ref));
    }
    // Unstaged edits of the sources make a build dirty too.
    for dir in ["src", "actors/src", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={dir}");
    }
    let line = git(&["show", "-s", "--format=%h %cs", "HEAD"])?;
    let (hash, date) = line.split_once(' ')?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    let dirty = if dirty { "-dirty" } else { "" };
    Some(format!("{hash}{dirty} {date}"))
}

/// rerun-if-changed on a path that exists (one that does not, such as `packed-refs` in a
/// fresh repository, would make cargo run the script at every build).
fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
