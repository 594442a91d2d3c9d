//! Found by attacking the managed processes' output handling as a hostile user would (issue
//! 10): one test per bug, asserting the right behaviour. Every wait is bounded.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
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

/// `logs -f` gets the output in pieces as the pump reads it; a piece must never end inside a
/// UTF-8 character, or the follower shows U+FFFD where the program wrote valid text.
#[test]
fn followers_get_whole_utf8_characters() {
    use metasystem_actors::process::{pump, Chunk};
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (read, write) = rustix::pipe::pipe().unwrap_or_else(|e| panic!("{e}"));
    let (tx, mut rx) = tokio::sync::broadcast::channel::<Chunk>(1024);
    let stats = Arc::new(pump::PumpStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    pump::start(
        "test".into(),
        (
            read,
            pump::shared(spec(&dir.path().join("out.log"), 10 << 20, 1)),
        ),
        None,
        tx,
        stats,
        stop,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // An odd start, then 2-byte characters across several 64 KiB reads, then a 4-byte one
    // at the end of a write and a split write of one character.
    let text = format!("x{}🦀\n", "é".repeat(100_000));
    let writer = std::thread::spawn(move || {
        let mut w = std::fs::File::from(write);
        let _ = w.write_all(text.as_bytes());
        let crab = "🦀".as_bytes();
        let _ = w.write_all(&crab[..1]);
        std::thread::sleep(Duration::from_millis(300));
        let _ = w.write_all(&crab[1..]);
        let _ = w.write_all(b"\n");
        text
    });
    let text = writer.join().unwrap_or_else(|_| panic!("writer"));
    let expected = format!("{text}🦀\n");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < expected.len() && Instant::now() < deadline {
        match rx.try_recv() {
            Ok(chunk) => {
                assert!(
                    std::str::from_utf8(&chunk.data).is_ok(),
                    "a piece of {} bytes ends or starts inside a character",
                    chunk.data.len()
                );
                got.extend_from_slice(&chunk.data);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    assert_eq!(got.len(), expected.len());
    assert!(got == expected.as_bytes());
}

/// Runs `f` on a thread and waits at most 3 s for it; on a hang, `unblock` is called (so the
/// thread ends) and the test fails.
fn within_3s<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
    unblock: impl FnOnce(),
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(3)) {
        Ok(v) => v,
        Err(_) => {
            unblock();
            panic!("{what} hung");
        }
    }
}

fn mkfifo(path: &Path) {
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        path,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}

/// Opens the other end of a FIFO without waiting, so a thread blocked opening it goes on.
fn unblock_fifo(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_nonblock())
        .open(path);
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc_nonblock())
        .open(path);
}

fn libc_nonblock() -> i32 {
    rustix::fs::OFlags::NONBLOCK.bits() as i32
}

/// A FIFO (or any file that is not a regular one) where a log file should be: `logs` answers
/// with an error naming it rather than blocking a thread of the daemon's pool for good, and
/// the writer refuses it (the output is dropped, counted) rather than blocking the pump, and
/// with it the program on its full pipe.
#[test]
fn a_fifo_in_place_of_a_log_file_blocks_nothing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("out.log");
    std::fs::write(&path, "one\n").unwrap_or_else(|e| panic!("{e}"));
    mkfifo(&rotated_path(&path, 1));
    let p = path.clone();
    let got = within_3s(
        "tail over a FIFO",
        move || tail(&p, 10, 1 << 20),
        || unblock_fifo(&rotated_path(&path, 1)),
    );
    let err = match got {
        Ok(lines) => panic!("read a FIFO as a log: {lines:?}"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("out.log.1") && err.contains("not a regular file"),
        "{err}"
    );

    let fifo = dir.path().join("fifo.log");
    mkfifo(&fifo);
    let f = fifo.clone();
    let (result, stats) = within_3s(
        "writing a log that is a FIFO",
        move || {
            let mut log = RotatingFile::new(spec(&f, 1 << 20, 1));
            let r = log.write(b"line\n").map_err(|e| e.to_string());
            (r, log.stats())
        },
        || unblock_fifo(&fifo),
    );
    let err = result.err().unwrap_or_default();
    assert!(err.contains("not a regular file"), "{err}");
    assert_eq!(stats.dropped, 5);
}
