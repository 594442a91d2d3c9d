//! Found by attacking the managed processes' output handling as a hostile user would (issue
//! 10): one test per bug, asserting the right behaviour. Every wait is bounded.

use std::path::Path;
use std::time::{Duration, Instant};

use metasystem_actors::logfile::{rotated_path, tail, LogSpec, RotatingFile, Rotation};

fn spec(path: &Path, max: u64, keep: u32) -> LogSpec {
    LogSpec {
        path: path.to_path_buf(),
        rotation: Rotation::Size(max),
        keep,
    }
}

/// A log that failed (its directory was a file, the disk was full) is tried again about once
/// a second even while the program keeps writing: a failed try must not push the next try
/// back, or a program that writes more than once a second is never logged again.
#[test]
fn a_failed_log_is_tried_again_while_writes_keep_coming() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let blocker = dir.path().join("sub");
    std::fs::write(&blocker, "not a dir").unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("sub/out.log");
    let mut log = RotatingFile::new(spec(&path, 1 << 20, 1));
    assert!(log.write(b"lost\n").is_err());
    std::fs::remove_file(&blocker).unwrap_or_else(|e| panic!("{e}"));
    // A write every 50 ms, for at most 4 s.
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut recovered = false;
    while Instant::now() < deadline {
        if log.write(b"tick\n").is_ok() {
            recovered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        recovered,
        "never written again after the directory came back: {:?}",
        log.stats()
    );
    assert!(!log.stats().failing);
    assert_eq!(std::fs::read_to_string(&path).unwrap_or_default(), "tick\n");
}

/// The log file removed (or moved away) by someone while it is written: what comes next goes
/// to a new file at the configured path, not into the removed one until the next rotation.
#[test]
fn a_removed_log_file_is_made_again() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("out.log");
    let mut log = RotatingFile::new(spec(&path, 1 << 20, 2));
    log.write(b"before\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline && !path.exists() {
        log.write(b"after\n").unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        text.starts_with("after\n"),
        "the output went on into the removed file: {text:?}"
    );
    assert_eq!(log.stats().dropped, 0, "{:?}", log.stats());
    // Moved away (by hand, or by an outside logrotate): the same.
    std::fs::rename(&path, dir.path().join("moved.log")).unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline && !path.exists() {
        log.write(b"later\n").unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .starts_with("later\n"),
        "the output went on into the moved file"
    );
}

/// The current file is missing (between the renames of a rotation, or removed by someone)
/// while the rotated ones hold lines: `logs` shows those, not nothing.
#[test]
fn tail_reads_the_rotated_files_when_the_current_one_is_missing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("out.log");
    std::fs::write(rotated_path(&path, 1), "one\ntwo\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(rotated_path(&path, 2), "zero\n").unwrap_or_else(|e| panic!("{e}"));
    let got = tail(&path, 3, 1 << 20).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(String::from_utf8_lossy(&got), "zero\none\ntwo\n");
    // Mid-rotation with keep 3: NAME.1 already moved to NAME.2, NAME not yet to NAME.1.
    std::fs::write(&path, "three\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(rotated_path(&path, 2), rotated_path(&path, 3))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(rotated_path(&path, 1), rotated_path(&path, 2))
        .unwrap_or_else(|e| panic!("{e}"));
    let got = tail(&path, 4, 1 << 20).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(String::from_utf8_lossy(&got), "zero\none\ntwo\nthree\n");
    // Nothing at all: no lines, no error.
    let none = dir.path().join("none.log");
    assert!(tail(&none, 3, 100)
        .unwrap_or_else(|e| panic!("{e}"))
        .is_empty());
}
